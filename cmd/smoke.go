package cmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pay-theory/streamer/pkg/store"
	"github.com/spf13/cobra"
)

// SmokeOptions are the inputs of `streamer smoke`.
type SmokeOptions struct {
	F       *Factory
	Local   bool
	KeyFile string
	Output  string
	// PollInterval between checks while waiting for a record to appear or
	// vanish (0 => 50ms).
	PollInterval time.Duration
}

// NewCmdSmoke builds `streamer smoke`.
func NewCmdSmoke(f *Factory, runF func(*SmokeOptions) error) *cobra.Command {
	opts := &SmokeOptions{F: f}
	c := &cobra.Command{
		Use:   "smoke [--local] [--ws-url URL] [--endpoint URL]",
		Short: "Run the connection lifecycle end to end as a timed checklist",
		Long: `Walk one connection through its whole life against a stack and check each step:
mint a token; connect a WebSocket client; the record is stored; a Send is received;
IsActive is true; a tenant broadcast is received; expired, badly signed and missing
tokens are refused with 401; disconnect; the record is removed; a Send after the
disconnect reports "not found". Each step prints with its duration.

Exit 0 only when every step passes, 3 when any fails (later steps that depended on
it are skipped), 1 when the run could not start (bad flags, no key).

--local starts an embedded local stack on a free port for the run. Against a
deployed stack, --key must be the private key matching the deployed public key.

JSON output (-o json): {"passed": bool, "duration_ms", "steps":[{"name","status":
"pass|fail|skip","duration_ms","detail","error"}]}.`,
		Example: `  streamer smoke --local
  streamer smoke --endpoint https://abc.execute-api.us-east-1.amazonaws.com/prod \
      --ws-url wss://xyz.execute-api.us-east-1.amazonaws.com/prod --key prod-signing.pem`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkOutput(opts.Output, dataFormats...); err != nil {
				return err
			}
			return runWith(c.Context(), opts, runF, smokeRun)
		},
	}
	c.Flags().BoolVar(&opts.Local, "local", false, "start an embedded local stack for the run")
	c.Flags().StringVar(&opts.KeyFile, "key", "", "private key PEM that the stack's $connect trusts (default: <key-dir>/"+PrivateKeyFile+")")
	c.Flags().StringVarP(&opts.Output, "output", "o", "", outputFlagHelp)
	return c
}

// Step statuses.
const (
	StepPass = "pass"
	StepFail = "fail"
	StepSkip = "skip"
)

// StepResult is one checklist line.
type StepResult struct {
	Name     string        `json:"name"`
	Status   string        `json:"status"`
	Duration time.Duration `json:"-"`
	MS       float64       `json:"duration_ms"`
	Detail   string        `json:"detail"`
	Error    string        `json:"error"`
}

// smokeStep is a step of the checklist; it runs only when every step in
// needs passed.
type smokeStep struct {
	name  string
	needs []string
	run   func(ctx context.Context) (detail string, err error)
}

