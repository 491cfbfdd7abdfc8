package localgw_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
)

// awsIDPattern: API Gateway ids are 11 bytes in URL-safe base64 (16 chars,
// one "=" of padding), e.g. "L0SM9cOFvHcCIhw=" (observed, #14).
var awsIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{15}=$`)

func TestAWSIDShape(t *testing.T) {
	for _, real := range []string{"L0SM9cOFvHcCIhw=", "R1kmxc2VNjMCFIA=", "TWegAcC4EowCHnA=", "YkOibd6goAMCLjg="} {
		b, err := base64.URLEncoding.DecodeString(real)
		if err != nil || len(b) != 11 || !awsIDPattern.MatchString(real) {
			t.Fatalf("real AWS id %q: %d bytes, err %v; the pattern or byte count is wrong", real, len(b), err)
		}
	}
}

func TestConnectEventHasAPIGatewayShape(t *testing.T) {
	connects := newSink()
	s := localgwtest.Start(t, localgw.Config{
		Stage:  "dev",
		APIID:  "abc123defg",
		Routes: map[string]localgw.Integration{localgw.RouteConnect: connects.handler(ok())},
	})
	hdr := http.Header{"User-Agent": {"streamer-test/1.0"}, "X-Custom": {"a", "b"}}
	dial(t, s, "?token=abc&x=1&x=2", hdr)
	ev := connects.next(t)
	rc := ev.RequestContext

	if rc.RouteKey != "$connect" || rc.EventType != "CONNECT" || rc.MessageDirection != "IN" {
		t.Errorf("routeKey/eventType/direction = %q/%q/%q", rc.RouteKey, rc.EventType, rc.MessageDirection)
	}
	for name, id := range map[string]string{"connectionId": rc.ConnectionID, "requestId": rc.RequestID, "extendedRequestId": rc.ExtendedRequestID} {
		if !awsIDPattern.MatchString(id) {
			t.Errorf("%s %q is not AWS-shaped", name, id)
		}
	}
	host := strings.TrimPrefix(s.BaseURL, "http://")
	if rc.DomainName != host || rc.Stage != "dev" || rc.APIID != "abc123defg" {
		t.Errorf("domainName/stage/apiId = %q/%q/%q", rc.DomainName, rc.Stage, rc.APIID)
	}
	if rc.Identity.SourceIP != "127.0.0.1" || rc.Identity.UserAgent != "streamer-test/1.0" {
		t.Errorf("identity = %+v", rc.Identity)
	}
	now := time.Now().UnixMilli()
	if rc.ConnectedAt <= 0 || rc.ConnectedAt > now || now-rc.ConnectedAt > 60_000 || rc.RequestTimeEpoch < rc.ConnectedAt {
		t.Errorf("connectedAt %d, requestTimeEpoch %d, now %d", rc.ConnectedAt, rc.RequestTimeEpoch, now)
	}
	if _, err := time.Parse("02/Jan/2006:15:04:05 -0700", rc.RequestTime); err != nil {
		t.Errorf("requestTime %q: %v", rc.RequestTime, err)
	}
	if ev.Headers["X-Custom"] != "a" || strings.Join(ev.MultiValueHeaders["X-Custom"], ",") != "a,b" {
		t.Errorf("headers %v / %v", ev.Headers["X-Custom"], ev.MultiValueHeaders["X-Custom"])
	}
	if ev.Headers["Host"] != host || ev.Headers["Sec-WebSocket-Key"] == "" || ev.Headers["X-Forwarded-For"] != "127.0.0.1" {
		t.Errorf("headers missing Host/Sec-WebSocket-Key/X-Forwarded-For: %v", ev.Headers)
	}
	if _, ok := ev.Headers["Connection"]; ok {
		t.Error("hop-by-hop Connection header passed to $connect")
	}
	if !regexp.MustCompile(`^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$`).MatchString(ev.Headers["X-Amzn-Trace-Id"]) {
		t.Errorf("X-Amzn-Trace-Id %q", ev.Headers["X-Amzn-Trace-Id"])
	}
	if ev.QueryStringParameters["token"] != "abc" || ev.QueryStringParameters["x"] != "2" ||
		strings.Join(ev.MultiValueQueryStringParameters["x"], ",") != "1,2" {
		t.Errorf("query %v / %v", ev.QueryStringParameters, ev.MultiValueQueryStringParameters)
	}

	// Every requestContext key of AWS's own $connect sample (aws-lambda-go
	// testdata, trimmed to what a WebSocket API without an authorizer sends)
	// is present in the JSON a Lambda would receive.
	raw, _ := json.Marshal(ev)
	var got struct {
		RequestContext map[string]any `json:"requestContext"`
	}
	_ = json.Unmarshal(raw, &got)
	for _, k := range []string{"routeKey", "eventType", "extendedRequestId", "requestTime", "messageDirection", "stage",
		"connectedAt", "requestTimeEpoch", "identity", "requestId", "domainName", "connectionId", "apiId"} {
		if _, ok := got.RequestContext[k]; !ok {
			t.Errorf("requestContext lacks %q", k)
		}
	}
}

func TestConnectRejectedWithIntegrationStatus(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         localgw.Integration
		wantStatus int
		wantBody   string
		authFail   int64
	}{
		{"401", localgw.HandlerFunc(func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return events.APIGatewayProxyResponse{StatusCode: 401, Body: `{"message":"token expired"}`}, nil
		}), 401, `{"message":"token expired"}`, 1},
		{"403 no body", localgw.HandlerFunc(func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return events.APIGatewayProxyResponse{StatusCode: 403}, nil
		}), 403, `{"message":"Forbidden"}`, 1},
		{"429", localgw.HandlerFunc(func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return events.APIGatewayProxyResponse{StatusCode: 429, Body: "slow down"}, nil
		}), 429, "slow down", 0},
		// A failing $connect integration fails the upgrade with 502
		// (observed on AWS), not 500.
		{"error", localgw.HandlerFunc(func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return events.APIGatewayProxyResponse{}, errors.New("boom")
		}), 502, `{"message":"Internal server error"}`, 0},
		{"panic", localgw.HandlerFunc(func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			panic("handler bug")
		}), 502, `{"message":"Internal server error"}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disconnects := newSink()
			s := localgwtest.Start(t, localgw.Config{Routes: map[string]localgw.Integration{
				localgw.RouteConnect:    tc.in,
				localgw.RouteDisconnect: disconnects.handler(ok()),
			}})
			_, resp, err := websocket.Dial(testCtx(t), s.WSURL, &websocket.DialOptions{HTTPClient: s.HTTPClient()})
			if err == nil {
				t.Fatal("upgrade succeeded, want it rejected")
			}
			if resp == nil || resp.StatusCode != tc.wantStatus {
				t.Fatalf("response %+v, want status %d", resp, tc.wantStatus)
			}
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tc.wantBody {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
			m := s.Gateway.Metrics()
			if m.ConnectRejectionsTotal != 1 || m.AuthFailuresTotal != tc.authFail || m.ConnectsTotal != 0 || m.ActiveConnections != 0 {
				t.Errorf("metrics %+v", m)
			}
			select {
			case ev := <-disconnects.ch:
				t.Errorf("$disconnect ran for a rejected connection: %+v", ev.RequestContext)
			default:
			}
		})
	}
}

