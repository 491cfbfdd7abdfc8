// Package e2e_test runs the built `streamer` binary as a user would: against
// a real `streamer local` process, with real WebSocket clients, checking
// output and exit codes.
package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pay-theory/streamer/internal/clitest"
)

// bin is the streamer binary TestMain builds once.
var bin string

func TestMain(m *testing.M) { os.Exit(clitest.Main(m, &bin)) }

// run executes the binary with env and args and waits for it.
func run(t *testing.T, env []string, stdin string, args ...string) clitest.Result {
	t.Helper()
	return clitest.Run(t, bin, env, stdin, args...)
}

// stack is a running `streamer local` process.
type stack struct{ *clitest.Local }

// startLocal runs `streamer local` with a fresh key directory (see
// clitest.StartLocal) and checks it created a key pair there.
func startLocal(t *testing.T) *stack {
	t.Helper()
	keyDir := filepath.Join(t.TempDir(), "keys")
	s := &stack{clitest.StartLocal(t, bin, "--key-dir", keyDir)}
	if !s.KeyCreated || s.KeyDir != keyDir {
		t.Errorf("startup block: %+v, want a key pair created in %s", s.Local, keyDir)
	}
	return s
}

// metrics reads the stack's /metrics.json.
type metrics struct {
	ActiveConnections int64 `json:"active_connections"`
	MessagesOutTotal  int64 `json:"messages_out_total"`
	Management        struct {
		RequestsTotal int64 `json:"requests_total"`
	} `json:"management"`
}

func (s *stack) metrics(t *testing.T) metrics {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := hc.Get(s.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m metrics
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// mint runs `streamer token mint` and returns the token.
func (s *stack) mint(t *testing.T, args ...string) string {
	t.Helper()
	r := run(t, s.Env(), "", append([]string{"token", "mint"}, args...)...)
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("token mint: %s", r)
	}
	tok := strings.TrimSpace(r.Stdout)
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("token mint printed %q, want only a JWT", r.Stdout)
	}
	return tok
}

// client is a real WebSocket client of the stack.
type client struct {
	t *testing.T
	c *websocket.Conn
}

func (s *stack) dial(t *testing.T, token, userAgent string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	if userAgent != "" {
		h.Set("User-Agent", userAgent)
	}
	c, resp, err := websocket.Dial(ctx, s.WebSocketURL+"?Authorization="+token, &websocket.DialOptions{
		HTTPHeader: h, HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s: %v", s.WebSocketURL, err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return &client{t: t, c: c}
}

// dialMany connects n clients with token, ten at a time.
func (s *stack) dialMany(t *testing.T, token string, n int) []*client {
	t.Helper()
	clients := make([]*client, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	for i := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			clients[i] = s.dial(t, token, "")
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return clients
}

// read returns the next message, failing the test after 10s.
func (c *client) read() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.c.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return string(b)
}

// readErr reads expecting the connection to end; it returns the error.
func (c *client) readErr() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.c.Read(ctx)
	if err == nil {
		return fmt.Errorf("unexpected message %q", b)
	}
	return err
}

// plainRows splits plain (tab-separated) output into rows.
func plainRows(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l != "" {
			rows = append(rows, strings.Split(l, "\t"))
		}
	}
	return rows
}

// kv maps the first column of plain rows to the second.
func kv(out string) map[string]string {
	m := map[string]string{}
	for _, r := range plainRows(out) {
		if len(r) >= 2 {
			m[r[0]] = r[1]
		}
	}
	return m
}
