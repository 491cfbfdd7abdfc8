package cmd

import (
	"bufio"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/internal/syncbuf"
	"github.com/pay-theory/streamer/pkg/auth"
)

// fakeGateway is the stack as listen's client sees it: it accepts a dial
// whose token the shared key verifies (401 otherwise), answers whoami and
// ping as the $default handler does, and lets the test push messages and
// close connections from the server side.
type fakeGateway struct {
	pub *rsa.PublicKey
	now func() time.Time // the gateway's clock, for token expiry
	// noWhoami: a $default that predates whoami (no answer).
	noWhoami bool
	// refuse: users refused with this status (0: none).
	refuse     map[string]int
	onConnect  func(c *fakeListenWS)
	mu         sync.Mutex
	conns      []*fakeListenWS
	dialedURLs []string
	connected  chan *fakeListenWS
}

func newFakeGateway(t *testing.T, te *testEnv) *fakeGateway {
	t.Helper()
	te.env[keyDirEnv] = sharedKeyDir(t)
	pub, err := loadPublicKey(filepath.Join(sharedKeyDir(t), PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGateway{pub: pub, now: te.f.Now, refuse: map[string]int{}, connected: make(chan *fakeListenWS, MaxListenCount)}
	te.f.Dial = g.dial
	return g
}

func (g *fakeGateway) dial(ctx context.Context, raw string, _ http.Header) (WSConn, int, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, 0, err
	}
	g.mu.Lock()
	g.dialedURLs = append(g.dialedURLs, raw)
	g.mu.Unlock()
	v, err := auth.NewVerifier(auth.VerifierConfig{Keys: auth.StaticKey(g.pub), Issuer: DefaultIssuer, Now: g.now})
	if err != nil {
		return nil, 0, err
	}
	claims, err := v.Verify(ctx, u.Query().Get("Authorization"))
	if err != nil {
		return nil, http.StatusUnauthorized, fmt.Errorf("failed to WebSocket dial: expected handshake response status code 101 but got 401 (%s)", raw)
	}
	if st := g.refuse[claims.UserID]; st != 0 {
		return nil, st, fmt.Errorf("failed to WebSocket dial: expected handshake response status code 101 but got %d", st)
	}
	g.mu.Lock()
	c := &fakeListenWS{g: g, id: fmt.Sprintf("conn%d=", len(g.conns)+1), user: claims.UserID, tenant: claims.TenantID,
		toClient: make(chan []byte, 1024), closed: make(chan struct{})}
	g.conns = append(g.conns, c)
	g.mu.Unlock()
	if g.onConnect != nil {
		g.onConnect(c)
	}
	g.connected <- c
	return c, http.StatusSwitchingProtocols, nil
}

func (g *fakeGateway) all() []*fakeListenWS {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*fakeListenWS(nil), g.conns...)
}

type fakeListenWS struct {
	g                *fakeGateway
	id, user, tenant string
	toClient         chan []byte
	closed           chan struct{}
	once             sync.Once
	endErr           error // set before closed is closed

	mu           sync.Mutex
	written      []string
	clientClosed bool
}

func (c *fakeListenWS) push(msg string) { c.toClient <- []byte(msg) }

// end closes the connection with err as what Read returns.
func (c *fakeListenWS) end(err error) {
	c.once.Do(func() {
		c.endErr = err
		close(c.closed)
	})
}

