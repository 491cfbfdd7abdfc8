package disconnect_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/disconnect"
	"github.com/pay-theory/streamer/lambda/shared/lambdatest"
	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/dynamotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	h       *disconnect.Handler
	logs    *lambdatest.Buffer
	metrics *lambdatest.Buffer
	now     time.Time
	subs    *recordingCanceller
}

type recordingCanceller struct{ got []store.Connection }

func (r *recordingCanceller) CancelSubscriptions(_ context.Context, c store.Connection) error {
	r.got = append(r.got, c)
	return nil
}

func setup(t *testing.T, st disconnect.Store, now time.Time) *env {
	t.Helper()
	e := &env{logs: &lambdatest.Buffer{}, metrics: &lambdatest.Buffer{}, now: now, subs: &recordingCanceller{}}
	var err error
	e.h, err = disconnect.New(disconnect.Deps{
		Store:         st,
		Subscriptions: e.subs,
		Logger:        observability.NewLogger(observability.LogConfig{Writer: e.logs, Function: "disconnect"}),
		Metrics:       observability.NewEMF(observability.EMFConfig{Writer: e.metrics, Environment: "test"}),
		Now:           func() time.Time { return e.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func summary(t *testing.T, e *env) map[string]any {
	t.Helper()
	lines := lambdatest.Lines(t, e.logs.String())
	lambdatest.CheckCommon(t, lines)
	s := lambdatest.Find(lines, disconnect.SummaryMessage)
	if len(s) != 1 {
		t.Fatalf("want exactly one summary line, got %v", lines)
	}
	return s[0]
}

func TestDisconnectDeletesRecordAndSummarises(t *testing.T) {
	ep := dynamotest.Start(t)
	ctx := context.Background()
	connectedAt := time.Now().UTC().Add(-90 * time.Second).Truncate(time.Millisecond)
	rec := store.Connection{ConnectionID: "R1kmxc2VNjMCFIA=", UserID: "user-1", TenantID: "tenant-1",
		Endpoint: "https://x/prod", ConnectedAt: connectedAt, LastPing: connectedAt}
	if err := ep.Store.Save(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := ep.Store.Touch(ctx, rec.ConnectionID, connectedAt.Add(time.Second), 3); err != nil {
		t.Fatal(err)
	}
	if err := ep.Store.AddSent(ctx, map[string]int64{rec.ConnectionID: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := ep.Store.AddActive(ctx, 4); err != nil {
		t.Fatal(err)
	}
	e := setup(t, ep.Store, connectedAt.Add(90*time.Second))
	req := lambdatest.Event(t, "testdata/disconnect.json", map[string]string{"CONNECTION_ID": rec.ConnectionID})

	resp, err := e.h.Handle(ctx, req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Handle = %d, %v; want 200", resp.StatusCode, err)
	}
	if _, err := ep.Store.Get(ctx, rec.ConnectionID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record still there after $disconnect (Get err %v)", err)
	}
	s := summary(t, e)
	for k, v := range map[string]any{
		"connection_id": rec.ConnectionID, "user_id": "user-1", "tenant_id": "tenant-1", "operation": "disconnect",
		"duration_seconds": 90.0, "messages_sent": 5.0, "messages_received": 3.0, "record_found": true,
		"disconnect_reason": "Going away", "disconnect_status_code": 1001.0, "correlation_id": "R1koeHsUtjMFbRw=",
		"disconnect_time": e.now.Format(observability.TimestampFormat), "level": "info",
	} {
		if s[k] != v {
			t.Errorf("summary %s = %v (%T), want %v", k, s[k], s[k], v)
		}
	}
	doc := lambdatest.OneEMF(t, e.metrics.String())
	if v, _ := doc.Value(contract.MetricActiveConnections); v != 3 {
		t.Errorf("ActiveConnections = %v, want 3 (4 - this one)", v)
	}
	if len(e.subs.got) != 1 || e.subs.got[0].UserID != "user-1" {
		t.Errorf("subscription seam got %+v, want the deleted record", e.subs.got)
	}

	// A repeated $disconnect finds nothing and must not move the gauge.
	e.logs, e.metrics = &lambdatest.Buffer{}, &lambdatest.Buffer{}
	e2 := setup(t, ep.Store, e.now)
	resp, _ = e2.h.Handle(ctx, req)
	if resp.StatusCode != 200 {
		t.Fatalf("second $disconnect = %d, want 200", resp.StatusCode)
	}
	if n, _ := ep.Store.AddActive(ctx, 0); n != 3 {
		t.Errorf("active counter = %d after a repeated $disconnect, want 3", n)
	}
	if e2.metrics.String() != "" {
		t.Errorf("metrics emitted for a repeated $disconnect: %s", e2.metrics.String())
	}
}

func TestDisconnectWithoutRecordIs200(t *testing.T) {
	ep := dynamotest.Start(t)
	now := time.UnixMilli(1705751708326).UTC()
	e := setup(t, ep.Store, now)
	req := lambdatest.Event(t, "testdata/disconnect.json", map[string]string{"CONNECTION_ID": "gone="})
	resp, err := e.h.Handle(context.Background(), req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Handle = %d, %v; want 200", resp.StatusCode, err)
	}
	s := summary(t, e)
	// Without a record the duration comes from the gateway's connectedAt.
	if s["record_found"] != false || s["duration_seconds"] != 10.907 || s["user_id"] != "" || s["messages_sent"] != 0.0 {
		t.Errorf("summary = %v", s)
	}
	if _, ok := s["error"]; ok {
		t.Errorf("an absent record is not an error: %v", s)
	}
	if len(e.subs.got) != 1 || e.subs.got[0].ConnectionID != "gone=" {
		t.Errorf("subscription seam got %+v", e.subs.got)
	}
}

type failingStore struct{ added int }

func (f *failingStore) Delete(context.Context, string) (store.Connection, bool, error) {
	return store.Connection{}, false, errors.New("RequestLimitExceeded: throughput exceeds the current capacity")
}

func (f *failingStore) AddActive(context.Context, int64) (int64, error) { f.added++; return 0, nil }

func TestDisconnectStoreFailureIs200AndCounted(t *testing.T) {
	fs := &failingStore{}
	e := setup(t, fs, time.Now())
	req := lambdatest.Event(t, "testdata/disconnect.json", map[string]string{"CONNECTION_ID": "c="})
	resp, err := e.h.Handle(context.Background(), req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Handle = %d, %v; want 200", resp.StatusCode, err)
	}
	if fs.added != 0 {
		t.Error("the active counter moved although nothing was deleted")
	}
	lines := lambdatest.Lines(t, e.logs.String())
	if errs := lambdatest.Find(lines, "disconnect: connection record not deleted (it expires by TTL)"); len(errs) != 1 || errs[0]["level"] != "error" {
		t.Errorf("want one error line, got %v", lines)
	}
	if s := summary(t, e); s["error"] == nil || s["record_found"] != false {
		t.Errorf("summary must carry the error: %v", s)
	}
	doc := lambdatest.OneEMF(t, e.metrics.String())
	if v, _ := doc.Value(contract.MetricStoreErrors); v != 1 {
		t.Errorf("StoreErrors = %v, want 1", v)
	}
}

func TestNewRequiresStore(t *testing.T) {
	if _, err := disconnect.New(disconnect.Deps{}); !errors.Is(err, disconnect.ErrMissingDependency) {
		t.Errorf("New = %v, want ErrMissingDependency", err)
	}
}
