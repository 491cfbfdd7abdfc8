package e2e_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/internal/testenv"
)

// terminalQueries are requests a program writes to a terminal and then
// waits for an answer to. A command that is not a TUI has no business
// sending any: under a terminal that never answers (a CI pseudo-terminal,
// a serial console, `script`) each one stalls the command and its bytes
// are left on the screen. Bubble Tea v1 sent the first two from a package
// init(), so every streamer command did, dashboard or not.
var terminalQueries = []struct{ seq, what string }{
	{"\x1b]11;?", "OSC 11 background colour query"},
	{"\x1b[6n", "cursor position report (DSR 6)"},
	{"\x1b]10;?", "OSC 10 foreground colour query"},
	{"\x1b[c", "primary device attributes (DA1)"},
}

// TestCommandsDoNotQueryTheTerminal runs the binary with a pseudo-terminal
// for its stdin and stdout that answers nothing (util-linux `script`), and
// checks it wrote no terminal query — only its output.
func TestCommandsDoNotQueryTheTerminal(t *testing.T) {
	script := utilLinuxScript(t)
	env := append(clitest.CleanEnv(t), "TERM=xterm-256color")
	for _, args := range [][]string{{"version"}, {"dashboard", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), clitest.RunTimeout)
			defer cancel()
			quoted := clitest.ShellQuote(bin)
			for _, a := range args {
				quoted += " " + clitest.ShellQuote(a)
			}
			// -q: no "Script started" lines; -e: the command's exit code;
			// -c: run it in the pseudo-terminal; /dev/null: no typescript.
			// Stdin is empty: nothing ever answers a query.
			cmd := exec.CommandContext(ctx, script, "-qec", quoted, "/dev/null")
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("%s did not finish within %s:\n%q", quoted, clitest.RunTimeout, out)
			}
			if err != nil {
				t.Fatalf("%s under script: %v\n%q", quoted, err, out)
			}
			s := string(out)
			want := "streamer "
			if args[0] == "dashboard" {
				want = "Usage:"
			}
			if !strings.Contains(s, want) {
				t.Fatalf("output lacks %q (did the command run on the pseudo-terminal?): %q", want, s)
			}
			for _, q := range terminalQueries {
				if strings.Contains(s, q.seq) {
					t.Errorf("%s sent a terminal query, the %s %q: %q", quoted, q.what, q.seq, s[:min(len(s), 200)])
				}
			}
		})
	}
}

// utilLinuxScript finds util-linux's `script` (BSD's takes other flags).
// Missing, it skips the test, and fails it under CI.
func utilLinuxScript(t *testing.T) string {
	t.Helper()
	missing := func(why string) {
		t.Helper()
		testenv.Missing(t, why, "apt-get install util-linux")
	}
	path, err := exec.LookPath("script")
	if err != nil {
		missing("util-linux script is not installed")
	}
	out, err := exec.Command(path, "--version").CombinedOutput()
	var ee *exec.ExitError
	if (err != nil && !errors.As(err, &ee)) || !strings.Contains(string(out), "util-linux") {
		missing("script is not util-linux's: " + strings.TrimSpace(string(out)))
	}
	return path
}