func (c *fakeListenWS) Read(ctx context.Context) ([]byte, error) {
	// Messages queued before the close are delivered first, as on a socket.
	select {
	case m := <-c.toClient:
		return m, nil
	default:
	}
	select {
	case m := <-c.toClient:
		return m, nil
	case <-c.closed:
		return nil, c.endErr
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Write records msg and answers as $default does.
func (c *fakeListenWS) Write(_ context.Context, msg []byte) error {
	select {
	case <-c.closed:
		return errors.New("write on a closed connection")
	default:
	}
	c.mu.Lock()
	c.written = append(c.written, string(msg))
	c.mu.Unlock()
	var m struct {
		Action    string `json:"action"`
		RequestID string `json:"request_id"`
	}
	_ = json.Unmarshal(msg, &m)
	switch {
	case m.Action == contract.ActionWhoami && !c.g.noWhoami:
		b, _ := json.Marshal(contract.Whoami{Action: contract.ActionWhoami, ConnectionID: c.id, RequestID: m.RequestID})
		c.toClient <- b
	case m.Action == contract.ActionPing:
		c.push(`{"action":"pong","timestamp":"2026-11-27T12:00:00.000Z"}`)
	}
	return nil
}

// Close is the client's close: 1000, answered.
func (c *fakeListenWS) Close() error {
	c.mu.Lock()
	c.clientClosed = true
	c.mu.Unlock()
	c.end(&WSCloseError{Code: closeNormal, Reason: "bye"})
	return nil
}

func (c *fakeListenWS) sent() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.written...)
}

func (c *fakeListenWS) closedByClient() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientClosed
}

// listenEnv is a testEnv whose output buffers may be read while listen
// runs in another goroutine.
func listenEnv(t *testing.T) (*testEnv, *syncbuf.Buffer, *syncbuf.Buffer) {
	t.Helper()
	te := newTestEnv(t)
	out, errOut := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	te.f.IO.Out, te.f.IO.ErrOut = out, errOut
	return te, out, errOut
}

// startListen runs a command line in the background with a cancellable
// context; wait returns its exit code.
func startListen(t *testing.T, te *testEnv, args ...string) (cancel func(), wait func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Run(ctx, te.f, args) }()
	t.Cleanup(cancel)
	return cancel, func() int {
		select {
		case code := <-done:
			return code
		case <-time.After(30 * time.Second):
			t.Fatal("listen did not end within 30s")
			return -1
		}
	}
}

// waitText polls buf until it holds s.
func waitText(t *testing.T, buf *syncbuf.Buffer, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(buf.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 20s in:\n%s", s, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestListenPrintsMessagesAndStops(t *testing.T) {
	te, out, errOut := listenEnv(t)
	g := newFakeGateway(t, te)
	// Both arrive before the whoami answer: held, then printed once the id
	// is known, in order.
	g.onConnect = func(c *fakeListenWS) {
		c.push(`{"hello":"acme"}`)
		c.push("line\x1b[2J\tbreak\nnext")
	}
	if code := te.run("listen", "--tenant", "acme", "--user", "alice", "--max-messages", "2"); code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	want := []string{
		"2026-11-27T12:00:00.000Z\t" + `{"hello":"acme"}`,
		"2026-11-27T12:00:00.000Z\t" + `line\x1b[2J\tbreak\nnext`,
	}
	if got := lines(out.String()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	c := g.all()[0]
	if c.user != "alice" || c.tenant != "acme" {
		t.Errorf("connected as %s/%s, want alice/acme", c.user, c.tenant)
	}
	if !c.closedByClient() {
		t.Error("listen did not close the connection")
	}
	for _, w := range []string{"as user alice, tenant acme", "connection id conn1=", "closing with 1000 (--max-messages 2 reached); 2 message(s) received"} {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
	if strings.Contains(out.String()+errOut.String(), "eyJ") {
		t.Errorf("a token reached the output:\n%s\n%s", out, errOut)
	}
	if got := c.sent(); len(got) != 1 || !strings.Contains(got[0], `"action":"whoami"`) {
		t.Errorf("sent %q, want only the whoami", got)
	}
}

// TestListenJSONGolden pins the -o json form: one object per line, data
// the JSON value when the payload is JSON, else a string.
func TestListenJSONGolden(t *testing.T) {
	te, out, errOut := listenEnv(t)
	g := newFakeGateway(t, te)
	payloads := []string{`{"hello":"acme","n":[1, 2]}`, "plain text", "ctl\x1b[2J", "bin\xff\xfe", `"a JSON string"`, "42"}
	g.onConnect = func(c *fakeListenWS) {
		for _, p := range payloads {
			c.push(p)
		}
	}
	if code := te.run("listen", "--tenant", "acme", "--max-messages", fmt.Sprint(len(payloads)), "-o", "json"); code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	got := lines(out.String())
	if len(got) != len(payloads) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(payloads), out)
	}
	for i, l := range got {
		var m listenMessageJSON
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, l)
		}
		if m.Bytes != len(payloads[i]) || m.Connection != "conn1=" {
			t.Errorf("line %d: %+v, want %d bytes on conn1=", i+1, m, len(payloads[i]))
		}
	}
	goldenLines(t, "listen", out.String())
}

