package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/internal/freeport"
)

// TestBroadcastIDsFromIsBounded: --ids-from reads a stream, checks each line
// as it arrives and stops at the first bad one: /dev/urandom fails at line 1
// (before: it grew to 24 GB), a bad line deep in a file sends nothing (the
// file is checked before anything is sent), a FIFO nobody writes ends on
// SIGTERM, and an absurd --concurrency is a usage error (before: 1.37 GB
// for one message).
func TestBroadcastIDsFromIsBounded(t *testing.T) {
	closed := freeport.Addr(t)
	env := append(clitest.CleanEnv(t), "STREAMER_ENDPOINT=http://"+closed+"/local", "STREAMER_KEY_DIR="+t.TempDir())

	t.Run("urandom", func(t *testing.T) {
		r := runBounded(t, env, "broadcast", "--ids-from", "/dev/urandom", "hi")
		if r.Code != 2 || !strings.Contains(r.Stderr, "line 1") {
			t.Fatalf("exit %d: %s", r.Code, r.Stderr)
		}
	})
	t.Run("bad line deep in a file", func(t *testing.T) {
		var b strings.Builder
		for i := range 5000 {
			b.WriteString("L0SM9cOFvHc")
			b.WriteString(strings.Repeat("A", 4-len(strconv.Itoa(i))) + strconv.Itoa(i) + "=\n")
		}
		b.WriteString(strings.Repeat("y", 200) + "\n")
		path := filepath.Join(t.TempDir(), "ids.txt")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		// The endpoint is closed: had anything been sent, the error would
		// be an unreachable stack (exit 1), not the bad line (exit 2).
		r := runBounded(t, env, "broadcast", "--ids-from", path, "hi")
		if r.Code != 2 || !strings.Contains(r.Stderr, "line 5001") || strings.Contains(r.Stderr, "cannot reach") {
			t.Fatalf("exit %d: %s", r.Code, r.Stderr)
		}
	})
	t.Run("FIFO without a writer", func(t *testing.T) {
		fifo := clitest.Mkfifo(t)
		r := interruptRun(t, env, nil, func(*exec.Cmd) {}, syscall.SIGTERM, "broadcast", "--ids-from", fifo, "hi")
		if r.Code != 143 || !strings.Contains(r.Stderr, "interrupted (SIGTERM)") {
			t.Fatalf("exit %d: %s", r.Code, r.Stderr)
		}
	})
	t.Run("concurrency", func(t *testing.T) {
		r := runBounded(t, env, "broadcast", "--ids", "abc=", "--concurrency", "500000", "hi")
		if r.Code != 2 || !strings.Contains(r.Stderr, "--concurrency 500000 is out of range") {
			t.Fatalf("exit %d: %s", r.Code, r.Stderr)
		}
	})
}
