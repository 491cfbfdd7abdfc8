package e2e_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/clitest"
)

// TestBroadcastUnderTheAWSRegime: `streamer local --latency 5ms --throttle
// 200/40` (every @connections request delayed, a token bucket answering 429
// beyond 200/s) and a broadcast to 300 real clients at default flags: the
// throttle slows it down but every client gets the message exactly once,
// and the summary says all were sent.
func TestBroadcastUnderTheAWSRegime(t *testing.T) {
	const n = 300
	s := &stack{clitest.StartLocal(t, bin, "--key-dir", filepath.Join(t.TempDir(), "keys"), "--latency", "5ms", "--throttle", "200/40")}
	tok := s.mint(t, "--tenant", "aws", "--user", "u")
	clients := s.dialMany(t, tok, n)
	r := run(t, s.Env(), "", "broadcast", "--tenant", "aws", "-o", "json", `{"once":true}`)
	var sum struct{ Total, Sent, Failed int }
	if err := json.Unmarshal([]byte(r.Stdout), &sum); err != nil || r.Code != 0 || sum.Total != n || sum.Sent != n {
		t.Fatalf("broadcast under throttling: %s (summary %+v, %v)", r, sum, err)
	}
	for i, c := range clients {
		if got := c.read(); got != `{"once":true}` {
			t.Fatalf("client %d received %q", i, got)
		}
	}
	// No duplicates: nothing else arrives.
	var dups sync.WaitGroup
	for i, c := range clients {
		dups.Add(1)
		go func() {
			defer dups.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if _, b, err := c.c.Read(ctx); err == nil {
				t.Errorf("client %d received a second message %q", i, b)
			}
		}()
	}
	dups.Wait()
	if m := s.metrics(t); m.Management.RequestsTotal <= n {
		t.Errorf("%d @connections requests for %d clients: the throttle never answered 429?", m.Management.RequestsTotal, n)
	}
}
