package connectionemf_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/lambdatest"
	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/connection/connectionemf"
)

// managementAPI answers POST /{stage}/@connections/{id} like API Gateway:
// 410 GoneException for ids starting "gone", 403 ForbiddenException for
// "bad", else 200.
func managementAPI(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		switch {
		case r.Method != http.MethodPost:
			w.WriteHeader(http.StatusMethodNotAllowed)
		case strings.HasPrefix(id, "gone"):
			w.Header().Set("x-amzn-ErrorType", "GoneException")
			w.WriteHeader(http.StatusGone)
			_, _ = w.Write([]byte(`{"message":"Gone"}`))
		case strings.HasPrefix(id, "bad"):
			w.Header().Set("x-amzn-ErrorType", "ForbiddenException")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"message":"Forbidden"}`))
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestObserverExportsSendsAsEMF drives a real Manager over HTTP
// and parses what the adapter writes: one document per Flush, the messages
// delivered by Send and Broadcast as MessagesSentPerMinute, the Environment
// dimension only.
func TestObserverExportsSendsAsEMF(t *testing.T) {
	gw := managementAPI(t)
	out := &lambdatest.Buffer{}
	emf := observability.NewEMF(observability.EMFConfig{Writer: out, Environment: "prod", Function: "notifier"})
	cm := connectionemf.New(emf)
	api := connection.NewManagementClient(gw.URL+"/prod", connection.ClientOptions{})
	t.Cleanup(func() { connection.CloseIdleConnections(api) })
	mgr, err := connection.New(api, nil, connection.Config{Observer: cm, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mgr.Shutdown(context.Background()) })

	ctx, _ := observability.Begin(context.Background(), observability.BeginOptions{Operation: observability.OpSend, RequestID: "req-7"})
	if err := mgr.Send(ctx, "one", "hi"); err != nil {
		t.Fatal(err)
	}
	ids := []string{"gone1", "bad1"}
	for i := range 200 {
		ids = append(ids, fmt.Sprintf("c%03d", i))
	}
	res, err := mgr.Broadcast(ctx, ids, map[string]string{"msg": "hello"})
	if err != nil || res.Sent != 200 {
		t.Fatalf("Broadcast = %+v, %v; want 200 sent", res, err)
	}
	if out.String() != "" {
		t.Fatalf("the observer wrote before Flush (one document per message?):\n%s", out.String())
	}
	if err := cm.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	doc := lambdatest.OneEMF(t, out.String())
	if v, ok := doc.Value(contract.MetricMessagesSentPerMinute); !ok || v != 201 {
		t.Errorf("MessagesSentPerMinute = %v (%v), want 201 (1 send + 200 broadcast)", v, ok)
	}
	if doc.Raw["Environment"] != "prod" || doc.Raw["correlation_id"] != "req-7" || doc.Raw["operation"] != "send" ||
		doc.Raw["send_failures"] != float64(res.Failed) || res.Failed != 1 {
		t.Errorf("document properties = %v (broadcast failed %d)", doc.Raw, res.Failed)
	}
	dirs := doc.Raw["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)
	dims := dirs[0].(map[string]any)["Dimensions"]
	if fmt.Sprint(dims) != "[[Environment]]" || len(dirs) != 1 {
		t.Errorf("dimensions = %v, want [[Environment]] only", dims)
	}
	for _, id := range ids {
		if strings.Contains(out.String(), id) {
			t.Errorf("a connection id (%s) leaked into the metrics document", id)
		}
	}

	// Nothing new: nothing written. Then the next invocation's sends only.
	mark := len(out.String())
	if err := cm.Flush(ctx); err != nil || out.String()[mark:] != "" {
		t.Fatalf("Flush with nothing sent wrote %q, %v", out.String()[mark:], err)
	}
	if err := mgr.Send(ctx, "two", "again"); err != nil {
		t.Fatal(err)
	}
	if err := cm.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := lambdatest.OneEMF(t, out.String()[mark:]).Value(contract.MetricMessagesSentPerMinute); v != 1 {
		t.Errorf("second invocation MessagesSentPerMinute = %v, want 1", v)
	}
}

func TestObserverKeepsCountsWhenEmitFails(t *testing.T) {
	cm := connectionemf.New(failingEmitter{})
	for range 3 {
		cm.OnSend(connection.Outcome{ConnectionID: "a", Status: connection.StatusSent}, time.Millisecond)
	}
	cm.OnSend(connection.Outcome{ConnectionID: "b", Status: connection.StatusStale}, time.Millisecond)
	cm.OnBroadcast(connection.BroadcastResult{Total: 3, Sent: 3}) // already counted per send
	if err := cm.Flush(context.Background()); err == nil {
		t.Fatal("Flush hid the emitter's error")
	}
	if sent, failed := cm.Pending(); sent != 3 || failed != 0 {
		t.Errorf("pending after a failed Flush = %d sent %d failed, want 3 and 0", sent, failed)
	}
	var none *connectionemf.Observer
	if err := none.Flush(context.Background()); err != nil {
		t.Errorf("nil Flush = %v", err)
	}
	if err := connectionemf.New(nil).Flush(context.Background()); err != nil {
		t.Errorf("Flush without an emitter = %v", err)
	}
}

type failingEmitter struct{}

func (failingEmitter) Emit(context.Context, []observability.Metric, map[string]any) error {
	return errors.New("stdout closed")
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
