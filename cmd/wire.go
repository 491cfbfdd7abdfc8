package cmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/coder/websocket"
)

// RealBuilders builds the production clients. They share one AWS config,
// loaded on first use.
func RealBuilders() Builders {
	var (
		once   sync.Once
		awsCfg aws.Config
		awsErr error
	)
	load := func(ctx context.Context, cfg Config) (aws.Config, error) {
		once.Do(func() { awsCfg, awsErr = loadAWSConfig(ctx, cfg) })
		return awsCfg, awsErr
	}
	return Builders{
		Store: func(ctx context.Context, cfg Config) (ConnStore, error) {
			ac, err := load(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return newStore(newDynamoClient(ac, cfg), cfg)
		},
		Management: func(ctx context.Context, cfg Config) (ManagementAPI, error) {
			ac, err := load(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return apigatewaymanagementapi.NewFromConfig(ac, func(o *apigatewaymanagementapi.Options) {
				o.BaseEndpoint = aws.String(cfg.Endpoint)
			}), nil
		},
		Messenger: func(ctx context.Context, cfg Config, opts MessengerOptions) (Messenger, error) {
			ac, err := load(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return newMessenger(ctx, ac, newDynamoClient(ac, cfg), cfg, opts)
		},
	}
}

// loadAWSConfig: loopback endpoints get static dummy credentials (the local
// stack does not check signatures); anything else uses the SDK's default
// chain with the profile, and fails now, with a hint, when it finds nothing.
func loadAWSConfig(ctx context.Context, cfg Config) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}
	if cfg.Local() {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("streamer-local", "streamer-local", "")))
	} else if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	ac, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration (profile %q): %w; check --profile / AWS_PROFILE", cfg.Profile, err)
	}
	if cfg.Local() {
		return ac, nil
	}
	if ac.Region == "" {
		return aws.Config{}, fmt.Errorf("no AWS region for %s: pass --region or set AWS_REGION", cfg.Endpoint)
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if _, err := ac.Credentials.Retrieve(cctx); err != nil {
		return aws.Config{}, fmt.Errorf("no AWS credentials for %s: %w\nhint: pass --profile or set AWS_PROFILE (then `aws sso login` if it uses SSO), or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; for a local stack use --endpoint %s", cfg.Endpoint, err, DefaultEndpoint)
	}
	return ac, nil
}

func newDynamoClient(ac aws.Config, cfg Config) *dynamodb.Client {
	return dynamodb.NewFromConfig(ac, func(o *dynamodb.Options) {
		if cfg.DynamoDBEndpoint != "" {
			o.BaseEndpoint = aws.String(cfg.DynamoDBEndpoint)
			// The embedded DynamoDB API (minidyn) sends no CRC32 header.
			o.DisableValidateResponseChecksum = true
		}
	})
}

// newStore wires pkg/store's DynamoDB implementation.
func newStore(_ *dynamodb.Client, _ Config) (ConnStore, error) {
	return nil, fmt.Errorf("connection store: %w yet (pkg/store has not landed)", ErrNotWired)
}

// newMessenger wires pkg/connection's Manager.
func newMessenger(_ context.Context, _ aws.Config, _ *dynamodb.Client, _ Config, _ MessengerOptions) (Messenger, error) {
	return nil, fmt.Errorf("connection manager: %w yet (pkg/connection has not landed)", ErrNotWired)
}

// DialWebSocket is the production WSDialer (github.com/coder/websocket).
func DialWebSocket(ctx context.Context, url string, header http.Header) (WSConn, int, error) {
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	status := 0
	if resp != nil {
		status = resp.StatusCode
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
	}
	if err != nil {
		return nil, status, err
	}
	c.SetReadLimit(256 << 10)
	return wsConn{c}, status, nil
}

type wsConn struct{ c *websocket.Conn }

func (w wsConn) Read(ctx context.Context) ([]byte, error) {
	_, b, err := w.c.Read(ctx)
	return b, err
}

func (w wsConn) Close() error { return w.c.Close(websocket.StatusNormalClosure, "bye") }

// explainNetErr turns "could not reach" failures into an error that names
// the URL and what to do; other errors pass through unchanged.
func explainNetErr(what, url string, err error) error {
	if err == nil {
		return nil
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	unreachable := errors.As(err, &opErr) || errors.As(err, &dnsErr) ||
		errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "connection refused")
	if !unreachable {
		return err
	}
	hint := "is `streamer local` running? start it, or point --endpoint/--dynamodb-endpoint at your stack"
	return fmt.Errorf("cannot reach the %s at %s: %w\nhint: %s", what, url, err, hint)
}
