package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/clitest"
)

// TestListenOnTerminal runs `streamer listen` on a real terminal (tmux)
// and reads the screen as a person would: the status lines and the typing
// hint, a typed ping answered with a pong, a broadcast from another
// process, a payload carrying terminal escapes shown escaped rather than
// obeyed, and Ctrl-C closing with 1000 and exit 0.
func TestListenOnTerminal(t *testing.T) {
	tmux := clitest.NewTmux(t)
	s := startLocal(t)

	dir := t.TempDir()
	var lines []string
	for _, kv := range s.Env() {
		if strings.HasPrefix(kv, "STREAMER_") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			k, v, _ := strings.Cut(kv, "=")
			lines = append(lines, "export "+k+"="+clitest.ShellQuote(v))
		}
	}
	// The shell running the script gets the terminal's Ctrl-C too: trapped,
	// it outlives listen to print the exit code (its child gets the
	// default disposition back, so listen sees the SIGINT).
	lines = append(lines, "trap : INT", clitest.ShellQuote(bin)+" listen --tenant tty --user watcher", "echo EXIT=$?")
	script := filepath.Join(dir, "run.sh")
	if err := os.WriteFile(script, []byte(strings.Join(lines, "\n")+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := tmux.Run("new-session", "-d", "-x", "120", "-y", "30", "-s", "listen", "sh"); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	keys := func(k ...string) {
		t.Helper()
		if out, err := tmux.Run(append([]string{"send-keys", "-t", "listen"}, k...)...); err != nil {
			t.Fatalf("tmux send-keys: %v\n%s", err, out)
		}
	}
	var screen string
	waitScreen := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(clitest.RunTimeout)
		for {
			var err error
			screen, err = tmux.Run("capture-pane", "-p", "-t", "listen")
			if err != nil {
				t.Fatalf("tmux capture-pane: %v\n%s", err, screen)
			}
			if ok(screen) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s on the terminal within %s:\n%s", what, clitest.RunTimeout, screen)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	has := func(s ...string) func(string) bool {
		return func(screen string) bool {
			for _, x := range s {
				if !strings.Contains(screen, x) {
					return false
				}
			}
			return true
		}
	}

	keys("sh "+clitest.ShellQuote(script), "Enter")
	waitScreen("status lines", has("as user watcher, tenant tty", "connected", "connection id ",
		"type a message and press Enter to send it; Ctrl-C to stop"))

	keys(`{"action":"ping"}`, "Enter")
	waitScreen("the pong", has(`{"action":"pong","timestamp":"`))

	if r := run(t, s.Env(), "", "broadcast", "--tenant", "tty", "hello terminal"); r.Code != 0 {
		t.Fatalf("broadcast: %s", r)
	}
	waitScreen("the broadcast", has("hello terminal"))

	// A clear-screen escape in a payload: shown, not obeyed (the lines
	// above survive).
	if r := run(t, s.Env(), "", "broadcast", "--tenant", "tty", "wipe\x1b[2J\x1b[Hgone"); r.Code != 0 {
		t.Fatalf("broadcast: %s", r)
	}
	waitScreen("the escaped payload", has(`wipe\x1b[2J\x1b[Hgone`, "hello terminal", "connection id "))

	keys("C-c")
	waitScreen("the close and the exit code", has("closing with 1000 (interrupted by SIGINT); 3 message(s) received", "EXIT=0"))
	t.Logf("terminal:\n%s", screen)
}
