package connectiontest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/connection/connectiontest"
	"github.com/pay-theory/streamer/pkg/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// notifier is the kind of code a library user tests with the Recorder: it
// depends only on connection.Sender.
type notifier struct{ out connection.Sender }

func (n notifier) orderShipped(ctx context.Context, connID, order string) error {
	err := n.out.Send(ctx, connID, map[string]string{"type": "order.shipped", "order": order})
	if errors.Is(err, connection.ErrConnectionStale) || errors.Is(err, connection.ErrConnectionNotFound) {
		return nil // the user left; nothing to do
	}
	return err
}

func Example() {
	rec := connectiontest.NewRecorder(10)
	n := notifier{out: rec}
	ctx := context.Background()

	_ = n.orderShipped(ctx, "L0SM9cOFvHcCIhw=", "o-1")
	rec.FailID("gone=", connection.ErrConnectionStale)
	fmt.Println("gone handled:", n.orderShipped(ctx, "gone=", "o-2") == nil)
	rec.FailAll(connection.ErrCircuitOpen)
	fmt.Println("circuit open:", errors.Is(n.orderShipped(ctx, "x=", "o-3"), connection.ErrCircuitOpen))

	got := <-rec.Sink
	var msg map[string]string
	_ = got.Decode(&msg)
	fmt.Println(got.ConnectionID, msg["type"], msg["order"], len(rec.Sent()))
	// Output:
	// gone handled: true
	// circuit open: true
	// L0SM9cOFvHcCIhw= order.shipped o-1 1
}

func TestRecorderBroadcastAndFailures(t *testing.T) {
	rec := &connectiontest.Recorder{}
	rec.FailID("b", connection.ErrConnectionStale)
	rec.FailID("c", connection.ErrConnectionNotFound)
	rec.FailID("d", connection.ErrServerError)
	rec.FailID("e", connection.ErrUnhealthy)
	res, err := rec.Broadcast(context.Background(), []string{"a", "b", "c", "d", "e", "a"}, []byte(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 5 || res.Sent != 1 || res.Stale != 1 || res.NotFound != 1 || res.Failed != 1 || res.Skipped != 1 {
		t.Fatalf("%+v", res)
	}
	var se *connection.SendError
	if !errors.As(res.Outcomes[3].Err, &se) || se.ConnectionID != "d" || !errors.Is(se, connection.ErrServerError) {
		t.Errorf("%#v", res.Outcomes[3].Err)
	}
	if s := rec.SentTo("a"); len(s) != 1 || string(s[0].Message) != `{"x":1}` || !s[0].Broadcast {
		t.Errorf("%+v", s)
	}
	if rec.IsActive(context.Background(), "b") || rec.IsActive(context.Background(), "c") || !rec.IsActive(context.Background(), "a") {
		t.Error("IsActive")
	}
	rec.SetActive("a", false)
	if rec.IsActive(context.Background(), "a") {
		t.Error("SetActive")
	}
	rec.FailID("b", nil)
	if err := rec.Send(context.Background(), "b", "hi"); err != nil {
		t.Error(err)
	}
	if err := rec.Send(context.Background(), "b", make([]byte, connection.MaxMessageBytes+1)); !errors.Is(err, connection.ErrPayloadTooLarge) {
		t.Error(err)
	}
	rec.Reset()
	if len(rec.Sent()) != 0 {
		t.Error("Reset")
	}
}

func TestRecorderConcurrentAndSinkCancel(t *testing.T) {
	rec := connectiontest.NewRecorder(1)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- rec.Send(ctx, fmt.Sprint(i), "x")
		}()
	}
	<-rec.Sink // let one through, then cancel: nobody may stay blocked on the full sink
	cancel()
	wg.Wait()
	close(errs)
	var cancelled, ok int
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, context.Canceled):
			cancelled++
		default:
			t.Error(err)
		}
	}
	if cancelled == 0 || ok < 1 || len(rec.Sent()) != ok {
		t.Errorf("cancelled %d ok %d recorded %d", cancelled, ok, len(rec.Sent()))
	}
}

