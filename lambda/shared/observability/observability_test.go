package observability_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/lambda/shared/lambdatest"
	"github.com/pay-theory/streamer/lambda/shared/observability"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLoggerAddsInvocationFields(t *testing.T) {
	buf := &lambdatest.Buffer{}
	log := observability.NewLogger(observability.LogConfig{Writer: buf, Function: "fn", Level: slog.LevelInfo}).With("static", "x")
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { return clock }

	log.Info("outside")
	// No API Gateway request id: the Lambda request id is the correlation id.
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "lambda-req"})
	ctx, inv := observability.Begin(ctx, observability.BeginOptions{Operation: observability.OpConnect, ConnectionID: "c1", ColdStart: true, Now: now})
	clock = clock.Add(1500 * time.Microsecond)
	inv.SetUser("u1", "t1")
	log.DebugContext(ctx, "filtered")
	log.WarnContext(ctx, "inside", observability.ErrAttr(errors.New("boom")), slog.String("user_id", ""))

	lines := lambdatest.Lines(t, buf.String())
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (debug filtered), got %d: %s", len(lines), buf.String())
	}
	lambdatest.CheckCommon(t, lines)
	out, in := lines[0], lines[1]
	if out["correlation_id"] != "" || out["cold_start"] != false || out["function"] != "fn" || out["static"] != "x" || out["level"] != "info" {
		t.Errorf("line outside an invocation = %v", out)
	}
	if _, ok := out["error"]; ok {
		t.Errorf("error field without an error: %v", out)
	}
	want := map[string]any{"correlation_id": "lambda-req", "operation": "connect", "user_id": "u1", "tenant_id": "t1",
		"connection_id": "c1", "cold_start": true, "duration_ms": 1.5, "error": "boom", "level": "warn", "static": "x"}
	for k, v := range want {
		if in[k] != v {
			t.Errorf("%s = %v, want %v", k, in[k], v)
		}
	}
	if strings.Count(buf.String(), `"user_id"`) != 2 {
		t.Errorf("user_id duplicated: %s", buf.String())
	}
	if ts, err := time.Parse(time.RFC3339Nano, in["timestamp"].(string)); err != nil || !strings.HasSuffix(in["timestamp"].(string), "Z") {
		t.Errorf("timestamp %v: %v", ts, err)
	}
}

