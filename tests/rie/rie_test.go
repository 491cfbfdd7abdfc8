package rie

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/internal/rietest"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/dynamotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const issuer = "https://auth.example.com"

// The emulator logs the runtime's init phase as "INIT REPORT(durationMs: N)"
// (the cold start: process start to the first /next call) and a REPORT line
// with "Init Duration", which this emulator version fills with its own
// bookkeeping figure; both are logged.
var (
	initReport   = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
	initDuration = regexp.MustCompile(`Init Duration: ([0-9.]+ ms)`)
)

func event(route, eventType, connID string, extra func(m map[string]any)) map[string]any {
	rc := map[string]any{
		"routeKey": route, "eventType": eventType, "messageDirection": "IN", "stage": "prod",
		"requestId": "req-" + strings.ToLower(eventType), "extendedRequestId": "ext-" + strings.ToLower(eventType),
		"connectedAt": time.Now().Add(-time.Second).UnixMilli(), "requestTimeEpoch": time.Now().UnixMilli(),
		"identity":     map[string]any{"sourceIp": "127.0.0.1", "userAgent": "rie-test/1.0"},
		"domainName":   "abc123.execute-api.us-east-1.amazonaws.com",
		"connectionId": connID, "apiId": "abc123",
	}
	m := map[string]any{"requestContext": rc, "isBase64Encoded": false}
	if extra != nil {
		extra(m)
	}
	return m
}

func TestBootstrapsUnderRuntimeInterfaceEmulator(t *testing.T) {
	rie := rietest.Binary(t)
	// A cold build cache on a busy 2-core machine needs minutes to compile
	// the AWS SDK and OpenTelemetry; the invocations themselves take seconds.
	buildCtx, cancelBuild := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancelBuild()
	bins := rietest.BuildBootstraps(t, buildCtx, filepath.Join("..", ".."))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Run("lifecycle", func(t *testing.T) { testLifecycle(t, ctx, rie, bins) })
	t.Run("missing configuration", func(t *testing.T) { testMissingConfig(t, ctx, rie, bins["connect"]) })
	t.Run("reaper", func(t *testing.T) { testReaper(t, ctx, rie, bins[contract.FunctionReaper]) })
}

// routeFunctions are the functions a WebSocket route invokes (the
// lifecycle's); the reaper has its own test (reaper_test.go).
func routeFunctions() []string {
	var out []string
	for _, fn := range contract.Functions() {
		if contract.RouteOf(fn) != "" {
			out = append(out, fn)
		}
	}
	return out
}