// goldenLines compares NDJSON output with testdata/name.golden (rewritten
// with -update), after checking each line is one JSON document.
func goldenLines(t *testing.T, name, got string) {
	t.Helper()
	for _, l := range lines(got) {
		if !json.Valid([]byte(l)) {
			t.Fatalf("%s: a line is not JSON: %s", name, l)
		}
	}
	path := filepath.Join("testdata", name+".golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

func TestListenCountNamesTheReceiver(t *testing.T) {
	te, out, errOut := listenEnv(t)
	g := newFakeGateway(t, te)
	const n = 5
	cancel, wait := startListen(t, te, "listen", "--tenant", "acme", "--user", "u", "--count", fmt.Sprint(n), "--max-messages", fmt.Sprint(n))
	defer cancel()
	waitText(t, errOut, fmt.Sprintf("connected %d of %d", n, n))
	for _, c := range g.all() {
		waitText(t, errOut, c.user+": connection id "+c.id)
	}
	users := map[string]bool{}
	for _, c := range g.all() {
		users[c.user] = true
		c.push("to " + c.id)
	}
	if code := wait(); code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	for i := 1; i <= n; i++ {
		if !users[fmt.Sprintf("u-%d", i)] || len(users) != n {
			t.Fatalf("users %v, want u-1..u-%d", users, n)
		}
	}
	got := lines(out.String())
	if len(got) != n {
		t.Fatalf("%d lines, want %d:\n%s", len(got), n, out)
	}
	seen := map[string]bool{}
	for _, l := range got {
		f := strings.Split(l, "\t")
		if len(f) != 3 || f[2] != "to "+f[1] || seen[f[1]] {
			t.Errorf("line %q: want TIME, the receiving connection, and the message sent to it, once each", l)
		}
		seen[f[1]] = true
	}
	for _, c := range g.all() {
		if !c.closedByClient() {
			t.Errorf("%s not closed", c.id)
		}
	}
}

// TestListenCountReportsConnectFailures: the connections that connect keep
// listening; the run says which could not and exits 1.
func TestListenCountReportsConnectFailures(t *testing.T) {
	te, out, errOut := listenEnv(t)
	g := newFakeGateway(t, te)
	g.refuse["u-2"] = http.StatusTooManyRequests
	g.onConnect = func(c *fakeListenWS) { c.push("hi " + c.user) }
	cancel, wait := startListen(t, te, "listen", "--tenant", "acme", "--user", "u", "--count", "3")
	waitText(t, errOut, "connected 2 of 3")
	waitText(t, out, "hi u-1")
	waitText(t, out, "hi u-3")
	cancel()
	if code := wait(); code != ExitError {
		t.Fatalf("exit %d, want 1:\n%s", code, errOut)
	}
	for _, w := range []string{"u-2: could not connect: the stack refused the WebSocket upgrade at ws://127.0.0.1:4510/local with HTTP 429 Too Many Requests",
		"error: 1 of 3 connections could not connect"} {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
	if got := lines(out.String()); len(got) != 2 {
		t.Errorf("the connected ones still print: %q", got)
	}
}

func TestListenCountNoneConnect(t *testing.T) {
	te, _, errOut := listenEnv(t)
	g := newFakeGateway(t, te)
	g.refuse["u-1"], g.refuse["u-2"] = http.StatusInternalServerError, http.StatusInternalServerError
	if code := te.run("listen", "--user", "u", "--count", "2"); code != ExitError || !strings.Contains(errOut.String(), "error: none of the 2 connections could connect; the first: the stack refused the WebSocket upgrade") {
		t.Fatalf("exit %d, want 1:\n%s", code, errOut)
	}
}

func TestListenStdinLinesAreSent(t *testing.T) {
	te, out, errOut := listenEnv(t)
	g := newFakeGateway(t, te)
	long := strings.Repeat("x", maxStdinLine+1)
	te.f.IO.In = strings.NewReader("\n  \n" + long + "\n" + `{"action":"ping"}` + "\r\nhello\n")
	if code := te.run("listen", "--max-messages", "1"); code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	if got := lines(out.String()); len(got) != 1 || !strings.HasSuffix(got[0], `{"action":"pong","timestamp":"2026-11-27T12:00:00.000Z"}`) {
		t.Errorf("stdout %q, want the pong", got)
	}
	sent := g.all()[0].sent()
	if len(sent) < 2 || sent[1] != `{"action":"ping"}` {
		t.Fatalf("sent %q: want the whoami, then the ping (blank lines skipped, \\r\\n trimmed)", sent)
	}
	for _, s := range sent {
		if len(s) > maxStdinLine {
			t.Errorf("a %d-byte line was sent", len(s))
		}
	}
	if !strings.Contains(errOut.String(), fmt.Sprintf("not sent: the line is %d bytes, over the 32 KB", maxStdinLine+1)) {
		t.Errorf("stderr does not say the long line was not sent:\n%s", errOut)
	}
}

// TestListenInterrupted: Ctrl-C (the context) ends a listen blocked on both
// the socket and stdin; it closes with 1000 and exits 0, and every
// goroutine ends (the package's goleak check).
func TestListenInterrupted(t *testing.T) {
	te, _, errOut := listenEnv(t)
	g := newFakeGateway(t, te)
	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pw.Close() })
	te.f.IO.In = pr
	cancel, wait := startListen(t, te, "listen")
	c := <-g.connected
	waitText(t, errOut, "connection id "+c.id)
	if _, err := pw.Write([]byte("typed\n")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); len(c.sent()) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the typed line was not sent: %q", c.sent())
		}
	}
	cancel()
	if code := wait(); code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	if !c.closedByClient() || !strings.Contains(errOut.String(), "closing with 1000 (interrupted)") || strings.Contains(errOut.String(), "stdin:") {
		t.Errorf("closed %v; want the close and no word about stdin:\n%s", c.closedByClient(), errOut)
	}
}

