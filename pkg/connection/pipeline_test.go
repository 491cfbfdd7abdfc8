package connection

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pay-theory/streamer/pkg/store"
)

// pagedLister serves ids as store pages of size; before serving page k
// (k ≥ 1) it calls gate(k) when set.
type pagedLister struct {
	ids   []string
	size  int
	gate  func(ctx context.Context, page int) error
	calls atomic.Int32
}

func (l *pagedLister) List(ctx context.Context, q store.ListQuery) (store.Page, error) {
	l.calls.Add(1)
	lo := 0
	if q.Cursor != "" {
		lo, _ = strconv.Atoi(q.Cursor)
	}
	if l.gate != nil && lo > 0 {
		if err := l.gate(ctx, lo/l.size); err != nil {
			return store.Page{}, err
		}
	}
	hi := min(lo+l.size, len(l.ids))
	p := store.Page{}
	for _, id := range l.ids[lo:hi] {
		p.Connections = append(p.Connections, store.Connection{ConnectionID: id, UserID: "u", TenantID: "t"})
	}
	if hi < len(l.ids) {
		p.Next = strconv.Itoa(hi)
	}
	return p, nil
}

func TestBroadcastQueryStreamsPagesWithoutASecondExistenceCheck(t *testing.T) {
	g := newFakeGateway(t)
	all := ids("q", 300)
	for _, id := range all[250:260] {
		g.on(id, gone)
	}
	st := newMemStore(all...)
	st.active = 300
	m := newTestManager(t, g, st, Config{})
	// Page 2 is served only once the first page's posts are arriving: the
	// broadcast must send before the listing ends.
	lister := &pagedLister{ids: all, size: 100, gate: func(ctx context.Context, page int) error {
		if page == 1 {
			g.waitRequests(50)
		}
		return nil
	}}
	var outcomes atomic.Int32
	var last BroadcastProgress
	res, err := m.BroadcastQuery(context.Background(), lister, store.ListQuery{TenantID: "t"}, "hi", BroadcastOptions{
		Progress:  func(p BroadcastProgress) { last = p },
		OnOutcome: func(Outcome) { outcomes.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 300 || res.Sent != 290 || res.Stale != 10 || len(res.Outcomes) != 10 {
		t.Fatalf("result %+v (outcomes %d), want 290 sent, 10 stale, only the 10 undelivered kept", res, len(res.Outcomes))
	}
	for _, o := range res.Outcomes {
		if o.Status != StatusStale {
			t.Errorf("kept outcome %+v", o)
		}
	}
	if outcomes.Load() != 300 || last != (BroadcastProgress{Done: 300, Total: 300, Listed: true}) {
		t.Errorf("OnOutcome saw %d, last progress %+v", outcomes.Load(), last)
	}
	st.mu.Lock()
	existing, active := len(st.existing), st.active
	st.mu.Unlock()
	if existing != 0 {
		t.Errorf("%d existence checks for listed records, want none", existing)
	}
	if active != 290 {
		t.Errorf("active counter %d, want 290 (decremented for the 10 stale records removed)", active)
	}
	for _, id := range all[250:260] {
		if st.has(id) {
			t.Errorf("stale %s still stored", id)
		}
	}
	if lister.calls.Load() != 3 {
		t.Errorf("List calls %d, want 3 pages", lister.calls.Load())
	}
}

func TestBroadcastQueryListingFailureStopsAndSays(t *testing.T) {
	g := newFakeGateway(t)
	all := ids("f", 250)
	m := newTestManager(t, g, newMemStore(all...), Config{})
	boom := errors.New("listing exploded")
	lister := &pagedLister{ids: all, size: 100, gate: func(ctx context.Context, page int) error {
		if page == 2 {
			return boom
		}
		return nil
	}}
	res, err := m.BroadcastQuery(context.Background(), lister, store.ListQuery{TenantID: "t"}, "hi", BroadcastOptions{})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the listing's error", err)
	}
	if res.Total != 200 || res.Sent != 200 {
		t.Errorf("result %+v, want the 200 listed before the failure sent", res)
	}
}

// blockingExistence makes Existing wait until want calls are in progress at
// once: a sequential checker never gets there.
type blockingExistence struct {
	*memStore
	want    int
	mu      sync.Mutex
	active  int
	reached chan struct{}
	once    sync.Once
}

func (s *blockingExistence) Existing(ctx context.Context, ids []string) (map[string]bool, error) {
	s.mu.Lock()
	s.active++
	if s.active >= s.want {
		s.once.Do(func() { close(s.reached) })
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
	}()
	select {
	case <-s.reached:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(10 * time.Second):
		return nil, errors.New("existence checks ran one at a time")
	}
	return s.memStore.Existing(ctx, ids)
}

func TestBroadcastChecksExistenceInParallel(t *testing.T) {
	g := newFakeGateway(t)
	all := ids("p", 400)
	st := &blockingExistence{memStore: newMemStore(all...), want: 4, reached: make(chan struct{})}
	m := newTestManager(t, g, st, Config{})
	res, err := m.Broadcast(context.Background(), all, "hi")
	if err != nil || res.Sent != 400 {
		t.Fatalf("broadcast: %v %+v", err, res.Failed)
	}
}

func TestConcurrencyLimitIsSharedByConcurrentCalls(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", reply{delay: 20 * time.Millisecond})
	a, b := ids("a", 40), ids("b", 40)
	st := newMemStore(append(append([]string{"s="}, a...), b...)...)
	m := newTestManager(t, g, st, Config{Workers: 4, Limit: LimitConfig{Fixed: true}, Clock: SystemClock()})
	var wg sync.WaitGroup
	for _, set := range [][]string{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := m.Broadcast(context.Background(), set, "x"); err != nil || res.Sent != len(set) {
				t.Errorf("broadcast: %v %+v", err, res)
			}
		}()
	}
	if err := m.Send(context.Background(), "s=", "x"); err != nil {
		t.Error(err)
	}
	wg.Wait()
	g.mu.Lock()
	peak := g.maxInflight
	g.mu.Unlock()
	if peak != 4 {
		t.Fatalf("peak requests in flight %d over two broadcasts and a send, want the shared limit 4", peak)
	}
}

func TestAdaptiveLimitGrowsPastWorkersUpToTheCap(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", reply{delay: 5 * time.Millisecond})
	all := ids("g", 1500)
	m := newTestManager(t, g, newMemStore(all...), Config{Workers: 4, Limit: LimitConfig{MaxInFlight: 32}, Clock: SystemClock()})
	res, err := m.Broadcast(context.Background(), all, "x")
	if err != nil || res.Sent != len(all) {
		t.Fatalf("broadcast: %v %+v", err, res.Failed)
	}
	g.mu.Lock()
	peak := g.maxInflight
	g.mu.Unlock()
	if peak <= 4 || peak > 32 {
		t.Fatalf("peak in flight %d, want above Workers (4) and at most MaxInFlight (32)", peak)
	}
	if s := m.Metrics().Limit; s.Limit <= 4 || s.Mode != "adaptive" || s.InFlight != 0 {
		t.Fatalf("limit after the broadcast: %+v", s)
	}
}

// tokenBucket answers like API Gateway's account throttle.
type testBucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	burst  float64
	last   time.Time
}

