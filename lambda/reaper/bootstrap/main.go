// Command bootstrap is the reaper Lambda (provided.al2023), invoked by an
// EventBridge schedule. It wires the dependencies once per cold start and
// hands reaper.Handler to the runtime.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/events"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/reaper"
	"github.com/pay-theory/streamer/lambda/shared/boot"
	"github.com/pay-theory/streamer/pkg/connection"
)

func main() { os.Exit(boot.MainFunc(contract.FunctionReaper, build)) }

func build(_ context.Context, env boot.Env) (func(context.Context, events.EventBridgeEvent) (reaper.Result, error), error) {
	st := env.Store()
	api := connection.NewManagementClient(env.Config.ManagementEndpoint, connection.ClientOptions{
		Region: env.AWS.Region, Credentials: env.AWS.Credentials,
	})
	// FlushInterval -1: a frozen execution environment runs no background
	// flusher, and the reaper sends nothing to count.
	m, err := connection.New(api, st, connection.Config{Logger: env.Logger, FlushInterval: -1})
	if err != nil {
		return nil, fmt.Errorf("reaper: connection manager: %w", err)
	}
	h, err := reaper.New(reaper.Deps{
		Reconciler:  m,
		Lister:      st,
		Checkpoints: st,
		Logger:      env.Logger,
		Metrics:     env.Metrics,
		Tracer:      env.Tracer,
	}, reaper.Config{})
	if err != nil {
		return nil, err
	}
	return h.Handle, nil
}
