// Package e2e_test runs the built `streamer` binary as a user would: against
// a real `streamer local` process, with real WebSocket clients, checking
// output and exit codes.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

// bin is the streamer binary TestMain builds once.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "streamer-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "streamer")
	code := 1
	if err := build(bin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build the streamer binary:", err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func build(out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, ".")
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w\n%s", err, b)
	}
	return nil
}

// cleanEnv is the process environment without anything that would point
// the CLI elsewhere, with a private home so no test touches real keys.
func cleanEnv(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "STREAMER_") || strings.HasPrefix(k, "AWS_") || k == "HOME" || k == "XDG_CONFIG_HOME" || k == "NO_COLOR" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
}

// result is one finished CLI run.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runTimeout bounds every CLI run: an unreachable endpoint must fail well
// within it.
const runTimeout = 60 * time.Second

// run executes the binary with env and args and waits for it.
func run(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("streamer %s did not finish within %s:\n%s", strings.Join(args, " "), runTimeout, errOut.String())
	}
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run streamer: %v", err)
	}
	return r
}

// syncBuffer collects a running process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stack is a running `streamer local` process.
type stack struct {
	WebSocketURL       string `json:"websocket_url"`
	ManagementEndpoint string `json:"management_endpoint"`
	DynamoDBEndpoint   string `json:"dynamodb_endpoint"`
	MetricsURL         string `json:"metrics_url"`
	KeyDir             string `json:"key_dir"`
	KeyCreated         bool   `json:"key_created"`
	Wscat              string `json:"wscat"`

	base   []string // clean environment
	stderr *syncBuffer
}

// env is the environment that points every CLI command at this stack.
func (s *stack) env() []string {
	return append(append([]string(nil), s.base...),
		"STREAMER_ENDPOINT="+s.ManagementEndpoint, "STREAMER_WS_URL="+s.WebSocketURL, "STREAMER_KEY_DIR="+s.KeyDir)
}

// startLocal runs `streamer local` on a free loopback port with a fresh key
// directory, waits until /health answers, and on cleanup stops it with
// SIGINT and checks it exits 0 in bounded time.
func startLocal(t *testing.T) *stack {
	t.Helper()
	base := cleanEnv(t)
	keyDir := filepath.Join(t.TempDir(), "keys")
	cmd := exec.Command(bin, "local", "--listen", "127.0.0.1:0", "--key-dir", keyDir, "-o", "json")
	cmd.Env = base
	out, errOut := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("streamer local exited with %v after SIGINT, want 0:\n%s", err, errOut)
			} else if !strings.Contains(errOut.String(), "stopped") {
				t.Errorf("streamer local stderr lacks \"stopped\":\n%s", errOut)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("streamer local did not exit within 20s of SIGINT:\n%s", errOut)
		}
	})

	s := &stack{base: base, stderr: errOut}
	deadline := time.After(60 * time.Second)
	for !json.Valid(bytes.TrimSpace([]byte(out.String()))) || strings.TrimSpace(out.String()) == "" {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("streamer local exited early (%v):\n%s", err, errOut)
		case <-deadline:
			t.Fatalf("streamer local printed no startup block:\n%s\n%s", out, errOut)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := json.Unmarshal([]byte(out.String()), s); err != nil {
		t.Fatal(err)
	}
	if !s.KeyCreated || s.KeyDir != keyDir {
		t.Errorf("startup block: %+v, want a key pair created in %s", s, keyDir)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for {
		resp, err := hc.Get(strings.TrimSuffix(s.MetricsURL, "/metrics.json") + "/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-deadline:
			t.Fatalf("/health never answered 200 (%v)", err)
		case <-time.After(20 * time.Millisecond):
		}
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
	r := run(t, s.env(), "", append([]string{"token", "mint"}, args...)...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("token mint: %s", r)
	}
	tok := strings.TrimSpace(r.stdout)
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("token mint printed %q, want only a JWT", r.stdout)
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
