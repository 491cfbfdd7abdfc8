// Command bootstrap is the $connect Lambda (provided.al2023). It wires the
// dependencies once per cold start and hands connect.Handler to the runtime.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/pay-theory/streamer/lambda/connect"
	"github.com/pay-theory/streamer/lambda/contract"
	"github.com/pay-theory/streamer/lambda/shared/boot"
	"github.com/pay-theory/streamer/lambda/shared/observability"
)

func main() {
	ctx := context.Background()
	cfg, err := boot.Load(contract.FunctionConnect, os.Getenv)
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

func wire(ctx context.Context, cfg boot.Config, log *slog.Logger) (*connect.Handler, *observability.Tracing, error) {
	tr, err := boot.NewTracing(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	awsCfg, err := boot.LoadAWS(ctx, tr.Provider())
	if err != nil {
		return nil, nil, err
	}
	verifier, err := boot.NewVerifier(ctx, cfg, awsCfg)
	if err != nil {
		return nil, nil, err
	}
	h, err := connect.New(connect.Deps{
		Verifier: verifier,
		Store:    boot.NewStore(boot.NewDynamoDB(awsCfg, cfg), cfg, log),
		Logger:   log,
		Metrics:  boot.NewMetrics(cfg),
		Tracer:   tr.Tracer("github.com/pay-theory/streamer/lambda/connect"),
	}, connect.Config{})
	return h, tr, err
}
