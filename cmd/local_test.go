package cmd

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pay-theory/streamer/internal/syncbuf"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
)

// runLocal runs `streamer local args...` in-process until the returned
// stop is called; ready receives the stack once it serves.
func runLocal(t *testing.T, te *testEnv, args ...string) (stack *localstack.Stack, out, errOut *syncbuf.Buffer, stop func() int) {
	t.Helper()
	out, errOut = &syncbuf.Buffer{}, &syncbuf.Buffer{}
	te.f.IO.Out, te.f.IO.ErrOut = out, errOut
	ready := make(chan *localstack.Stack, 1)
	ctx, cancel := context.WithCancel(context.Background())
	root := func() int {
		te.f.reset()
		root := NewCmdRoot(te.f)
		for _, c := range root.Commands() {
			if c.Name() == "local" {
				root.RemoveCommand(c)
			}
		}
		root.AddCommand(NewCmdLocal(te.f, func(o *LocalOptions) error {
			o.Ready = func(s *localstack.Stack) { ready <- s }
			return localRun(ctx, o)
		}))
		root.SetArgs(append([]string{"local"}, args...))
		return exitCode(errOut, execute(ctx, root))
	}
	done := make(chan int, 1)
	go func() { done <- root() }()
	select {
	case stack = <-ready:
	case code := <-done:
		cancel()
		t.Fatalf("local exited %d before ready:\n%s\n%s", code, out, errOut)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("local not ready:\n%s", errOut)
	}
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("local did not stop:\n%s", errOut)
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return stack, out, errOut, stop
}

