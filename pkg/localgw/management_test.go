package localgw_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestManagementPostGetDelete(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 3, 4, 5, 6, 7, 891_000_000, time.UTC)}
	s, connects, disconnects, defaults := limitsGateway(t, localgw.Config{Now: clock.Now})
	c := dial(t, s, "", http.Header{"User-Agent": {"agent/7"}})
	id := connects.next(t).RequestContext.ConnectionID
	api := s.ManagementClient()
	ctx := testCtx(t)

	// POST: delivered as a text frame.
	if err := post(ctx, api, id, []byte(`{"hello":"world"}`)); err != nil {
		t.Fatalf("PostToConnection: %v", err)
	}
	if got := readText(t, c); got != `{"hello":"world"}` {
		t.Errorf("client got %q", got)
	}

	// GET: the SDK parses every field.
	out, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	if out.ConnectedAt == nil || !out.ConnectedAt.Equal(clock.t) || out.LastActiveAt == nil || !out.LastActiveAt.Equal(clock.t) {
		t.Errorf("connectedAt %v lastActiveAt %v, want both %v", out.ConnectedAt, out.LastActiveAt, clock.t)
	}
	if out.Identity == nil || aws.ToString(out.Identity.SourceIp) != "127.0.0.1" || aws.ToString(out.Identity.UserAgent) != "agent/7" {
		t.Errorf("identity %+v", out.Identity)
	}
	// A client message moves lastActiveAt.
	clock.Advance(5 * time.Second)
	_ = c.Write(ctx, websocket.MessageText, []byte("hi"))
	defaults.next(t)
	out, err = api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
	if err != nil || !out.LastActiveAt.Equal(clock.Now()) || !out.ConnectedAt.Before(*out.LastActiveAt) {
		t.Errorf("after a message: lastActiveAt %v connectedAt %v err %v", out.LastActiveAt, out.ConnectedAt, err)
	}

	// DELETE: 204, the client is closed and $disconnect runs.
	if _, err := api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	if ce := readClose(t, c); ce.Code != websocket.StatusNormalClosure {
		t.Errorf("client closed with %v, want 1000", ce)
	}
	assertDisconnect(t, disconnects, id, 1000, "Connection Closed Normally")

	// Afterwards every operation is GoneException.
	var gone *types.GoneException
	if err := post(ctx, api, id, []byte("x")); !errors.As(err, &gone) {
		t.Errorf("post after delete: %v", err)
	}
	if _, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)}); !errors.As(err, &gone) {
		t.Errorf("get after delete: %v", err)
	}
	if _, err := api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); !errors.As(err, &gone) {
		t.Errorf("delete after delete: %v", err)
	}
}

func TestManagementErrorsAreTypedSDKErrors(t *testing.T) {
	s, connects, _, _ := limitsGateway(t, localgw.Config{})
	c, id := connect(t, s, connects)
	api := s.ManagementClient()
	ctx := testCtx(t)

	var gone *types.GoneException
	err := post(ctx, api, "L0SM9cOFvHcCIhw=", []byte("x"))
	if !errors.As(err, &gone) {
		t.Fatalf("unknown id: %v, want *types.GoneException", err)
	}
	// (The SDK's GoneException schema has no message member: the text is
	// only in the raw body, checked in TestRawErrorBodies.)

	var tooLarge *types.PayloadTooLargeException
	if err := post(ctx, api, id, bytes.Repeat([]byte("x"), localgw.MaxMessageBytes+1)); !errors.As(err, &tooLarge) {
		t.Errorf("128 KB + 1: %v, want *types.PayloadTooLargeException", err)
	} else if aws.ToString(tooLarge.Message) == "" {
		t.Error("PayloadTooLargeException without a message")
	}
	if err := post(ctx, api, id, bytes.Repeat([]byte("y"), localgw.MaxMessageBytes)); err != nil {
		t.Errorf("exactly 128 KB: %v", err)
	} else if got := readText(t, c); len(got) != localgw.MaxMessageBytes {
		t.Errorf("client got %d bytes", len(got))
	}

	// Unsigned through the SDK (anonymous credentials skip SigV4).
	anon := apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(s.ManagementEndpoint),
		Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1, HTTPClient: s.HTTPClient(),
	})
	var forbidden *types.ForbiddenException
	if err := post(ctx, anon, id, []byte("x")); !errors.As(err, &forbidden) {
		t.Errorf("unsigned SDK post: %v, want *types.ForbiddenException", err)
	}
	// And on the wire, exactly: status, header, JSON body.
	req, _ := http.NewRequest(http.MethodPost, s.ManagementEndpoint+"/@connections/"+escapeID(id), strings.NewReader("x"))
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var msg map[string]any
	if resp.StatusCode != 403 || resp.Header.Get("x-amzn-ErrorType") != "ForbiddenException" || json.Unmarshal(body, &msg) != nil || msg["message"] == nil {
		t.Errorf("raw unsigned POST: %d %q %s", resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), body)
	}

	m := s.Gateway.Metrics().Management
	if m.ErrorsTotal["GoneException"] != 1 || m.ErrorsTotal["PayloadTooLargeException"] != 1 || m.ErrorsTotal["ForbiddenException"] != 2 {
		t.Errorf("errors_total %v", m.ErrorsTotal)
	}
	if m.RequestsTotal != 5 {
		t.Errorf("requests_total %d, want 5", m.RequestsTotal)
	}
}

