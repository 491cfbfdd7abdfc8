// Package cmd holds the streamer CLI's cobra commands.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/pay-theory/streamer/pkg/store/schema"

	"github.com/spf13/cobra"
)

// Exit codes, decided only here (see Main).
const (
	ExitOK      = 0
	ExitError   = 1
	ExitUsage   = 2
	ExitPartial = 3
)

// ErrPartial marks an outcome where some of the work failed (a broadcast with
// failures, a smoke test with a failing step). Commands wrap it so Main exits 3.
var ErrPartial = errors.New("partial failure")

// ErrSilent is returned by a command that has already told the user what went
// wrong; Main prints nothing more.
var ErrSilent = errors.New("silent failure")

// UsageError marks bad flags or arguments (exit 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// SignalError is the cause of the run's context when SIGINT or SIGTERM
// ended it. A command that fails after it exits 128 + the signal's number
// (130 for SIGINT, 143 for SIGTERM), as shells report a process a signal
// ended; a command that stops cleanly on the signal (`streamer local`)
// still exits 0.
type SignalError struct{ Signal syscall.Signal }

func (e *SignalError) Error() string { return "interrupted (" + signalName(e.Signal) + ")" }

// ExitCode is 128 + the signal's number.
func (e *SignalError) ExitCode() int { return 128 + int(e.Signal) }

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// Main runs the CLI with the process's arguments and streams and returns the
// exit code. It is the only place that maps outcomes to exit codes.
func Main() int {
	ctx, stop := notifyContext(context.Background())
	defer stop()
	f := NewFactory(os.Stdin, os.Stdout, os.Stderr)
	return Run(ctx, f, os.Args[1:])
}

// cliGCPercent is the collector's target for the fan-out commands
// (broadcast, conn prune): short-lived, with a small live heap and a
// stream of short-lived allocations, where collecting at 5× the live heap
// instead of 2× cuts the collector's share of the CPU (~12% of a
// broadcast's at 2,000 targets; at 20 ms per request it finishes 15–20%
// sooner on two cores) for a few MB more. Long-running commands (local,
// listen, dashboard) keep Go's default: their live heap can be large.
const cliGCPercent = 400

// tuneGC sets cliGCPercent unless GOGC is set: the user's choice wins.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(cliGCPercent)
	}
}

// notifyContext is signal.NotifyContext for SIGINT and SIGTERM that keeps
// which signal it was (the context's cause is a *SignalError; the
// standard library's cause names it only in text). After the first signal
// the handler is removed, so a second Ctrl-C ends at once a process whose
// shutdown is stuck.
func notifyContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case s := <-ch:
			signal.Stop(ch)
			sig, _ := s.(syscall.Signal)
			cancel(&SignalError{Signal: sig})
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel(context.Canceled)
		<-done
	}
}

// Run executes the command line args and returns the exit code.
func Run(ctx context.Context, f *Factory, args []string) int {
	f.reset()
	root := NewCmdRoot(f)
	root.SetArgs(args)
	err := execute(ctx, root)
	// Drain what the command built (the Manager's in-flight sends), bounded
	// so a stuck endpoint cannot hold the process.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if cerr := f.Close(cctx); cerr != nil && err == nil {
		// The command's work is done (every send had its outcome); what
		// failed is the bookkeeping after it, writing messages_sent. A
		// failing exit code would invite a script to send again, and the
		// clients would get the message twice.
		fmt.Fprintf(f.IO.ErrOut, "warning: the command's sends are done and reported, but recording their messages_sent counts did not finish: %s\n", userText(cerr.Error()))
	}
	return exitCode(f.IO.ErrOut, signalled(ctx, err))
}

// signalled marks err as the outcome of an interrupted run when a signal
// ended ctx: whatever the command reports then, it stopped because it was
// told to (exit 128+n), and a command that already said so (a read of
// user input) keeps its words.
func signalled(ctx context.Context, err error) error {
	var se *SignalError
	if err == nil || errors.As(err, &se) || !errors.As(context.Cause(ctx), &se) {
		return err
	}
	if errors.Is(err, ErrSilent) {
		return se
	}
	return fmt.Errorf("%w: %w", se, err)
}

// execute runs the command tree. Every command's argument check returns
// UsageErrors (usageArgs) and so do flag errors (the root's flag error
// func). The root command runs nothing itself, so an error cobra reports
// for it is about the command line (an unknown command): a usage error too.
func execute(ctx context.Context, root *cobra.Command) error {
	usageArgs(root)
	c, err := root.ExecuteContextC(ctx)
	var ue *UsageError
	if err != nil && c == root && !errors.As(err, &ue) {
		return &UsageError{Err: err}
	}
	return err
}

func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return ExitOK
	}
	var ue *UsageError
	var se *SignalError
	switch {
	case errors.As(err, &se):
		// One line: what was interrupted, not the hints of what failed.
		msg, _, _ := strings.Cut(userText(err.Error()), "\n")
		fmt.Fprintln(stderr, "error:", msg)
		return se.ExitCode()
	case errors.Is(err, ErrSilent):
		return ExitError
	case errors.Is(err, ErrPartial):
		if err != ErrPartial { // wrapped: it says what failed
			fmt.Fprintln(stderr, "error:", userText(err.Error()))
		}
		return ExitPartial
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "error:", userText(err.Error()))
		fmt.Fprintln(stderr, "run with --help for usage")
		return ExitUsage
	default:
		fmt.Fprintln(stderr, "error:", userText(err.Error()))
		return ExitError
	}
}

