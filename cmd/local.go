package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/internal/syncbuf"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/simulate"
	"github.com/spf13/cobra"
)

// DefaultShutdownTimeout bounds `streamer local`'s shutdown after Ctrl-C:
// clients get close 1001 and their $disconnect runs within it.
const DefaultShutdownTimeout = 10 * time.Second

// maxSimulatedClients is pkg/simulate's limit.
const maxSimulatedClients = 10000

// LocalOptions are the inputs of `streamer local`. The key directory and
// issuer come from the global --key-dir / --issuer (and their environment
// variables), so `streamer token mint` finds the same key with no flags.
type LocalOptions struct {
	F           *Factory
	Listen      string
	Stage       string
	Audience    string
	HandlerLogs bool
	Simulate    int
	Output      string
	// ShutdownTimeout bounds the shutdown once ctx ends; 0 =>
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Ready, when set, is called once the stack accepts connections (tests).
	Ready func(*localstack.Stack)
}

// NewCmdLocal builds `streamer local`.
func NewCmdLocal(f *Factory, runF func(*LocalOptions) error) *cobra.Command {
	opts := &LocalOptions{F: f}
	c := &cobra.Command{
		Use:   "local [--listen ADDR] [--stage S] [--key-dir DIR] [--issuer I] [--audience A] [--handler-logs] [--simulate N]",
		Short: "Run the whole stack on this machine: gateway, handlers, DynamoDB API",
		Long: `Run the API Gateway WebSocket emulator with the real $connect, $disconnect and
$default handlers in-process and an embedded DynamoDB API, until Ctrl-C.

On first run it creates a development key pair (` + PrivateKeyFile + `, ` + PublicKeyFile + `) in the
key directory (--key-dir, default <user config dir>/streamer/keys); $connect
trusts its public key and ` + "`streamer token mint`" + ` signs with its private key by default,
so tokens just work. With the defaults, every other streamer command targets this
stack with no flags.

Prints the WebSocket URL, the management endpoint, the DynamoDB endpoint, the
metrics URL and a copy-paste wscat line on stdout; messages go to stderr.

--handler-logs streams the handlers' JSON log lines and EMF metric documents to
stderr, as Lambda would send them to CloudWatch. --simulate N keeps N synthetic
clients connecting, messaging and receiving tenant broadcasts (for the dashboard).

JSON output (-o json): {"websocket_url","management_endpoint","dynamodb_endpoint",
"metrics_url","table","stage","issuer","audience","key_dir","key_created","wscat"}.`,
		Example: `  streamer local
  streamer local --listen 127.0.0.1:4600 --handler-logs
  streamer local --simulate 50   # then: streamer dashboard`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if opts.Listen != "" {
				if err := checkListen(opts.Listen); err != nil {
					return err
				}
			}
			if err := contract.CheckStage(opts.Stage); err != nil {
				return &UsageError{Err: fmt.Errorf("--stage: %w", err)}
			}
			if opts.Simulate < 0 || opts.Simulate > maxSimulatedClients {
				return &UsageError{Err: fmt.Errorf("--simulate %d: want 0 (off) to %d clients", opts.Simulate, maxSimulatedClients)}
			}
			return runWith(c.Context(), opts, runF, localRun)
		},
	}
	c.Flags().StringVar(&opts.Listen, "listen", localstack.DefaultListen, "TCP address to serve on (127.0.0.1:0 picks a free port)")
	c.Flags().StringVar(&opts.Stage, "stage", localstack.DefaultStage, "API stage: the first path segment of every URL")
	c.Flags().StringVar(&opts.Audience, "audience", "", "aud claim $connect requires (default: not checked)")
	c.Flags().BoolVar(&opts.HandlerLogs, "handler-logs", false, "stream the handlers' JSON logs and EMF metrics to stderr")
	c.Flags().IntVar(&opts.Simulate, "simulate", 0, "keep N synthetic clients connected and messaging (0: off)")
	addOutputFlag(c, &opts.Output, "output format of the startup block: table|json|plain", dataFormats...)
	return c
}

