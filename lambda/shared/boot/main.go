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

type handlerFunc = func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)

// run is Main with its edges injected: getenv, the log writer (nil =>
// stdout) and start (lambda.Start, which never returns).
func run(function string, getenv func(string) string, logs io.Writer, build Build, start func(handlerFunc)) int {
	h, err := Wire(function, getenv, logs, build)
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
	return observability.FlushAfter(h.Handle, tr.Flush, log), nil
}

func wire(ctx context.Context, cfg Config, log *slog.Logger, build Build) (Handler, *observability.Tracing, error) {
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