func TestSubprotocolFromConnectResponse(t *testing.T) {
	s := localgwtest.Start(t, localgw.Config{Routes: map[string]localgw.Integration{
		localgw.RouteConnect: localgw.HandlerFunc(func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return events.APIGatewayProxyResponse{StatusCode: 200, Headers: map[string]string{"Sec-WebSocket-Protocol": "graphql-ws"}}, nil
		}),
	}})
	c, _, err := websocket.Dial(testCtx(t), s.WSURL, &websocket.DialOptions{Subprotocols: []string{"graphql-ws"}, HTTPClient: s.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != "graphql-ws" {
		t.Errorf("subprotocol %q", c.Subprotocol())
	}
}

func TestPostDuringConnectIsGone(t *testing.T) {
	var s *localgwtest.Server
	postErr := make(chan error, 1)
	connects := newSink()
	s = localgwtest.Start(t, localgw.Config{Routes: map[string]localgw.Integration{
		localgw.RouteConnect: localgw.HandlerFunc(func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			postErr <- post(ctx, s.ManagementClient(), ev.RequestContext.ConnectionID, []byte("too early"))
			connects.ch <- ev
			return ok(), nil
		}),
	}})
	c, id := connect(t, s, connects)
	var gone *types.GoneException
	if err := <-postErr; !errors.As(err, &gone) {
		t.Fatalf("post during $connect: %v, want *types.GoneException", err)
	}
	// Established now: the same post succeeds and arrives.
	if err := post(testCtx(t), s.ManagementClient(), id, []byte("welcome")); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, c); got != "welcome" {
		t.Errorf("got %q", got)
	}
}