// checkListen rejects what can never be listened on, before any work.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		var n int
		n, err = strconv.Atoi(port)
		if err == nil && (n < 0 || n > 65535) {
			err = errors.New("port out of range")
		}
	}
	if err != nil {
		return &UsageError{Err: fmt.Errorf("--listen %q is not HOST:PORT like %s (127.0.0.1:0 picks a free port): %v", addr, localstack.DefaultListen, err)}
	}
	return nil
}

func localRun(ctx context.Context, opts *LocalOptions) error {
	f := opts.F
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	keyDir, err := f.KeyDir()
	if err != nil {
		return err
	}
	errOut := syncbuf.NewWriter(f.IO.ErrOut)
	// Gateway diagnostics (integration failures) always reach stderr; the
	// per-connection lines only with --handler-logs.
	level := slog.LevelWarn
	lc := localstack.Config{
		Listen: opts.Listen, Stage: opts.Stage, KeyDir: keyDir,
		Issuer: cfg.Issuer, Audience: opts.Audience,
	}
	if opts.HandlerLogs {
		lc.HandlerLogs = redactingWriter{errOut}
		level = slog.LevelDebug
	}
	lc.Logger = slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr}))
	stack, err := localstack.Start(ctx, lc)
	switch {
	case errors.Is(err, localstack.ErrConfig):
		return &UsageError{Err: err}
	case err != nil:
		return err
	}
	timeout := opts.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	var sim *simulate.Simulator
	stop := func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		var errs []error
		if sim != nil {
			errs = append(errs, sim.Stop(sctx))
		}
		errs = append(errs, stack.Close(sctx))
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("shut down the local stack within %s: %w", timeout, err)
		}
		return nil
	}

	if stack.KeyCreated {
		fmt.Fprintf(errOut, "created a development key pair in %s (%s, %s)\n", stack.KeyDir, PrivateKeyFile, PublicKeyFile)
	}
	host, _, _ := net.SplitHostPort(strings.TrimPrefix(stack.BaseURL, "http://"))
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		fmt.Fprintf(errOut, "warning: listening on %s, not loopback: anyone who can reach it can post to and disconnect your connections (the local gateway checks no AWS signatures)\n", host)
	}
	if err := printLocalBlock(f, opts, cfg, stack); err != nil {
		return errors.Join(err, stop())
	}
	if opts.Simulate > 0 {
		sim, err = simulate.Start(ctx, stack, simulate.Config{Clients: opts.Simulate})
		if err != nil {
			return errors.Join(fmt.Errorf("start the simulation: %w", err), stop())
		}
		fmt.Fprintf(errOut, "simulating %d clients\n", opts.Simulate)
	}
	fmt.Fprintln(errOut, "ready; press Ctrl-C to stop")
	if opts.Ready != nil {
		opts.Ready(stack)
	}
	<-ctx.Done()
	fmt.Fprintln(errOut, "shutting down (clients get close 1001)...")
	if err := stop(); err != nil {
		return err
	}
	fmt.Fprintln(errOut, "stopped")
	return nil
}

// localJSON is the documented -o json form of the startup block.
type localJSON struct {
	WebSocketURL       string `json:"websocket_url"`
	ManagementEndpoint string `json:"management_endpoint"`
	DynamoDBEndpoint   string `json:"dynamodb_endpoint"`
	MetricsURL         string `json:"metrics_url"`
	Table              string `json:"table"`
	Stage              string `json:"stage"`
	Issuer             string `json:"issuer"`
	Audience           string `json:"audience"`
	KeyDir             string `json:"key_dir"`
	KeyCreated         bool   `json:"key_created"`
	Wscat              string `json:"wscat"`
}

// wscatPackage is the wscat the startup block suggests through npx: the
// version the README walk-through and the test suite use.
const wscatPackage = "wscat@6.1.0"

