// Command bootstrap is the chat example's sendmessage function for the
// Lambda provided.al2023 runtime. It wires the store and the connection
// managers once per cold start and hands chat.Handler to the runtime.
//
// Environment: CONNECTIONS_TABLE (required: the connections table),
// LOG_LEVEL (debug, info, warn or error; default info), and the AWS SDK's
// own: AWS_REGION and the credentials (the function's role on AWS), and
// AWS_ENDPOINT_URL_DYNAMODB for a local DynamoDB API such as
// `streamer local`'s.
//
// Build it as Lambda runs it:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -o bootstrap ./examples/chat/bootstrap
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/examples/chat"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/store"
)

func main() { os.Exit(run(os.Getenv, os.Stdout)) }

// run is main with its edges injected; it returns only when the cold
// start fails (lambda.Start never returns).
func run(getenv func(string) string, logs io.Writer) int {
	level, levelText := slog.LevelInfo, getenv(contract.EnvLogLevel)
	badLevel := levelText != "" && level.UnmarshalText([]byte(levelText)) != nil
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
	if badLevel {
		log.Warn("LOG_LEVEL is not debug, info, warn or error: logging at info", "value", levelText)
	}
	h, err := build(context.Background(), getenv, log)
	if err != nil {
		// One line that says why, then exit: the runtime reports the
		// failed init, and the next invocation tries a fresh one.
		log.Error("cold start failed: the function cannot serve requests", "error", err.Error())
		return 1
	}
	lambda.Start(h.Handle)
	return 0
}

// build wires the handler: a store on the connections table and, per
// management endpoint, a connection.Manager.
func build(ctx context.Context, getenv func(string) string, log *slog.Logger) (*chat.Handler, error) {
	table := getenv(contract.EnvConnectionsTable)
	if table == "" {
		return nil, errors.New(contract.EnvConnectionsTable + " is not set: set it to the connections table's name")
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the AWS SDK configuration (AWS_REGION, credentials): %w", err)
	}
	db := dynamodb.NewFromConfig(awsCfg, store.EndpointOptions(getenv(contract.EnvEndpointURLDynamoDB)))
	st := store.New(db, store.Config{Table: table, Logger: log})
	return chat.New(chat.Deps{
		Store:  st,
		Logger: log,
		Broadcaster: func(endpoint string) (chat.Broadcaster, error) {
			// FlushInterval -1: a frozen environment runs no background
			// flusher, so the handler flushes before it returns.
			api := connection.NewManagementClient(endpoint, connection.ClientOptions{})
			return connection.New(api, st, connection.Config{FlushInterval: -1, Logger: log})
		},
	})
}