func TestMessageRouting(t *testing.T) {
	connects, pings, defaults := newSink(), newSink(), newSink()
	s := localgwtest.Start(t, localgw.Config{Routes: map[string]localgw.Integration{
		localgw.RouteConnect: connects.handler(ok()),
		"ping":               localgw.TwoWay(pings.handler(events.APIGatewayProxyResponse{StatusCode: 200, Body: `{"type":"pong"}`})),
		localgw.RouteDefault: defaults.handler(ok()), // no body: no route response
		"broken": localgw.HandlerFunc(func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return events.APIGatewayProxyResponse{}, errors.New("db down")
		}),
		"panics": localgw.HandlerFunc(func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			panic("nil map")
		}),
	}})
	c, id := connect(t, s, connects)
	ctx := testCtx(t)

	if err := c.Write(ctx, websocket.MessageText, []byte(`{"action":"ping","n":1}`)); err != nil {
		t.Fatal(err)
	}
	ev := pings.next(t)
	rc := ev.RequestContext
	if rc.RouteKey != "ping" || rc.EventType != "MESSAGE" || ev.Body != `{"action":"ping","n":1}` || rc.ConnectionID != id {
		t.Errorf("ping event: routeKey %q eventType %q body %q id %q", rc.RouteKey, rc.EventType, ev.Body, rc.ConnectionID)
	}
	if mid, _ := rc.MessageID.(string); !awsIDPattern.MatchString(mid) || !awsIDPattern.MatchString(rc.RequestID) {
		t.Errorf("messageId %v / requestId %q not AWS-shaped", rc.MessageID, rc.RequestID)
	}
	if got := readText(t, c); got != `{"type":"pong"}` {
		t.Errorf("route response %q", got)
	}

	for _, body := range []string{`{"action":"nope"}`, `not json`, `{"action":42}`, `{"action":"$connect"}`, `["action"]`, `{"action":null}`} {
		if err := c.Write(ctx, websocket.MessageText, []byte(body)); err != nil {
			t.Fatal(err)
		}
		ev := defaults.next(t)
		if ev.RequestContext.RouteKey != "$default" || ev.Body != body {
			t.Errorf("body %q went to %q with body %q, want $default", body, ev.RequestContext.RouteKey, ev.Body)
		}
	}

	internal := regexp.MustCompile(`^\{"message": "Internal server error", "connectionId":"` + regexp.QuoteMeta(id) + `", "requestId":"[A-Za-z0-9_-]{15}="\}$`)
	for _, action := range []string{"broken", "panics"} {
		_ = c.Write(ctx, websocket.MessageText, []byte(`{"action":"`+action+`"}`))
		if got := readText(t, c); !internal.MatchString(got) {
			t.Errorf("%s: frame %q, want API Gateway's internal error frame", action, got)
		}
	}
	eventually(t, "messages_out_total 3", func() bool { return s.Gateway.Metrics().MessagesOutTotal == 3 })
	if m := s.Gateway.Metrics(); m.MessagesInTotal != 9 || m.IntegrationErrorsTotal != 2 || m.MessagesOutTotal != 3 {
		t.Errorf("messages in/out/integration errors = %d/%d/%d, want 9/3/2", m.MessagesInTotal, m.MessagesOutTotal, m.IntegrationErrorsTotal)
	}
}

