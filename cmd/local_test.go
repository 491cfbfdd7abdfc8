package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := dialWithKeyDir(t, ctx, stack, keyDir)
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

// dialWithKeyDir connects a real client to stack with a token signed by
// the private key in keyDir, as `streamer token mint` signs it; the client
// closes with the test.
func dialWithKeyDir(t *testing.T, ctx context.Context, stack *localstack.Stack, keyDir string) *websocket.Conn {
	t.Helper()
	key, err := auth.LoadPrivateKeyFile(filepath.Join(keyDir, PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.Mint(key, auth.MintOptions{UserID: "u", TenantID: "t", Issuer: DefaultIssuer})
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := websocket.Dial(ctx, stack.WebSocketURL+"?Authorization="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
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

// fakeFunction is a Lambda Invoke API endpoint (what aws-lambda-rie
// serves for a built bootstrap) that hands each event to answer; the real
// emulator runs in the e2e tests.
func fakeFunction(t *testing.T, answer func(events.APIGatewayWebsocketProxyRequest) (int, http.Header, string)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev events.APIGatewayWebsocketProxyRequest
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		status, hdr, body := answer(ev)
		for k, vs := range hdr {
			w.Header()[k] = vs
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/2015-03-31/functions/function/invocations"
}

// Routes from --routes-file and --route reach the gateway and the startup
// block; a function's failure reaches the client as API Gateway's error
// frame and stderr as a line naming the route and the request id.
func TestLocalRoutes(t *testing.T) {
	got := make(chan events.APIGatewayWebsocketProxyRequest, 8)
	echo := fakeFunction(t, func(ev events.APIGatewayWebsocketProxyRequest) (int, http.Header, string) {
		got <- ev
		return 200, nil, `{"statusCode":200,"body":"echo: ` + ev.RequestContext.RouteKey + `"}`
	})
	crash := fakeFunction(t, func(events.APIGatewayWebsocketProxyRequest) (int, http.Header, string) {
		return 200, http.Header{"X-Amz-Function-Error": {"Unhandled"}}, `{"errorMessage":"nil map","errorType":"Runtime.ExitError"}`
	})
	file := filepath.Join(t.TempDir(), "routes.json")
	if err := os.WriteFile(file, []byte(`{
  "route_selection_expression": "$request.body.type",
  "routes": [
    {"key": "sendmessage", "target": "`+echo+`", "two_way": true},
    {"key": "$default", "target": "builtin:default", "two_way": false}
  ]
}`), 0o600); err != nil {
		t.Fatal(err)
	}
	te := newTestEnv(t)
	te.env[keyDirEnv] = sharedKeyDir(t)
	stack, out, errOut, stop := runLocal(t, te, "--listen", "127.0.0.1:0", "-o", "json", "--routes-file", file,
		"--route", "crash="+crash, "--route", "ping=builtin:default", "--route-selection", "${request.body.action}")

	var block localJSON
	if err := json.Unmarshal([]byte(out.String()), &block); err != nil {
		t.Fatal(err)
	}
	want := []localRouteJSON{
		{"$connect", "builtin:connect", false}, {"$disconnect", "builtin:disconnect", false}, {"$default", "builtin:default", false},
		{"crash", crash, false}, {"ping", "builtin:default", false}, {"sendmessage", echo, true},
	}
	if block.RouteSelectionExpression != "${request.body.action}" || !slices.Equal(block.Routes, want) {
		t.Errorf("routes in the startup block: %q %+v\nwant %+v (--route-selection over the file's)", block.RouteSelectionExpression, block.Routes, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := dialWithKeyDir(t, ctx, stack, sharedKeyDir(t))
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"action":"sendmessage","data":"hi"}`))
	if _, b, err := c.Read(ctx); err != nil || string(b) != "echo: sendmessage" {
		t.Fatalf("two-way route answered %q %v", b, err)
	}
	if ev := <-got; ev.Body != `{"action":"sendmessage","data":"hi"}` || ev.RequestContext.Stage != "local" {
		t.Errorf("the function got %+v", ev)
	}

	_ = c.Write(ctx, websocket.MessageText, []byte(`{"action":"crash"}`))
	_, b, err := c.Read(ctx)
	var frame struct{ Message, ConnectionID, RequestID string }
	if err != nil || json.Unmarshal(b, &frame) != nil || frame.Message != "Internal server error" || frame.RequestID == "" {
		t.Fatalf("after a function error the client got %q %v, want API Gateway's error frame", b, err)
	}
	// slog's text form quotes the ids (they end in "=").
	line := fmt.Sprintf(`route=crash requestId=%q connectionId=%q`, frame.RequestID, frame.ConnectionID)
	if err := pollUntil(ctx, 10*time.Second, 20*time.Millisecond, func(context.Context) (bool, error) {
		return strings.Contains(errOut.String(), line), nil
	}); err != nil || !strings.Contains(errOut.String(), "Runtime.ExitError: nil map") {
		t.Errorf("stderr lacks %q and the function's error:\n%s", line, errOut)
	}
	if code := stop(); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}

	// The table form lists them when routes were given.
	te = newTestEnv(t)
	te.env[keyDirEnv] = sharedKeyDir(t)
	_, out, errOut, stop = runLocal(t, te, "--listen", "127.0.0.1:0", "-o", "plain", "--route", "ping=builtin:default")
	for _, want := range []string{"Routes               selected by $request.body.action\n", "    $default           builtin:default (two-way)\n", "    ping               builtin:default (one-way)\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("startup block lacks %q:\n%s", want, out)
		}
	}
	if code := stop(); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestLocalRouteErrors(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	gone := srv.URL + "/2015-03-31/functions/function/invocations"
	srv.Close()
	up := fakeFunction(t, func(events.APIGatewayWebsocketProxyRequest) (int, http.Header, string) { return 200, nil, "" })
	twice := file("twice.json", `{"routes":[{"key":"a","target":"builtin:default"}]}`)
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"--route", "sendmessage"}, ExitUsage, []string{`--route "sendmessage": want KEY=TARGET`}},
		{[]string{"--route", "x=builtin:chat", "--route", "$x=" + up}, ExitUsage, []string{`route "x": unknown target "builtin:chat"`, `route "$x": route keys starting with $ are reserved`}},
		{[]string{"--route", "x=http://127.0.0.1:9001"}, ExitUsage, []string{"is not a Lambda Invoke URL", "http://127.0.0.1:9001/2015-03-31/functions/function/invocations"}},
		{[]string{"--route", "x=" + up, "--route", "x=" + up}, ExitUsage, []string{`route "x" is given twice (--route x=` + up + ` and --route x=`}},
		{[]string{"--routes-file", twice, "--route", "a=builtin:default"}, ExitUsage, []string{`route "a" is given twice (` + twice + ` routes[0] and --route a=builtin:default)`}},
		{[]string{"--route", "x=" + gone, "--route", "y=" + up}, ExitError, []string{`route "x": nothing answers at 127.0.0.1:`, "start the function's emulator first"}},
		{[]string{"--route-selection", "action"}, ExitUsage, []string{`RouteSelectionExpression "action" has no $request.body variable`}},
		{[]string{"--routes-file", filepath.Join(dir, "none.json")}, ExitUsage, []string{"--routes-file " + filepath.Join(dir, "none.json") + ": no such file"}},
		{[]string{"--routes-file", file("typo.json", `{"routes":[{"key":"a","target":"builtin:default","twoway":true}]}`)}, ExitUsage, []string{`unknown field "twoway"`}},
		{[]string{"--routes-file", file("syntax.json", "{\"routes\": [\n  {\"key\": \"a\",}\n]}")}, ExitUsage, []string{"line 2: invalid character '}'"}},
		{[]string{"--routes-file", file("type.json", "{\"routes\": [\n{\"key\": \"a\", \"target\": 7}]}")}, ExitUsage, []string{"line 2: routes.target is number, want string"}},
		{[]string{"--routes-file", file("empty.json", `{}`)}, ExitUsage, []string{"it declares no routes"}},
		{[]string{"--routes-file", file("nokey.json", `{"routes":[{"target":"builtin:default"}]}`)}, ExitUsage, []string{`routes[0] needs a "key" and a "target"`}},
		{[]string{"--routes-file", file("two.json", `{"routes":[]} {}`)}, ExitUsage, []string{"more after the JSON object"}},
	} {
		te := newTestEnv(t)
		te.env[keyDirEnv] = filepath.Join(t.TempDir(), "keys")
		args := append([]string{"local", "--listen", "127.0.0.1:0"}, tc.args...)
		code := te.run(args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d:\n%s", tc.args, code, tc.code, te.errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(te.errOut.String(), w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, te.errOut)
			}
		}
		if _, err := os.Stat(te.env[keyDirEnv]); !os.IsNotExist(err) {
			t.Errorf("%v: a refused start wrote keys (%v)", tc.args, err)
		}
	}
}
