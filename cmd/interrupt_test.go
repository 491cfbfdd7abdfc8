package cmd

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestInterruptedInputExitCodes: a command blocked on user input ends on
// SIGINT / SIGTERM with exit 130 / 143 and one line saying what it was
// reading; nothing is sent.
func TestInterruptedInputExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		sig  syscall.Signal
		code int
		want string
	}{
		{[]string{"send", "abc", "-"}, syscall.SIGINT, 130, "error: interrupted (SIGINT) while reading the message from stdin\n"},
		{[]string{"send", "abc", "-", "-o", "json"}, syscall.SIGTERM, 143, "error: interrupted (SIGTERM) while reading the message from stdin\n"},
		{[]string{"token", "verify", "-"}, syscall.SIGTERM, 143, "error: interrupted (SIGTERM) while reading the token from stdin\n"},
	} {
		te := newTestEnv(t)
		br := newBlockingReader(t)
		te.f.IO.In = br
		ctx := interruptAfter(t, br.started, tc.sig)
		code, _ := await(t, func() (int, error) { return Run(ctx, te.f, tc.args), nil })
		if code != tc.code || te.errOut.String() != tc.want || te.out.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want %d and %q", tc.args, code, te.errOut, te.out, tc.code, tc.want)
		}
		if n := len(te.sent()); n != 0 {
			t.Errorf("%q: %d messages sent", tc.args, n)
		}
	}
}

// TestSignalledFailureExitCode: whatever a command reports after a signal
// ended its context, the run exits 128+n with one line; a command that
// stops cleanly on the signal still exits 0.
func TestSignalledFailureExitCode(t *testing.T) {
	te := newTestEnv(t)
	te.env[keyDirEnv] = sharedKeyDir(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(&SignalError{Signal: syscall.SIGTERM})
	// smoke's steps all skip as cancelled: a failed run, ended by SIGTERM.
	code := Run(ctx, te.f, []string{"smoke", "-o", "json"})
	if code != 143 || strings.Count(te.errOut.String(), "\n") != 1 || !strings.HasPrefix(te.errOut.String(), "error: interrupted (SIGTERM): ") {
		t.Errorf("smoke after SIGTERM: exit %d, stderr %q; want 143 and one line", code, te.errOut)
	}
	te = newTestEnv(t)
	if code := Run(ctx, te.f, []string{"version"}); code != ExitOK {
		t.Errorf("version after SIGTERM: exit %d, want 0 (it succeeded)", code)
	}
}

// TestNotifyContextKeepsTheSignal: Main's context ends on SIGTERM with the
// signal as its cause (the exit code comes from it), and stop ends the
// watching goroutine (goleak).
func TestNotifyContextKeepsTheSignal(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, stop := notifyContext(context.Background())
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(liveness):
		t.Fatal("SIGTERM did not end the context")
	}
	var se *SignalError
	if !errors.As(context.Cause(ctx), &se) || se.Signal != syscall.SIGTERM || se.ExitCode() != 143 {
		t.Errorf("cause %v, want *SignalError{SIGTERM} (exit 143)", context.Cause(ctx))
	}
}