func (b *testBucket) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func TestBroadcastAgainstATokenBucketDeliversEachTargetOnce(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", reply{delay: 2 * time.Millisecond})
	bucket := &testBucket{rate: 300, burst: 30, tokens: 30}
	g.admit = bucket.allow
	all := ids("r", 400)
	m := newTestManager(t, g, newMemStore(all...), Config{Clock: SystemClock()})
	res, err := m.BroadcastRecords(context.Background(), func(yield func(store.Connection, error) bool) {
		for _, id := range all {
			if !yield(store.Connection{ConnectionID: id}, nil) {
				return
			}
		}
	}, "x", BroadcastOptions{})
	if err != nil || res.Sent != len(all) {
		t.Fatalf("broadcast: %v sent %d failed %d: %+v", err, res.Sent, res.Failed, res.Outcomes)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range all {
		if g.ok[id] != 1 {
			t.Errorf("%s delivered %d times, want exactly once", id, g.ok[id])
		}
	}
	s := m.Metrics()
	if s.Limit.Throttled == 0 || s.Limit.Decreases == 0 {
		t.Errorf("a broadcast over the bucket's rate saw no throttling? %+v", s.Limit)
	}
	if s.ErrorsByType["throttled"] != 0 {
		t.Errorf("%d deliveries failed as throttled; 429s must slow the broadcast, not fail it", s.ErrorsByType["throttled"])
	}
}

func TestShutdownEndsABroadcastWaitingForTheLimit(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", reply{delay: time.Minute})
	all := ids("w", 20)
	m := newTestManager(t, g, newMemStore(all...), Config{Workers: 1, Limit: LimitConfig{Fixed: true}})
	done := make(chan error, 1)
	var res BroadcastResult
	go func() {
		var err error
		res, err = m.Broadcast(context.Background(), all, "x")
		done <- err
	}()
	g.waitRequests(1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = m.Shutdown(ctx)
	select {
	case err := <-done:
		if !errors.Is(err, ErrShuttingDown) || res.Cancelled != 20 {
			t.Fatalf("err %v, result %+v: want every id cancelled by the shutdown", err, res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("broadcast waiting for a slot outlived Shutdown")
	}
}

func TestBroadcastIDsStreamsChecksAndDedupes(t *testing.T) {
	g := newFakeGateway(t)
	all := ids("s", 250)
	st := newMemStore(all[:240]...) // the last 10 have no record
	m := newTestManager(t, g, st, Config{})
	// The stream yields every id twice (the second pass after the first
	// 120 have been checked) and ends with an unknown one.
	stream := func(yield func(string, error) bool) {
		for _, id := range all {
			if !yield(id, nil) {
				return
			}
		}
		for _, id := range all[:120] {
			if !yield(id, nil) {
				return
			}
		}
	}
	res, err := m.BroadcastIDs(context.Background(), stream, "hi", BroadcastOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 250 || res.Sent != 240 || res.NotFound != 10 || len(res.Outcomes) != 10 {
		t.Fatalf("result %+v (%d outcomes), want 250 distinct, 240 sent, 10 not found kept", res, len(res.Outcomes))
	}
	g.mu.Lock()
	for _, id := range all[:240] {
		if g.ok[id] != 1 {
			t.Errorf("%s delivered %d times", id, g.ok[id])
		}
	}
	g.mu.Unlock()
	st.mu.Lock()
	checks := len(st.existing)
	st.mu.Unlock()
	if checks != 3 {
		t.Errorf("%d existence checks, want 3 (batches of 100)", checks)
	}

	boom := errors.New("read failed")
	res, err = m.BroadcastIDs(context.Background(), func(yield func(string, error) bool) {
		for _, id := range all[:150] {
			if !yield(id, nil) {
				return
			}
		}
		yield("", boom)
	}, "hi", BroadcastOptions{})
	// The first full batch (100) is sent; the 50 read since are not.
	if !errors.Is(err, boom) || res.Total != 150 || res.Sent != 100 || res.Cancelled != 50 || len(res.Outcomes) != 50 {
		t.Fatalf("stream error: %v %+v, want the first batch of 100 sent, the 50 after it cancelled, and the error", err, res)
	}
	if o := res.Outcomes[0]; !errors.Is(o.Err, errStreamFailed) {
		t.Errorf("cancelled outcome says %v, want why (the stream failed)", o.Err)
	}
}

// sizeRecorder records the page size each List call asks for, and
// whether every call asked for IDsOnly.
type sizeRecorder struct {
	store.Lister
	mu      sync.Mutex
	sizes   []int32
	notLean int
}

func (r *sizeRecorder) List(ctx context.Context, q store.ListQuery) (store.Page, error) {
	r.mu.Lock()
	r.sizes = append(r.sizes, q.PageSize)
	if !q.IDsOnly {
		r.notLean++
	}
	r.mu.Unlock()
	return r.Lister.List(ctx, q)
}

// A broadcast and a reconcile pass both read their first page small and
// the next ones growing, so the first requests go out after one short
// query, up to the page size asked for; both read only ids, connected_at
// and ttl.
func TestListingsStartWithASmallFirstPage(t *testing.T) {
	all := ids("p", 50)
	want := []int32{firstPageSize, firstPageSize * pageRamp, 500, 500, 500}
	for _, tc := range []struct {
		name string
		run  func(m *Manager, l store.Lister) error
	}{
		{"broadcast", func(m *Manager, l store.Lister) error {
			_, err := m.BroadcastQuery(context.Background(), l, store.ListQuery{TenantID: "t", PageSize: 500}, "hi", BroadcastOptions{})
			return err
		}},
		{"reconcile", func(m *Manager, l store.Lister) error {
			_, err := m.Reconcile(context.Background(), l, ReconcileOptions{Query: store.ListQuery{PageSize: 500}, MinAge: ReconcileEveryRecord})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGateway(t)
			m := newTestManager(t, g, newMemStore(all...), Config{})
			rec := &sizeRecorder{Lister: &pagedLister{ids: all, size: 10}}
			if err := tc.run(m, rec); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rec.sizes, want) {
				t.Fatalf("page sizes asked %v, want %v", rec.sizes, want)
			}
			if rec.notLean != 0 {
				t.Fatalf("%d List calls read whole records; want IDsOnly", rec.notLean)
			}
		})
	}
}
