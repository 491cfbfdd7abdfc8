package connection

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pay-theory/streamer/pkg/store"
)

func TestReconcileRemovesOnlyZombies(t *testing.T) {
	g := newFakeGateway(t)
	all := ids("z", 60)
	zombies, failing := all[10:40], all[40:42]
	for _, id := range zombies {
		g.on(id, gone)
	}
	for _, id := range failing {
		g.on(id, internal)
	}
	st := newMemStore(all...)
	st.active = 60
	m := newTestManager(t, g, st, Config{Breaker: BreakerConfig{Disabled: true}})
	var last ReconcileProgress
	res, err := m.Reconcile(context.Background(), &pagedLister{ids: all, size: 25}, ReconcileOptions{
		Progress: func(p ReconcileProgress) { last = p },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked != 60 || res.Live != 28 || len(res.Zombies) != 30 || res.Removed != 30 || res.Errors != 2 || !res.Complete {
		t.Fatalf("result %+v", res)
	}
	if last != (ReconcileProgress{Listed: 60, Checked: 60, Live: 28, Zombies: 30, Errors: 2}) {
		t.Errorf("last progress %+v", last)
	}
	if len(res.Failures) != 2 || !errors.Is(res.Failures[0].Err, ErrServerError) ||
		!strings.HasPrefix(res.Failures[0].Err.Error(), `get connection "z0`) || res.Failures[0].Attempts != DefaultMaxAttempts {
		t.Errorf("failures %+v", res.Failures)
	}
	got := append([]string(nil), res.Zombies...)
	sort.Strings(got)
	for i, id := range zombies {
		if got[i] != id {
			t.Fatalf("zombies %v, want %v", got, zombies)
		}
		if st.has(id) {
			t.Errorf("zombie %s still stored", id)
		}
	}
	for _, id := range append(append([]string{}, all[:10]...), all[40:]...) {
		if !st.has(id) {
			t.Errorf("%s removed, but its connection is live or could not be checked", id)
		}
	}
	st.mu.Lock()
	active, deletes := st.active, st.deletes
	st.mu.Unlock()
	if active != 30 {
		t.Errorf("ActiveConnections %d, want 30 (60 minus the 30 removed)", active)
	}
	for _, d := range deletes {
		if len(d) > store.BatchWriteLimit {
			t.Errorf("a delete of %d records; batches are at most 25", len(d))
		}
	}
	// Nothing left to repair.
	res, err = m.Reconcile(context.Background(), &pagedLister{ids: all[:10], size: 25}, ReconcileOptions{})
	if err != nil || len(res.Zombies) != 0 || res.Removed != 0 {
		t.Fatalf("second pass: %+v %v", res, err)
	}
}

func TestReconcileDryRunRemovesNothing(t *testing.T) {
	g := newFakeGateway(t)
	all := ids("d", 10)
	g.on(all[3], gone)
	st := newMemStore(all...)
	st.active = 10
	m := newTestManager(t, g, st, Config{})
	res, err := m.Reconcile(context.Background(), &pagedLister{ids: all, size: 100}, ReconcileOptions{DryRun: true})
	if err != nil || len(res.Zombies) != 1 || res.Zombies[0] != all[3] || res.Removed != 0 {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.deletes) != 0 || st.active != 10 || len(st.recs) != 10 {
		t.Fatalf("dry run changed the store: deletes %v active %d records %d", st.deletes, st.active, len(st.recs))
	}
}

func TestReconcileDuringAnOutageDeletesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply reply
	}{{"500s", internal}, {"throttled", throttled}, {"reset", resetConn}} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGateway(t)
			g.on("", tc.reply)
			all := ids("o", 40)
			st := newMemStore(all...)
			m := newTestManager(t, g, st, Config{Limit: LimitConfig{MaxThrottledAttempts: 2}})
			res, err := m.Reconcile(context.Background(), &pagedLister{ids: all, size: 100}, ReconcileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors != 40 || res.Removed != 0 || len(res.Zombies) != 0 {
				t.Fatalf("result %+v: an outage must not delete anything", res)
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			if len(st.deletes) != 0 || len(st.recs) != 40 {
				t.Fatalf("deleted during an outage: %v", st.deletes)
			}
		})
	}
}

// zombieWorld is n stored records (counted in the active counter) whose
// connections the gateway answers 410 Gone for.
func zombieWorld(t *testing.T, prefix string, n int) (all []string, st *memStore, m *Manager) {
	g := newFakeGateway(t)
	all = ids(prefix, n)
	for _, id := range all {
		g.on(id, gone)
	}
	st = newMemStore(all...)
	st.active = int64(n)
	return all, st, newTestManager(t, g, st, Config{})
}