// TestRecorderAgreesWithTheManager: progress, Shutdown and message encoding
// behave as a Manager's do, so code written against the Manager's methods
// can be tested with the Recorder.
func TestRecorderAgreesWithTheManager(t *testing.T) {
	ctx := context.Background()
	rec := connectiontest.NewRecorder(0)
	rec.FailID("b", connection.ErrConnectionNotFound)
	var calls [][2]int
	res, err := rec.BroadcastWithProgress(ctx, []string{"a", "b", "a", "c"}, "hi", func(done, total int) {
		calls = append(calls, [2]int{done, total})
	})
	if err != nil || res.Total != 3 || res.Sent != 2 || res.NotFound != 1 || fmt.Sprint(calls) != "[[1 3] [2 3] [3 3]]" {
		t.Fatalf("result %+v err %v progress %v", res, err, calls)
	}
	if res.Outcomes[1].Status != connection.StatusNotFound || res.Outcomes[1].Attempts != 0 {
		t.Errorf("not found outcome %+v", res.Outcomes[1])
	}

	// The Manager's encoder: a func cannot be JSON, []byte passes through.
	if err := rec.Send(ctx, "a", func() {}); !errors.Is(err, connection.ErrInvalidMessage) {
		t.Errorf("func message: %v", err)
	}
	want, _ := connection.Encode(map[string]int{"n": 1})
	if err := rec.Send(ctx, "a", map[string]int{"n": 1}); err != nil || string(rec.SentTo("a")[1].Message) != string(want) {
		t.Errorf("map message: %v %+v", err, rec.SentTo("a"))
	}

	if err := rec.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rec.Send(ctx, "a", "late"); !errors.Is(err, connection.ErrShuttingDown) {
		t.Errorf("Send after Shutdown: %v", err)
	}
	calls = nil
	res, err = rec.BroadcastWithProgress(ctx, []string{"a", "c"}, "late", func(done, total int) { calls = append(calls, [2]int{done, total}) })
	if !errors.Is(err, connection.ErrShuttingDown) || res.Cancelled != 2 || len(calls) != 0 {
		t.Errorf("Broadcast after Shutdown: %+v %v progress %v", res, err, calls)
	}
	if rec.IsActive(ctx, "a") {
		t.Error("IsActive after Shutdown")
	}
	rec.Reset()
	if err := rec.Send(ctx, "a", "again"); err != nil {
		t.Errorf("Send after Reset: %v", err)
	}
}

// oneTenant lists two pages of a tenant's records, then fails if asked
// for more than it has.
type oneTenant struct{ pages [][]string }

func (l oneTenant) List(_ context.Context, q store.ListQuery) (store.Page, error) {
	i := 0
	if q.Cursor != "" {
		i = int(q.Cursor[0] - '0')
	}
	if i >= len(l.pages) {
		return store.Page{}, errors.New("listing exploded")
	}
	p := store.Page{}
	for _, id := range l.pages[i] {
		p.Connections = append(p.Connections, store.Connection{ConnectionID: id, TenantID: q.TenantID})
	}
	if i+1 < len(l.pages) {
		p.Next = string(rune('0' + i + 1))
	}
	return p, nil
}

func TestRecorderBroadcastQueryAgreesWithTheManager(t *testing.T) {
	ctx := context.Background()
	rec := connectiontest.NewRecorder(0)
	rec.FailID("b", connection.ErrConnectionStale)
	var seen []connection.Status
	var last connection.BroadcastProgress
	res, err := rec.BroadcastQuery(ctx, oneTenant{pages: [][]string{{"a", "b"}, {"c"}}}, store.ListQuery{TenantID: "acme"}, "hi",
		connection.BroadcastOptions{
			OnOutcome: func(o connection.Outcome) { seen = append(seen, o.Status) },
			Progress:  func(p connection.BroadcastProgress) { last = p },
		})
	if err != nil || res.Total != 3 || res.Sent != 2 || res.Stale != 1 || len(res.Outcomes) != 1 || res.Outcomes[0].ConnectionID != "b" {
		t.Fatalf("result %+v err %v: want 2 sent, 1 stale, only the stale outcome kept", res, err)
	}
	if fmt.Sprint(seen) != "[sent stale sent]" || last.Done != 3 {
		t.Errorf("outcomes %v, last progress %+v", seen, last)
	}
	if got := len(rec.Sent()); got != 2 {
		t.Errorf("recorded %d deliveries, want 2", got)
	}
	// A listing that fails mid-way stops with its error.
	_, err = rec.BroadcastRecords(ctx, func(yield func(store.Connection, error) bool) {
		if yield(store.Connection{ConnectionID: "a"}, nil) {
			yield(store.Connection{}, errors.New("page 2 failed"))
		}
	}, "hi", connection.BroadcastOptions{})
	if err == nil {
		t.Error("a failed listing returned no error")
	}
}