func TestNoRouteGetsForbiddenFrame(t *testing.T) {
	connects := newSink()
	s := localgwtest.Start(t, localgw.Config{Routes: map[string]localgw.Integration{localgw.RouteConnect: connects.handler(ok())}})
	c, id := connect(t, s, connects)
	_ = c.Write(testCtx(t), websocket.MessageText, []byte(`{"action":"anything"}`))
	want := regexp.MustCompile(`^\{"message": "Forbidden", "connectionId":"` + regexp.QuoteMeta(id) + `", "requestId":"[A-Za-z0-9_-]{15}="\}$`)
	if got := readText(t, c); !want.MatchString(got) {
		t.Errorf("frame %q, want AWS's Forbidden frame", got)
	}
}

// limitsGateway starts a gateway recording $connect and $disconnect.
func limitsGateway(t *testing.T, cfg localgw.Config) (*localgwtest.Server, *sink, *sink, *sink) {
	connects, disconnects, defaults := newSink(), newSink(), newSink()
	cfg.Routes = map[string]localgw.Integration{
		localgw.RouteConnect:    connects.handler(ok()),
		localgw.RouteDisconnect: disconnects.handler(ok()),
		localgw.RouteDefault:    defaults.handler(ok()),
	}
	return localgwtest.Start(t, cfg), connects, disconnects, defaults
}

func assertDisconnect(t *testing.T, disconnects *sink, id string, code int, reason string) {
	t.Helper()
	ev := disconnects.next(t)
	rc := ev.RequestContext
	if rc.RouteKey != "$disconnect" || rc.EventType != "DISCONNECT" || rc.ConnectionID != id {
		t.Errorf("disconnect event %q/%q for %q, want $disconnect/DISCONNECT for %q", rc.RouteKey, rc.EventType, rc.ConnectionID, id)
	}
	if rc.DisconnectStatusCode != int64(code) || rc.DisconnectReason == nil || *rc.DisconnectReason != reason {
		t.Errorf("disconnectStatusCode %d reason %v, want %d %q", rc.DisconnectStatusCode, rc.DisconnectReason, code, reason)
	}
}