// printLocalBlock prints what a user needs to reach the stack, with the
// flags other commands need when the stack is not on the defaults.
func printLocalBlock(f *Factory, opts *LocalOptions, cfg Config, s *localstack.Stack) error {
	var common []string // flags every client command needs for this stack
	if s.ManagementEndpoint != DefaultEndpoint {
		common = append(common, "--endpoint", shellQuote(s.ManagementEndpoint))
	}
	mint := []string{"streamer", "token", "mint"}
	if def, err := f.defaultKeyDir(); err != nil || def != s.KeyDir {
		mint = append(mint, "--key-dir", shellQuote(s.KeyDir))
	}
	if s.Issuer != DefaultIssuer {
		mint = append(mint, "--issuer", shellQuote(s.Issuer))
	}
	if s.Audience != "" {
		mint = append(mint, "--audience", shellQuote(s.Audience))
	}
	// npx runs a pinned wscat without a global install (Node.js only).
	wscat := `npx ` + wscatPackage + ` -c "` + s.WebSocketURL + `?Authorization=$(` + strings.Join(mint, " ") + `)"`
	if opts.Output == FormatJSON {
		return writeJSON(f.IO.Out, localJSON{
			WebSocketURL: s.WebSocketURL, ManagementEndpoint: s.ManagementEndpoint, DynamoDBEndpoint: s.DynamoDBEndpoint,
			MetricsURL: s.MetricsURL, Table: s.Table, Stage: s.Stage, Issuer: s.Issuer, Audience: s.Audience,
			KeyDir: s.KeyDir, KeyCreated: s.KeyCreated, Wscat: wscat,
		})
	}
	p := newPalette(f.IO.OutTTY, f.Getenv)
	cli := func(args ...string) string {
		return strings.Join(append(append([]string{"streamer"}, args...), common...), " ")
	}
	smoke := cli("smoke")
	if s.WebSocketURL != DefaultWSURL {
		smoke += " --ws-url " + shellQuote(s.WebSocketURL)
	}
	if len(mint) > 3 {
		smoke += " " + strings.Join(mint[3:], " ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", p.Bold("streamer local is running (stage "+s.Stage+")"))
	for _, row := range [][2]string{
		{"WebSocket URL", s.WebSocketURL},
		{"Management endpoint", s.ManagementEndpoint},
		{"DynamoDB endpoint", s.DynamoDBEndpoint + "  (table " + s.Table + ")"},
		{"Metrics", s.MetricsURL},
		{"Key directory", s.KeyDir},
	} {
		fmt.Fprintf(&b, "  %-20s %s\n", row[0], row[1])
	}
	fmt.Fprintf(&b, "\nConnect a client (wscat through npx; needs Node.js):\n  %s\n", wscat)
	fmt.Fprintf(&b, "\nThen, from another terminal:\n")
	fmt.Fprintf(&b, "  %s\n", cli("conn", "ls", "--tenant", "tenant-1"))
	fmt.Fprintf(&b, "  %s\n", cli("send", "CONNECTION_ID", `'{"hello":"world"}'`))
	fmt.Fprintf(&b, "  %s\n", cli("broadcast", "--tenant", "tenant-1", `'{"hello":"tenant-1"}'`))
	fmt.Fprintf(&b, "  %s\n", smoke)
	_, err := io.WriteString(f.IO.Out, b.String())
	return err
}

// defaultKeyDir is where keys live when no --key-dir is given.
func (f *Factory) defaultKeyDir() (string, error) {
	if f.DefaultKeyDir == nil {
		return localstack.DefaultKeyDir()
	}
	return f.DefaultKeyDir()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ---- smoke --local

// StartLocalStack is the production Factory.StartLocal: a stack on a free
// loopback port with a throwaway key pair, so `smoke --local` never touches
// (or creates) the user's keys. Close removes the key directory.
func StartLocalStack(ctx context.Context) (LocalStack, error) {
	dir, err := os.MkdirTemp("", "streamer-smoke-keys-")
	if err != nil {
		return nil, fmt.Errorf("temporary key directory: %w", err)
	}
	s, err := localstack.Start(ctx, localstack.Config{Listen: "127.0.0.1:0", KeyDir: dir})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &localStack{s: s, dir: dir}, nil
}

type localStack struct {
	s   *localstack.Stack
	dir string
}

func (l *localStack) Config() Config {
	return Config{
		Endpoint: l.s.ManagementEndpoint, WSURL: l.s.WebSocketURL, Table: l.s.Table, Region: DefaultLocalRegion,
		DynamoDBEndpoint: l.s.DynamoDBEndpoint, KeyDir: l.s.KeyDir, Issuer: l.s.Issuer, Timeout: DefaultTimeout,
	}
}

func (l *localStack) Close(ctx context.Context) error {
	err := l.s.Close(ctx)
	return errors.Join(err, os.RemoveAll(l.dir))
}
