package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/internal/syncbuf"
	"github.com/pay-theory/streamer/pkg/localgw"
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
	// The AWS regime the gateway imposes (see LocalRegime).
	Regime LocalRegime
	// Routes are --route KEY=TARGET values; RoutesFile the --routes-file;
	// RouteSelection the --route-selection expression.
	Routes         []string
	RoutesFile     string
	RouteSelection string
	// ShutdownTimeout bounds the shutdown once ctx ends; 0 =>
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Ready, when set, is called once the stack accepts connections (tests).
	Ready func(*localstack.Stack)
}

// LocalRegime is the AWS behaviour `streamer local` reproduces on demand:
// @connections latency, the account throttle, lost $disconnect events and
// the account quotas. The zero value is loopback speed with no limits.
type LocalRegime struct {
	Latency, Jitter time.Duration
	// Throttle is "RATE" or "RATE/BURST" (requests per second, bucket size).
	Throttle       string
	DropDisconnect float64
	AWSQuotas      bool
}

// maxInjectedLatency bounds --latency and --jitter: past API Gateway's own
// 29 s integration timeout nothing realistic is left to model.
const maxInjectedLatency = 30 * time.Second

// faults checks the regime and returns the gateway's fault injection for it.
func (r LocalRegime) faults() (localgw.Faults, error) {
	f := localgw.Faults{Latency: r.Latency, Jitter: r.Jitter, DropDisconnect: r.DropDisconnect}
	for name, d := range map[string]time.Duration{"--latency": r.Latency, "--jitter": r.Jitter} {
		if d < 0 || d > maxInjectedLatency {
			return f, &UsageError{Err: fmt.Errorf("%s %s: want 0 to %s (e.g. 20ms, as an @connections call within a region takes)", name, d, maxInjectedLatency)}
		}
	}
	if r.DropDisconnect < 0 || r.DropDisconnect > 1 {
		return f, &UsageError{Err: fmt.Errorf("--drop-disconnect %v: want a fraction of closes from 0 to 1 (e.g. 0.3)", r.DropDisconnect)}
	}
	if r.Throttle != "" {
		rate, burst, err := parseThrottle(r.Throttle)
		if err != nil {
			return f, &UsageError{Err: fmt.Errorf("--throttle %q: %v; want RATE or RATE/BURST in requests per second, e.g. 400 or 10000/5000", r.Throttle, err)}
		}
		f.ThrottleRate, f.ThrottleBurst = rate, burst
	}
	return f, nil
}

// parseThrottle reads RATE[/BURST]; BURST defaults to half the rate (at
// least 1), the shape of API Gateway's default account throttle
// (10,000 requests/s with a burst of 5,000).
func parseThrottle(s string) (float64, int, error) {
	rs, bs, hasBurst := strings.Cut(s, "/")
	rate, err := strconv.ParseFloat(rs, 64)
	if err != nil || rate <= 0 || rate > 1e6 {
		return 0, 0, errors.New("the rate must be a number of requests per second above 0 (at most 1000000)")
	}
	burst := max(1, int(rate/2))
	if hasBurst {
		if burst, err = strconv.Atoi(bs); err != nil || burst < 1 || burst > 1e6 {
			return 0, 0, errors.New("the burst must be a whole number of requests from 1 to 1000000")
		}
	}
	return rate, burst, nil
}

// describe is the regime in words for the startup block ("" when none).
func (r LocalRegime) describe(f localgw.Faults) string {
	var parts []string
	if f.Latency > 0 || f.Jitter > 0 {
		d := "+" + f.Latency.String()
		if f.Jitter > 0 {
			d += " (+0-" + f.Jitter.String() + " jitter)"
		}
		parts = append(parts, d+" per @connections request")
	}
	if f.ThrottleRate > 0 {
		parts = append(parts, fmt.Sprintf("429 beyond %g requests/s (burst %d)", f.ThrottleRate, f.ThrottleBurst))
	}
	if f.DropDisconnect > 0 {
		parts = append(parts, fmt.Sprintf("%g%% of $disconnect events dropped", f.DropDisconnect*100))
	}
	if r.AWSQuotas {
		parts = append(parts, fmt.Sprintf("AWS quotas (%d new connections/s; %d/%d @connections throttle unless --throttle)",
			localgw.AWSConnectRateLimit, localgw.AWSThrottleRate, localgw.AWSThrottleBurst))
	}
	return strings.Join(parts, "; ")
}