// TestLoggerKeepsCallerFields: a caller's own correlation_id, connection_id
// or duration_ms (pkg/connection logs the target connection and the send's
// duration) is kept, inside and outside an invocation, and never duplicated;
// the invocation fills in only what the caller left out or blank.
func TestLoggerKeepsCallerFields(t *testing.T) {
	buf := &lambdatest.Buffer{}
	log := observability.NewLogger(observability.LogConfig{Writer: buf, Function: "fn"})
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { return clock }
	callerAttrs := []any{
		slog.String("correlation_id", "mgr-cid"),
		slog.String("connection_id", "target-conn"),
		slog.Float64("duration_ms", 12.5),
	}

	log.Info("outside", callerAttrs...)
	ctx, inv := observability.Begin(context.Background(), observability.BeginOptions{
		Operation: observability.OpMessage, RequestID: "req-1", ConnectionID: "own-conn", Now: now})
	inv.SetUser("u1", "t1")
	clock = clock.Add(2 * time.Millisecond)
	log.InfoContext(ctx, "inside", callerAttrs...)
	// Blank caller values do not blank the invocation's.
	log.InfoContext(ctx, "blank", slog.String("correlation_id", ""), slog.String("connection_id", ""), slog.Any("user_id", nil))
	// Attributes from With count as the caller's; the call's own win over them.
	log.With("connection_id", "with-conn", "user_id", "with-user").InfoContext(ctx, "with", slog.String("user_id", "call-user"))
	// Inside a group the fields nest with the caller's: still one of each.
	log.WithGroup("g").With("connection_id", "grouped").InfoContext(ctx, "group")

	raw := strings.Split(strings.TrimSpace(buf.String()), "\n")
	lines := lambdatest.Lines(t, buf.String())
	if len(lines) != 5 || len(raw) != 5 {
		t.Fatalf("want 5 lines, got %d: %s", len(lines), buf.String())
	}
	for i, l := range raw {
		for _, k := range []string{"correlation_id", "connection_id", "duration_ms", "user_id", "tenant_id", "operation", "function", "cold_start"} {
			if n := strings.Count(l, `"`+k+`":`); n != 1 {
				t.Errorf("line %d has %s %d times: %s", i, k, n, l)
			}
		}
	}
	lambdatest.CheckCommon(t, lines[:4])
	check := func(l map[string]any, want map[string]any) {
		t.Helper()
		for k, v := range want {
			if l[k] != v {
				t.Errorf("%s: %s = %v, want %v", l["msg"], k, l[k], v)
			}
		}
	}
	check(lines[0], map[string]any{"correlation_id": "mgr-cid", "connection_id": "target-conn", "duration_ms": 12.5, "user_id": "", "function": "fn"})
	check(lines[1], map[string]any{"correlation_id": "mgr-cid", "connection_id": "target-conn", "duration_ms": 12.5,
		"user_id": "u1", "tenant_id": "t1", "operation": "message"})
	check(lines[2], map[string]any{"correlation_id": "req-1", "connection_id": "own-conn", "duration_ms": 2.0, "user_id": "u1"})
	check(lines[3], map[string]any{"connection_id": "with-conn", "user_id": "call-user", "correlation_id": "req-1", "tenant_id": "t1"})
	g, _ := lines[4]["g"].(map[string]any)
	check(g, map[string]any{"connection_id": "grouped", "correlation_id": "req-1", "user_id": "u1"})
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"": slog.LevelInfo, "DEBUG": slog.LevelDebug, "warning": slog.LevelWarn, " error ": slog.LevelError} {
		if got, ok := observability.ParseLevel(in); !ok || got != want {
			t.Errorf("ParseLevel(%q) = %v %v", in, got, ok)
		}
	}
	if _, ok := observability.ParseLevel("loud"); ok {
		t.Error("unknown level accepted")
	}
}

func TestEMFDocument(t *testing.T) {
	buf := &lambdatest.Buffer{}
	at := time.UnixMilli(1700000000123)
	e := observability.NewEMF(observability.EMFConfig{Writer: buf, Function: "connect", Now: func() time.Time { return at }})
	ctx, _ := observability.Begin(context.Background(), observability.BeginOptions{RequestID: "req-1"})
	if err := e.Emit(ctx, nil, nil); err != nil || buf.String() != "" {
		t.Fatalf("empty emit wrote %q, %v", buf.String(), err)
	}
	if err := e.Emit(ctx, []observability.Metric{observability.Count("A", 1), observability.Gauge("B", 42)}, map[string]any{"reason": "expired"}); err != nil {
		t.Fatal(err)
	}
	docs := lambdatest.EMF(t, buf.String())
	if len(docs) != 1 {
		t.Fatalf("docs = %d", len(docs))
	}
	d := docs[0]
	if d.Timestamp != 1700000000123 || d.Namespace != "Streamer" || d.Raw["Environment"] != "dev" || d.Raw["Function"] != "connect" ||
		d.Raw["correlation_id"] != "req-1" || d.Raw["reason"] != "expired" || d.Units["A"] != "Count" || d.Units["B"] != "Count" {
		t.Errorf("doc = %+v", d)
	}
	if a, _ := d.Value("A"); a != 1 {
		t.Errorf("A = %v", a)
	}
	if b, _ := d.Value("B"); b != 42 {
		t.Errorf("B = %v", b)
	}
	if len(d.Dimensions) != 1 || len(d.Dimensions[0]) != 1 || d.Dimensions[0][0] != "Environment" {
		t.Errorf("dimensions = %v, want [[Environment]] only", d.Dimensions)
	}
	if err := e.Emit(ctx, []observability.Metric{{Name: "_aws"}}, nil); err == nil {
		t.Error("metric named _aws accepted")
	}
}