func testLifecycle(t *testing.T, ctx context.Context, rie string, bins map[string]string) {

	ep := dynamotest.Start(t) // minidyn on loopback, reached by the bootstraps over HTTP
	defer http.DefaultClient.CloseIdleConnections()
	key, err := auth.GenerateKeyPair(0)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := auth.EncodePublicKeyPEM(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	env := append([]string{
		contract.EnvConnectionsTable + "=" + ep.Table,
		contract.EnvJWTIssuer + "=" + issuer,
		contract.EnvJWTPublicKey + "=" + string(pub),
		contract.EnvEnvironment + "=rie",
	}, rietest.LocalAWSEnv(ep.URL)...)
	fns := map[string]*rietest.Function{}
	for _, fn := range routeFunctions() {
		fns[fn] = rietest.Start(t, ctx, rie, fn, bins[fn], env)
	}
	mint := func(o auth.MintOptions) string {
		o.Issuer = issuer
		tok, err := auth.Mint(key, o)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	withToken := func(tok string) func(map[string]any) {
		return func(m map[string]any) {
			m["queryStringParameters"] = map[string]string{"Authorization": tok}
			m["headers"] = map[string]string{"User-Agent": "rie-test/1.0", "Host": "abc123.execute-api.us-east-1.amazonaws.com"}
		}
	}

	// $connect with a valid token: 200 and the record exists.
	const id = "RIEconn1Abc="
	resp, raw := fns["connect"].Invoke(t, ctx, event("$connect", "CONNECT", id, withToken(mint(auth.MintOptions{UserID: "u-rie", TenantID: "t-rie"}))))
	if resp.StatusCode != 200 {
		t.Fatalf("$connect valid = %s, want statusCode 200", raw)
	}
	rec, err := ep.Store.Get(ctx, id)
	if err != nil || rec.UserID != "u-rie" || rec.TenantID != "t-rie" || rec.Endpoint != "https://abc123.execute-api.us-east-1.amazonaws.com/prod" {
		t.Fatalf("record after $connect = %+v, %v", rec, err)
	}

	// $connect with an expired token: 401 and no record.
	const expiredID = "RIEconn2Xyz="
	resp, raw = fns["connect"].Invoke(t, ctx, event("$connect", "CONNECT", expiredID, withToken(mint(auth.MintOptions{UserID: "u", TenantID: "t", Expired: true}))))
	if resp.StatusCode != 401 || resp.Body != "Unauthorized" {
		t.Fatalf("$connect expired = %s, want 401 Unauthorized", raw)
	}
	if _, err := ep.Store.Get(ctx, expiredID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired token left a record: %v", err)
	}

	// $default ping: touched and answered with a pong.
	resp, raw = fns["default"].Invoke(t, ctx, event("$default", "MESSAGE", id, func(m map[string]any) { m["body"] = `{"action":"ping"}` }))
	if resp.StatusCode != 200 || !strings.Contains(resp.Body, `"action":"pong"`) {
		t.Fatalf("$default ping = %s, want 200 pong", raw)
	}
	if rec, err := ep.Store.Get(ctx, id); err != nil || rec.MessagesReceived != 1 {
		t.Fatalf("record after ping = %+v, %v; want messages_received 1", rec, err)
	}

	// $disconnect: 200 and the record is gone.
	resp, raw = fns["disconnect"].Invoke(t, ctx, event("$disconnect", "DISCONNECT", id, func(m map[string]any) {
		m["requestContext"].(map[string]any)["disconnectStatusCode"] = 1000
		m["requestContext"].(map[string]any)["disconnectReason"] = "Client closed"
	}))
	if resp.StatusCode != 200 {
		t.Fatalf("$disconnect = %s, want 200", raw)
	}
	if _, err := ep.Store.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record still present after $disconnect: %v", err)
	}

	for _, fn := range routeFunctions() {
		log := fns[fn].Log.String()
		logInit(t, fn, log)
		checkLogs(t, fn, log)
	}
	if !strings.Contains(fns["disconnect"].Log.String(), `"msg":"connection closed"`) {
		t.Error("no $disconnect summary line in the function log")
	}
	if !strings.Contains(fns["connect"].Log.String(), `"AuthenticationFailures":1`) {
		t.Error("no AuthenticationFailures EMF document in the $connect log")
	}
}

// logInit logs the emulator's cold-start figures of fn, failing when its
// log has none.
func logInit(t *testing.T, fn, log string) {
	t.Helper()
	r, d := initReport.FindStringSubmatch(log), initDuration.FindStringSubmatch(log)
	if r == nil && d == nil {
		t.Errorf("%s: no init report in the emulator log:\n%s", fn, log)
		return
	}
	var rs, ds string
	if r != nil {
		rs = r[1] + " ms"
	}
	if d != nil {
		ds = d[1]
	}
	t.Logf("%s: cold start INIT REPORT durationMs %s; REPORT Init Duration %s", fn, rs, ds)
}

// checkLogs asserts that everything the bootstrap wrote (the lines that are
// JSON objects; the emulator's own lines are plain text) carries the
// function name, and that nothing from the SDK leaked as plain text.
func checkLogs(t *testing.T, fn, log string) {
	t.Helper()
	n := 0
	for _, line := range strings.Split(log, "\n") {
		line = strings.TrimSpace(line)
		if strings.Contains(line, "SDK ") && strings.Contains(line, "WARN") {
			t.Errorf("%s: the AWS SDK printed a plain-text warning: %s", fn, line)
		}
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("%s: broken JSON line: %s", fn, line)
			continue
		}
		n++
		if _, emf := m["_aws"]; !emf && m["function"] == nil {
			t.Errorf("%s: log line without function: %s", fn, line)
		}
	}
	if n == 0 {
		t.Errorf("%s: the bootstrap wrote no JSON line", fn)
	}
}

// testMissingConfig runs the $connect bootstrap without CONNECTIONS_TABLE:
// the invocation fails and the log names the variable.
func testMissingConfig(t *testing.T, ctx context.Context, rie, bin string) {
	f := rietest.Start(t, ctx, rie, "connect", bin, []string{contract.EnvJWTIssuer + "=x", contract.EnvJWTPublicKey + "=x", "AWS_REGION=us-east-1"})
	defer http.DefaultClient.CloseIdleConnections()
	resp, raw := f.Invoke(t, ctx, event("$connect", "CONNECT", "c=", nil))
	if resp.StatusCode == 200 {
		t.Fatalf("invocation succeeded without configuration: %s", raw)
	}
	// The line is written before the process exits; the emulator relays it.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(f.Log.String(), `"missing":["CONNECTIONS_TABLE"]`) {
		if time.Now().After(deadline) {
			t.Fatalf("no cold-start line naming CONNECTIONS_TABLE in:\n%s", f.Log.String())
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Logf("emulator answered %s", bytes.TrimSpace(raw))
}