func smokeRun(ctx context.Context, opts *SmokeOptions) error {
	f := opts.F
	format := resolveFormat(opts.Output, f.IO.OutTTY)
	if opts.Local {
		if f.StartLocal == nil {
			return fmt.Errorf("smoke --local: the embedded local stack is %w yet; start `streamer local` in another terminal and run `streamer smoke` without --local", ErrNotWired)
		}
		if opts.KeyFile != "" {
			return &UsageError{Err: errors.New("--key cannot be used with --local: the embedded stack trusts only the key pair it creates for the run")}
		}
		parent, err := f.Config()
		if err != nil {
			return err
		}
		stack, err := f.StartLocal(ctx)
		if err != nil {
			return fmt.Errorf("start the local stack: %w", err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = stack.Close(cctx)
		}()
		lc := stack.Config()
		lc.Timeout = parent.Timeout // --timeout / STREAMER_TIMEOUT still apply
		fmt.Fprintf(f.IO.ErrOut, "started a local stack at %s for this run\n", lc.WSURL)
		sub := f.WithConfig(lc)
		defer func() { _ = sub.Close(context.WithoutCancel(ctx)) }()
		o := *opts
		o.F, o.Local = sub, false
		return smokeRun(ctx, &o)
	}
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	// Setup failures (no key) stop before the checklist: exit 1 with a hint.
	key, err := f.SigningKey(opts.KeyFile)
	if err != nil {
		return err
	}
	st, err := f.Store(ctx)
	if err != nil {
		return err
	}
	m, err := f.Messenger(ctx, MessengerOptions{})
	if err != nil {
		return err
	}
	poll := opts.PollInterval
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	nonce := randomHex(6)
	user, tenant := "smoke-user-"+nonce, "smoke-tenant-"+nonce
	var (
		token  string
		client WSConn
		connID string
	)
	defer func() {
		if client != nil {
			_ = client.Close()
		}
	}()
	wsURL := func(tok string) string {
		if tok == "" {
			return cfg.WSURL
		}
		sep := "?"
		if strings.Contains(cfg.WSURL, "?") {
			sep = "&"
		}
		return cfg.WSURL + sep + "Authorization=" + url.QueryEscape(tok)
	}
	bounded := func(ctx context.Context) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, cfg.Timeout)
	}
	// expectRefused dials with tok and wants the upgrade refused with 401.
	expectRefused := func(ctx context.Context, tok string) (string, error) {
		cctx, cancel := bounded(ctx)
		defer cancel()
		c, status, err := f.Dial(cctx, wsURL(tok), nil)
		if err == nil {
			_ = c.Close()
			return "", errors.New("the upgrade succeeded; $connect should have refused it")
		}
		if status != http.StatusUnauthorized {
			if status == 0 {
				return "", explainNetErr(wsEndpoint, cfg.WSURL, err)
			}
			return "", fmt.Errorf("refused with HTTP %d, want 401: %w", status, redactErr(err))
		}
		return "HTTP 401", nil
	}
	// receive reads the next message and wants it to be want.
	receive := func(ctx context.Context, want []byte) error {
		cctx, cancel := bounded(ctx)
		defer cancel()
		got, err := client.Read(cctx)
		if err != nil {
			return fmt.Errorf("no message within %s: %w", cfg.Timeout, err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("received %q, want %q", truncate(got, 80), truncate(want, 80))
		}
		return nil
	}
	mintWith := func(spec MintSpec) (string, error) {
		spec.UserID, spec.TenantID, spec.Issuer, spec.Now = user, tenant, cfg.Issuer, f.Now
		if spec.TTL == 0 {
			spec.TTL = 10 * time.Minute
		}
		return f.Auth.Mint(key, spec)
	}

	steps := []smokeStep{
		{name: "mint token", run: func(context.Context) (string, error) {
			var err error
			token, err = mintWith(MintSpec{Permissions: []string{"smoke"}})
			return "user " + user + ", tenant " + tenant, err
		}},
		{name: "connect", needs: []string{"mint token"}, run: func(ctx context.Context) (string, error) {
			cctx, cancel := bounded(ctx)
			defer cancel()
			c, status, err := f.Dial(cctx, wsURL(token), nil)
			if err != nil {
				if status != 0 {
					return "", fmt.Errorf("upgrade refused with HTTP %d: %w (does the stack trust this key and issuer %q?)", status, redactErr(err), cfg.Issuer)
				}
				return "", explainNetErr(wsEndpoint, cfg.WSURL, err)
			}
			client = c
			return redactURL(cfg.WSURL), nil
		}},
		{name: "record stored", needs: []string{"connect"}, run: func(ctx context.Context) (string, error) {
			err := pollUntil(ctx, cfg.Timeout, poll, func(ctx context.Context) (bool, error) {
				cctx, cancel := bounded(ctx)
				defer cancel()
				page, err := st.List(cctx, store.ListQuery{UserID: user})
				if err != nil {
					return false, storeErr(cfg, err)
				}
				if len(page.Connections) > 0 {
					connID = page.Connections[0].ConnectionID
					return true, nil
				}
				return false, nil
			})
			if err != nil {
				return "", fmt.Errorf("no record for user %s in table %s: %w", user, cfg.Table, err)
			}
			cctx, cancel := bounded(ctx)
			defer cancel()
			rec, err := st.Get(cctx, connID)
			if err != nil {
				return "", fmt.Errorf("get %s: %w", connID, storeErr(cfg, err))
			}
			if rec.TenantID != tenant || rec.UserID != user {
				return "", fmt.Errorf("record %s has user %q tenant %q, want %q %q", connID, rec.UserID, rec.TenantID, user, tenant)
			}
			return "connection " + connID, nil
		}},
		{name: "send received", needs: []string{"record stored"}, run: func(ctx context.Context) (string, error) {
			msg := []byte(`{"smoke":"send","nonce":"` + nonce + `"}`)
			cctx, cancel := bounded(ctx)
			err := m.Send(cctx, connID, msg)
			cancel()
			if err != nil {
				return "", fmt.Errorf("send: %w", err)
			}
			return "", receive(ctx, msg)
		}},
		{name: "is active", needs: []string{"record stored"}, run: func(ctx context.Context) (string, error) {
			cctx, cancel := bounded(ctx)
			defer cancel()
			if !m.IsActive(cctx, connID) {
				return "", fmt.Errorf("IsActive(%s) = false for an open connection", connID)
			}
			return "", nil
		}},
		{name: "tenant broadcast received", needs: []string{"record stored"}, run: func(ctx context.Context) (string, error) {
			ids, err := listIDs(ctx, st, cfg, store.ListQuery{TenantID: tenant})
			if err != nil {
				return "", err
			}
			msg := []byte(`{"smoke":"broadcast","nonce":"` + nonce + `"}`)
			cctx, cancel := bounded(ctx)
			sum, err := m.Broadcast(cctx, ids, msg, nil)
			cancel()
			if err != nil {
				return "", fmt.Errorf("broadcast: %w", err)
			}
			if sum.Sent != 1 || sum.Total != 1 {
				return "", fmt.Errorf("broadcast to tenant %s sent %d of %d, want 1 of 1", tenant, sum.Sent, sum.Total)
			}
			return fmt.Sprintf("%d target", sum.Total), receive(ctx, msg)
		}},
		{name: "expired token refused", needs: []string{"mint token"}, run: func(ctx context.Context) (string, error) {
			tok, err := mintWith(MintSpec{Expired: true})
			if err != nil {
				return "", err
			}
			return expectRefused(ctx, tok)
		}},
		{name: "badly signed token refused", needs: []string{"mint token"}, run: func(ctx context.Context) (string, error) {
			other, err := f.Auth.GenerateKey()
			if err != nil {
				return "", err
			}
			tok, err := f.Auth.Mint(other, MintSpec{UserID: user, TenantID: tenant, Issuer: cfg.Issuer, TTL: 10 * time.Minute, Now: f.Now})
			if err != nil {
				return "", err
			}
			return expectRefused(ctx, tok)
		}},
		{name: "missing token refused", run: func(ctx context.Context) (string, error) {
			return expectRefused(ctx, "")
		}},
		{name: "disconnect", needs: []string{"connect"}, run: func(context.Context) (string, error) {
			err := client.Close()
			client = nil
			return "", err
		}},
		{name: "record removed", needs: []string{"disconnect", "record stored"}, run: func(ctx context.Context) (string, error) {
			err := pollUntil(ctx, cfg.Timeout, poll, func(ctx context.Context) (bool, error) {
				cctx, cancel := bounded(ctx)
				defer cancel()
				_, err := st.Get(cctx, connID)
				if errors.Is(err, store.ErrNotFound) {
					return true, nil
				}
				return false, storeErr(cfg, err)
			})
			if err != nil {
				return "", fmt.Errorf("record %s still present: %w", connID, err)
			}
			return "", nil
		}},
		{name: "send after disconnect is not found", needs: []string{"record removed"}, run: func(ctx context.Context) (string, error) {
			cctx, cancel := bounded(ctx)
			defer cancel()
			err := m.Send(cctx, connID, []byte(`{"smoke":"late"}`))
			if !errors.Is(err, ErrTargetNotFound) {
				return "", fmt.Errorf("send returned %v, want connection not found", err)
			}
			return "not found", nil
		}},
	}
	return runChecklist(ctx, f, format, steps)
}

