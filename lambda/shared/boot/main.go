package boot

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"go.opentelemetry.io/otel/trace"

	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/store"
)

// Handler is a WebSocket route handler (connect.Handler, disconnect.Handler,
// defaultroute.Handler).
type Handler interface {
	Handle(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)
}

// Env is what the cold start wired before a function builds its handler.
type Env struct {
	Config Config
	Logger *slog.Logger
	// AWS is the instrumented SDK configuration (see LoadAWS).
	AWS aws.Config
	// Tracer is named after the function's package
	// (github.com/pay-theory/streamer/lambda/<function>).
	Tracer  trace.Tracer
	Metrics *observability.EMF
}

// Store is the DynamoDB store on the configured table.
func (e Env) Store() *store.Dynamo {
	return NewStore(NewDynamoDB(e.AWS, e.Config), e.Config, e.Logger)
}

// Build makes a function's handler from the wired Env.
type Build func(ctx context.Context, env Env) (Handler, error)

// BuildFunc makes the handler of a function whose event is not a WebSocket
// route's (the reaper's scheduled event) from the wired Env.
type BuildFunc[Req, Resp any] func(ctx context.Context, env Env) (func(context.Context, Req) (Resp, error), error)

// Main is the whole of a Lambda entry point: load function's configuration
// from the environment, set up logging, tracing, metrics and the AWS SDK,
// build the handler, and serve it with spans flushed after every
// invocation. It returns only when the cold start fails, with the exit code
// (1) after writing the one log line that names the cause:
//
//	func main() { os.Exit(boot.Main(contract.FunctionConnect, build)) }
func Main(function string, build Build) int {
	return run(function, os.Getenv, nil, build, func(h handlerFunc) { lambda.Start(h) })
}

// MainFunc is Main for a handler of any event type:
//
//	func main() { os.Exit(boot.MainFunc(contract.FunctionReaper, build)) }
func MainFunc[Req, Resp any](function string, build BuildFunc[Req, Resp]) int {
	return runFunc(function, os.Getenv, nil, build, func(h func(context.Context, Req) (Resp, error)) { lambda.Start(h) })
}

type handlerFunc = func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)

// routeBuild is build as a BuildFunc.
func routeBuild(build Build) BuildFunc[events.APIGatewayWebsocketProxyRequest, events.APIGatewayProxyResponse] {
	return func(ctx context.Context, env Env) (handlerFunc, error) {
		h, err := build(ctx, env)
		if err != nil {
			return nil, err
		}
		return h.Handle, nil
	}
}

// run is Main with its edges injected: getenv, the log writer (nil =>
// stdout) and start (lambda.Start, which never returns).
func run(function string, getenv func(string) string, logs io.Writer, build Build, start func(handlerFunc)) int {
	return runFunc(function, getenv, logs, routeBuild(build), start)
}

// runFunc is MainFunc with its edges injected, as run is Main's.
func runFunc[Req, Resp any](function string, getenv func(string) string, logs io.Writer, build BuildFunc[Req, Resp], start func(func(context.Context, Req) (Resp, error))) int {
	h, err := WireFunc(function, getenv, logs, build)
	if err != nil {
		return 1
	}
	start(h)
	return 0
}

// Wire is the cold start of Main without the Lambda runtime: it loads
// function's configuration through getenv (the AWS SDK reads its own
// variables from the process environment), wires logging (to logs; nil =>
// stdout), tracing, metrics and the SDK, builds the handler and returns it
// as Main would serve it, spans flushed after every invocation. A failed
// cold start is logged once and returned. Tests run an entry point's real
// build through it.
func Wire(function string, getenv func(string) string, logs io.Writer, build Build) (func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error), error) {
	return WireFunc(function, getenv, logs, routeBuild(build))
}

// WireFunc is Wire for a handler of any event type (MainFunc's cold start).
func WireFunc[Req, Resp any](function string, getenv func(string) string, logs io.Writer, build BuildFunc[Req, Resp]) (func(context.Context, Req) (Resp, error), error) {
	ctx := context.Background()
	cfg, err := Load(function, getenv)
	log := NewLogger(cfg, logs)
	if err != nil {
		LogInitError(log, err)
		return nil, err
	}
	h, tr, err := wire(ctx, cfg, log, build)
	if err != nil {
		LogInitError(log, err)
		return nil, err
	}
	return observability.FlushAfter(h, tr.Flush, log), nil
}

func wire[Req, Resp any](ctx context.Context, cfg Config, log *slog.Logger, build BuildFunc[Req, Resp]) (func(context.Context, Req) (Resp, error), *observability.Tracing, error) {
	tr, err := NewTracing(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	awsCfg, err := LoadAWS(ctx, tr.Provider())
	if err != nil {
		return nil, nil, err
	}
	h, err := build(ctx, Env{
		Config:  cfg,
		Logger:  log,
		AWS:     awsCfg,
		Tracer:  tr.Tracer(TracerName(cfg.Function)),
		Metrics: NewMetrics(cfg),
	})
	if err != nil {
		return nil, nil, err
	}
	return h, tr, nil
}

// TracerName is the instrumentation name of function's spans: its handler
// package.
func TracerName(function string) string {
	return "github.com/pay-theory/streamer/lambda/" + function
}