func TestEMFConcurrentDocumentsStayWhole(t *testing.T) {
	buf := &lambdatest.Buffer{}
	e := observability.NewEMF(observability.EMFConfig{Writer: buf, Namespace: "NS", Environment: "prod"})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = e.Emit(context.Background(), []observability.Metric{observability.Count("C", 1)}, nil)
		}()
	}
	wg.Wait()
	docs := lambdatest.EMF(t, buf.String())
	if len(docs) != 20 || docs[0].Namespace != "NS" || docs[0].Raw["Environment"] != "prod" {
		t.Errorf("got %d docs: %+v", len(docs), docs[0])
	}
}

func TestTracingIsNoopWithoutEndpoint(t *testing.T) {
	tr, err := observability.NewTracing(context.Background(), observability.TracingConfig{ServiceName: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Exporting() {
		t.Error("exporting without an endpoint")
	}
	_, span := observability.StartSpan(context.Background(), tr.Tracer("t"), "s", "")
	if span.SpanContext().IsValid() || span.IsRecording() {
		t.Error("no-op tracer produced a recording span")
	}
	span.End()
	if err := tr.Flush(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestOTLPExportOverHTTP checks the real exporter: spans reach an OTLP/HTTP
// endpoint (as the ADOT collector extension would receive them) on Flush.
func TestOTLPExportOverHTTP(t *testing.T) {
	var mu sync.Mutex
	var paths, types []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		types = append(types, r.Header.Get("Content-Type"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	ctx := context.Background()
	tr, err := observability.NewTracing(ctx, observability.TracingConfig{Endpoint: srv.URL, ServiceName: "connect"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Shutdown(ctx) }()
	_, span := observability.StartSpan(ctx, tr.Tracer("t"), "websocket $connect", "")
	// X-Ray ids: the first 8 hex digits of the trace id are the epoch seconds.
	id := span.SpanContext().TraceID().String()
	if secs, err := strconv.ParseInt(id[:8], 16, 64); err != nil || time.Since(time.Unix(secs, 0)).Abs() > time.Hour {
		t.Errorf("trace id %s does not start with the epoch seconds: not an X-Ray id", id)
	}
	span.End()
	if err := tr.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/v1/traces" || types[0] != "application/x-protobuf" {
		t.Errorf("collector got %v %v, want one POST /v1/traces", paths, types)
	}
}

func TestSpanParentFromEnvironment(t *testing.T) {
	t.Setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
	exp := tracetest.NewInMemoryExporter()
	tr, err := observability.NewTracing(context.Background(), observability.TracingConfig{Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Shutdown(context.Background()) }()
	_, span := observability.StartSpan(context.Background(), tr.Tracer("t"), "s", "")
	span.End()
	if got := span.SpanContext().TraceID().String(); got != "5759e988bd862e3fe1be46a994272793" {
		t.Errorf("trace id %s, want the one from _X_AMZN_TRACE_ID", got)
	}
}

func TestFlushAfterLogsFlushFailure(t *testing.T) {
	buf := &lambdatest.Buffer{}
	log := observability.NewLogger(observability.LogConfig{Writer: buf})
	h := observability.FlushAfter(func(context.Context, string) (int, error) { return 7, nil },
		func(context.Context) error { return errors.New("collector down") }, log)
	if n, err := h(context.Background(), "x"); n != 7 || err != nil {
		t.Errorf("wrapped handler = %d, %v", n, err)
	}
	if l := lambdatest.Find(lambdatest.Lines(t, buf.String()), "trace flush failed: spans of this invocation may be lost"); len(l) != 1 || l[0]["error"] != "collector down" {
		t.Errorf("flush failure log = %s", buf.String())
	}
}