func TestLocalRunsUntilCancelled(t *testing.T) {
	te := newTestEnv(t)
	keyDir := filepath.Join(t.TempDir(), "keys")
	te.env[keyDirEnv] = keyDir
	stack, out, errOut, stop := runLocal(t, te, "--listen", "127.0.0.1:0", "--handler-logs", "--stage", "dev")

	if !strings.Contains(errOut.String(), "created a development key pair in "+keyDir) {
		t.Errorf("no key creation message:\n%s", errOut)
	}
	if _, err := os.Stat(filepath.Join(keyDir, PrivateKeyFile)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{stack.WebSocketURL, stack.ManagementEndpoint, stack.DynamoDBEndpoint, stack.MetricsURL, keyDir,
		`npx wscat@6.1.0 -c "` + stack.WebSocketURL + `?Authorization=$(streamer token mint --key-dir ` + keyDir + `)"`,
		"streamer send CONNECTION_ID '{\"hello\":\"world\"}' --endpoint " + stack.ManagementEndpoint} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out.String(), "ready") {
		t.Error("messages belong on stderr")
	}

	// A token minted with the same key directory connects; --handler-logs
	// shows the $connect handler's JSON line.
	key, err := auth.LoadPrivateKeyFile(filepath.Join(keyDir, PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.Mint(key, auth.MintOptions{UserID: "u", TenantID: "t", Issuer: DefaultIssuer})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, stack.WebSocketURL+"?Authorization="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := pollUntil(ctx, 10*time.Second, 20*time.Millisecond, func(context.Context) (bool, error) {
		return strings.Contains(errOut.String(), `"function":"connect"`), nil
	}); err != nil {
		t.Errorf("no handler log line: %v\n%s", err, errOut)
	}

	// Ctrl-C: the client sees 1001, the command exits 0.
	if code := stop(); code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("client read after shutdown: %v, want close 1001", err)
	}
	if !strings.Contains(errOut.String(), "stopped") {
		t.Errorf("stderr:\n%s", errOut)
	}
}

func TestLocalJSONAndExistingKey(t *testing.T) {
	te := newTestEnv(t)
	te.env[keyDirEnv] = sharedKeyDir(t)
	_, out, errOut, stop := runLocal(t, te, "--listen", "127.0.0.1:0", "-o", "json", "--audience", "aud-1", "--issuer", "iss-1")
	var got localJSON
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.KeyCreated || got.KeyDir != sharedKeyDir(t) || got.Issuer != "iss-1" || got.Audience != "aud-1" ||
		!strings.HasPrefix(got.WebSocketURL, "ws://127.0.0.1:") || !strings.Contains(got.Wscat, "--issuer iss-1 --audience aud-1") ||
		!strings.HasPrefix(got.Wscat, `npx wscat@6.1.0 -c "`+got.WebSocketURL+`?Authorization=$(streamer token mint `) {
		t.Errorf("%+v", got)
	}
	if strings.Contains(errOut.String(), "created a development key pair") {
		t.Error("an existing key pair must be reused")
	}
	if code := stop(); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// The AWS regime flags reach the gateway (and are said in the startup
// block); the library can change them at runtime.
func TestLocalRegime(t *testing.T) {
	te := newTestEnv(t)
	te.env[keyDirEnv] = sharedKeyDir(t)
	stack, out, errOut, stop := runLocal(t, te, "--listen", "127.0.0.1:0", "--latency", "20ms", "--jitter", "5ms",
		"--throttle", "400", "--drop-disconnect", "0.3", "--aws-quotas", "-o", "json")
	f := stack.Gateway.Faults()
	if f.Latency != 20*time.Millisecond || f.Jitter != 5*time.Millisecond || f.ThrottleRate != 400 || f.ThrottleBurst != 200 || f.DropDisconnect != 0.3 {
		t.Errorf("faults %+v", f)
	}
	var got localJSON
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"+20ms (+0-5ms jitter)", "429 beyond 400 requests/s (burst 200)", "30% of $disconnect", "AWS quotas (500 new connections/s"} {
		if !strings.Contains(got.Regime, want) {
			t.Errorf("regime %q lacks %q", got.Regime, want)
		}
	}
	if err := stack.Gateway.SetFaults(localgw.Faults{ThrottleRate: 50, ThrottleBurst: 10}); err != nil {
		t.Fatal(err)
	}
	if f := stack.Gateway.Faults(); f.ThrottleRate != 50 || f.Latency != 0 {
		t.Errorf("runtime change: %+v", f)
	}
	if code := stop(); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestParseThrottle(t *testing.T) {
	for _, tc := range []struct {
		in    string
		rate  float64
		burst int
	}{{"400", 400, 200}, {"10000/5000", 10000, 5000}, {"1", 1, 1}, {"2.5/3", 2.5, 3}} {
		r, b, err := parseThrottle(tc.in)
		if err != nil || r != tc.rate || b != tc.burst {
			t.Errorf("parseThrottle(%q) = %v, %v, %v", tc.in, r, b, err)
		}
	}
}

func TestLocalSimulate(t *testing.T) {
	te := newTestEnv(t)
	te.env[keyDirEnv] = sharedKeyDir(t)
	stack, _, errOut, stop := runLocal(t, te, "--listen", "127.0.0.1:0", "--simulate", "3")
	if !strings.Contains(errOut.String(), "simulating 3 clients") {
		t.Errorf("stderr: %s", errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := pollUntil(ctx, 20*time.Second, 50*time.Millisecond, func(context.Context) (bool, error) {
		return stack.Gateway.Metrics().ConnectsTotal > 0, nil
	}); err != nil {
		t.Errorf("no simulated client connected: %v", err)
	}
	if code := stop(); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestLocalErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"local", "--listen", "nonsense"}, ExitUsage, `--listen "nonsense" is not HOST:PORT`},
		{[]string{"local", "--listen", "127.0.0.1:99999"}, ExitUsage, "port out of range"},
		{[]string{"local", "--simulate", "-1"}, ExitUsage, "--simulate -1"},
		{[]string{"local", "--listen", "127.0.0.1:0", "--stage", "a/b"}, ExitUsage, `--stage: invalid stage name "a/b"`},
		{[]string{"local", "--listen", "127.0.0.1:0", "--stage", "a\nb"}, ExitUsage, `--stage: invalid stage name "a\nb": use 1 to 128 letters, digits, - and _`},
		{[]string{"local", "-o", "yaml"}, ExitUsage, `unknown --output "yaml"`},
		{[]string{"local", "--latency", "-1s"}, ExitUsage, "--latency -1s: want 0 to 30s"},
		{[]string{"local", "--jitter", "1h"}, ExitUsage, "--jitter 1h0m0s: want 0 to 30s"},
		{[]string{"local", "--throttle", "fast"}, ExitUsage, `--throttle "fast": the rate must be a number`},
		{[]string{"local", "--throttle", "400/0"}, ExitUsage, `--throttle "400/0": the burst must be`},
		{[]string{"local", "--throttle", "0"}, ExitUsage, `--throttle "0": the rate must be`},
		{[]string{"local", "--drop-disconnect", "1.5"}, ExitUsage, "--drop-disconnect 1.5: want a fraction"},
		{[]string{"local", "--listen", l.Addr().String()}, ExitError, "cannot listen on " + l.Addr().String()},
	} {
		te := newTestEnv(t)
		te.env[keyDirEnv] = sharedKeyDir(t)
		if code := te.run(tc.args...); code != tc.code || !strings.Contains(te.errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %s; want %d and %q", tc.args, code, te.errOut, tc.code, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"/a/b": "/a/b", "/a b": "'/a b'", "it's": `'it'\''s'`, "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("%q: %q want %q", in, got, want)
		}
	}
}

// TestSmokeLocalReal runs `smoke --local` against a real embedded stack and
// checks its throwaway key directory is gone afterwards.
func TestSmokeLocalReal(t *testing.T) {
	te := newTestEnv(t)
	newRealFactory(te)
	var dir string
	te.f.StartLocal = func(ctx context.Context) (LocalStack, error) {
		s, err := StartLocalStack(ctx)
		if err == nil {
			dir = s.Config().KeyDir
		}
		return s, err
	}
	if code := te.run("smoke", "--local", "-o", "json"); code != ExitOK {
		t.Fatalf("exit %d:\n%s\n%s", code, te.out, te.errOut)
	}
	var res struct {
		Passed bool
		Steps  []StepResult
	}
	if err := json.Unmarshal(te.out.Bytes(), &res); err != nil || !res.Passed || len(res.Steps) != 12 {
		t.Fatalf("%v %+v", err, res)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("key dir %s still there: %v", dir, err)
	}
	if code := te.run("smoke", "--local", "--key", "x.pem"); code != ExitUsage {
		t.Errorf("--key with --local: exit %d", code)
	}
}

// newRealFactory swaps te's fakes for the production builders, auth and
// dialer.
func newRealFactory(te *testEnv) {
	te.f.Build = RealBuilders()
	te.f.Dial = DialWebSocket
	te.f.Now = time.Now
}
