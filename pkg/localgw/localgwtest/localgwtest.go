// Package localgwtest starts a local API Gateway emulator (pkg/localgw) for
// tests: one call, loopback listener, shut down by t.Cleanup. As on API
// Gateway, a route's response body reaches the client only when the route
// is two-way: wrap its integration in localgw.TwoWay.
package localgwtest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/pay-theory/streamer/pkg/localgw"
)

// Server is a running gateway and its endpoints.
type Server struct {
	Gateway *localgw.Gateway
	// BaseURL is http://127.0.0.1:PORT.
	BaseURL string
	// WSURL is ws://127.0.0.1:PORT/{stage}: connect WebSocket clients here.
	WSURL string
	// ManagementEndpoint is http://127.0.0.1:PORT/{stage}: the BaseEndpoint
	// for an apigatewaymanagementapi client.
	ManagementEndpoint string
	// DynamoDBEndpoint is BaseURL when Config.EmbeddedDynamoDB is set, else "".
	DynamoDBEndpoint string
	// Table is the embedded DynamoDB table name ("" without EmbeddedDynamoDB).
	Table string

	// transport is shared by the clients below and closed at cleanup, so no
	// keep-alive goroutine outlives the test (goleak).
	transport *http.Transport
}

// Start builds a gateway from cfg, serves it on 127.0.0.1 (a free port) and
// registers a Cleanup that shuts it down (10 s bound). It fails t on error.
func Start(t testing.TB, cfg localgw.Config) *Server {
	t.Helper()
	g, err := localgw.New(cfg)
	if err != nil {
		t.Fatalf("localgwtest: %v", err)
	}
	base, err := g.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("localgwtest: %v", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 100 // concurrent test clients reuse connections
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("localgwtest: shutdown: %v", err)
		}
		tr.CloseIdleConnections()
	})
	s := &Server{
		transport:          tr,
		Gateway:            g,
		BaseURL:            base,
		WSURL:              "ws" + strings.TrimPrefix(base, "http") + "/" + g.Stage(),
		ManagementEndpoint: base + "/" + g.Stage(),
	}
	if cfg.EmbeddedDynamoDB {
		s.DynamoDBEndpoint = base
		s.Table = g.Table()
	}
	return s
}

// ManagementClient returns an apigatewaymanagementapi client for this
// gateway: static dummy credentials, SDK retries off (so every error the
// gateway returns reaches the caller as is).
func (s *Server) ManagementClient() *apigatewaymanagementapi.Client {
	return NewManagementClient(s.ManagementEndpoint, s.HTTPClient())
}

// NewManagementClient returns an apigatewaymanagementapi client for a local
// gateway's management endpoint (http://HOST:PORT/{stage}) over hc: static
// dummy credentials, SDK retries off.
func NewManagementClient(endpoint string, hc *http.Client) *apigatewaymanagementapi.Client {
	return apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("local", "local", ""),
		RetryMaxAttempts: 1,
		HTTPClient:       hc,
	})
}

// DynamoDBClient returns a DynamoDB client for the embedded endpoint (nil
// without Config.EmbeddedDynamoDB).
func (s *Server) DynamoDBClient() *dynamodb.Client {
	if s.DynamoDBEndpoint == "" {
		return nil
	}
	return dynamodb.New(dynamodb.Options{
		Region:                          "us-east-1",
		BaseEndpoint:                    aws.String(s.DynamoDBEndpoint),
		Credentials:                     credentials.NewStaticCredentialsProvider("local", "local", ""),
		DisableValidateResponseChecksum: true, // minidyn sends no CRC32
		RetryMaxAttempts:                1,
		HTTPClient:                      s.HTTPClient(),
	})
}

// HTTPClient returns a client whose idle connections are closed at cleanup.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Transport: s.transport, Timeout: 30 * time.Second}
}
