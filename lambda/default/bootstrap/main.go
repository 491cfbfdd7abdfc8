// Command bootstrap is the $default Lambda (provided.al2023). It wires the
// dependencies once per cold start and hands defaultroute.Handler to the
// runtime.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/pay-theory/streamer/lambda/contract"
	defaultroute "github.com/pay-theory/streamer/lambda/default"
	"github.com/pay-theory/streamer/lambda/shared/boot"
	"github.com/pay-theory/streamer/lambda/shared/observability"
)

func main() {
	ctx := context.Background()
	cfg, err := boot.Load(contract.FunctionDefault, os.Getenv)
	log := boot.NewLogger(cfg, nil)
	if err != nil {
		boot.LogInitError(log, err)
		os.Exit(1)
	}
	h, tr, err := wire(ctx, cfg, log)
	if err != nil {
		boot.LogInitError(log, err)
		os.Exit(1)
	}
	lambda.Start(observability.FlushAfter(h.Handle, tr.Flush, log))
}

func wire(ctx context.Context, cfg boot.Config, log *slog.Logger) (*defaultroute.Handler, *observability.Tracing, error) {
	tr, err := boot.NewTracing(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	awsCfg, err := boot.LoadAWS(ctx, tr.Provider())
	if err != nil {
		return nil, nil, err
	}
	h, err := defaultroute.New(defaultroute.Deps{
		Store:   boot.NewStore(boot.NewDynamoDB(awsCfg, cfg), cfg, log),
		Logger:  log,
		Metrics: boot.NewMetrics(cfg),
		Tracer:  tr.Tracer("github.com/pay-theory/streamer/lambda/default"),
	}, defaultroute.Config{})
	return h, tr, err
}
