// Command bootstrap is the $disconnect Lambda (provided.al2023). It wires the
// dependencies once per cold start and hands disconnect.Handler to the
// runtime.
package main

import (
	"context"
	"os"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/disconnect"
	"github.com/pay-theory/streamer/lambda/shared/boot"
)

func main() { os.Exit(boot.Main(contract.FunctionDisconnect, build)) }

func build(_ context.Context, env boot.Env) (boot.Handler, error) {
	return disconnect.New(disconnect.Deps{
		Store:         env.Store(),
		Subscriptions: disconnect.NoSubscriptions{},
		Logger:        env.Logger,
		Metrics:       env.Metrics,
		Tracer:        env.Tracer,
	})
}