func TestReconcileResumesFromItsCursor(t *testing.T) {
	all, st, m := zombieWorld(t, "c", 50)
	ctx, cancel := context.WithCancel(context.Background())
	// Cancelled in the middle of the pass (pages of 20 overlap).
	res, err := m.Reconcile(ctx, &pagedLister{ids: all, size: 20}, ReconcileOptions{Progress: func(p ReconcileProgress) {
		if p.Checked == 30 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the cancellation", err)
	}
	// The cursor sits on a page boundary with every record before it
	// removed; Removed counts exactly the records gone from the store.
	if res.Complete || (res.Cursor != "" && res.Cursor != "20" && res.Cursor != "40") {
		t.Fatalf("interrupted pass %+v: want a page boundary as the cursor", res)
	}
	upTo, _ := strconv.Atoi(res.Cursor)
	for _, id := range all[:upTo] {
		if st.has(id) {
			t.Fatalf("%s is before the cursor %q but still stored", id, res.Cursor)
		}
	}
	gone := 0
	for _, id := range all {
		if !st.has(id) {
			gone++
		}
	}
	if res.Removed != gone {
		t.Fatalf("Removed %d, but %d records are gone", res.Removed, gone)
	}
	first := res.Removed
	// The resumed pass lists what the store still holds.
	res, err = m.Reconcile(context.Background(), &storedOnly{&pagedLister{ids: all, size: 20}, st}, ReconcileOptions{Query: store.ListQuery{Cursor: res.Cursor}})
	if err != nil || !res.Complete || res.Cursor != "" {
		t.Fatalf("resumed pass: %+v %v", res, err)
	}
	if first+res.Removed != 50 {
		t.Fatalf("removed %d then %d, want 50 in all", first, res.Removed)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.recs) != 0 || st.active != 0 {
		t.Fatalf("after resuming: %d records, active %d", len(st.recs), st.active)
	}
}

// storedOnly lists only the records the store still holds (pages keep
// their places, so cursors stay valid), as a real listing would.
type storedOnly struct {
	store.Lister
	st *memStore
}

func (l *storedOnly) List(ctx context.Context, q store.ListQuery) (store.Page, error) {
	p, err := l.Lister.List(ctx, q)
	kept := p.Connections[:0]
	for _, c := range p.Connections {
		if l.st.has(c.ConnectionID) {
			kept = append(kept, c)
		}
	}
	p.Connections = kept
	return p, err
}

// A listing that fails after two pages: the pages already listed are
// checked and their zombies removed, and the cursor is after them.
func TestReconcileListingFailureKeepsTheCursor(t *testing.T) {
	all, st, m := zombieWorld(t, "l", 50)
	failing := &pagedLister{ids: all, size: 20, gate: func(_ context.Context, page int) error {
		if page == 2 {
			return errors.New("table unreachable")
		}
		return nil
	}}
	res, err := m.Reconcile(context.Background(), failing, ReconcileOptions{})
	if err == nil || !strings.Contains(err.Error(), "listing records failed: table unreachable") {
		t.Fatalf("err = %v, want the listing failure", err)
	}
	if res.Complete || res.Cursor != "40" || res.Removed != 40 || res.Checked != 40 {
		t.Fatalf("result %+v: want the two listed pages checked and removed, and the cursor after them", res)
	}
	res, err = m.Reconcile(context.Background(), &pagedLister{ids: all, size: 20}, ReconcileOptions{Query: store.ListQuery{Cursor: res.Cursor}})
	if err != nil || !res.Complete || res.Removed != 10 {
		t.Fatalf("resumed pass: %+v %v", res, err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.recs) != 0 || st.active != 0 {
		t.Fatalf("after resuming: %d records, active %d", len(st.recs), st.active)
	}
}

func TestReconcileStopsAtShutdown(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", reply{delay: time.Minute})
	all := ids("s", 30)
	m := newTestManager(t, g, newMemStore(all...), Config{Workers: 2, Limit: LimitConfig{Fixed: true}})
	done := make(chan error, 1)
	go func() {
		_, err := m.Reconcile(context.Background(), &pagedLister{ids: all, size: 100}, ReconcileOptions{})
		done <- err
	}()
	g.waitRequests(2)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = m.Shutdown(ctx)
	select {
	case err := <-done:
		if !errors.Is(err, ErrShuttingDown) {
			t.Fatalf("err = %v, want ErrShuttingDown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Reconcile outlived Shutdown")
	}
}

// A record whose connection is still in its $connect answers 410 like a
// gone one: records younger than MinAge are left alone (and counted), and
// ReconcileEveryRecord checks them too.
func TestReconcileLeavesRecentRecordsAlone(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", gone)
	clk := newFakeClock(true)
	now := clk.Now()
	all := ids("r", 6)
	st := newMemStore(all...)
	st.active = 6
	lister := &agedLister{pagedLister: pagedLister{ids: all, size: 4}, stored: st.has, connected: map[string]time.Time{
		all[0]: now.Add(-time.Hour), all[1]: now.Add(-DefaultReconcileMinAge - time.Second),
		all[2]: now.Add(-DefaultReconcileMinAge + 20*time.Second), all[3]: now.Add(-2 * time.Second), all[4]: now.Add(time.Second),
		// all[5]: no connected_at (another tool wrote it): checked.
	}}
	m := newTestManager(t, g, st, Config{Clock: clk})
	var last ReconcileProgress
	res, err := m.Reconcile(context.Background(), lister, ReconcileOptions{Progress: func(p ReconcileProgress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Recent != 3 || res.Checked != 3 || res.Removed != 3 || !res.Complete {
		t.Fatalf("result %+v: want the 3 records older than the default MinAge checked and removed, 3 recent left", res)
	}
	if last.Listed != 6 || last.Recent != 3 || last.Checked != 3 {
		t.Errorf("last progress %+v", last)
	}
	for i, id := range all {
		if want := i >= 2 && i <= 4; st.has(id) != want {
			t.Errorf("record %d (%s): stored %v, want %v", i, id, st.has(id), want)
		}
	}
	for _, id := range all[2:5] {
		if n := g.count(id); n != 0 {
			t.Errorf("%s is recent but was asked about %d times", id, n)
		}
	}

	res, err = m.Reconcile(context.Background(), lister, ReconcileOptions{MinAge: 10 * time.Second})
	if err != nil || res.Recent != 2 || res.Removed != 1 {
		t.Fatalf("MinAge 10s: %+v %v; want all[2] removed, all[3] and all[4] left", res, err)
	}
	res, err = m.Reconcile(context.Background(), lister, ReconcileOptions{MinAge: ReconcileEveryRecord})
	if err != nil || res.Recent != 0 || res.Removed != 2 {
		t.Fatalf("every record: %+v %v", res, err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.recs) != 0 || st.active != 0 {
		t.Fatalf("after every pass: %d records, active %d", len(st.recs), st.active)
	}
}

// agedLister is a pagedLister whose records carry a connected_at, and
// which lists only the records still stored.
type agedLister struct {
	pagedLister
	stored    func(id string) bool
	connected map[string]time.Time
}

func (l *agedLister) List(ctx context.Context, q store.ListQuery) (store.Page, error) {
	p, err := l.pagedLister.List(ctx, q)
	kept := p.Connections[:0]
	for _, c := range p.Connections {
		if l.stored(c.ConnectionID) {
			c.ConnectedAt = l.connected[c.ConnectionID]
			kept = append(kept, c)
		}
	}
	p.Connections = kept
	return p, err
}

// slowDeletes holds DeleteMany until released, then answers as a server
// whose response was cut off would: the delete applied, the caller's
// context error returned.
type slowDeletes struct {
	*memStore
	started, release chan struct{}
}

func (s *slowDeletes) DeleteMany(ctx context.Context, ids []string) error {
	close(s.started)
	<-s.release
	err := s.memStore.DeleteMany(ctx, ids)
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// A removal in flight when the pass's context ends is finished and counted:
// cut off, it could be applied and yet neither Removed nor the counter
// would know (the counter would then read high for good). A pass whose
// work is all done is complete, even when ctx ended in the last moment.
func TestReconcileFinishesARemovalInFlight(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", gone)
	all := ids("f", store.BatchWriteLimit)
	st := &slowDeletes{memStore: newMemStore(all...), started: make(chan struct{}), release: make(chan struct{})}
	st.active = int64(len(all))
	m := newTestManager(t, g, st, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	type out struct {
		res ReconcileResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := m.Reconcile(ctx, &pagedLister{ids: all, size: 100}, ReconcileOptions{})
		done <- out{res, err}
	}()
	<-st.started
	cancel()
	close(st.release)
	o := <-done
	// Nothing else was left to do: the pass is complete, however late
	// the cancellation came.
	if o.err != nil || !o.res.Complete || o.res.Removed != len(all) {
		t.Fatalf("result %+v, %v: want the batch in flight removed and counted, and the pass complete", o.res, o.err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.active != 0 || len(st.recs) != 0 {
		t.Fatalf("active %d, %d records: the counter must follow the records removed", st.active, len(st.recs))
	}
}

// failingDeletes is a store whose batch removals fail.
type failingDeletes struct{ *memStore }

func (failingDeletes) DeleteMany(context.Context, []string) error {
	return errors.New("ProvisionedThroughputExceededException")
}

// A removal that fails stops the pass: no page is done (its zombies are
// still stored), so the cursor does not move and nothing counts as removed.
func TestReconcileStopsWhenARemovalFails(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", gone)
	all := ids("d", 120)
	st := failingDeletes{newMemStore(all...)}
	m := newTestManager(t, g, st, Config{})
	res, err := m.Reconcile(context.Background(), &pagedLister{ids: all, size: 20}, ReconcileOptions{})
	if err == nil || !strings.Contains(err.Error(), "removing zombie records failed: ProvisionedThroughputExceededException") {
		t.Fatalf("err = %v, want the removal failure", err)
	}
	if res.Complete || res.Cursor != "" || res.Removed != 0 {
		t.Fatalf("result %+v: want no page done, no cursor and nothing removed", res)
	}
	if len(st.recs) != 120 {
		t.Fatalf("%d records left, want all 120", len(st.recs))
	}
}
