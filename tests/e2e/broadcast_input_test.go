package e2e_test

import (
	"encoding/json"
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

// TestBroadcastInterruptedPrintsTheSummary: Ctrl-C during a slow broadcast
// (streamer local --latency) still prints the JSON summary on stdout, with
// the targets not reached as cancelled and "interrupted": true, and exits
// 130 (before: nothing on stdout).
func TestBroadcastInterruptedPrintsTheSummary(t *testing.T) {
	s := &stack{clitest.StartLocal(t, bin, "--key-dir", filepath.Join(t.TempDir(), "keys"), "--latency", "300ms")}
	tok := s.mint(t, "--tenant", "slow", "--user", "u")
	for range 8 {
		s.dial(t, tok, "")
	}
	posted := func(*exec.Cmd) {
		waitFor(t, "the first post", func() bool { return s.metrics(t).Management.RequestsTotal > 0 })
	}
	r := interruptRun(t, s.Env(), nil, posted, syscall.SIGINT,
		"broadcast", "--tenant", "slow", "--concurrency", "1", "--fixed-concurrency", "-o", "json", "hi")
	var sum struct {
		Total, Sent, Cancelled int
		Interrupted            bool
		Undelivered            []struct{ Status string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &sum); err != nil {
		t.Fatalf("stdout is not the JSON summary (%v): %q\n%s", err, r.Stdout, r.Stderr)
	}
	if r.Code != 130 || !sum.Interrupted || sum.Total != 8 || sum.Cancelled == 0 || sum.Sent+sum.Cancelled != 8 || len(sum.Undelivered) != sum.Cancelled {
		t.Fatalf("exit %d, summary %+v\n%s", r.Code, sum, r.Stderr)
	}
	for _, u := range sum.Undelivered {
		if u.Status != "cancelled" {
			t.Errorf("undelivered %+v", u)
		}
	}
}

// TestMalformedIDIsNotAConnectionID: the gateway answers 400 for a
// malformed id (as API Gateway does); inspect and kick say so plainly.
func TestMalformedIDIsNotAConnectionID(t *testing.T) {
	s := startLocal(t)
	for _, args := range [][]string{{"conn", "inspect", "abc"}, {"conn", "kick", "abc"}} {
		r := run(t, s.Env(), "", args...)
		if r.Code != 1 || !strings.Contains(r.Stderr, "abc is not a connection id: the gateway answered 400") || strings.Contains(r.Stderr, "operation error") {
			t.Errorf("%v: %s", args, r)
		}
	}
}
