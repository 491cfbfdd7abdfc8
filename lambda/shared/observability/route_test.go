package observability_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pay-theory/streamer/lambda/shared/lambdatest"
	"github.com/pay-theory/streamer/lambda/shared/observability"
)

func TestBeginRoute(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := observability.NewTracing(context.Background(), observability.TracingConfig{Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Shutdown(context.Background()) }()
	ctx, inv, span := observability.BeginRoute(context.Background(), tr.Tracer("t"), observability.RouteInvocation{
		Operation:   observability.OpDisconnect,
		Route:       "$disconnect",
		Request:     events.APIGatewayWebsocketProxyRequestContext{RequestID: "req-1", ConnectionID: "c1"},
		TraceHeader: "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
		ColdStart:   true,
	})
	span.End()
	if observability.FromContext(ctx) != inv {
		t.Error("the context does not carry the invocation")
	}
	f := inv.Fields()
	if f.Operation != observability.OpDisconnect || f.CorrelationID != "req-1" || f.ConnectionID != "c1" || !f.ColdStart {
		t.Errorf("invocation = %+v", f)
	}
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "websocket $disconnect" ||
		spans[0].SpanContext.TraceID().String() != "5759e988bd862e3fe1be46a994272793" {
		t.Fatalf("spans = %v", spans)
	}
	attrs := map[string]string{}
	for _, a := range spans[0].Attributes {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs[string(observability.AttrRoute)] != "$disconnect" || attrs[string(observability.AttrConnectionID)] != "c1" ||
		attrs[string(observability.AttrColdStart)] != "true" {
		t.Errorf("span attributes = %v", attrs)
	}
}

type failingEmitter struct{ calls int }

func (f *failingEmitter) Emit(context.Context, []observability.Metric, map[string]any) error {
	f.calls++
	return errors.New("stdout closed")
}

func TestEmitIsBestEffort(t *testing.T) {
	logs := &lambdatest.Buffer{}
	log := observability.NewLogger(observability.LogConfig{Writer: logs})
	ms := []observability.Metric{observability.Count("X", 1)}
	observability.Emit(context.Background(), nil, log, ms, nil) // metrics off
	f := &failingEmitter{}
	observability.Emit(context.Background(), f, log, nil, nil) // nothing to write
	observability.Emit(context.Background(), f, log, ms, nil)
	if f.calls != 1 {
		t.Errorf("emitter called %d times, want 1", f.calls)
	}
	lines := lambdatest.Find(lambdatest.Lines(t, logs.String()), "metrics not written")
	if len(lines) != 1 || lines[0]["level"] != "warn" {
		t.Errorf("want one warning, got %s", logs.String())
	}
}
