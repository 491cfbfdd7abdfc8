package observability

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"go.opentelemetry.io/otel/trace"
)

// RouteInvocation describes one invocation of a WebSocket route handler.
type RouteInvocation struct {
	// Operation is the "operation" log field (OpConnect, OpMessage, ...).
	Operation string
	// Route names the span ("websocket " + Route) and is its AttrRoute.
	Route string
	// Request is the event's request context: its request and connection
	// ids become the correlation id and the connection_id field.
	Request events.APIGatewayWebsocketProxyRequestContext
	// TraceHeader is the request's X-Amzn-Trace-Id header, the span's parent
	// when the runtime gives none (see StartSpan); may be empty.
	TraceHeader string
	ColdStart   bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// BeginRoute begins a route handler's invocation (Begin) and starts its
// server span (StartSpan) with the route, connection id and cold start
// attributes. The caller ends the span.
func BeginRoute(ctx context.Context, tracer trace.Tracer, o RouteInvocation) (context.Context, *Invocation, trace.Span) {
	ctx, inv := Begin(ctx, BeginOptions{
		Operation:    o.Operation,
		RequestID:    o.Request.RequestID,
		ConnectionID: o.Request.ConnectionID,
		ColdStart:    o.ColdStart,
		Now:          o.Now,
	})
	ctx, span := StartSpan(ctx, tracer, "websocket "+o.Route, o.TraceHeader,
		AttrRoute.String(o.Route),
		AttrConnectionID.String(o.Request.ConnectionID),
		AttrColdStart.Bool(o.ColdStart))
	return ctx, inv, span
}

// Emitter receives EMF metric sets (*EMF).
type Emitter interface {
	Emit(ctx context.Context, metrics []Metric, props map[string]any) error
}

// Emit writes metrics through m (nil: metrics are off). Losing a metric
// must not fail the request that produced it, so a failure is logged as a
// warning on log, not returned.
func Emit(ctx context.Context, m Emitter, log *slog.Logger, metrics []Metric, props map[string]any) {
	if m == nil || len(metrics) == 0 {
		return
	}
	if err := m.Emit(ctx, metrics, props); err != nil {
		log.WarnContext(ctx, "metrics not written", ErrAttr(err))
	}
}
