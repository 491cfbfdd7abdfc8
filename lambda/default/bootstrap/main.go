// Command bootstrap is the $default Lambda (provided.al2023). It wires the
// dependencies once per cold start and hands defaultroute.Handler to the
// runtime.
package main

import (
	"context"
	"os"

	"github.com/pay-theory/streamer/contract"
	defaultroute "github.com/pay-theory/streamer/lambda/default"
	"github.com/pay-theory/streamer/lambda/shared/boot"
)

func main() { os.Exit(boot.Main(contract.FunctionDefault, build)) }

func build(_ context.Context, env boot.Env) (boot.Handler, error) {
	return defaultroute.New(defaultroute.Deps{
		Store:   env.Store(),
		Logger:  env.Logger,
		Metrics: env.Metrics,
		Tracer:  env.Tracer,
	})
}