func TestLimits(t *testing.T) {
	t.Run("message over 128 KB closes 1009", func(t *testing.T) {
		s, connects, disconnects, _ := limitsGateway(t, localgw.Config{})
		c, id := connect(t, s, connects)
		// Fragmented into 32 KB frames so only the message limit applies.
		w, err := c.Writer(testCtx(t), websocket.MessageText)
		if err != nil {
			t.Fatal(err)
		}
		chunk := bytes.Repeat([]byte("a"), localgw.MaxFrameBytes)
		for range 5 { // 160 KB
			if _, err := w.Write(chunk); err != nil {
				break // the gateway may close before we finish
			}
		}
		_ = w.Close()
		if ce := readClose(t, c); ce.Code != websocket.StatusMessageTooBig || ce.Reason != "Message too big" {
			t.Errorf("close %v, want 1009 \"Message too big\"", ce)
		}
		assertDisconnect(t, disconnects, id, 1009, "Message too big")
	})
	t.Run("fragmented 128 KB message is accepted", func(t *testing.T) {
		s, connects, _, defaults := limitsGateway(t, localgw.Config{})
		c, _ := connect(t, s, connects)
		w, _ := c.Writer(testCtx(t), websocket.MessageText)
		chunk := bytes.Repeat([]byte("b"), localgw.MaxFrameBytes)
		for range 4 {
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if ev := defaults.next(t); len(ev.Body) != localgw.MaxMessageBytes {
			t.Errorf("routed body of %d bytes, want %d", len(ev.Body), localgw.MaxMessageBytes)
		}
	})
	t.Run("single frame over 32 KB closes 1009", func(t *testing.T) {
		s, connects, disconnects, defaults := limitsGateway(t, localgw.Config{})
		c, id := connect(t, s, connects)
		// coder/websocket writes one Write call as one frame.
		if err := c.Write(testCtx(t), websocket.MessageText, bytes.Repeat([]byte("c"), localgw.MaxFrameBytes+1)); err != nil {
			t.Fatal(err)
		}
		if ce := readClose(t, c); ce.Code != websocket.StatusMessageTooBig || ce.Reason != "Frame too big" {
			t.Errorf("close %v, want 1009 \"Frame too big\"", ce)
		}
		assertDisconnect(t, disconnects, id, 1009, "Frame too big")
		select {
		case ev := <-defaults.ch:
			t.Errorf("oversize frame was routed (%d bytes)", len(ev.Body))
		default:
		}
	})
	t.Run("single frame over 128 KB closes 1009 with the gateway's reason", func(t *testing.T) {
		s, connects, disconnects, _ := limitsGateway(t, localgw.Config{})
		c, id := connect(t, s, connects)
		// Written as one frame; the gateway stops reading at the limit.
		_ = c.Write(testCtx(t), websocket.MessageText, bytes.Repeat([]byte("d"), localgw.MaxMessageBytes+1024))
		if ce := readClose(t, c); ce.Code != websocket.StatusMessageTooBig || ce.Reason != "Frame too big" {
			t.Errorf("close %v, want 1009 \"Frame too big\"", ce)
		}
		assertDisconnect(t, disconnects, id, 1009, "Frame too big")
	})
	t.Run("binary frame closes 1003", func(t *testing.T) {
		s, connects, disconnects, _ := limitsGateway(t, localgw.Config{})
		c, id := connect(t, s, connects)
		if err := c.Write(testCtx(t), websocket.MessageBinary, []byte{0, 1, 2}); err != nil {
			t.Fatal(err)
		}
		if ce := readClose(t, c); ce.Code != websocket.StatusUnsupportedData {
			t.Errorf("close %v, want 1003", ce)
		}
		assertDisconnect(t, disconnects, id, 1003, "Binary frames are not supported")
	})
	t.Run("idle timeout closes 1001", func(t *testing.T) {
		s, connects, disconnects, _ := limitsGateway(t, localgw.Config{IdleTimeout: 150 * time.Millisecond})
		c, id := connect(t, s, connects)
		if ce := readClose(t, c); ce.Code != websocket.StatusGoingAway {
			t.Errorf("close %v, want 1001", ce)
		}
		assertDisconnect(t, disconnects, id, 1001, "Going away")
	})
	t.Run("max duration closes 1001", func(t *testing.T) {
		s, connects, disconnects, _ := limitsGateway(t, localgw.Config{MaxDuration: 150 * time.Millisecond, IdleTimeout: time.Hour})
		c, id := connect(t, s, connects)
		if ce := readClose(t, c); ce.Code != websocket.StatusGoingAway {
			t.Errorf("close %v, want 1001", ce)
		}
		assertDisconnect(t, disconnects, id, 1001, "Going away")
	})
	t.Run("client close reports its code and reason", func(t *testing.T) {
		s, connects, disconnects, _ := limitsGateway(t, localgw.Config{})
		c, id := connect(t, s, connects)
		if err := c.Close(4001, "bye now"); err != nil {
			t.Fatal(err)
		}
		assertDisconnect(t, disconnects, id, 4001, "bye now")
		if m := s.Gateway.Metrics(); m.ActiveConnections != 0 || m.DisconnectsTotal != 1 {
			t.Errorf("active %d disconnects %d", m.ActiveConnections, m.DisconnectsTotal)
		}
	})
	t.Run("dropped TCP reports 1006", func(t *testing.T) {
		s, connects, disconnects, _ := limitsGateway(t, localgw.Config{})
		c, id := connect(t, s, connects)
		_ = c.CloseNow()
		assertDisconnect(t, disconnects, id, 1006, "Connection Closed Abnormally")
	})
}

func TestShutdownClosesClientsWith1001(t *testing.T) {
	connects, disconnects := newSink(), newSink()
	g, err := localgw.New(localgw.Config{Routes: map[string]localgw.Integration{
		localgw.RouteConnect:    connects.handler(ok()),
		localgw.RouteDisconnect: disconnects.handler(ok()),
	}})
	if err != nil {
		t.Fatal(err)
	}
	base, err := g.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/local"
	ids := map[string]bool{}
	var clients []*websocket.Conn
	for range 3 {
		c, _, err := websocket.Dial(testCtx(t), wsURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		clients = append(clients, c)
		ids[connects.next(t).RequestContext.ConnectionID] = true
	}
	closed := make(chan websocket.CloseError, len(clients))
	for _, c := range clients {
		go func() {
			_, _, err := c.Read(context.Background())
			var ce websocket.CloseError
			errors.As(err, &ce)
			closed <- ce
		}()
	}
	if err := g.Shutdown(testCtx(t)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range clients {
		if ce := <-closed; ce.Code != websocket.StatusGoingAway || ce.Reason != "Going away" {
			t.Errorf("client closed with %v, want 1001 Going away", ce)
		}
	}
	// Shutdown returned after every $disconnect ran.
	for range clients {
		select {
		case ev := <-disconnects.ch:
			if !ids[ev.RequestContext.ConnectionID] || ev.RequestContext.DisconnectStatusCode != 1001 {
				t.Errorf("disconnect %+v", ev.RequestContext)
			}
		default:
			t.Fatal("Shutdown returned before every $disconnect ran")
		}
	}
	if _, _, err := websocket.Dial(testCtx(t), wsURL, nil); err == nil {
		t.Error("dial after Shutdown succeeded")
	}
	if err := g.Shutdown(testCtx(t)); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := g.Serve(nil); !errors.Is(err, localgw.ErrClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

func TestShutdownHonoursContext(t *testing.T) {
	connects := newSink()
	release := make(chan struct{})
	g, _ := localgw.New(localgw.Config{Routes: map[string]localgw.Integration{
		localgw.RouteConnect: connects.handler(ok()),
		// A $disconnect that waits for its ctx (or the test) to finish.
		localgw.RouteDisconnect: localgw.HandlerFunc(func(ctx context.Context, _ events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			select {
			case <-ctx.Done():
			case <-release:
			}
			return ok(), nil
		}),
	}})
	base, _ := g.Start("127.0.0.1:0")
	c, _, err := websocket.Dial(testCtx(t), "ws"+strings.TrimPrefix(base, "http")+"/local", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	connects.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	close(release)
	// goleak (TestMain) checks that nothing is left behind.
}

func TestHTTPEndpoints(t *testing.T) {
	s := localgwtest.Start(t, localgw.Config{})
	hc := s.HTTPClient()
	get := func(path string, hdr http.Header) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, s.BaseURL+path, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := get("/health", nil); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("/health %d %q", resp.StatusCode, body)
	}
	resp, body := get("/nope", nil)
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("/nope %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	contains(t, body, "@connections")
	if resp, _ := get("/local", nil); resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("plain GET /local = %d, want 426", resp.StatusCode)
	}
	if resp, body := get("/", http.Header{"X-Amz-Target": {"DynamoDB_20120810.ListTables"}}); resp.StatusCode != 404 {
		t.Errorf("DynamoDB call without EmbeddedDynamoDB = %d %s", resp.StatusCode, body)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]localgw.Config{
		"expression":  {RouteSelectionExpression: "$request.header.x"},
		"empty field": {RouteSelectionExpression: "$request.body.a..b"},
		"stage":       {Stage: "a/b"},
		"probability": {Faults: localgw.Faults{Error500: 1.5}},
		"sum":         {Faults: localgw.Faults{Error500: 0.6, Error410: 0.6}},
		"negative":    {IdleTimeout: -time.Second},
		"rate":        {ManagementRateLimit: -1},
	} {
		if _, err := localgw.New(cfg); !errors.Is(err, localgw.ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
}

// keys returns the sorted keys of a JSON object, for error messages.
func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func TestStartErrors(t *testing.T) {
	s := localgwtest.Start(t, localgw.Config{})
	g, _ := localgw.New(localgw.Config{})
	_, err := g.Start(strings.TrimPrefix(s.BaseURL, "http://"))
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("Start on a taken port: %v", err)
	}
	if err := g.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Gateway.Start("127.0.0.1:0"); !errors.Is(err, localgw.ErrAlreadyServing) {
		t.Errorf("second Start: %v", err)
	}
}