// NewCmdRoot builds the command tree.
func NewCmdRoot(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "streamer",
		Short: "Operate live WebSocket connections on AWS API Gateway, Lambda and DynamoDB",
		Long: `Operate live WebSocket connections on AWS API Gateway, Lambda and DynamoDB.

With nothing configured every command targets a running ` + "`streamer local`" + `
(` + DefaultEndpoint + `). Flags fall back to environment variables:
--endpoint STREAMER_ENDPOINT, --ws-url STREAMER_WS_URL, --table STREAMER_TABLE,
--region AWS_REGION, --profile AWS_PROFILE, --dynamodb-endpoint AWS_ENDPOINT_URL_DYNAMODB,
--key-dir STREAMER_KEY_DIR, --issuer STREAMER_ISSUER, --timeout STREAMER_TIMEOUT,
--stack STREAMER_STACK.

Against a deployed stack, --stack NAME takes the endpoint, WebSocket URL, table,
region and issuer from the stack's outputs, which scripts/deploy.sh saves as
<user config dir>/streamer/stacks/NAME.json after each deployment; flags and
environment variables still win.

Data goes to stdout, messages to stderr. Exit codes: 0 ok, 1 error, 2 usage,
3 partial failure (broadcast with undelivered targets, smoke with a failing step),
130 / 143 interrupted by SIGINT (Ctrl-C) / SIGTERM.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &UsageError{Err: idAsFlag(c, err)} })
	fl := root.PersistentFlags()
	fl.StringVar(&f.Flags.Stack, "stack", "", "deployed stack whose outputs give --endpoint, --ws-url, --table, --region and --issuer: a profile saved by scripts/deploy.sh (dev, staging, production) or a profile file (env STREAMER_STACK)")
	fl.StringVar(&f.Flags.Endpoint, "endpoint", "", "management API base URL with stage (env STREAMER_ENDPOINT; default "+DefaultEndpoint+")")
	fl.StringVar(&f.Flags.WSURL, "ws-url", "", "WebSocket URL clients connect to (env STREAMER_WS_URL; default "+DefaultWSURL+")")
	fl.StringVar(&f.Flags.Table, "table", "", "DynamoDB table (env STREAMER_TABLE; default "+schema.DefaultTableName+")")
	fl.StringVar(&f.Flags.Region, "region", "", "AWS region (env AWS_REGION; default from the endpoint, us-east-1 locally)")
	fl.StringVar(&f.Flags.Profile, "profile", "", "AWS shared-config profile (env AWS_PROFILE)")
	fl.StringVar(&f.Flags.DynamoDBEndpoint, "dynamodb-endpoint", "", "DynamoDB API URL (env AWS_ENDPOINT_URL_DYNAMODB; default: the local endpoint's host for a loopback --endpoint, else AWS)")
	fl.StringVar(&f.Flags.KeyDir, "key-dir", "", "directory of "+PrivateKeyFile+" / "+PublicKeyFile+" (env STREAMER_KEY_DIR; default <user config dir>/streamer/keys, shared with streamer local)")
	fl.StringVar(&f.Flags.Issuer, "issuer", "", "JWT issuer minted and expected (env STREAMER_ISSUER; default "+DefaultIssuer+")")
	fl.Var(timeoutFlag{&f.Flags.Timeout}, "timeout", "bound of each network call, a positive duration (env STREAMER_TIMEOUT; default 10s)")

	root.AddCommand(
		NewCmdVersion(f, nil),
		NewCmdToken(f),
		NewCmdConn(f),
		NewCmdSend(f, nil),
		NewCmdBroadcast(f, nil),
		NewCmdListen(f, nil),
		NewCmdSmoke(f, nil),
		NewCmdLocal(f, nil),
		NewCmdDashboard(f, nil),
	)
	addCompletion(root)
	return root
}

// usageArgs wraps the positional-argument check of c and every command
// under it so that its failures ("accepts 1 arg(s), received 2") are
// UsageErrors: exit 2, with the hint to run --help.
func usageArgs(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return &UsageError{Err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}

// asGroup makes c, which only groups other commands, refuse an unknown
// subcommand (`streamer conn list`: exit 2, with cobra's suggestions)
// where cobra would print c's help and exit 0; with no arguments it
// prints the help.
func asGroup(c *cobra.Command) *cobra.Command {
	c.Args = cobra.ArbitraryArgs
	c.SuggestionsMinimumDistance = 2 // cobra's default, which it sets only for the root
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + orList(s) + "?"
		}
		return &UsageError{Err: errors.New(msg)}
	}
	return c
}

// runWith is how a command's RunE hands over its parsed Options: to runF
// when a test passed one (to check the Options without I/O), else to the
// command's run function.
func runWith[O any](ctx context.Context, opts *O, runF func(*O) error, run func(context.Context, *O) error) error {
	if runF != nil {
		return runF(opts)
	}
	return run(ctx, opts)
}
