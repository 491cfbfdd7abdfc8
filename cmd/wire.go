package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/logging"
	"github.com/coder/websocket"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/store"
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
			return newStore(ac, cfg), nil
		},
		Management: func(ctx context.Context, cfg Config) (ManagementAPI, error) {
			ac, err := load(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return newManagementClient(ac, cfg, 0), nil
		},
		Messenger: func(ctx context.Context, cfg Config, opts MessengerOptions) (Messenger, error) {
			ac, err := load(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return newMessenger(ac, cfg, opts)
		},
	}
}

// loadAWSConfig: loopback endpoints get static dummy credentials (the local
// stack does not check signatures); anything else uses the SDK's default
// chain with the profile, and fails now, with a hint, when it finds nothing.
func loadAWSConfig(ctx context.Context, cfg Config) (aws.Config, error) {
	// The SDK's own warnings (IMDS fallbacks) would interleave with the
	// CLI's output; failures still surface as errors.
	opts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region), config.WithLogger(logging.Nop{})}
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
	return dynamodb.NewFromConfig(ac, store.EndpointOptions(cfg.DynamoDBEndpoint))
}

// newStore wires pkg/store's DynamoDB implementation.
func newStore(ac aws.Config, cfg Config) *store.Dynamo {
	return store.New(newDynamoClient(ac, cfg), store.Config{Table: cfg.Table})
}

// newManagementClient is pkg/connection's tuned client (keep-alive
// transport, SDK retries off: the Manager retries).
func newManagementClient(ac aws.Config, cfg Config, maxConns int) *connection.Client {
	return connection.NewManagementClient(cfg.Endpoint, connection.ClientOptions{Region: cfg.Region, Credentials: ac.Credentials, MaxConns: maxConns})
}

// newMessenger wires pkg/connection's Manager. Its per-operation logs are
// for services; the CLI reports outcomes itself, so they are discarded.
func newMessenger(ac aws.Config, cfg Config, opts MessengerOptions) (*connection.Manager, error) {
	m, err := connection.New(newManagementClient(ac, cfg, max(opts.MaxInFlight, opts.Workers)), newStore(ac, cfg), connection.Config{
		Workers:        opts.Workers,
		Limit:          connection.LimitConfig{Fixed: opts.Fixed, MaxInFlight: opts.MaxInFlight},
		AttemptTimeout: cfg.Timeout,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	return m, nil
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
		// The URL carries the client's token (?Authorization=...), and
		// the HTTP client's errors quote it whole.
		return nil, status, redactErr(err)
	}
	c.SetReadLimit(256 << 10)
	return wsConn{c}, status, nil
}

// tokenURL is wsURL carrying tok as its one Authorization parameter, where
// $connect reads it (browsers cannot set headers on a WebSocket); none when
// tok is "". One already in wsURL is replaced, so a dial sends exactly the
// token it means to.
func tokenURL(wsURL, tok string) string {
	u, err := url.Parse(wsURL)
	if err != nil { // ResolveConfig parsed it already
		return wsURL
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, authParam) {
			q.Del(k)
		}
	}
	if tok != "" {
		q.Set(authParam, tok)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// authParam is the query parameter $connect reads the token from.
const authParam = "Authorization"

type wsConn struct{ c *websocket.Conn }

func (w wsConn) Read(ctx context.Context) ([]byte, error) {
	_, b, err := w.c.Read(ctx)
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return nil, &WSCloseError{Code: int(ce.Code), Reason: ce.Reason, Err: err}
	}
	return b, err
}

func (w wsConn) Write(ctx context.Context, msg []byte) error {
	return w.c.Write(ctx, websocket.MessageText, msg)
}

func (w wsConn) Close() error { return w.c.Close(websocket.StatusNormalClosure, "bye") }