// NewCmdLocal builds `streamer local`.
func NewCmdLocal(f *Factory, runF func(*LocalOptions) error) *cobra.Command {
	opts := &LocalOptions{F: f}
	c := &cobra.Command{
		Use:   "local [--listen ADDR] [--stage S] [--handler-logs] [--simulate N] [--route KEY=TARGET]... [--routes-file FILE]",
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

The AWS regime, reproduced on demand (all off by default; a test can change
them while the stack runs through the library's Gateway.SetFaults):
  --latency D       delay every @connections request by D (AWS: tens of ms)
  --jitter D        add a random 0-D on top
  --throttle R[/B]  answer 429 LimitExceededException beyond a token bucket of
                    R requests/s and burst B (default R/2), as API Gateway's
                    account throttle does (10000/5000 by default on AWS)
  --drop-disconnect P  skip the $disconnect integration for a fraction P of
                    closes, as AWS may ($disconnect is best-effort): the
                    records linger until ` + "`streamer conn prune`" + ` removes them
  --aws-quotas      API Gateway's default account quotas: 500 new connections
                    per second (429 at the upgrade) and the 10000/5000
                    @connections throttle unless --throttle is given

Routes of your own, served by your Lambda functions: build the function's
bootstrap, run it under the Lambda Runtime Interface Emulator (aws-lambda-rie;
` + "`scripts/tools.sh`" + ` installs it into .tools/bin) or ` + "`sam local start-lambda`" + `, and
point a route key at its Invoke URL. The function reaches this stack's DynamoDB
endpoint and @connections API as the builtin handlers do.
  --route KEY=TARGET   repeatable; TARGET is a Lambda Invoke URL
                       (http://HOST:PORT/2015-03-31/functions/NAME/invocations)
                       or builtin:connect|disconnect|default (this stack's
                       handlers). KEY is a key the route selection expression
                       yields (sendmessage) or $connect, $disconnect, $default:
                       '$connect=URL' puts your own authorizer function in
                       front (a non-2xx answer refuses the upgrade with it).
                       Routes are one-way, as on AWS, except $default: a
                       function's response body is dropped unless the route is
                       two-way (--routes-file).
  --route-selection EXPR  the route selection expression (default
                       $request.body.action; templates such as
                       '${request.body.type}/${request.body.action}' work too)
  --routes-file FILE   JSON declaring the same, with per-route two-way
                       settings; --route adds routes to it (a key given twice
                       is refused) and --route-selection overrides its
                       expression:
                         {"route_selection_expression": "$request.body.action",
                          "routes": [{"key": "sendmessage", "two_way": true,
                            "target": "http://127.0.0.1:9001/2015-03-31/functions/function/invocations"}]}

Each Invoke URL's host and port is probed once at start-up (a TCP connection,
never an invocation): start the emulator first. A bad key or target is refused
with exit 2, an unreachable endpoint with exit 1, both naming the route. When a
function fails (an error, a crash, a timeout, an unreachable endpoint) the
client gets API Gateway's error frame and stderr a line naming the route and
the request id. The invocations of one Invoke URL run one at a time (an
emulator is one execution environment). examples/chat is such a function, with
a walk-through.

JSON output (-o json): {"websocket_url","management_endpoint","dynamodb_endpoint",
"metrics_url","table","stage","issuer","audience","key_dir","key_created","wscat","regime",
"route_selection_expression","routes":[{"key","target","two_way"}]}.`,
		Example: `  streamer local
  streamer local --listen 127.0.0.1:4600 --handler-logs
  streamer local --simulate 50   # then: streamer dashboard
  streamer local --latency 20ms --jitter 5ms --throttle 400   # the AWS regime
  streamer local --drop-disconnect 0.3   # then: streamer conn prune
  streamer local --route sendmessage=http://127.0.0.1:9001/2015-03-31/functions/function/invocations
  streamer local --route '$connect=http://127.0.0.1:9101/2015-03-31/functions/function/invocations'
  streamer local --routes-file routes.json --route-selection '${request.body.type}'`,
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
			if _, err := opts.Regime.faults(); err != nil {
				return err
			}
			return runWith(c.Context(), opts, runF, localRun)
		},
	}
	c.Flags().StringVar(&opts.Listen, "listen", localstack.DefaultListen, "TCP address to serve on (127.0.0.1:0 picks a free port)")
	c.Flags().StringVar(&opts.Stage, "stage", localstack.DefaultStage, "API stage: the first path segment of every URL")
	c.Flags().StringVar(&opts.Audience, "audience", "", "aud claim $connect requires (default: not checked)")
	c.Flags().BoolVar(&opts.HandlerLogs, "handler-logs", false, "stream the handlers' JSON logs and EMF metrics to stderr")
	c.Flags().IntVar(&opts.Simulate, "simulate", 0, "keep N synthetic clients connected and messaging (0: off)")
	c.Flags().DurationVar(&opts.Regime.Latency, "latency", 0, "delay every @connections request (AWS-like: 20ms)")
	c.Flags().DurationVar(&opts.Regime.Jitter, "jitter", 0, "add a random 0 to this much to each delay")
	c.Flags().StringVar(&opts.Regime.Throttle, "throttle", "", "RATE[/BURST]: 429 beyond this many @connections requests/s (burst default RATE/2)")
	c.Flags().Float64Var(&opts.Regime.DropDisconnect, "drop-disconnect", 0, "fraction (0-1) of closes whose $disconnect is skipped, as AWS may")
	c.Flags().BoolVar(&opts.Regime.AWSQuotas, "aws-quotas", false, "API Gateway's default account quotas (500 connects/s, 10000/5000 throttle)")
	c.Flags().StringArrayVar(&opts.Routes, "route", nil, "KEY=TARGET: route KEY to a Lambda Invoke URL or builtin:connect|disconnect|default (repeatable)")
	c.Flags().StringVar(&opts.RouteSelection, "route-selection", "", "route selection expression (default $request.body.action)")
	c.Flags().StringVar(&opts.RoutesFile, "routes-file", "", "JSON file of routes, with per-route two-way settings (see above)")
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
	faults, err := opts.Regime.faults()
	if err != nil {
		return err
	}
	routes, expr, err := opts.localRoutes(ctx, f.IO.In)
	if err != nil {
		return err
	}
	lc := localstack.Config{
		Listen: opts.Listen, Stage: opts.Stage, KeyDir: keyDir,
		Issuer: cfg.Issuer, Audience: opts.Audience, Routes: routes,
	}
	lc.Gateway.Faults, lc.Gateway.AWSQuotas = faults, opts.Regime.AWSQuotas
	lc.Gateway.RouteSelectionExpression = expr
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
	f.warnKeyPermissions(filepath.Join(stack.KeyDir, PrivateKeyFile))
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
	// Regime is the AWS behaviour imposed (--latency, --throttle, ...):
	// "" when none.
	Regime string `json:"regime"`
	// RouteSelectionExpression and Routes are the routing in effect:
	// $connect, $disconnect and $default first, then the other keys.
	RouteSelectionExpression string           `json:"route_selection_expression"`
	Routes                   []localRouteJSON `json:"routes"`
}

// localRouteJSON is one route in effect.
type localRouteJSON struct {
	Key string `json:"key"`
	// Target is builtin:connect|disconnect|default or a Lambda Invoke URL.
	Target string `json:"target"`
	TwoWay bool   `json:"two_way"`
}

// wscatPackage is the wscat the startup block suggests through npx: the
// version the README walk-through and the test suite use.
const wscatPackage = "wscat@6.1.0"

// printLocalBlock prints what a user needs to reach the stack, with the
// flags other commands need when the stack is not on the defaults.
func printLocalBlock(f *Factory, opts *LocalOptions, cfg Config, s *localstack.Stack) error {
	regime := opts.Regime.describe(s.Gateway.Faults())
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
		routes := make([]localRouteJSON, len(s.Routes))
		for i, r := range s.Routes {
			routes[i] = localRouteJSON{Key: r.Key, Target: r.Target, TwoWay: r.TwoWay}
		}
		return writeJSON(f.IO.Out, localJSON{
			WebSocketURL: s.WebSocketURL, ManagementEndpoint: s.ManagementEndpoint, DynamoDBEndpoint: s.DynamoDBEndpoint,
			MetricsURL: s.MetricsURL, Table: s.Table, Stage: s.Stage, Issuer: s.Issuer, Audience: s.Audience,
			KeyDir: s.KeyDir, KeyCreated: s.KeyCreated, Wscat: wscat, Regime: regime,
			RouteSelectionExpression: s.RouteSelectionExpression, Routes: routes,
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
	if regime != "" {
		fmt.Fprintf(&b, "  %-20s %s\n", "AWS regime", regime)
	}
	if len(opts.Routes) > 0 || opts.RoutesFile != "" || opts.RouteSelection != "" {
		writeRoutes(&b, s)
	}
	listen := "streamer listen --tenant tenant-1"
	if s.WebSocketURL != DefaultWSURL {
		listen += " --ws-url " + shellQuote(s.WebSocketURL)
	}
	if len(mint) > 3 {
		listen += " " + strings.Join(mint[3:], " ")
	}
	fmt.Fprintf(&b, "\nWatch messages arrive (a built-in client):\n  %s\n", listen)
	fmt.Fprintf(&b, "or with a third-party client (wscat through npx; needs Node.js):\n  %s\n", wscat)
	fmt.Fprintf(&b, "\nThen, from another terminal:\n")
	fmt.Fprintf(&b, "  %s\n", cli("conn", "ls", "--tenant", "tenant-1"))
	fmt.Fprintf(&b, "  %s\n", cli("send", "CONNECTION_ID", `'{"hello":"world"}'`))
	fmt.Fprintf(&b, "  %s\n", cli("broadcast", "--tenant", "tenant-1", `'{"hello":"tenant-1"}'`))
	fmt.Fprintf(&b, "  %s\n", smoke)
	_, err := io.WriteString(f.IO.Out, b.String())
	return err
}

// writeRoutes lists the routes in effect under the selection expression,
// for a stack with routes of its own.
func writeRoutes(b *strings.Builder, s *localstack.Stack) {
	fmt.Fprintf(b, "  %-20s selected by %s\n", "Routes", terminalText(s.RouteSelectionExpression))
	for _, r := range s.Routes {
		way := "one-way"
		if r.TwoWay {
			way = "two-way"
		}
		fmt.Fprintf(b, "    %-18s %s (%s)\n", terminalText(r.Key), terminalText(r.Target), way)
	}
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
