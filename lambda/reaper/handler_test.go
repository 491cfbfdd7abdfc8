package reaper_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/reaper"
	"github.com/pay-theory/streamer/lambda/shared/lambdatest"
	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeReconciler answers each Reconcile with the next scripted step and
// records what it was asked.
type fakeReconciler struct {
	mu    sync.Mutex
	steps []func(ctx context.Context, opts connection.ReconcileOptions) (connection.ReconcileResult, error)
	calls []connection.ReconcileOptions
	dls   []time.Time
	cids  []string
}

func (f *fakeReconciler) Reconcile(ctx context.Context, _ store.Lister, opts connection.ReconcileOptions) (connection.ReconcileResult, error) {
	f.mu.Lock()
	f.calls = append(f.calls, opts)
	dl, _ := ctx.Deadline()
	f.dls = append(f.dls, dl)
	f.cids = append(f.cids, connection.CorrelationID(ctx))
	step := f.steps[0]
	if len(f.steps) > 1 {
		f.steps = f.steps[1:]
	}
	f.mu.Unlock()
	return step(ctx, opts)
}

func returns(r connection.ReconcileResult, err error) func(context.Context, connection.ReconcileOptions) (connection.ReconcileResult, error) {
	return func(context.Context, connection.ReconcileOptions) (connection.ReconcileResult, error) { return r, err }
}

// fakeCheckpoints is one checkpoint with a lease, in memory.
type fakeCheckpoints struct {
	mu         sync.Mutex
	cursor     string
	owner      string
	until      time.Time
	now        func() time.Time
	saves      []string
	acquireErr error
	saveErr    error
}

func (c *fakeCheckpoints) AcquireCheckpoint(_ context.Context, name, owner string, until time.Time) (store.Checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if name != contract.ReaperCheckpoint {
		return store.Checkpoint{}, errors.New("unexpected checkpoint " + name)
	}
	if c.acquireErr != nil {
		return store.Checkpoint{}, c.acquireErr
	}
	if c.owner != "" && c.owner != owner && c.until.After(c.now()) {
		return store.Checkpoint{}, store.ErrLeaseHeld
	}
	c.owner, c.until = owner, until
	return store.Checkpoint{Name: name, Cursor: c.cursor, Owner: owner, LeaseUntil: until}, nil
}

func (c *fakeCheckpoints) SaveCheckpoint(_ context.Context, _, owner, cursor string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.saveErr != nil {
		return c.saveErr
	}
	if c.owner != owner {
		return store.ErrLeaseHeld
	}
	c.cursor, c.until = cursor, time.Time{}
	c.saves = append(c.saves, cursor)
	return nil
}

type env struct {
	h    *reaper.Handler
	rec  *fakeReconciler
	cps  *fakeCheckpoints
	logs *lambdatest.Buffer
	emf  *lambdatest.Buffer
	now  time.Time
}

func newEnv(t *testing.T, cfg reaper.Config, steps ...func(context.Context, connection.ReconcileOptions) (connection.ReconcileResult, error)) *env {
	t.Helper()
	now := time.Now()
	e := &env{rec: &fakeReconciler{steps: steps}, logs: &lambdatest.Buffer{}, emf: &lambdatest.Buffer{}, now: now}
	e.cps = &fakeCheckpoints{now: func() time.Time { return now }}
	log := observability.NewLogger(observability.LogConfig{Writer: e.logs, Function: contract.FunctionReaper})
	emf := observability.NewEMF(observability.EMFConfig{Writer: e.emf, Environment: "test", Function: contract.FunctionReaper})
	h, err := reaper.New(reaper.Deps{Reconciler: e.rec, Lister: nopLister{}, Checkpoints: e.cps, Logger: log, Metrics: emf,
		Now: func() time.Time { return now }}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

type nopLister struct{}

func (nopLister) List(context.Context, store.ListQuery) (store.Page, error) { return store.Page{}, nil }

// invoke calls the handler as Lambda does: a request id, a deadline.
func (e *env) invoke(t *testing.T, requestID string, budget time.Duration) (reaper.Result, error) {
	t.Helper()
	ctx, cancel := context.WithDeadline(context.Background(), e.now.Add(budget))
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: requestID})
	return e.h.Handle(ctx, scheduled(t))
}

