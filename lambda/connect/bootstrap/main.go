// Command bootstrap is the $connect Lambda (provided.al2023). It wires the
// dependencies once per cold start and hands connect.Handler to the runtime.
package main

import (
	"context"
	"os"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/connect"
	"github.com/pay-theory/streamer/lambda/shared/boot"
)

func main() { os.Exit(boot.Main(contract.FunctionConnect, build)) }

func build(ctx context.Context, env boot.Env) (boot.Handler, error) {
	verifier, err := boot.NewVerifier(ctx, env.Config, env.AWS)
	if err != nil {
		return nil, err
	}
	return connect.New(connect.Deps{
		Verifier: verifier,
		Store:    env.Store(),
		Logger:   env.Logger,
		Metrics:  env.Metrics,
		Tracer:   env.Tracer,
	}, connect.Config{})
}
