package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/clitest"
)

// ttyClients is how many connections the terminal broadcast reaches: above
// the CLI's progress-bar threshold (50), small enough to stay quick.
const ttyClients = 200

// TestBroadcastProgressOnTerminal runs `streamer broadcast` on a real
// terminal (tmux) and reads the screen as a person would: the progress bar
// drew on stderr and the summary table printed, and every client received
// the message.
func TestBroadcastProgressOnTerminal(t *testing.T) {
	tmux := clitest.NewTmux(t)
	s := startLocal(t)
	tok := s.mint(t, "--user", "tty", "--tenant", "tty")

	clients := s.dialMany(t, tok, ttyClients)

	// A script file keeps the typed command short; its environment points
	// the CLI at this stack.
	dir := t.TempDir()
	var lines []string
	for _, kv := range s.Env() {
		if strings.HasPrefix(kv, "STREAMER_") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			k, v, _ := strings.Cut(kv, "=")
			lines = append(lines, "export "+k+"="+clitest.ShellQuote(v))
		}
	}
	lines = append(lines, "unset NO_COLOR", clitest.ShellQuote(bin)+" broadcast --tenant tty tty-hello", "echo EXIT=$?")
	scriptPath := filepath.Join(dir, "run.sh")
	if err := os.WriteFile(scriptPath, []byte(strings.Join(lines, "\n")+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "pane.raw")
	if out, err := tmux.Run("new-session", "-d", "-x", "100", "-y", "30", "-s", "e2e", "sh"); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	// pipe-pane records the bytes the program wrote, before the terminal
	// interprets them: every redraw of the bar is in there.
	if out, err := tmux.Run("pipe-pane", "-t", "e2e", "cat > "+clitest.ShellQuote(raw)); err != nil {
		t.Fatalf("tmux pipe-pane: %v\n%s", err, out)
	}
	if out, err := tmux.Run("send-keys", "-t", "e2e", "sh "+clitest.ShellQuote(scriptPath), "Enter"); err != nil {
		t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}

	exitRe := regexp.MustCompile(`EXIT=[0-9]+`)
	var screen string
	var err error
	deadline := time.Now().Add(clitest.RunTimeout)
	for {
		screen, err = tmux.Run("capture-pane", "-p", "-t", "e2e")
		if err != nil {
			t.Fatalf("tmux capture-pane: %v\n%s", err, screen)
		}
		if exitRe.MatchString(screen) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("broadcast did not finish on the terminal within %s:\n%s", clitest.RunTimeout, screen)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("terminal:\n%s", screen)
	want := []string{
		fmt.Sprintf("broadcast [%s] %d/%d 100%%", strings.Repeat("=", 30), ttyClients, ttyClients),
		"EXIT=0",
	}
	for _, w := range want {
		if !strings.Contains(screen, w) {
			t.Errorf("terminal lacks %q", w)
		}
	}
	// The summary is a table on a terminal: a bordered row per count.
	if !tableRow(screen, "sent", fmt.Sprint(ttyClients)) || !tableRow(screen, "total", fmt.Sprint(ttyClients)) || !tableRow(screen, "failed", "0") {
		t.Errorf("no summary table with sent/total %d", ttyClients)
	}
	// The raw stream: the bar was drawn more than once, first partway
	// (while the listing's pages arrive the total grows: "37/100+"), last
	// complete.
	rawOut, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	draws := regexp.MustCompile(`\rbroadcast \[[=> ]{30}\] ([0-9]+)/([0-9]+\+?)`).FindAllStringSubmatch(string(rawOut), -1)
	full := fmt.Sprint(ttyClients)
	if len(draws) < 2 || draws[0][1] == full || draws[len(draws)-1][1] != full || draws[len(draws)-1][2] != full {
		t.Fatalf("progress redraws %v: want a partial draw first and %d/%d last", draws, ttyClients, ttyClients)
	}
	t.Logf("%d progress draws, first at %s/%d", len(draws), draws[0][1], ttyClients)
	for i, c := range clients {
		if got := c.read(); got != "tty-hello" {
			t.Fatalf("client %d received %q", i, got)
		}
	}
}

// tableRow reports whether a screen line holds the cells name and value,
// between table borders.
func tableRow(screen, name, value string) bool {
	for _, l := range strings.Split(screen, "\n") {
		f := strings.FieldsFunc(l, func(r rune) bool { return r == '│' || r == '|' || r == ' ' })
		if len(f) == 2 && f[0] == name && f[1] == value && (strings.ContainsRune(l, '│') || strings.ContainsRune(l, '|')) {
			return true
		}
	}
	return false
}