func TestListenServerClose(t *testing.T) {
	for _, c := range []struct {
		end  error
		code int
		want string
	}{
		{&WSCloseError{Code: 1000, Reason: "Connection Closed Normally"}, ExitOK, "closed by the server: 1000 Connection Closed Normally"},
		{&WSCloseError{Code: 1001, Reason: "Going away"}, ExitOK, "closed by the server: 1001 Going away"},
		{&WSCloseError{Code: 1011, Reason: "boom\x1b[2J"}, ExitError, `error: closed by the server with 1011 boom\x1b[2J`},
		{errors.New("unexpected EOF"), ExitError, "connection lost (1006, no close frame): unexpected EOF"},
	} {
		te, _, errOut := listenEnv(t)
		g := newFakeGateway(t, te)
		_, wait := startListen(t, te, "listen")
		ws := <-g.connected
		waitText(t, errOut, "connection id "+ws.id)
		ws.end(c.end)
		if code := wait(); code != c.code || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d, want %d and %q:\n%s", c.end, code, c.code, c.want, errOut)
		}
		if ws.closedByClient() {
			t.Errorf("%v: listen closed a connection the server had closed", c.end)
		}
	}
}

// TestListenWithoutWhoami: a stack whose $default does not answer whoami
// leaves the id unknown after --timeout; held messages are printed then.
func TestListenWithoutWhoami(t *testing.T) {
	te, out, errOut := listenEnv(t)
	g := newFakeGateway(t, te)
	g.noWhoami = true
	g.onConnect = func(c *fakeListenWS) { c.push("early") }
	if code := te.run("listen", "--max-messages", "1", "--timeout", "50ms", "-o", "json"); code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	if !strings.Contains(errOut.String(), "connection id unknown: no answer within 50ms") {
		t.Errorf("stderr:\n%s", errOut)
	}
	var m listenMessageJSON
	if err := json.Unmarshal([]byte(out.String()), &m); err != nil || m.Connection != "" || string(m.Data) != `"early"` {
		t.Errorf("stdout %s (%v): want the held message with connection \"\"", out, err)
	}
}