func scheduled(t *testing.T) events.EventBridgeEvent {
	t.Helper()
	raw, err := os.ReadFile("testdata/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.EventBridgeEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// metrics returns the values of the EMF documents' reaper metrics, in
// order, and checks every log line carries the standard fields.
func (e *env) metrics(t *testing.T) [][2]float64 {
	t.Helper()
	lambdatest.CheckCommon(t, lambdatest.Lines(t, e.logs.String()))
	var out [][2]float64
	for _, d := range lambdatest.EMF(t, e.emf.String()) {
		removed, ok1 := d.Value(contract.MetricZombieRecordsRemoved)
		errs, ok2 := d.Value(contract.MetricReaperErrors)
		if !ok1 || !ok2 || d.Units[contract.MetricZombieRecordsRemoved] != "Count" || d.Raw[contract.DimensionEnvironment] != "test" {
			t.Errorf("EMF document %v", d.Raw)
		}
		out = append(out, [2]float64{removed, errs})
	}
	return out
}

func TestACompletePassStartsTheNextOneOver(t *testing.T) {
	e := newEnv(t, reaper.Config{}, returns(connection.ReconcileResult{Checked: 10, Live: 6, Recent: 1, Errors: 1, Removed: 3,
		Zombies: []string{"a", "b", "c"}, Complete: true, Failures: []connection.Outcome{{ConnectionID: "x1", Status: connection.StatusFailed, Err: connection.ErrServerError}}}, nil))
	e.cps.cursor = "c7"
	res, err := e.invoke(t, "req-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := reaper.Result{Resumed: true, Complete: true, Checked: 10, Live: 6, Recent: 1, Removed: 3, Errors: 1}
	res.DurationMS = 0
	if res != want {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	if len(e.rec.calls) != 1 || e.rec.calls[0].Query.Cursor != "c7" || e.rec.calls[0].Query.TenantID != "" || e.rec.calls[0].Query.UserID != "" || e.rec.calls[0].DryRun {
		t.Fatalf("reconcile calls %+v: want one whole-table pass from c7", e.rec.calls)
	}
	if e.rec.cids[0] != "req-1" {
		t.Errorf("Reconcile ran under correlation id %q, want the invocation's req-1", e.rec.cids[0])
	}
	if len(e.cps.saves) != 1 || e.cps.saves[0] != "" {
		t.Fatalf("saved cursors %q, want one empty (the pass is over)", e.cps.saves)
	}
	lines := lambdatest.Lines(t, e.logs.String())
	sum := lambdatest.Find(lines, reaper.SummaryMessage)
	if len(sum) != 1 {
		t.Fatalf("summary lines %v", sum)
	}
	s := sum[0]
	for k, v := range map[string]any{"level": "info", "function": "reaper", "operation": reaper.Operation, "correlation_id": "req-1",
		"cold_start": true, reaper.KeyRemoved: 3.0, reaper.KeyChecked: 10.0, reaper.KeyErrors: 1.0, reaper.KeyComplete: true, reaper.KeyResumed: true} {
		if s[k] != v {
			t.Errorf("summary %s = %v, want %v (%v)", k, s[k], v, s)
		}
	}
	if _, ok := s[reaper.KeyStopped]; ok {
		t.Errorf("a finished run says it stopped: %v", s)
	}
	if w := lambdatest.Find(lines, "reaper could not check a connection; its record is kept"); len(w) != 1 || w[0]["connection_id"] != "x1" {
		t.Errorf("failure lines %v", w)
	}
	if m := e.metrics(t); len(m) != 1 || m[0] != [2]float64{3, 1} {
		t.Errorf("EMF %v, want one document with ZombieRecordsRemoved 3, ReaperErrors 1", m)
	}
}

// The time runs out: the pass stops before the margin, saves its cursor,
// and the next invocation resumes from it.
func TestTheDeadlineSavesTheCursorAndTheNextRunResumes(t *testing.T) {
	stopAtDeadline := func(ctx context.Context, _ connection.ReconcileOptions) (connection.ReconcileResult, error) {
		<-ctx.Done()
		return connection.ReconcileResult{Checked: 200, Removed: 20, Cursor: "c2"}, ctx.Err()
	}
	e := newEnv(t, reaper.Config{Margin: 40 * time.Millisecond}, stopAtDeadline,
		returns(connection.ReconcileResult{Checked: 50, Removed: 5, Complete: true}, nil))
	res, err := e.invoke(t, "req-1", 100*time.Millisecond)
	if err != nil {
		t.Fatalf("a run the deadline ended failed: %v", err)
	}
	if res.Complete || res.Resumed || res.Removed != 20 || res.Errors != 0 {
		t.Fatalf("first run %+v", res)
	}
	if got, want := e.rec.dls[0], e.now.Add(60*time.Millisecond); !got.Equal(want) {
		t.Errorf("reconcile deadline %v, want the invocation's minus the margin %v", got, want)
	}
	if len(e.cps.saves) != 1 || e.cps.saves[0] != "c2" {
		t.Fatalf("saved %q, want c2", e.cps.saves)
	}
	sum := lambdatest.Find(lambdatest.Lines(t, e.logs.String()), reaper.SummaryMessage)
	if len(sum) != 1 || sum[0][reaper.KeyStopped] != "deadline" || sum[0]["level"] != "info" {
		t.Fatalf("summary %v", sum)
	}

	res, err = e.invoke(t, "req-2", time.Hour)
	if err != nil || !res.Resumed || !res.Complete || res.Removed != 5 {
		t.Fatalf("second run %+v, %v", res, err)
	}
	if e.rec.calls[1].Query.Cursor != "c2" {
		t.Errorf("second run started at %q, want c2", e.rec.calls[1].Query.Cursor)
	}
	if e.cps.saves[1] != "" {
		t.Errorf("saved %q after the pass ended", e.cps.saves)
	}
}

// With less than twice the margin left, half of what remains is kept.
func TestAShortDeadlineKeepsHalf(t *testing.T) {
	e := newEnv(t, reaper.Config{}, returns(connection.ReconcileResult{Complete: true}, nil))
	if _, err := e.invoke(t, "req-1", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := e.rec.dls[0], e.now.Add(1500*time.Millisecond); !got.Equal(want) {
		t.Errorf("reconcile deadline %v, want %v", got, want)
	}
}

func TestARunningPassIsNotJoined(t *testing.T) {
	e := newEnv(t, reaper.Config{}, returns(connection.ReconcileResult{Complete: true}, nil))
	e.cps.owner, e.cps.until, e.cps.cursor = "req-0", e.now.Add(time.Minute), "c1"
	res, err := e.invoke(t, "req-1", time.Hour)
	if err != nil || !res.Skipped || len(e.rec.calls) != 0 || len(e.cps.saves) != 0 {
		t.Fatalf("run during another: %+v, %v; %d reconciles, saves %q", res, err, len(e.rec.calls), e.cps.saves)
	}
	// Once that lease has expired the pass is taken over.
	e.cps.until = e.now.Add(-time.Second)
	res, err = e.invoke(t, "req-2", time.Hour)
	if err != nil || res.Skipped || !res.Resumed || e.rec.calls[0].Query.Cursor != "c1" {
		t.Fatalf("take over: %+v, %v, %+v", res, err, e.rec.calls)
	}
}

func TestAFailedPassSavesItsProgressAndFails(t *testing.T) {
	listing := errors.New("listing records failed: throttled")
	e := newEnv(t, reaper.Config{}, returns(connection.ReconcileResult{Checked: 100, Removed: 4, Errors: 2, Cursor: "c3"}, listing))
	res, err := e.invoke(t, "req-1", time.Hour)
	if !errors.Is(err, listing) {
		t.Fatalf("err = %v, want the listing failure", err)
	}
	if res.Errors != 3 || res.Removed != 4 || len(e.cps.saves) != 1 || e.cps.saves[0] != "c3" {
		t.Fatalf("result %+v, saves %q: want 2 uncheckable + 1 failure, and c3 saved", res, e.cps.saves)
	}
	sum := lambdatest.Find(lambdatest.Lines(t, e.logs.String()), reaper.SummaryMessage)
	if len(sum) != 1 || sum[0]["level"] != "error" || sum[0][reaper.KeyStopped] != "failure" || sum[0]["error"] == nil {
		t.Fatalf("summary %v", sum)
	}
	if m := e.metrics(t); len(m) != 1 || m[0] != [2]float64{4, 3} {
		t.Errorf("EMF %v", m)
	}
}

func TestCheckpointFailures(t *testing.T) {
	down := &store.UnavailableError{Endpoint: "http://127.0.0.1:9", Err: errors.New("connection refused")}
	e := newEnv(t, reaper.Config{}, returns(connection.ReconcileResult{Complete: true}, nil))
	e.cps.acquireErr = down
	res, err := e.invoke(t, "req-1", time.Hour)
	if !errors.Is(err, store.ErrUnavailable) || res.Errors != 1 || len(e.rec.calls) != 0 {
		t.Fatalf("acquire failed: %+v, %v, %d reconciles", res, err, len(e.rec.calls))
	}
	if m := e.metrics(t); len(m) != 1 || m[0] != [2]float64{0, 1} {
		t.Errorf("EMF %v", m)
	}

	e = newEnv(t, reaper.Config{}, returns(connection.ReconcileResult{Removed: 2, Complete: true}, nil))
	e.cps.saveErr = down
	res, err = e.invoke(t, "req-1", time.Hour)
	if !errors.Is(err, store.ErrUnavailable) || res.Errors != 1 || res.Removed != 2 {
		t.Fatalf("save failed: %+v, %v", res, err)
	}
}

// A cursor the store refuses (a corrupted checkpoint) restarts the pass.
func TestARefusedCursorStartsOver(t *testing.T) {
	bad := &store.ValidationError{Field: "cursor", Reason: "is not a cursor returned by List"}
	e := newEnv(t, reaper.Config{}, returns(connection.ReconcileResult{}, bad), returns(connection.ReconcileResult{Checked: 3, Complete: true}, nil))
	e.cps.cursor = "garbage"
	res, err := e.invoke(t, "req-1", time.Hour)
	if err != nil || !res.Complete || res.Checked != 3 {
		t.Fatalf("%+v, %v", res, err)
	}
	if len(e.rec.calls) != 2 || e.rec.calls[0].Query.Cursor != "garbage" || e.rec.calls[1].Query.Cursor != "" {
		t.Fatalf("calls %+v", e.rec.calls)
	}
}

func TestNewNamesMissingDependencies(t *testing.T) {
	_, err := reaper.New(reaper.Deps{}, reaper.Config{})
	if !errors.Is(err, reaper.ErrMissingDependency) {
		t.Fatalf("err = %v", err)
	}
	for _, name := range []string{"Reconciler", "Lister", "Checkpoints"} {
		if !contains(err.Error(), name) {
			t.Errorf("%q does not name %s", err, name)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