// runChecklist runs steps in order, printing each as it finishes (JSON at
// the end), and returns ErrPartial unless every step passed.
func runChecklist(ctx context.Context, f *Factory, format string, steps []smokeStep) error {
	p := newPalette(f.IO.OutTTY, f.Getenv)
	passed := map[string]bool{}
	var results []StepResult
	start := f.Now()
	width := 0
	for _, s := range steps {
		width = max(width, len(s.name))
	}
	for _, s := range steps {
		r := StepResult{Name: s.name, Status: StepPass}
		var missing []string
		for _, n := range s.needs {
			if !passed[n] {
				missing = append(missing, n)
			}
		}
		switch {
		case ctx.Err() != nil:
			r.Status, r.Error = StepSkip, "cancelled"
		case len(missing) > 0:
			r.Status, r.Detail = StepSkip, "needs "+strings.Join(missing, ", ")
		default:
			t0 := f.Now()
			detail, err := s.run(ctx)
			r.Duration = f.Now().Sub(t0)
			r.Detail = redactText(detail)
			if err != nil {
				r.Status, r.Error = StepFail, userText(err.Error())
			}
		}
		r.MS = float64(r.Duration.Microseconds()) / 1000
		passed[s.name] = r.Status == StepPass
		results = append(results, r)
		switch format {
		case FormatJSON:
		case FormatPlain:
			fmt.Fprintf(f.IO.Out, "%s\t%s\t%.1f\t%s\n", r.Status, r.Name, r.MS, strings.Join(sanitizeCells([]string{firstNonEmpty(r.Error, r.Detail)}), ""))
		default:
			mark := p.Green("✓")
			switch r.Status {
			case StepFail:
				mark = p.Red("✗")
			case StepSkip:
				mark = p.Yellow("-")
			}
			line := fmt.Sprintf("%s %-*s %9s", mark, width, r.Name, formatDuration(r.Duration))
			if r.Status == StepSkip {
				line = fmt.Sprintf("%s %-*s %9s", mark, width, r.Name, "skipped")
			}
			if d := firstNonEmpty(r.Error, r.Detail); d != "" {
				if r.Status == StepFail {
					d = p.Red(d)
				}
				line += "  " + d
			}
			fmt.Fprintln(f.IO.Out, line)
		}
	}
	total := f.Now().Sub(start)
	ok := 0
	for _, r := range results {
		if r.Status == StepPass {
			ok++
		}
	}
	allPassed := ok == len(results)
	switch format {
	case FormatJSON:
		if err := writeJSON(f.IO.Out, map[string]any{"passed": allPassed, "duration_ms": float64(total.Microseconds()) / 1000, "steps": results}); err != nil {
			return err
		}
	default:
		verdict := p.Green("PASS")
		if !allPassed {
			verdict = p.Red("FAIL")
		}
		fmt.Fprintf(f.IO.ErrOut, "%s: %d/%d steps passed in %s\n", verdict, ok, len(results), formatDuration(total))
	}
	if !allPassed {
		return fmt.Errorf("%w: smoke: %d of %d steps did not pass", ErrPartial, len(results)-ok, len(results))
	}
	return nil
}

// pollUntil calls cond every interval until it reports done, returns an
// error, timeout passes or ctx ends.
func pollUntil(ctx context.Context, timeout, interval time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTimer(0)
	defer t.Stop()
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("gave up after %s: %w", timeout, lastErr)
			}
			return fmt.Errorf("gave up after %s", timeout)
		case <-t.C:
		}
		done, err := cond(ctx)
		if done {
			return nil
		}
		lastErr = err
		t.Reset(interval)
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