func TestRecorderBroadcastIDsDedupes(t *testing.T) {
	rec := connectiontest.NewRecorder(0)
	res, err := rec.BroadcastIDs(context.Background(), func(yield func(string, error) bool) {
		for _, id := range []string{"a", "b", "a"} {
			if !yield(id, nil) {
				return
			}
		}
	}, "hi", connection.BroadcastOptions{})
	if err != nil || res.Total != 2 || res.Sent != 2 || len(rec.Sent()) != 2 {
		t.Fatalf("result %+v err %v sent %d", res, err, len(rec.Sent()))
	}
}

// aged lists records with connected_at set: "new" ones just now.
type aged struct{ oneTenant }

func (l aged) List(ctx context.Context, q store.ListQuery) (store.Page, error) {
	p, err := l.oneTenant.List(ctx, q)
	for i := range p.Connections {
		p.Connections[i].ConnectedAt = time.Now().Add(-time.Hour)
		if strings.HasPrefix(p.Connections[i].ConnectionID, "new") {
			p.Connections[i].ConnectedAt = time.Now()
		}
	}
	return p, err
}

func TestRecorderReconcile(t *testing.T) {
	ctx := context.Background()
	rec := connectiontest.NewRecorder(0)
	rec.SetActive("gone", false)
	rec.FailID("stale", connection.ErrConnectionStale)
	rec.FailID("down", connection.ErrServerError)
	rec.SetActive("new", false)
	lister := aged{oneTenant{pages: [][]string{{"live", "gone", "stale"}, {"down", "new", "live2"}}}}
	var last connection.ReconcileProgress
	res, err := rec.Reconcile(ctx, lister, connection.ReconcileOptions{Progress: func(p connection.ReconcileProgress) { last = p }})
	if err != nil || !res.Complete || res.Checked != 5 || res.Live != 2 || res.Recent != 1 || res.Errors != 1 || res.Removed != 2 ||
		fmt.Sprint(res.Zombies) != "[gone stale]" || len(res.Failures) != 1 || !errors.Is(res.Failures[0].Err, connection.ErrServerError) {
		t.Fatalf("result %+v, %v", res, err)
	}
	if last != (connection.ReconcileProgress{Listed: 6, Recent: 1, Checked: 5, Live: 2, Zombies: 2, Errors: 1}) {
		t.Errorf("last progress %+v", last)
	}
	res, err = rec.Reconcile(ctx, lister, connection.ReconcileOptions{DryRun: true, MinAge: connection.ReconcileEveryRecord})
	if err != nil || res.Removed != 0 || fmt.Sprint(res.Zombies) != "[gone stale new]" || res.Recent != 0 {
		t.Fatalf("dry run, every record: %+v, %v", res, err)
	}
	// Resuming from a cursor; a context that ended stops before the next page.
	res, err = rec.Reconcile(ctx, lister, connection.ReconcileOptions{Query: store.ListQuery{Cursor: "1"}})
	if err != nil || res.Checked != 2 || !res.Complete {
		t.Fatalf("resumed: %+v, %v", res, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	res, err = rec.Reconcile(cctx, lister, connection.ReconcileOptions{Progress: func(p connection.ReconcileProgress) {
		if p.Checked == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || res.Complete || res.Cursor != "1" {
		t.Fatalf("interrupted: %+v, %v; want the cursor after the first page", res, err)
	}
	// Mid-page: the cursor stays before the page.
	cctx, cancel = context.WithCancel(ctx)
	res, err = rec.Reconcile(cctx, lister, connection.ReconcileOptions{Progress: func(p connection.ReconcileProgress) {
		if p.Checked == 4 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || res.Checked != 4 || res.Cursor != "1" {
		t.Fatalf("interrupted mid-page: %+v, %v; want the cursor before the second page", res, err)
	}
	if _, err := rec.Reconcile(ctx, oneTenant{}, connection.ReconcileOptions{}); err == nil {
		t.Error("a failed listing returned no error")
	}
	_ = rec.Shutdown(ctx)
	if _, err := rec.Reconcile(ctx, lister, connection.ReconcileOptions{}); !errors.Is(err, connection.ErrShuttingDown) {
		t.Errorf("after Shutdown: %v", err)
	}
}
