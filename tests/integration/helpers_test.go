package integration_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startStack runs a whole local stack on a free loopback port.
func startStack(t *testing.T, cfg localstack.Config) *localstack.Stack {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.KeyDir == "" {
		cfg.KeyDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := localstack.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start local stack: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close stack: %v", err)
		}
	})
	return s
}

func newManager(t *testing.T, s *localstack.Stack) *connection.Manager {
	t.Helper()
	api := connection.NewManagementClient(s.ManagementEndpoint, connection.ClientOptions{})
	m, err := connection.New(api, s.Store, connection.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("manager shutdown: %v", err)
		}
	})
	return m
}

func mint(t *testing.T, s *localstack.Stack, user, tenant string) string {
	t.Helper()
	tok, err := s.Mint(auth.MintOptions{UserID: user, TenantID: tenant, Permissions: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dial connects a real WebSocket client with the token in the query string,
// as browsers do (they cannot set headers on a WebSocket upgrade).
func dial(ctx context.Context, wsURL, token string) (*websocket.Conn, *http.Response, error) {
	u := wsURL
	if token != "" {
		u += "?Authorization=" + url.QueryEscape(token)
	}
	return websocket.Dial(ctx, u, nil)
}

func mustDial(t *testing.T, s *localstack.Stack, token string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := dial(ctx, s.WebSocketURL, token)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// connectionID asks the client's own connection for its id: the $default
// handler answers {"action":"ping"} through the route response, but the id is
// not in it, so find it through the store by user instead.
func connectionIDOf(t *testing.T, s *localstack.Stack, user, tenant string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	page, err := s.Store.List(ctx, store.ListQuery{UserID: user})
	if err != nil {
		t.Fatalf("list by user: %v", err)
	}
	var ids []string
	for _, c := range page.Connections {
		if c.TenantID == tenant {
			ids = append(ids, c.ConnectionID)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("want exactly one connection for user %s, got %v", user, ids)
	}
	return ids[0]
}

func readText(t *testing.T, c *websocket.Conn, within time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	typ, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("want a text frame, got %v", typ)
	}
	return string(data)
}

// expectNothing asserts no frame arrives within d.
func expectNothing(t *testing.T, c *websocket.Conn, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err == nil {
		t.Fatalf("unexpected message %q", data)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
}

// waitGone polls the store until the record is gone.
func waitGone(t *testing.T, st *store.Dynamo, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := st.Get(context.Background(), id)
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("record %s still present 10s after disconnect", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func benchMint(user, tenant string) auth.MintOptions {
	return auth.MintOptions{UserID: user, TenantID: tenant, TTL: time.Hour}
}
