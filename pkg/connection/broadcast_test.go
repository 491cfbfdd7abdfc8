package connection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pay-theory/streamer/pkg/store"
)

func TestBroadcastOutcomes(t *testing.T) {
	g := newFakeGateway(t)
	live := ids("live", 150)
	stale := ids("stale", 60)
	failing := "fail="
	st := newMemStore(append(append(slices.Clone(live), stale...), failing)...)
	for _, id := range stale {
		g.on(id, gone)
	}
	g.on(failing, errReply(400, "BadRequestException", "bad"))
	var (
		mu        sync.Mutex
		progress  []int
		observed  []BroadcastResult
		sendCalls atomic.Int64
	)
	obs := ObserverFuncs{
		Send:      func(Outcome, time.Duration) { sendCalls.Add(1) },
		Broadcast: func(r BroadcastResult) { observed = append(observed, r) },
	}
	m := newTestManager(t, g, st, Config{Workers: 7, Observer: obs})
	all := append(append(append(slices.Clone(live), stale...), failing, "missing1", "missing2"), live[:5]...) // duplicates at the end
	res, err := m.BroadcastWithProgress(context.Background(), all, map[string]int{"n": 1}, func(done, total int) {
		mu.Lock()
		progress = append(progress, done)
		mu.Unlock()
		if total != 213 {
			t.Errorf("total %d", total)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 213 || res.Sent != 150 || res.Stale != 60 || res.NotFound != 2 || res.Failed != 1 || res.Skipped != 0 || res.Cancelled != 0 {
		t.Fatalf("result %+v", res)
	}
	if len(res.Outcomes) != 213 {
		t.Fatalf("%d outcomes", len(res.Outcomes))
	}
	for i, o := range res.Outcomes {
		if o.ConnectionID != all[i] {
			t.Fatalf("outcome %d is %q, want input order %q", i, o.ConnectionID, all[i])
		}
		if (o.Status == StatusSent) != (o.Err == nil) {
			t.Errorf("%+v", o)
		}
	}
	if o := res.Outcomes[len(res.Outcomes)-1]; o.Status != StatusNotFound || !errors.Is(o.Err, ErrConnectionNotFound) || o.Attempts != 0 {
		t.Errorf("missing: %+v", o)
	}
	if o := res.Outcomes[210]; o.Status != StatusFailed || !errors.Is(o.Err, ErrRejected) {
		t.Errorf("failing: %+v", o)
	}
	// progress: serial, strictly increasing to total.
	if len(progress) != 213 || progress[len(progress)-1] != 213 || !slices.IsSorted(progress) {
		t.Errorf("progress %v", progress)
	}
	// existence in chunks of at most 100, one call per chunk.
	var checked int
	for _, c := range st.existing {
		if len(c) > store.BatchGetLimit {
			t.Errorf("existence chunk of %d", len(c))
		}
		checked += len(c)
	}
	if checked != 213 || len(st.existing) != 3 {
		t.Errorf("existence: %d calls covering %d ids", len(st.existing), checked)
	}
	if st.gets != 0 {
		t.Errorf("Broadcast read %d records one at a time (Store.Get); it must only use batched Existing", st.gets)
	}
	// stale removed in batches of 25.
	var sizes []int
	for _, d := range st.deletes {
		sizes = append(sizes, len(d))
	}
	if !slices.Equal(sizes, []int{25, 25, 10}) {
		t.Errorf("DeleteMany batches %v", sizes)
	}
	for _, id := range stale {
		if st.has(id) {
			t.Fatalf("stale %s still stored", id)
		}
	}
	if g.total("POST") != 211 {
		t.Errorf("posts %d, want 211 (no request for missing ids, one per live/stale/failing id)", g.total("POST"))
	}
	if len(observed) != 1 || observed[0].Sent != 150 || sendCalls.Load() != 213 {
		t.Errorf("observer: %d broadcasts, %d sends", len(observed), sendCalls.Load())
	}
	s := m.Metrics()
	if s.Broadcasts != 1 || s.BroadcastMessages != 150 || s.BroadcastThroughput <= 0 || s.ErrorsByType["gone"] != 60 || s.ErrorsByType["not_found"] != 2 {
		t.Errorf("metrics %+v", s)
	}
}

func TestBroadcastCtxCancelNeverHangs(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", reply{delay: time.Minute})
	all := ids("c", 100)
	m := newTestManager(t, g, newMemStore(all...), Config{Workers: 4})
	ctx, cancel := context.WithCancel(context.Background())
	type out struct {
		res BroadcastResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := m.Broadcast(ctx, all, "x")
		done <- out{r, err}
	}()
	g.waitRequests(4)
	cancel()
	select {
	case o := <-done:
		if !errors.Is(o.err, context.Canceled) {
			t.Errorf("err = %v", o.err)
		}
		if o.res.Cancelled != 100 || o.res.Sent != 0 {
			t.Errorf("result %+v", o.res)
		}
		for _, oc := range o.res.Outcomes {
			if oc.Status != StatusCancelled || !errors.Is(oc.Err, context.Canceled) {
				t.Fatalf("%+v", oc)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Broadcast hung after ctx cancel")
	}
	if n := g.total("POST"); n != 4 {
		t.Errorf("posts %d, want 4 (one per worker, nothing after cancel)", n)
	}
}

func TestShutdownMidBroadcast(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", reply{delay: time.Minute})
	all := ids("s", 50)
	st := newMemStore(all...)
	m := newTestManager(t, g, st, Config{Workers: 3})
	type out struct {
		res BroadcastResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := m.Broadcast(context.Background(), all, "x")
		done <- out{r, err}
	}()
	g.waitRequests(3)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := m.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "cancelled 1 in-flight") {
		t.Errorf("Shutdown = %v", err)
	}
	select {
	case o := <-done:
		if !errors.Is(o.err, ErrShuttingDown) || o.res.Cancelled != 50 {
			t.Errorf("broadcast err %v result %+v", o.err, o.res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Broadcast hung after Shutdown")
	}
	if _, err := m.Broadcast(context.Background(), all, "x"); !errors.Is(err, ErrShuttingDown) {
		t.Errorf("broadcast after shutdown: %v", err)
	}
	if err := m.Send(context.Background(), all[0], "x"); !errors.Is(err, ErrShuttingDown) {
		t.Errorf("send after shutdown: %v", err)
	}
	if m.IsActive(context.Background(), all[0]) {
		t.Error("IsActive after shutdown")
	}
}

// Shutdown with time to spare lets in-flight work finish and flushes counts.
func TestShutdownGraceful(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", reply{delay: 100 * time.Millisecond})
	st := newMemStore("a", "b")
	m := newTestManager(t, g, st, Config{FlushInterval: time.Hour, Clock: SystemClock()})
	errc := make(chan error, 2)
	go func() { errc <- m.Send(context.Background(), "a", "x") }()
	go func() { _, err := m.Broadcast(context.Background(), []string{"a", "b"}, "x"); errc <- err }()
	g.waitRequests(3)
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Errorf("in-flight work failed: %v", err)
		}
	}
	if len(st.added) != 1 || st.added[0]["a"] != 2 || st.added[0]["b"] != 1 { // one flush, at Shutdown
		t.Errorf("AddSent calls %v", st.added)
	}
	if err := m.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestFlushIntervalOnDemandAndFailure(t *testing.T) {
	g := newFakeGateway(t)
	st := newMemStore("a", "b")
	clk := newFakeClock(false)
	m := newTestManager(t, g, st, Config{Clock: clk, FlushInterval: time.Minute})
	if d := clk.waitTimer(t); d != time.Minute {
		t.Fatalf("flusher timer %v", d)
	}
	ctx := context.Background()
	for _, id := range []string{"a", "a", "a", "b", "b"} {
		if err := m.Send(ctx, id, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.added) != 0 {
		t.Fatal("counts written per message")
	}
	if s := m.Metrics(); s.PendingSentCounts != 2 {
		t.Errorf("pending %d", s.PendingSentCounts)
	}
	clk.Advance(time.Minute)
	select {
	case got := <-st.addedCh:
		if got["a"] != 3 || got["b"] != 2 || len(got) != 2 {
			t.Errorf("flushed %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no flush after the interval")
	}
	// a failed flush keeps the counts for the next one
	st.mu.Lock()
	st.failAdd = errors.New("dynamo down")
	st.mu.Unlock()
	_ = m.Send(ctx, "a", "x")
	if err := m.Flush(ctx); err == nil || !strings.Contains(err.Error(), "dynamo down") {
		t.Errorf("Flush = %v", err)
	}
	st.mu.Lock()
	st.failAdd = nil
	st.mu.Unlock()
	_ = m.Send(ctx, "a", "x")
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if last := st.added[len(st.added)-1]; last["a"] != 2 {
		t.Errorf("after retry flushed %v", last)
	}
	rec, _ := st.Get(ctx, "a")
	if rec.MessagesSent != 5 {
		t.Errorf("messages_sent %d, want 5", rec.MessagesSent)
	}
}

func TestBreakerTransitions(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", internal)
	var (
		mu      sync.Mutex
		changes []string
	)
	obs := ObserverFuncs{BreakerChange: func(from, to string) {
		mu.Lock()
		changes = append(changes, from+"->"+to)
		mu.Unlock()
	}}
	st := newMemStore("a", "gone=")
	m := newTestManager(t, g, st, Config{MaxAttempts: 1, Observer: obs,
		Breaker: BreakerConfig{ConsecutiveFailures: 3, OpenTimeout: 100 * time.Millisecond}})
	ctx := context.Background()
	// client errors never trip it
	g.on("gone=", gone)
	for range 5 {
		st.put("gone=")
		_ = m.Send(ctx, "gone=", "x")
	}
	g.on("a", errReply(400, "BadRequestException", "x"))
	for range 5 {
		_ = m.Send(ctx, "a", "x")
	}
	if s := m.Metrics().BreakerState; s != "closed" {
		t.Fatalf("after client errors: %s", s)
	}
	g.on("a", internal)
	for i := range 3 {
		if err := m.Send(ctx, "a", "x"); !errors.Is(err, ErrServerError) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	before := g.count("a")
	err := m.Send(ctx, "a", "x")
	var se *SendError
	if !errors.Is(err, ErrCircuitOpen) || !errors.As(err, &se) || se.Attempts != 0 {
		t.Fatalf("open breaker: %v", err)
	}
	if g.count("a") != before {
		t.Error("open breaker let a request through")
	}
	if s := m.Metrics(); s.BreakerState != "open" || s.ErrorsByType["circuit_open"] != 1 {
		t.Errorf("metrics %+v", s)
	}
	// after OpenTimeout it is half-open; one successful probe closes it
	deadline := time.Now().Add(10 * time.Second)
	for m.Metrics().BreakerState != "half-open" {
		if time.Now().After(deadline) {
			t.Fatal("breaker never became half-open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.on("a", reply{})
	if err := m.Send(ctx, "a", "x"); err != nil {
		t.Fatal(err)
	}
	if s := m.Metrics().BreakerState; s != "closed" {
		t.Errorf("after probe: %s", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(changes, []string{"closed->open", "open->half-open", "half-open->closed"}) {
		t.Errorf("changes %v", changes)
	}
}

// A failed half-open probe sends the breaker straight back to open: the
// next call fails fast without a request, and it takes another OpenTimeout
// before the next probe.
func TestBreakerHalfOpenProbeFailsReopens(t *testing.T) {
	g := newFakeGateway(t)
	g.on("a", internal)
	var (
		mu      sync.Mutex
		changes []string
	)
	obs := ObserverFuncs{BreakerChange: func(from, to string) {
		mu.Lock()
		changes = append(changes, from+"->"+to)
		mu.Unlock()
	}}
	m := newTestManager(t, g, newMemStore("a"), Config{MaxAttempts: 1, Observer: obs,
		Breaker: BreakerConfig{ConsecutiveFailures: 2, OpenTimeout: 100 * time.Millisecond}})
	ctx := context.Background()
	for range 2 {
		if err := m.Send(ctx, "a", "x"); !errors.Is(err, ErrServerError) {
			t.Fatal(err)
		}
	}
	if s := m.Metrics().BreakerState; s != "open" {
		t.Fatalf("after 2 failures: %s", s)
	}
	waitState := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for m.Metrics().BreakerState != want {
			if time.Now().After(deadline) {
				t.Fatalf("breaker never became %s", want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitState("half-open")
	before := g.count("a")
	// the probe reaches the endpoint and fails
	if err := m.Send(ctx, "a", "x"); !errors.Is(err, ErrServerError) {
		t.Fatalf("probe: %v", err)
	}
	if g.count("a") != before+1 {
		t.Fatalf("probe made %d requests, want 1", g.count("a")-before)
	}
	if s := m.Metrics().BreakerState; s != "open" {
		t.Fatalf("after the failed probe: %s, want open", s)
	}
	err := m.Send(ctx, "a", "x")
	var se *SendError
	if !errors.Is(err, ErrCircuitOpen) || !errors.As(err, &se) || se.Attempts != 0 || g.count("a") != before+1 {
		t.Fatalf("reopened breaker let a request through or did not fail fast: %v (requests %d)", err, g.count("a")-before)
	}
	// and it recovers through the next probe once the endpoint is back
	g.on("a", reply{})
	waitState("half-open")
	if err := m.Send(ctx, "a", "x"); err != nil {
		t.Fatal(err)
	}
	if s := m.Metrics().BreakerState; s != "closed" {
		t.Errorf("after a good probe: %s", s)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"closed->open", "open->half-open", "half-open->open", "open->half-open", "half-open->closed"}
	if !slices.Equal(changes, want) {
		t.Errorf("changes %v, want %v", changes, want)
	}
}

func TestHealthSkipAndRecovery(t *testing.T) {
	g := newFakeGateway(t)
	clk := newFakeClock(false)
	st := newMemStore("good", "bad=")
	g.on("bad=", internal)
	m := newTestManager(t, g, st, Config{Clock: clk, MaxAttempts: 1, Breaker: BreakerConfig{Disabled: true},
		Health: HealthConfig{FailureThreshold: 3, Cooldown: 30 * time.Second}})
	ctx := context.Background()
	status := func() Status {
		t.Helper()
		res, err := m.Broadcast(ctx, []string{"good", "bad="}, "x")
		if err != nil || res.Outcomes[0].Status != StatusSent {
			t.Fatalf("%v %+v", err, res)
		}
		return res.Outcomes[1].Status
	}
	for i := range 3 {
		if s := status(); s != StatusFailed {
			t.Fatalf("broadcast %d: %s", i, s)
		}
	}
	if m.Metrics().UnhealthyConnections != 1 {
		t.Error("not marked unhealthy")
	}
	if s := status(); s != StatusSkipped {
		t.Fatalf("unhealthy: %s", s)
	}
	if g.count("bad=") != 3 {
		t.Errorf("requests to bad: %d", g.count("bad="))
	}
	// cooldown passed: a single-attempt probe; it fails, so back to skipping
	clk.Advance(31 * time.Second)
	m.cfg.MaxAttempts = 4 // the probe must still be one request
	if s := status(); s != StatusFailed {
		t.Fatalf("probe: %s", s)
	}
	if g.count("bad=") != 4 {
		t.Errorf("probe made %d requests", g.count("bad=")-3)
	}
	if s := status(); s != StatusSkipped {
		t.Fatalf("after failed probe: %s", s)
	}
	// next cooldown: the probe succeeds and the connection is healthy again
	g.on("bad=", reply{})
	clk.Advance(31 * time.Second)
	if s := status(); s != StatusSent {
		t.Fatalf("recovery probe: %s", s)
	}
	if s := status(); s != StatusSent {
		t.Fatalf("after recovery: %s", s)
	}
	if s := m.Metrics(); s.UnhealthyConnections != 0 || s.ErrorsByType["skipped"] != 2 {
		t.Errorf("metrics %+v", s)
	}
}

func TestHealthMemoryBounded(t *testing.T) {
	h := newHealth(HealthConfig{FailureThreshold: 3, Cooldown: time.Second, MaxTracked: 100})
	now := time.Now()
	for i := range 10000 {
		id := string(rune('a'+i%26)) + strings.Repeat("x", i%7) + string(rune(i))
		for range 3 {
			h.failure(id, now)
		}
	}
	if h.tracked() != 100 || h.unhealthy() != 100 {
		t.Errorf("tracked %d unhealthy %d", h.tracked(), h.unhealthy())
	}
	h.success("nope")
	if h.admit("fresh", now) != admitNormal {
		t.Error("fresh id not admitted")
	}
}

func TestCorrelationIDLogged(t *testing.T) {
	g := newFakeGateway(t)
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := newTestManager(t, g, newMemStore("a"), Config{Logger: logger})
	ctx := WithCorrelationID(context.Background(), "req-42")
	if CorrelationID(ctx) != "req-42" {
		t.Fatal("CorrelationID")
	}
	_ = m.Send(ctx, "a", "x")
	_ = m.Send(context.Background(), "missing", "x")
	mu.Lock()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	mu.Unlock()
	if len(lines) != 2 {
		t.Fatalf("log lines: %q", lines)
	}
	var first, second map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &first)
	_ = json.Unmarshal([]byte(lines[1]), &second)
	for _, k := range []string{"correlation_id", "connection_id", "attempt", "duration_ms", "outcome"} {
		if _, ok := first[k]; !ok {
			t.Errorf("missing %s in %s", k, lines[0])
		}
	}
	if first["correlation_id"] != "req-42" || first["outcome"] != "sent" || first["connection_id"] != "a" {
		t.Errorf("first %v", first)
	}
	if id, _ := second["correlation_id"].(string); len(id) != 16 || second["outcome"] != "not_found" {
		t.Errorf("second %v", second)
	}
}

// ctxKey is a request-scoped value a ctx-aware slog.Handler reads, as the
// Lambda logger (lambda/shared/observability) reads the request id.
type ctxKey struct{}

// ctxHandler records, per message, the ctxKey value of the ctx it got.
type ctxHandler struct {
	mu   *sync.Mutex
	seen map[string][]any
}

func (h ctxHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[r.Message] = append(h.seen[r.Message], ctx.Value(ctxKey{}))
	return nil
}
func (h ctxHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h ctxHandler) WithGroup(string) slog.Handler      { return h }

// Every operation's log records carry the caller's ctx, so a ctx-aware
// handler can read request-scoped fields from it.
func TestLogsCarryOperationContext(t *testing.T) {
	g := newFakeGateway(t)
	g.on("gone=", gone)
	g.on("bad=", forbidden)
	h := ctxHandler{mu: &sync.Mutex{}, seen: map[string][]any{}}
	m := newTestManager(t, g, newMemStore("a", "gone=", "bad="), Config{Logger: slog.New(h)})
	ctx := context.WithValue(context.Background(), ctxKey{}, "req-7")
	_ = m.Send(ctx, "a", "x")
	_ = m.Send(ctx, "missing", "x")
	_ = m.Send(ctx, "gone=", "x")
	_, _ = m.Broadcast(ctx, []string{"a", "bad=", "missing"}, "x")
	_ = m.IsActive(ctx, "a")
	_ = m.Disconnect(ctx, "a")
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, msg := range []string{"connection send", "connection broadcast", "post attempt failed", "connection is_active", "connection disconnected"} {
		if len(h.seen[msg]) == 0 {
			t.Errorf("no %q record", msg)
		}
	}
	for msg, vals := range h.seen {
		for _, v := range vals {
			if v != "req-7" {
				t.Errorf("%q logged with a ctx lacking the caller's values (got %v)", msg, v)
			}
		}
	}
	if s, b := len(h.seen["connection send"]), len(h.seen["connection broadcast"]); s != 3 || b != 4 {
		t.Errorf("%d send and %d broadcast records, want 3 and 4 (3 outcomes + the summary)", s, b)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Many goroutines sending and reading metrics at once (run with -race).
func TestConcurrentSends(t *testing.T) {
	g := newFakeGateway(t)
	all := ids("k", 20)
	m := newTestManager(t, g, newMemStore(all...), Config{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				if err := m.Send(context.Background(), all[(i+j)%len(all)], "x"); err != nil {
					failures.Add(1)
				}
				_ = m.Metrics()
			}
		}()
	}
	wg.Wait()
	s := m.Metrics()
	if failures.Load() != 0 || s.Sent != 500 || s.Latency.Count != 500 || s.PendingSentCounts != 20 {
		t.Errorf("failures %d metrics %+v", failures.Load(), s)
	}
}
