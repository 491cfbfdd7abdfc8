package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
)

// BenchmarkIdleConnectionMemory measures what an idle connection costs the
// process holding it (heap in use plus goroutine stacks, after a GC), for
// 10,000 real WebSocket clients held by a separate swarm process, on three
// servers in turn in this same run:
//
//   - bare: a plain coder/websocket server (Accept, then one goroutine
//     blocked in Read per connection), the floor any Go server of this
//     library stands on;
//   - gateway: pkg/localgw alone (no integrations);
//   - stack: the whole local stack as `streamer local` runs it (the real
//     $connect verifies an RS256 token and stores a record in the embedded
//     DynamoDB), the figure issue #14 bounds at 20 KB.
//
// It reports bytes (and of those, goroutine stack bytes) and goroutines per
// connection for each, and the ratios to the bare server. Reproduce:
//
//	go test -run '^$' -bench IdleConnectionMemory -benchtime 1x ./tests/integration/
//
// STREAMER_BENCH_CLIENTS=N changes the 10,000 (one process holds at most
// its open-file limit, `ulimit -n`, of connections).
func BenchmarkIdleConnectionMemory(b *testing.B) {
	swarm := buildSwarm(b)
	n := 10000
	if v := os.Getenv("STREAMER_BENCH_CLIENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("STREAMER_BENCH_CLIENTS=%q: want a number of clients", v)
		}
	}
	var bare float64
	for range b.N {
		for _, r := range []struct {
			name string
			run  func(*testing.B, string, int) idleCost
		}{{"bare", idleOnBare}, {"gateway", idleOnGateway}, {"stack", idleOnStack}} {
			c := r.run(b, swarm, n)
			b.ReportMetric(c.bytes, r.name+"-B/conn")
			b.ReportMetric(c.stackBytes, r.name+"-stack-B/conn")
			b.ReportMetric(c.goroutines, r.name+"-goroutines/conn")
			if r.name == "bare" {
				bare = c.bytes
			} else {
				b.ReportMetric(c.bytes/bare, r.name+"/bare")
			}
			if r.name == "stack" {
				b.ReportMetric(float64(n)/c.connectSecs, "stack-connects/s")
				b.ReportMetric(c.drainSecs, "stack-disconnect-all-s")
			}
		}
	}
}

// idleCost is what n idle connections cost the server process.
type idleCost struct {
	bytes       float64 // heap in use + goroutine stacks, per connection
	stackBytes  float64 // of which goroutine stacks
	goroutines  float64 // per connection
	connectSecs float64 // for all n
	drainSecs   float64 // from the clients leaving until the server let all go
}

// holdIdle measures the process before and after a swarm connected n
// clients to wsURL, then lets them go and waits (drained) until the server
// holds none.
func holdIdle(b *testing.B, swarm, wsURL, token string, n int, held func() int64, drained func() bool) idleCost {
	b.Helper()
	goroutinesBefore := runtime.NumGoroutine()
	before, stackBefore := heapAndStacks(), stackInuse()
	proc, _, secs := startSwarm(b, swarm, wsURL, token, n)
	after, stackAfter := heapAndStacks(), stackInuse()
	goroutines := runtime.NumGoroutine() - goroutinesBefore
	if got := held(); got != int64(n) {
		b.Errorf("the server holds %d connections, want %d", got, n)
	}
	proc.Stop()
	left := time.Now()
	deadline := left.Add(2 * time.Minute)
	for !drained() {
		if time.Now().After(deadline) {
			b.Fatal("the server still holds connections 2 minutes after the swarm left")
		}
		time.Sleep(50 * time.Millisecond)
	}
	drainSecs := time.Since(left).Seconds()
	return idleCost{
		drainSecs:   drainSecs,
		bytes:       (float64(after) - float64(before)) / float64(n),
		stackBytes:  (float64(stackAfter) - float64(stackBefore)) / float64(n),
		goroutines:  float64(goroutines) / float64(n),
		connectSecs: secs,
	}
}

func idleOnBare(b *testing.B, swarm string, n int) idleCost {
	var active atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		active.Add(1)
		defer active.Add(-1)
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				_ = c.CloseNow()
				return
			}
		}
	}))
	defer srv.Close()
	return holdIdle(b, swarm, "ws"+strings.TrimPrefix(srv.URL, "http"), "unused", n, active.Load, func() bool { return active.Load() == 0 })
}

func idleOnGateway(b *testing.B, swarm string, n int) idleCost {
	g, err := localgw.New(localgw.Config{})
	if err != nil {
		b.Fatal(err)
	}
	base, err := g.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer shutdownWithin(b, g.Shutdown)
	active := func() int64 { return g.Metrics().ActiveConnections }
	return holdIdle(b, swarm, "ws"+strings.TrimPrefix(base, "http")+"/"+g.Stage(), "unused", n, active, func() bool { return active() == 0 })
}

func idleOnStack(b *testing.B, swarm string, n int) idleCost {
	s, err := localstack.Start(context.Background(), localstack.Config{Listen: "127.0.0.1:0", KeyDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer shutdownWithin(b, s.Close)
	tok, err := s.Mint(benchMint("idle-user", "idle-tenant"))
	if err != nil {
		b.Fatal(err)
	}
	active := func() int64 { return s.Gateway.Metrics().ActiveConnections }
	cost := holdIdle(b, swarm, s.WebSocketURL, tok, n, active, func() bool {
		// Every $disconnect ran to its end: the active counter that
		// $connect increments and $disconnect decrements is back to 0.
		if s.Gateway.Metrics().DisconnectsTotal != int64(n) {
			return false
		}
		active, err := s.Store.AddActive(context.Background(), 0)
		return err == nil && active == 0 || s.Gateway.Metrics().IntegrationErrorsTotal > 0
	})
	// n clients leaving at once are n $disconnect writes queued on the
	// embedded DynamoDB: every one must still finish within the 29 s
	// integration timeout.
	if m := s.Gateway.Metrics(); m.IntegrationErrorsTotal != 0 {
		b.Errorf("%d integrations failed (%d timed out) when %d clients left at once", m.IntegrationErrorsTotal, m.IntegrationTimeoutsTotal, n)
	}
	return cost
}

func stackInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.StackInuse
}

func shutdownWithin(b *testing.B, shutdown func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		b.Error(fmt.Errorf("shutdown: %w", err))
	}
}
