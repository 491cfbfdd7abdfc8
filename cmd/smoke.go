package cmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/connection"
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

Exit 0 only when every step passes; 3 when a step fails against a stack that
answered (later steps that depend on it show as skipped); 1 when the run could not
check the stack: no signing key, an endpoint that does not answer (no stack running
at --ws-url / --endpoint), or a --table that does not exist; 2 for usage errors
(bad flags).

--local starts an embedded local stack on a free port for the run. Against a
deployed stack, --stack NAME takes the endpoint, WebSocket URL, table, region and
issuer from its outputs (saved by scripts/deploy.sh), and --key must be the private
key matching the public key in the stack's secret.

JSON output (-o json): {"passed": bool, "duration_ms", "steps":[{"name","status":
"pass|fail|skip","duration_ms","detail","error"}]}.`,
		Example: `  streamer smoke --local
  streamer smoke --stack dev --key keys-dev/jwt-private.pem
  streamer smoke --endpoint https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/dev \
      --ws-url wss://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/dev --region us-east-1 \
      --table streamer-connections-dev --issuer streamer-dev --key keys-dev/jwt-private.pem`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if opts.Local && opts.KeyFile != "" {
				return &UsageError{Err: errors.New("--key cannot be used with --local: the embedded stack trusts only the key pair it creates for the run")}
			}
			return runWith(c.Context(), opts, runF, smokeRun)
		},
	}
	c.Flags().BoolVar(&opts.Local, "local", false, "start an embedded local stack for the run")
	c.Flags().StringVar(&opts.KeyFile, "key", "", "private key PEM that the stack's $connect trusts (default: <key-dir>/"+PrivateKeyFile+")")
	addOutputFlag(c, &opts.Output, outputFlagHelp, dataFormats...)
	return c
}

func smokeRun(ctx context.Context, opts *SmokeOptions) error {
	if opts.Local {
		return withLocalStack(ctx, opts.F, func(sub *Factory) error {
			o := *opts
			o.F, o.Local = sub, false
			return smokeRun(ctx, &o)
		})
	}
	s, err := newSmoke(ctx, opts)
	if err != nil {
		return err
	}
	defer s.closeClient()
	return runChecklist(ctx, opts.F, resolveFormat(opts.Output, opts.F.IO.OutTTY), s.steps())
}

// withLocalStack starts an embedded local stack for one run and calls fn
// with a Factory whose every client points at it (--timeout still
// applies); both are closed when fn returns.
func withLocalStack(ctx context.Context, f *Factory, fn func(*Factory) error) error {
	parent, err := f.Config()
	if err != nil {
		return err
	}
	start := f.StartLocal
	if start == nil {
		start = StartLocalStack
	}
	stack, err := start(ctx)
	if err != nil {
		return fmt.Errorf("start the local stack: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = stack.Close(cctx)
	}()
	lc := stack.Config()
	lc.Timeout = parent.Timeout
	fmt.Fprintf(f.IO.ErrOut, "started a local stack at %s for this run\n", lc.WSURL)
	sub := f.WithConfig(lc)
	defer func() { _ = sub.Close(context.WithoutCancel(ctx)) }()
	return fn(sub)
}

// Step names. Steps name the ones they depend on with these constants, and
// runChecklist refuses a dependency on a step that does not run before.
const (
	stepMint            = "mint token"
	stepConnect         = "connect"
	stepRecordStored    = "record stored"
	stepSendReceived    = "send received"
	stepIsActive        = "is active"
	stepBroadcast       = "tenant broadcast received"
	stepExpiredRefused  = "expired token refused"
	stepBadSigRefused   = "badly signed token refused"
	stepNoTokenRefused  = "missing token refused"
	stepDisconnect      = "disconnect"
	stepRecordRemoved   = "record removed"
	stepSendAfterClosed = "send after disconnect is not found"
)

// smoke is one run's shared state: what every step needs (configuration,
// key, clients) and what earlier steps hand to later ones (the token, the
// client connection, its id).
type smoke struct {
	f    *Factory
	cfg  Config
	key  *rsa.PrivateKey
	st   ConnStore
	m    Messenger
	poll time.Duration

	nonce, user, tenant string

	token  string
	client WSConn
	connID string
}

// newSmoke resolves what the run needs. Failures here (no key) stop before
// the checklist: exit 1 with a hint.
func newSmoke(ctx context.Context, opts *SmokeOptions) (*smoke, error) {
	f := opts.F
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	key, err := f.SigningKey(opts.KeyFile)
	if err != nil {
		return nil, err
	}
	st, err := f.Store(ctx)
	if err != nil {
		return nil, err
	}
	m, err := f.Messenger(ctx, MessengerOptions{})
	if err != nil {
		return nil, err
	}
	poll := opts.PollInterval
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	nonce := randomHex(6)
	return &smoke{f: f, cfg: cfg, key: key, st: st, m: m, poll: poll,
		nonce: nonce, user: "smoke-user-" + nonce, tenant: "smoke-tenant-" + nonce}, nil
}

// steps is the checklist, in order.
func (s *smoke) steps() []smokeStep {
	return []smokeStep{
		{name: stepMint, run: s.mintToken},
		{name: stepConnect, needs: []string{stepMint}, run: s.connect},
		{name: stepRecordStored, needs: []string{stepConnect}, run: s.recordStored},
		{name: stepSendReceived, needs: []string{stepRecordStored}, run: s.sendReceived},
		{name: stepIsActive, needs: []string{stepRecordStored}, run: s.isActive},
		{name: stepBroadcast, needs: []string{stepRecordStored}, run: s.broadcastReceived},
		// A refusal means something only from a stack that accepts a
		// good token: after a failed connect every token is "refused".
		{name: stepExpiredRefused, needs: []string{stepConnect}, run: s.expiredRefused},
		{name: stepBadSigRefused, needs: []string{stepConnect}, run: s.badlySignedRefused},
		{name: stepNoTokenRefused, needs: []string{stepConnect}, run: s.missingRefused},
		{name: stepDisconnect, needs: []string{stepConnect}, run: s.disconnect},
		{name: stepRecordRemoved, needs: []string{stepDisconnect, stepRecordStored}, run: s.recordRemoved},
		{name: stepSendAfterClosed, needs: []string{stepRecordRemoved}, run: s.sendAfterDisconnect},
	}
}

func (s *smoke) closeClient() {
	if s.client != nil {
		_ = s.client.Close()
	}
}

// bounded is ctx bounded by the per-call timeout.
func (s *smoke) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// wsURL is the WebSocket URL carrying tok as its one Authorization
// parameter (none when tok is ""): one already in --ws-url is replaced, so
// each step sends exactly the token it tests.
func (s *smoke) wsURL(tok string) string { return tokenURL(s.cfg.WSURL, tok) }

// mintWith signs a token for the run's user and tenant with key (10 minutes
// unless o says otherwise).
func (s *smoke) mintWith(key *rsa.PrivateKey, o auth.MintOptions) (string, error) {
	o.UserID, o.TenantID, o.Issuer, o.Now = s.user, s.tenant, s.cfg.Issuer, s.f.Now
	if s.cfg.Audience != "" { // the stack's $connect requires it (--stack)
		o.Audience = []string{s.cfg.Audience}
	}
	if o.TTL == 0 {
		o.TTL = 10 * time.Minute
	}
	return auth.Mint(key, o)
}

// expectRefused dials with tok and wants the upgrade refused with 401.
func (s *smoke) expectRefused(ctx context.Context, tok string) (string, error) {
	cctx, cancel := s.bounded(ctx)
	defer cancel()
	c, status, err := s.f.Dial(cctx, s.wsURL(tok), nil)
	if err == nil {
		_ = c.Close()
		return "", errors.New("the upgrade succeeded; $connect should have refused it")
	}
	if status != http.StatusUnauthorized {
		if status == 0 {
			return "", explainNetErr(wsEndpoint, s.cfg.WSURL, err)
		}
		return "", fmt.Errorf("refused with HTTP %d, want 401: %w", status, redactErr(err))
	}
	return "HTTP 401", nil
}

// receive reads the client's next message and wants it to be want.
func (s *smoke) receive(ctx context.Context, want []byte) error {
	cctx, cancel := s.bounded(ctx)
	defer cancel()
	got, err := s.client.Read(cctx)
	if err != nil {
		return fmt.Errorf("no message within %s: %w", s.cfg.Timeout, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("received %q, want %q", truncate(got, 80), truncate(want, 80))
	}
	return nil
}

func (s *smoke) mintToken(context.Context) (string, error) {
	var err error
	s.token, err = s.mintWith(s.key, auth.MintOptions{Permissions: []string{"smoke"}})
	return "user " + s.user + ", tenant " + s.tenant, err
}

func (s *smoke) connect(ctx context.Context) (string, error) {
	cctx, cancel := s.bounded(ctx)
	defer cancel()
	c, status, err := s.f.Dial(cctx, s.wsURL(s.token), nil)
	if err != nil {
		if status != 0 {
			return "", fmt.Errorf("upgrade refused with HTTP %d: %w (does the stack trust this key and issuer %q?)", status, redactErr(err), s.cfg.Issuer)
		}
		return "", explainNetErr(wsEndpoint, s.cfg.WSURL, err)
	}
	s.client = c
	return redactURL(s.cfg.WSURL), nil
}

func (s *smoke) recordStored(ctx context.Context) (string, error) {
	err := pollUntil(ctx, s.cfg.Timeout, s.poll, func(ctx context.Context) (bool, error) {
		cctx, cancel := s.bounded(ctx)
		defer cancel()
		page, err := s.st.List(cctx, store.ListQuery{UserID: s.user})
		if err != nil {
			return false, storeErr(s.cfg, err)
		}
		if len(page.Connections) > 0 {
			s.connID = page.Connections[0].ConnectionID
			return true, nil
		}
		return false, nil
	})
	if errors.Is(err, errWaitedOut) {
		return "", fmt.Errorf("no record for user %s in table %s: %w", s.user, s.cfg.Table, err)
	}
	if err != nil {
		return "", err
	}
	cctx, cancel := s.bounded(ctx)
	defer cancel()
	rec, err := s.st.Get(cctx, s.connID)
	if err != nil {
		return "", fmt.Errorf("get %s: %w", s.connID, storeErr(s.cfg, err))
	}
	if rec.TenantID != s.tenant || rec.UserID != s.user {
		return "", fmt.Errorf("record %s has user %q tenant %q, want %q %q", s.connID, rec.UserID, rec.TenantID, s.user, s.tenant)
	}
	return "connection " + s.connID, nil
}

func (s *smoke) sendReceived(ctx context.Context) (string, error) {
	msg := []byte(`{"smoke":"send","nonce":"` + s.nonce + `"}`)
	cctx, cancel := s.bounded(ctx)
	err := s.m.Send(cctx, s.connID, msg)
	cancel()
	if err != nil {
		return "", explainSendErr(s.cfg, fmt.Errorf("send: %w", err))
	}
	return "", s.receive(ctx, msg)
}

func (s *smoke) isActive(ctx context.Context) (string, error) {
	cctx, cancel := s.bounded(ctx)
	defer cancel()
	if !s.m.IsActive(cctx, s.connID) {
		return "", fmt.Errorf("IsActive(%s) = false for an open connection", s.connID)
	}
	return "", nil
}

func (s *smoke) broadcastReceived(ctx context.Context) (string, error) {
	ids, err := listIDs(ctx, s.st, s.cfg, store.ListQuery{TenantID: s.tenant})
	if err != nil {
		return "", err
	}
	msg := []byte(`{"smoke":"broadcast","nonce":"` + s.nonce + `"}`)
	cctx, cancel := s.bounded(ctx)
	sum, err := s.m.BroadcastWithProgress(cctx, ids, msg, nil)
	cancel()
	if err != nil {
		return "", explainSendErr(s.cfg, fmt.Errorf("broadcast: %w", err))
	}
	if sum.Sent != 1 || sum.Total != 1 {
		return "", fmt.Errorf("broadcast to tenant %s sent %d of %d, want 1 of 1", s.tenant, sum.Sent, sum.Total)
	}
	return fmt.Sprintf("%d target", sum.Total), s.receive(ctx, msg)
}

func (s *smoke) expiredRefused(ctx context.Context) (string, error) {
	tok, err := s.mintWith(s.key, auth.MintOptions{Expired: true})
	if err != nil {
		return "", err
	}
	return s.expectRefused(ctx, tok)
}

func (s *smoke) badlySignedRefused(ctx context.Context) (string, error) {
	other, err := auth.GenerateKeyPair(0)
	if err != nil {
		return "", err
	}
	tok, err := s.mintWith(other, auth.MintOptions{})
	if err != nil {
		return "", err
	}
	return s.expectRefused(ctx, tok)
}

func (s *smoke) missingRefused(ctx context.Context) (string, error) {
	return s.expectRefused(ctx, "")
}

func (s *smoke) disconnect(context.Context) (string, error) {
	err := s.client.Close()
	s.client = nil
	return "", err
}

func (s *smoke) recordRemoved(ctx context.Context) (string, error) {
	err := pollUntil(ctx, s.cfg.Timeout, s.poll, func(ctx context.Context) (bool, error) {
		cctx, cancel := s.bounded(ctx)
		defer cancel()
		_, err := s.st.Get(cctx, s.connID)
		if errors.Is(err, store.ErrNotFound) {
			return true, nil
		}
		return false, storeErr(s.cfg, err)
	})
	if errors.Is(err, errWaitedOut) {
		return "", fmt.Errorf("record %s still present: %w", s.connID, err)
	}
	return "", err
}

func (s *smoke) sendAfterDisconnect(ctx context.Context) (string, error) {
	cctx, cancel := s.bounded(ctx)
	defer cancel()
	err := s.m.Send(cctx, s.connID, []byte(`{"smoke":"late"}`))
	if !errors.Is(err, connection.ErrConnectionNotFound) {
		return "", fmt.Errorf("send returned %v, want connection not found", err)
	}
	return "not found", nil
}

// errWaitedOut is pollUntil's error when the condition did not come true
// within the timeout.
var errWaitedOut = errors.New("gave up waiting")

// pollUntil calls cond every interval until it reports done, timeout passes
// (errWaitedOut) or ctx ends. An error from cond ends the wait at once: a
// missing table or an endpoint that does not answer will not mend within
// the timeout. Throttling is the exception, and is retried.
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
				return fmt.Errorf("%w after %s: %w", errWaitedOut, timeout, lastErr)
			}
			return fmt.Errorf("%w after %s", errWaitedOut, timeout)
		case <-t.C:
		}
		done, err := cond(ctx)
		switch {
		case done:
			return nil
		case err != nil && !errors.Is(err, store.ErrThrottled):
			return err
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
