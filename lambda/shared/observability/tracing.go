package observability

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/propagators/aws/xray"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pay-theory/streamer/contract"
)

// Span attribute keys set by the handlers. ADOT/X-Ray turns them into
// metadata; list them as indexed_attributes in the collector config to make
// them X-Ray annotations (searchable).
const (
	AttrUserID       = attribute.Key("streamer.user_id")
	AttrTenantID     = attribute.Key("streamer.tenant_id")
	AttrConnectionID = attribute.Key("streamer.connection_id")
	AttrRoute        = attribute.Key("streamer.route")
	AttrColdStart    = attribute.Key("faas.coldstart")
	AttrAuthFailure  = attribute.Key("streamer.auth_failure")
)

// TracingConfig configures NewTracing. The zero value is a no-op tracer.
type TracingConfig struct {
	// Endpoint is OTEL_EXPORTER_OTLP_ENDPOINT (the ADOT collector extension
	// listens on http://localhost:4318). Empty means tracing is off (no-op),
	// unless Exporter is set.
	Endpoint string
	// ServiceName is the resource's service.name (the function name).
	ServiceName string
	// Exporter replaces the OTLP exporter (tests: tracetest.InMemoryExporter).
	Exporter sdktrace.SpanExporter
}

// Tracing owns the tracer provider of one process.
type Tracing struct {
	provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider
}

// NewTracing builds a tracer provider with X-Ray trace ids (so the ids are
// valid X-Ray ids end to end) and an OTLP/HTTP exporter, or a no-op provider
// when no endpoint is configured.
func NewTracing(ctx context.Context, cfg TracingConfig) (*Tracing, error) {
	exp := cfg.Exporter
	if exp == nil && cfg.Endpoint == "" {
		return &Tracing{provider: noop.NewTracerProvider()}, nil
	}
	if exp == nil {
		// The generic OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: the
		// specification appends the signal path.
		url := strings.TrimRight(cfg.Endpoint, "/") + "/v1/traces"
		var err error
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(url))
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w (check OTEL_EXPORTER_OTLP_ENDPOINT)", url, err)
		}
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("faas.name", cfg.ServiceName),
		attribute.String("cloud.provider", "aws"),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithIDGenerator(xray.NewIDGenerator()),
		sdktrace.WithResource(res),
		// Lambda decides sampling (Sampled=0/1 in the trace header); with no
		// parent (local runs) everything is sampled.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	)
	return &Tracing{provider: tp, sdk: tp}, nil
}

// Provider is the tracer provider (for otelaws and the handlers).
func (t *Tracing) Provider() trace.TracerProvider { return t.provider }

// Tracer returns a named tracer.
func (t *Tracing) Tracer(name string) trace.Tracer { return t.provider.Tracer(name) }

// Exporting reports whether spans leave the process.
func (t *Tracing) Exporting() bool { return t.sdk != nil }

// Flush exports buffered spans. Call it at the end of every invocation: a
// Lambda environment is frozen between invocations, so a background batch
// may never get to run.
func (t *Tracing) Flush(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	return t.sdk.ForceFlush(ctx)
}

// Shutdown flushes and stops the provider.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	return t.sdk.Shutdown(ctx)
}

// XRayTraceHeader returns the X-Ray trace header of the current invocation:
// the value the Lambda runtime puts in the context ("x-amzn-trace-id"), else
// the _X_AMZN_TRACE_ID variable it sets, else fallback (e.g. the request's
// X-Amzn-Trace-Id header).
func XRayTraceHeader(ctx context.Context, fallback string) string {
	// aws-lambda-go stores the header under this plain string key.
	if v, ok := ctx.Value("x-amzn-trace-id").(string); ok && v != "" { //nolint:staticcheck // the key is aws-lambda-go's
		return v
	}
	if v := os.Getenv(contract.EnvXRayTraceID); v != "" {
		return v
	}
	return fallback
}

// StartSpan starts the server span of a handler invocation. When ctx has no
// span yet it is parented on the X-Ray trace header (see XRayTraceHeader), so
// the span joins the trace Lambda and API Gateway started. A nil tracer means
// no tracing.
func StartSpan(ctx context.Context, tracer trace.Tracer, name, fallbackHeader string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if tracer == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		if h := XRayTraceHeader(ctx, fallbackHeader); h != "" {
			ctx = xray.Propagator{}.Extract(ctx, propagation.MapCarrier{"X-Amzn-Trace-Id": h})
		}
	}
	return tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// FlushAfter wraps a handler so spans are flushed after every invocation.
// Losing spans must not fail a request the handler answered, so a flush
// failure is only logged.
func FlushAfter[Req, Resp any](fn func(context.Context, Req) (Resp, error), flush func(context.Context) error, log *slog.Logger) func(context.Context, Req) (Resp, error) {
	if flush == nil {
		return fn
	}
	return func(ctx context.Context, req Req) (Resp, error) {
		resp, err := fn(ctx, req)
		if ferr := flush(ctx); ferr != nil && log != nil {
			log.WarnContext(ctx, "trace flush failed: spans of this invocation may be lost", ErrAttr(ferr))
		}
		return resp, err
	}
}