func TestURLEncodedConnectionIDs(t *testing.T) {
	const id = "ab+/cd+/ef+/ghI=" // AWS-shaped, with every character that needs encoding
	connects := newSink()
	s := localgwtest.Start(t, localgw.Config{
		NewID:  func() string { return id },
		Routes: map[string]localgw.Integration{localgw.RouteConnect: connects.handler(ok())},
	})
	c, got := connect(t, s, connects)
	if got != id {
		t.Fatalf("id %q", got)
	}
	if err := post(testCtx(t), s.ManagementClient(), id, []byte("via sdk")); err != nil {
		t.Fatalf("SDK post to %q: %v", id, err)
	}
	if m := readText(t, c); m != "via sdk" {
		t.Errorf("got %q", m)
	}
	// A hand-encoded request (as curl or another SDK would send it).
	req, _ := http.NewRequest(http.MethodGet, s.ManagementEndpoint+"/@connections/ab%2B%2Fcd%2B%2Fef%2B%2FghI%3D", nil)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET with a percent-encoded id = %d", resp.StatusCode)
	}
}

func TestManagementRateLimit(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s, connects, _, _ := limitsGateway(t, localgw.Config{Now: clock.Now, ManagementRateLimit: 1, ManagementBurst: 2})
	_, id := connect(t, s, connects)
	api := s.ManagementClient()
	ctx := testCtx(t)
	for i := range 2 {
		if err := post(ctx, api, id, []byte("x")); err != nil {
			t.Fatalf("post %d within burst: %v", i, err)
		}
	}
	var limited *types.LimitExceededException
	if err := post(ctx, api, id, []byte("x")); !errors.As(err, &limited) {
		t.Fatalf("post over the limit: %v, want *types.LimitExceededException", err)
	}
	clock.Advance(time.Second)
	if err := post(ctx, api, id, []byte("x")); err != nil {
		t.Errorf("post after a token refilled: %v", err)
	}
}

func TestFaultInjection(t *testing.T) {
	s, connects, _, _ := limitsGateway(t, localgw.Config{})
	_, id := connect(t, s, connects)
	api := s.ManagementClient()
	ctx := testCtx(t)
	g := s.Gateway

	if err := g.SetFaults(localgw.Faults{Error500: 1}); err != nil {
		t.Fatal(err)
	}
	err := post(ctx, api, id, []byte("x"))
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != 500 || errCode(err) != "InternalServerErrorException" {
		t.Errorf("Error500: %v", err)
	}
	_ = g.SetFaults(localgw.Faults{Error429: 1})
	var limited *types.LimitExceededException
	if err := post(ctx, api, id, []byte("x")); !errors.As(err, &limited) {
		t.Errorf("Error429: %v", err)
	}
	_ = g.SetFaults(localgw.Faults{Error410: 1})
	var gone *types.GoneException
	if _, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)}); !errors.As(err, &gone) {
		t.Errorf("Error410: %v", err)
	}
	if err := g.SetFaults(localgw.Faults{Error410: 2}); !errors.Is(err, localgw.ErrInvalidConfig) {
		t.Errorf("SetFaults(invalid) = %v", err)
	}

	// Latency only: requests succeed, and the recorded latency includes it.
	const latency = 40 * time.Millisecond
	_ = g.SetFaults(localgw.Faults{Latency: latency})
	for range 3 {
		if err := post(ctx, api, id, []byte("x")); err != nil {
			t.Fatalf("with latency: %v", err)
		}
	}
	m := g.Metrics().Management
	if m.FaultsInjectedTotal != 3 || m.ErrorsTotal["InternalServerErrorException"] != 1 {
		t.Errorf("faults_injected_total %d errors %v", m.FaultsInjectedTotal, m.ErrorsTotal)
	}
	if m.LatencyMS.P99 < float64(latency.Milliseconds())*15/16 {
		t.Errorf("p99 %.2f ms does not include the injected %v", m.LatencyMS.P99, latency)
	}
	_ = g.SetFaults(localgw.Faults{})
	if err := post(ctx, api, id, []byte("x")); err != nil {
		t.Errorf("faults off: %v", err)
	}
}

func TestFaultsAreDeterministicWithASeed(t *testing.T) {
	outcomes := func() string {
		s, connects, _, _ := limitsGateway(t, localgw.Config{Faults: localgw.Faults{Error500: 0.2, Error429: 0.2, Error410: 0.2, Seed: 42}})
		_, id := connect(t, s, connects)
		api := s.ManagementClient()
		var b strings.Builder
		for range 40 {
			err := post(testCtx(t), api, id, []byte("x"))
			if c := errCode(err); c != "" {
				b.WriteString(c[:1])
			} else {
				b.WriteString(".")
			}
		}
		return b.String()
	}
	a, b := outcomes(), outcomes()
	if a != b {
		t.Errorf("same seed, different faults:\n%s\n%s", a, b)
	}
	for _, c := range []string{"I", "L", "G", "."} {
		if !strings.Contains(a, c) {
			t.Errorf("40 draws at 20%%/20%%/20%%/40%% never produced %q: %s", c, a)
		}
	}
}