func TestListenFor(t *testing.T) {
	te, _, errOut := listenEnv(t)
	newFakeGateway(t, te)
	if code := te.run("listen", "--for", "20ms"); code != ExitOK || !strings.Contains(errOut.String(), "(--for 20ms elapsed)") {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
}

func TestListenTokenFromStdin(t *testing.T) {
	te, out, errOut := listenEnv(t)
	g := newFakeGateway(t, te)
	key, err := auth.LoadPrivateKeyFile(filepath.Join(sharedKeyDir(t), PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.Mint(key, auth.MintOptions{UserID: "bob", TenantID: "beta", Issuer: DefaultIssuer, TTL: time.Hour, Now: te.f.Now})
	if err != nil {
		t.Fatal(err)
	}
	te.f.IO.In = strings.NewReader("Bearer " + tok + "\n" + `{"action":"ping"}` + "\n")
	if code := te.run("listen", "--token", "-", "--max-messages", "1"); code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	c := g.all()[0]
	if c.user != "bob" || c.tenant != "beta" || !strings.Contains(out.String(), "pong") {
		t.Errorf("connected as %s/%s, stdout %q", c.user, c.tenant, out)
	}
	if !strings.Contains(errOut.String(), "as user bob, tenant beta (from the token)") || strings.Contains(errOut.String(), "eyJ") {
		t.Errorf("stderr:\n%s", errOut)
	}
}

// TestListenRefusalHints: a 401 says the status and which cause it is,
// checked against the key directory and issuer; the token never shows.
func TestListenRefusalHints(t *testing.T) {
	key, err := auth.LoadPrivateKeyFile(filepath.Join(sharedKeyDir(t), PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	other, err := auth.GenerateKeyPair(0)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(k *rsa.PrivateKey, o auth.MintOptions) string {
		o.UserID, o.TenantID, o.TTL = "u", "t", time.Hour
		if o.Issuer == "" {
			o.Issuer = DefaultIssuer
		}
		tok, err := auth.Mint(k, o)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, c := range []struct {
		name string
		args []string
		// setup changes the gateway (it trusts another key or issuer).
		setup func(*fakeGateway)
		want  string
	}{
		{"expired token", []string{"--token", mint(key, auth.MintOptions{Expired: true})}, nil,
			"hint: the token expired "},
		{"token of another key", []string{"--token", mint(other, auth.MintOptions{})}, nil,
			"hint: the token is not signed by the key in " + sharedKeyDir(t)},
		{"token of another issuer", []string{"--token", mint(key, auth.MintOptions{Issuer: "elsewhere"})}, nil,
			`hint: the token's issuer is "elsewhere", not "streamer-local"`},
		{"minted, but the stack trusts another key", nil, func(g *fakeGateway) { g.pub = &other.PublicKey },
			"hint: the token is valid for the key in " + sharedKeyDir(t) + ` and issuer "streamer-local", so the stack trusts another key or issuer`},
	} {
		te, _, errOut := listenEnv(t)
		te.f.Now = time.Now // token expiry is checked against the real clock
		g := newFakeGateway(t, te)
		if c.setup != nil {
			c.setup(g)
		}
		code := te.run(append([]string{"listen"}, c.args...)...)
		msg := errOut.String()
		if code != ExitError || !strings.Contains(msg, "error: the stack refused the WebSocket upgrade at ws://127.0.0.1:4510/local with HTTP 401 Unauthorized") || !strings.Contains(msg, c.want) {
			t.Errorf("%s: exit %d, want 1 with the 401 and %q:\n%s", c.name, code, c.want, msg)
		}
		if strings.Contains(msg, "eyJ") {
			t.Errorf("%s: the token reached stderr:\n%s", c.name, msg)
		}
	}
}

func TestListenUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--count", "0"}, "--count must be 1 to 100, got 0"},
		{[]string{"--count", "101"}, "--count must be 1 to 100, got 101"},
		{[]string{"--for", "-1s"}, "--for must be positive"},
		{[]string{"--max-messages", "-1"}, "--max-messages must be positive"},
		{[]string{"--token", "x", "--tenant", "t"}, "--token cannot be used with --tenant"},
		{[]string{"--token", "x", "--count", "2"}, "--token cannot be used with --count"},
		{[]string{"--token", " "}, "--token is blank"},
		{[]string{"--tenant", ""}, "--tenant is blank"},
		{[]string{"--user", " "}, "--user is blank"},
		{[]string{"--permissions", "a,,b"}, "--permissions 2 is blank"},
		{[]string{"--user", strings.Repeat("u", 128), "--count", "10"}, "--user is 131 bytes"},
		{[]string{"-o", "table"}, `unknown --output "table": use plain or json`},
		{[]string{"extra"}, "unknown command"},
	} {
		te, _, errOut := listenEnv(t)
		g := newFakeGateway(t, te)
		if code := te.run(append([]string{"listen"}, c.args...)...); code != ExitUsage || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%q: exit %d, want 2 and %q:\n%s", c.args, code, c.want, errOut)
		}
		if len(g.all()) != 0 || len(g.dialedURLs) != 0 {
			t.Errorf("%q: dialed before refusing", c.args)
		}
	}
	te, _, errOut := listenEnv(t)
	newFakeGateway(t, te)
	te.f.IO.In = strings.NewReader("\n")
	if code := te.run("listen", "--token", "-"); code != ExitUsage || !strings.Contains(errOut.String(), "no token on stdin's first line") {
		t.Errorf("--token - with an empty line: exit %d:\n%s", code, errOut)
	}
}

func TestReadLine(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader("a\r\nbb\n"+strings.Repeat("x", 40)+"\nlast"), 16)
	for _, w := range []struct {
		line string
		n    int
	}{{"a", 1}, {"bb", 2}, {"", 40}, {"last", 4}} {
		line, n, err := readLine(r, 10)
		if err != nil || string(line) != w.line || n != w.n {
			t.Fatalf("readLine = %q %d %v, want %q %d", line, n, err, w.line, w.n)
		}
	}
	if _, n, err := readLine(r, 10); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("at the end: %d %v, want 0 and EOF", n, err)
	}
}

// TestListenInterruptedTokenRead: `--token -` blocked on stdin ends on
// SIGINT with 130 and one line saying what it was reading; nothing dials.
func TestListenInterruptedTokenRead(t *testing.T) {
	te := newTestEnv(t)
	g := newFakeGateway(t, te)
	br := newBlockingReader(t)
	te.f.IO.In = br
	ctx := interruptAfter(t, br.started, syscall.SIGINT)
	code, _ := await(t, func() (int, error) { return Run(ctx, te.f, []string{"listen", "--token", "-"}), nil })
	if code != 130 || te.errOut.String() != "error: interrupted (SIGINT) while reading stdin\n" {
		t.Errorf("exit %d, stderr %q; want 130 and one line", code, te.errOut)
	}
	if len(g.dialedURLs) != 0 {
		t.Error("dialed without a token")
	}
}

// TestListenStopsWithStdinOpen: listen ends by itself (--max-messages)
// while its stdin read is still blocked: the read is abandoned, the run
// returns and every goroutine of it ends (the package's goleak check, once
// the reader is released at cleanup).
func TestListenStopsWithStdinOpen(t *testing.T) {
	te, out, errOut := listenEnv(t)
	g := newFakeGateway(t, te)
	g.onConnect = func(c *fakeListenWS) { c.push("one") }
	te.f.IO.In = newBlockingReader(t)
	code, _ := await(t, func() (int, error) { return te.run("listen", "--max-messages", "1"), nil })
	if code != ExitOK || !strings.HasSuffix(strings.TrimSpace(out.String()), "\tone") || strings.Contains(errOut.String(), "stdin") {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}
