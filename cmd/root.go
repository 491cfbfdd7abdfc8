// Package cmd holds the streamer CLI's cobra commands.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

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

// Main runs the CLI with the process's arguments and streams and returns the
// exit code. It is the only place that maps outcomes to exit codes.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f := NewFactory(os.Stdin, os.Stdout, os.Stderr)
	return Run(ctx, f, os.Args[1:])
}

// Run executes the command line args and returns the exit code.
func Run(ctx context.Context, f *Factory, args []string) int {
	root := NewCmdRoot(f)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return exitCode(f.IO.ErrOut, err)
}

func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return ExitOK
	}
	var ue *UsageError
	switch {
	case errors.Is(err, ErrSilent):
		return ExitError
	case errors.Is(err, ErrPartial):
		if !errors.Is(err, ErrSilent) && err.Error() != ErrPartial.Error() {
			fmt.Fprintln(stderr, "error:", err)
		}
		return ExitPartial
	case errors.As(err, &ue), isCobraUsage(err):
		fmt.Fprintln(stderr, "error:", err)
		fmt.Fprintln(stderr, "run with --help for usage")
		return ExitUsage
	default:
		fmt.Fprintln(stderr, "error:", err)
		return ExitError
	}
}

// NewCmdRoot builds the command tree.
func NewCmdRoot(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:           "streamer",
		Short:         "Operate live WebSocket connections on AWS API Gateway, Lambda and DynamoDB",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	root.AddCommand(NewCmdVersion(f, nil))
	return root
}
