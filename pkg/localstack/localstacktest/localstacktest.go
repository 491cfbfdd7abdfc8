// Package localstacktest starts the whole local stack (pkg/localstack: the
// API Gateway emulator, the real $connect/$disconnect/$default handlers and
// the embedded DynamoDB API) for a test: on a free loopback port, with a
// throwaway key pair, shut down when the test ends. Dial connects a real
// WebSocket client as a given user and tenant and tells its connection id.
//
// localstack's own zero values are for `streamer local`, not tests: port
// 4510 collides with a running `streamer local`, and the default key
// directory is the user's. Start replaces both.
package localstacktest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
	"github.com/pay-theory/streamer/pkg/localstack"
)

// closeTimeout bounds Start's cleanup: the stack closes in milliseconds, so
// reaching it means something hangs.
const closeTimeout = 10 * time.Second

// dialHeader carries a nonce from Dial to $connect, which records the
// connection id the gateway gave that upgrade.
const dialHeader = "X-Localstacktest-Dial"

// Stack is a running local stack with test helpers. Its embedded
// *localstack.Stack has the endpoints, the Store and the Gateway.
type Stack struct {
	*localstack.Stack

	keyDir    string // removed by Close when New created it
	transport *http.Transport

	mu      sync.Mutex
	dialed  map[string]string // nonce -> connection id, filled by $connect
	clients []*websocket.Conn
	closed  bool
}

// Client is a WebSocket client connected by Dial.
type Client struct {
	*websocket.Conn
	// ID is the connection id the gateway assigned (what @connections and
	// the store know the client by).
	ID string
	// UserID and TenantID are the token's claims.
	UserID, TenantID string
}

// Start starts a stack for t: cfg's zero Listen becomes a free loopback
// port and its zero KeyDir t.TempDir(); every other field keeps
// localstack's meaning. The stack, its clients and their connections are
// closed when t ends. It fails t when the stack cannot start.
func Start(t testing.TB, cfg localstack.Config) *Stack {
	t.Helper()
	if cfg.KeyDir == "" {
		cfg.KeyDir = t.TempDir()
	}
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("localstacktest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("localstacktest: close: %v", err)
		}
	})
	return s
}

// New is Start without a testing.TB, for Examples and TestMain: a zero
// KeyDir becomes a temporary directory that Close removes. The caller must
// call Close.
func New(ctx context.Context, cfg localstack.Config) (*Stack, error) {
	s := &Stack{dialed: map[string]string{}}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.KeyDir == "" {
		dir, err := os.MkdirTemp("", "localstacktest-keys-")
		if err != nil {
			return nil, fmt.Errorf("temporary key directory: %w", err)
		}
		cfg.KeyDir, s.keyDir = dir, dir
	}
	st, err := localstack.Start(ctx, cfg)
	if err != nil {
		s.removeKeys()
		return nil, err
	}
	s.Stack = st
	s.transport = http.DefaultTransport.(*http.Transport).Clone()
	s.recordDials()
	return s, nil
}

// recordDials wraps $connect so Dial learns the id of its own connection.
func (s *Stack) recordDials() {
	connect := s.Gateway.Route(localgw.RouteConnect)
	if connect == nil {
		return
	}
	s.Gateway.SetRoute(localgw.RouteConnect, localgw.HandlerFunc(func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		resp, err := connect.Invoke(ctx, ev)
		if nonce := ev.Headers[dialHeader]; nonce != "" && err == nil && resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			s.mu.Lock()
			s.dialed[nonce] = ev.RequestContext.ConnectionID
			s.mu.Unlock()
		}
		return resp, err
	}))
}

// Dial connects a real WebSocket client with a token for userID and
// tenantID (signed with the stack's key, its issuer and audience) and
// returns it once $connect stored its record. The client reads messages of
// up to 128 KB; Close (or the end of the test) closes it.
func (s *Stack) Dial(ctx context.Context, userID, tenantID string) (*Client, error) {
	tok, err := s.Mint(auth.MintOptions{UserID: userID, TenantID: tenantID})
	if err != nil {
		return nil, fmt.Errorf("localstacktest: mint a token: %w", err)
	}
	nonce := rand.Text()
	c, resp, err := websocket.Dial(ctx, s.WebSocketURL+"?Authorization="+url.QueryEscape(tok), &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: s.transport},
		HTTPHeader: http.Header{dialHeader: {nonce}},
	})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("localstacktest: dial %s as %s/%s: %w", s.WebSocketURL, userID, tenantID, err)
	}
	c.SetReadLimit(localgw.MaxMessageBytes)
	s.mu.Lock()
	id, ok := s.dialed[nonce]
	delete(s.dialed, nonce)
	closed := s.closed
	if !closed {
		s.clients = append(s.clients, c)
	}
	s.mu.Unlock()
	switch {
	case closed:
		_ = c.CloseNow()
		return nil, errors.New("localstacktest: the stack is closed")
	case !ok:
		_ = c.CloseNow()
		return nil, errors.New("localstacktest: $connect recorded no connection id (was the $connect route replaced?)")
	}
	return &Client{Conn: c, ID: id, UserID: userID, TenantID: tenantID}, nil
}

// ManagementClient returns an @connections client for the stack: the real
// AWS SDK client, static dummy credentials, SDK retries off (every error
// the gateway returns reaches the caller as is).
func (s *Stack) ManagementClient() *apigatewaymanagementapi.Client {
	return localgwtest.NewManagementClient(s.ManagementEndpoint, &http.Client{Transport: s.transport})
}

// WaitGone waits until the gateway has forgotten connection id (it then
// answers 410 Gone for it), or ctx ends. A client's Close returns once its
// side of the closing handshake is done, a moment before the gateway
// forgets the connection: a test that closes a client and then broadcasts
// waits here first. It asks the gateway in process, so it neither counts
// as an @connections request nor meets the stack's injected faults.
func (s *Stack) WaitGone(ctx context.Context, id string) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for slices.Contains(s.Gateway.ConnectionIDs(), id) {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("localstacktest: connection %s still open: %w", id, ctx.Err())
		}
	}
	return nil
}

// Close closes the clients Dial made, then the stack (their $disconnect
// runs), within ctx. It removes a key directory New created.
func (s *Stack) Close(ctx context.Context) error {
	s.mu.Lock()
	clients := s.clients
	s.clients, s.closed = nil, true
	s.mu.Unlock()
	for _, c := range clients {
		_ = c.CloseNow()
	}
	err := s.Stack.Close(ctx)
	s.transport.CloseIdleConnections()
	s.removeKeys()
	return err
}

func (s *Stack) removeKeys() {
	if s.keyDir != "" && strings.Contains(s.keyDir, "localstacktest-keys-") {
		_ = os.RemoveAll(s.keyDir)
	}
}
