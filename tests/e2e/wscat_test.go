package e2e_test

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/syncbuf"
	"github.com/pay-theory/streamer/internal/testenv"
)

// TestWalkthroughWithWscat is the README walk-through with a client nobody
// here wrote: wscat connects with a token from `streamer token mint`, and
// `streamer send` from another process delivers to it.
func TestWalkthroughWithWscat(t *testing.T) {
	wscat := testenv.Env(t, "STREAMER_TEST_WSCAT", "scripts/with-dynalite.sh sets it")
	s := startLocal(t)
	tok := s.mint(t, "--user", "walker", "--tenant", "readme")

	cmd := exec.Command(wscat, "-c", s.WebSocketURL+"?Authorization="+tok)
	cmd.Env = s.BaseEnv
	// wscat exits when stdin reaches EOF: hold it open until cleanup.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	// The connection shows in `conn ls` once $connect has stored it.
	var id string
	waitFor(t, "wscat's connection in conn ls", func() bool {
		r := run(t, s.Env(), "", "conn", "ls", "--tenant", "readme")
		if rows := plainRows(r.Stdout); r.Code == 0 && len(rows) == 1 {
			id = rows[0][0]
			return true
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("wscat exited (%v):\n%s", err, out)
		default:
		}
		return false
	})
	if r := run(t, s.Env(), "", "send", "--", id, "hello from the CLI"); r.Code != 0 {
		t.Fatalf("send: %s", r)
	}
	waitFor(t, "the message in wscat's output", func() bool {
		return strings.Contains(out.String(), "hello from the CLI")
	})
}

// waitFor polls cond every 50ms for up to 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