func TestSlowClientDoesNotBlockOthers(t *testing.T) {
	s, connects, _, _ := limitsGateway(t, localgw.Config{OutboundBuffer: 64 << 10, WriteTimeout: time.Minute})
	slow, slowID := connect(t, s, connects) // never reads
	fast, fastID := connect(t, s, connects)
	api := s.ManagementClient()
	ctx := testCtx(t)

	// Fill the slow client's TCP buffers and then its gateway buffer: the
	// gateway must answer 429 LimitExceededException (AWS: "the WebSocket
	// client side buffer is full") instead of blocking.
	payload := bytes.Repeat([]byte("s"), 32<<10)
	var limited *types.LimitExceededException
	sent := 0
	for ; sent < 4096; sent++ {
		err := post(ctx, api, slowID, payload)
		if errors.As(err, &limited) {
			break
		}
		if err != nil {
			t.Fatalf("post %d to the slow client: %v", sent, err)
		}
	}
	if limited == nil {
		t.Fatalf("%d posts (%d MB) to a client that never reads were all accepted", sent, sent*32>>10)
	}
	t.Logf("slow client: LimitExceededException after %d posts of 32 KB", sent)

	// The fast client and the management API are unaffected.
	for i := range 20 {
		if err := post(ctx, api, fastID, []byte("fast")); err != nil {
			t.Fatalf("post %d to the fast client: %v", i, err)
		}
		if got := readText(t, fast); got != "fast" {
			t.Fatalf("fast client got %q", got)
		}
	}
	if _, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(slowID)}); err != nil {
		t.Errorf("GetConnection of the slow client: %v", err)
	}
	_ = slow.CloseNow()
}

// TestRawErrorBodies checks the wire format itself: status, x-amzn-ErrorType
// and a JSON {"message"} body, as API Gateway sends them.
func TestRawErrorBodies(t *testing.T) {
	s, connects, _, _ := limitsGateway(t, localgw.Config{})
	_, id := connect(t, s, connects)
	const sig = "AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=0"
	for _, tc := range []struct {
		name, method, id string
		body             []byte
		status           int
		errType, msgPart string
	}{
		{"unknown id", http.MethodPost, "L0SM9cOFvHcCIhw=", []byte("x"), 410, "GoneException", "L0SM9cOFvHcCIhw="},
		{"too large", http.MethodPost, id, bytes.Repeat([]byte("x"), localgw.MaxMessageBytes+1), 413, "PayloadTooLargeException", "128 KB"},
	} {
		req, _ := http.NewRequest(tc.method, s.ManagementEndpoint+"/@connections/"+escapeID(tc.id), bytes.NewReader(tc.body))
		req.Header.Set("Authorization", sig)
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var msg struct{ Message string }
		if resp.StatusCode != tc.status || resp.Header.Get("x-amzn-ErrorType") != tc.errType ||
			resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &msg) != nil || !strings.Contains(msg.Message, tc.msgPart) {
			t.Errorf("%s: %d %q %s", tc.name, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), b)
		}
		if resp.Header.Get("x-amzn-RequestId") == "" {
			t.Errorf("%s: no x-amzn-RequestId", tc.name)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, s.ManagementEndpoint+"/@connections/x", nil)
	req.Header.Set("Authorization", sig)
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT = %d", resp.StatusCode)
	}
}

func TestClientThatStopsReadingIsDisconnected(t *testing.T) {
	s, connects, disconnects, _ := limitsGateway(t, localgw.Config{WriteTimeout: 100 * time.Millisecond})
	_, id := connect(t, s, connects) // never reads
	api := s.ManagementClient()
	ctx := testCtx(t)
	payload := bytes.Repeat([]byte("w"), localgw.MaxMessageBytes)
	var gone *types.GoneException
	for {
		err := post(ctx, api, id, payload)
		if errors.As(err, &gone) {
			break
		}
		var limited *types.LimitExceededException
		if err != nil && !errors.As(err, &limited) {
			t.Fatalf("post: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatal("a client that never reads was never disconnected")
		}
		if limited != nil {
			time.Sleep(10 * time.Millisecond) // buffer full: let the write time out
		}
	}
	assertDisconnect(t, disconnects, id, 1006, "Write to client failed")
}

func TestClientPingCountsAsActivity(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, connects, _, _ := limitsGateway(t, localgw.Config{Now: clock.Now})
	c, id := connect(t, s, connects)
	ctx := c.CloseRead(testCtx(t)) // a reader, so Ping gets its pong
	clock.Advance(time.Minute)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := s.ManagementClient().GetConnection(testCtx(t), &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if !out.LastActiveAt.Equal(clock.Now()) {
		t.Errorf("lastActiveAt %v after a ping at %v", out.LastActiveAt, clock.Now())
	}
}

// escapeID percent-encodes an id for a path, as the SDK does.
func escapeID(id string) string {
	return strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(id)
}
