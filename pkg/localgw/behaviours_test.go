package localgw_test

// Tests for the API Gateway behaviours of issue #14 (doc.go lists them with
// their sources), each through real clients: the AWS SDK management client,
// a coder/websocket client, or a raw-frame client where frames matter.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
)

// 1. Only a two-way route's response body reaches the client.
func TestTwoWayAndOneWayRoutes(t *testing.T) {
	connects := newSink()
	reply := func(body string) localgw.HandlerFunc {
		return func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return events.APIGatewayProxyResponse{StatusCode: 200, Body: body}, nil
		}
	}
	s := localgwtest.Start(t, localgw.Config{Routes: map[string]localgw.Integration{
		localgw.RouteConnect: connects.handler(ok()),
		"ask":                localgw.TwoWay(reply(`{"answer":1}`)),
		"tell":               reply(`{"dropped":true}`), // one-way: as on AWS without a route response
		localgw.RouteDefault: reply(`{"dropped":"default"}`),
	}})
	c, _ := connect(t, s, connects)
	ctx := testCtx(t)
	for _, action := range []string{"tell", "nothing-matches", "ask"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"action":"`+action+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	// Messages are routed in order: the first frame the client gets is the
	// two-way route's, so neither one-way body was sent.
	if got := readText(t, c); got != `{"answer":1}` {
		t.Fatalf("first frame %q, want the two-way route's response only", got)
	}
	eventually(t, "messages_out_total 1", func() bool { return s.Gateway.Metrics().MessagesOutTotal == 1 })
	if m := s.Gateway.Metrics(); m.RouteResponsesDroppedTotal != 2 {
		t.Errorf("route_responses_dropped_total %d, want 2", m.RouteResponsesDroppedTotal)
	}
	if !localgw.IsTwoWay(s.Gateway.Route("ask")) || localgw.IsTwoWay(s.Gateway.Route("tell")) || s.Gateway.Route("none") != nil {
		t.Error("Route does not report the routes as set")
	}
	if localgw.TwoWay(nil) != nil || !localgw.IsTwoWay(localgw.TwoWay(localgw.TwoWay(reply("")))) {
		t.Error("TwoWay(nil) or TwoWay of a two-way route")
	}
}

// rawClient is a WebSocket client written against the wire, to see frames
// as they are: no library reassembles them.
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
}

type rawFrame struct {
	fin     bool
	opcode  byte
	payload []byte
}

func dialRaw(t *testing.T, s *localgwtest.Server) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.BaseURL, "http://"), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	var key [16]byte
	_, _ = rand.Read(key[:])
	fmt.Fprintf(conn, "GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		s.Gateway.Stage(), strings.TrimPrefix(s.BaseURL, "http://"), base64.StdEncoding.EncodeToString(key[:]))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	return &rawClient{conn: conn, r: r}
}

// frame reads one server frame (unmasked, as servers send them).
func (c *rawClient) frame(t *testing.T) rawFrame {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		t.Fatalf("frame header: %v", err)
	}
	if h[1]&0x80 != 0 {
		t.Fatal("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(c.r, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(c.r, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > localgw.MaxMessageBytes {
		t.Fatalf("frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		t.Fatalf("frame payload: %v", err)
	}
	return rawFrame{fin: h[0]&0x80 != 0, opcode: h[0] & 0x0f, payload: p}
}

// message reads the frames of one data message.
func (c *rawClient) message(t *testing.T) []rawFrame {
	t.Helper()
	var fs []rawFrame
	for {
		f := c.frame(t)
		if f.opcode >= 0x8 { // control frames may interleave
			continue
		}
		fs = append(fs, f)
		if f.fin {
			return fs
		}
	}
}

// 2. An @connections message over 32 KB reaches the client in frames of at
// most 32 KB, FIN on the last; a 32 KB message is one frame.
func TestOutboundFramesAreAtMost32KB(t *testing.T) {
	connects := newSink()
	s := localgwtest.Start(t, localgw.Config{Routes: map[string]localgw.Integration{localgw.RouteConnect: connects.handler(ok())}})
	c := dialRaw(t, s)
	id := connects.next(t).RequestContext.ConnectionID
	api := s.ManagementClient()

	big := make([]byte, 100*1024)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	if err := post(testCtx(t), api, id, big); err != nil {
		t.Fatal(err)
	}
	fs := c.message(t)
	var got []byte
	for i, f := range fs {
		if len(f.payload) > localgw.MaxFrameBytes {
			t.Errorf("frame %d carries %d bytes, over the 32 KB frame limit", i, len(f.payload))
		}
		want := byte(0x0) // continuation
		if i == 0 {
			want = 0x1 // text
		}
		if f.opcode != want || f.fin != (i == len(fs)-1) {
			t.Errorf("frame %d: opcode %d fin %v", i, f.opcode, f.fin)
		}
		got = append(got, f.payload...)
	}
	if len(fs) < 4 || !bytes.Equal(got, big) {
		t.Errorf("%d frames reassembling %d bytes, want at least 4 frames carrying the 100 KB message", len(fs), len(got))
	}

	exact := bytes.Repeat([]byte("z"), localgw.MaxFrameBytes)
	if err := post(testCtx(t), api, id, exact); err != nil {
		t.Fatal(err)
	}
	if fs := c.message(t); len(fs) != 1 || fs[0].opcode != 0x1 || !bytes.Equal(fs[0].payload, exact) {
		t.Errorf("a 32 KB message came as %d frames, want one text frame", len(fs))
	}
}

// 3. An integration that overruns the timeout gets API Gateway's timeout
// frame, even when it ignores its ctx, and its late body is never sent.
func TestIntegrationTimeout(t *testing.T) {
	connects := newSink()
	release, finished := make(chan struct{}), make(chan struct{})
	s := localgwtest.Start(t, localgw.Config{
		IntegrationTimeout: 100 * time.Millisecond,
		Routes: map[string]localgw.Integration{
			localgw.RouteConnect: connects.handler(ok()),
			"slow": localgw.TwoWay(localgw.HandlerFunc(func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
				defer close(finished)
				<-release // ignores its ctx, as a stuck handler would
				return events.APIGatewayProxyResponse{StatusCode: 200, Body: "late"}, nil
			})),
			"fast": localgw.TwoWay(localgw.HandlerFunc(func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
				return events.APIGatewayProxyResponse{StatusCode: 200, Body: "fast"}, nil
			})),
		},
	})
	t.Cleanup(func() { <-finished }) // before the gateway's cleanup (goleak)
	c, id := connect(t, s, connects)
	ctx := testCtx(t)
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"action":"slow"}`))
	want := regexp.MustCompile(`^\{"message": "Endpoint request timed out", "connectionId":"` + regexp.QuoteMeta(id) + `", "requestId":"[A-Za-z0-9_-]{15}="\}$`)
	if got := readText(t, c); !want.MatchString(got) {
		t.Fatalf("frame %q, want API Gateway's timeout frame", got)
	}
	close(release)
	<-finished
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"action":"fast"}`))
	if got := readText(t, c); got != "fast" {
		t.Errorf("next frame %q: the timed-out route's late body was delivered", got)
	}
	if m := s.Gateway.Metrics(); m.IntegrationTimeoutsTotal != 1 || m.IntegrationErrorsTotal != 1 {
		t.Errorf("integration timeouts %d errors %d, want 1 and 1", m.IntegrationTimeoutsTotal, m.IntegrationErrorsTotal)
	}
}

func TestConnectTimeoutIs504(t *testing.T) {
	release := make(chan struct{})
	finished := make(chan struct{})
	s := localgwtest.Start(t, localgw.Config{
		IntegrationTimeout: 50 * time.Millisecond,
		Routes: map[string]localgw.Integration{
			localgw.RouteConnect: localgw.HandlerFunc(func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
				defer close(finished)
				<-release
				return ok(), nil
			}),
		},
	})
	_, resp, err := websocket.Dial(testCtx(t), s.WSURL, &websocket.DialOptions{HTTPClient: s.HTTPClient()})
	close(release)
	<-finished
	if err == nil || resp == nil || resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("dial: %v %+v, want 504", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != `{"message":"Endpoint request timed out"}` {
		t.Errorf("body %s", body)
	}
	if m := s.Gateway.Metrics(); m.ConnectsTotal != 0 || m.ConnectRejectionsTotal != 1 {
		t.Errorf("connects %d rejections %d", m.ConnectsTotal, m.ConnectRejectionsTotal)
	}
}

// 5. Route selection stringifies values and takes templates, through a
// real client.
func TestRouteSelection(t *testing.T) {
	for _, tc := range []struct{ expr, body, key string }{
		{"", `{"action":42}`, "42"}, // the default $request.body.action, stringified
		{"${request.body.meta.type}", `{"meta":{"type":"subscribe"}}`, "subscribe"},
		{"${request.body.type}/${request.body.action}", `{"type":"chat","action":"send","text":"hi"}`, "chat/send"},
	} {
		connects, routed := newSink(), newSink()
		s := localgwtest.Start(t, localgw.Config{
			RouteSelectionExpression: tc.expr,
			Routes:                   map[string]localgw.Integration{localgw.RouteConnect: connects.handler(ok()), tc.key: routed.handler(ok())},
		})
		c, _ := connect(t, s, connects)
		_ = c.Write(testCtx(t), websocket.MessageText, []byte(tc.body))
		if ev := routed.next(t); ev.RequestContext.RouteKey != tc.key {
			t.Errorf("%q on %s: routeKey %q, want %q", tc.expr, tc.body, ev.RequestContext.RouteKey, tc.key)
		}
	}
}

// 6 and 7. Ids with - and _ work everywhere; an id that cannot be one is a
// 400 BadRequestException; a well-formed unknown id is still 410.
func TestConnectionIDShapes(t *testing.T) {
	const id = "ab-_cd-_ef-_ghI=" // the real alphabet's punctuation
	connects := newSink()
	s := localgwtest.Start(t, localgw.Config{
		NewID:  func() string { return id },
		Routes: map[string]localgw.Integration{localgw.RouteConnect: connects.handler(ok())},
	})
	c, got := connect(t, s, connects)
	if got != id {
		t.Fatalf("id %q", got)
	}
	api := s.ManagementClient()
	ctx := testCtx(t)
	if err := post(ctx, api, id, []byte("dash")); err != nil {
		t.Fatalf("post to %q: %v", id, err)
	}
	if m := readText(t, c); m != "dash" {
		t.Errorf("got %q", m)
	}
	if _, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)}); err != nil {
		t.Errorf("get %q: %v", id, err)
	}

	for _, bad := range []string{"abc", "%%%", "L0SM9cOFvHcCIhw", "not an id at all="} {
		err := post(ctx, api, bad, []byte("x"))
		var re *smithyhttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != 400 || errCode(err) != "BadRequestException" {
			t.Errorf("post to %q: %v, want 400 BadRequestException", bad, err)
		}
		if _, err := api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(bad)}); errCode(err) != "BadRequestException" {
			t.Errorf("delete %q: %v, want BadRequestException", bad, err)
		}
	}
	// On the wire, as curl sends "%%%" encoded.
	req, _ := http.NewRequest(http.MethodPost, s.ManagementEndpoint+"/@connections/%25%25%25", strings.NewReader("x"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("x-amzn-ErrorType") != "BadRequestException" || string(b) != `{"message":"Invalid connectionId: %%%"}` {
		t.Errorf("raw %%%%%%: %d %q %s", resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), b)
	}
	var gone *types.GoneException
	if err := post(ctx, api, "L0SM9cOFvHcCIhw=", []byte("x")); !errors.As(err, &gone) {
		t.Errorf("well-formed unknown id: %v, want GoneException", err)
	}
	if n := s.Gateway.Metrics().Management.ErrorsTotal["BadRequestException"]; n != 9 {
		t.Errorf("BadRequestException count %d, want 9", n)
	}
}

// 8. With a connection rate limit, upgrades beyond it get 429 before
// $connect runs.
func TestConnectRateLimit(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	connects := newSink()
	s := localgwtest.Start(t, localgw.Config{
		Now: clock.Now, ConnectRateLimit: 1, ConnectBurst: 2,
		Routes: map[string]localgw.Integration{localgw.RouteConnect: connects.handler(ok())},
	})
	dial(t, s, "", nil)
	dial(t, s, "", nil)
	_, resp, err := websocket.Dial(testCtx(t), s.WSURL, &websocket.DialOptions{HTTPClient: s.HTTPClient()})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third dial within a second: %v %+v, want 429", err, resp)
	}
	clock.Advance(time.Second)
	dial(t, s, "", nil)
	if len(connects.ch) != 3 {
		t.Errorf("$connect ran %d times, want 3 (never for the throttled upgrade)", len(connects.ch))
	}
	if m := s.Gateway.Metrics(); m.ConnectsThrottledTotal != 1 || m.ConnectRejectionsTotal != 1 || m.ConnectsTotal != 3 {
		t.Errorf("throttled %d rejections %d connects %d", m.ConnectsThrottledTotal, m.ConnectRejectionsTotal, m.ConnectsTotal)
	}
}

func TestAWSQuotas(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s := localgwtest.Start(t, localgw.Config{Now: clock.Now, AWSQuotas: true})
	if f := s.Gateway.Faults(); f.ThrottleRate != localgw.AWSThrottleRate || f.ThrottleBurst != localgw.AWSThrottleBurst {
		t.Errorf("throttle %v/%d, want the account's %d/%d", f.ThrottleRate, f.ThrottleBurst, localgw.AWSThrottleRate, localgw.AWSThrottleBurst)
	}
	// 500 upgrades in the same instant pass, the 501st is refused.
	hc := s.HTTPClient()
	for i := range localgw.AWSConnectRateLimit {
		c, _, err := websocket.Dial(testCtx(t), s.WSURL, &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		_ = c.CloseNow()
	}
	if _, resp, err := websocket.Dial(testCtx(t), s.WSURL, &websocket.DialOptions{HTTPClient: hc}); err == nil || resp == nil || resp.StatusCode != 429 {
		t.Errorf("dial %d: %v, want 429", localgw.AWSConnectRateLimit+1, err)
	}
	// Explicit settings win over the quotas.
	g, err := localgw.New(localgw.Config{AWSQuotas: true, Faults: localgw.Faults{ThrottleRate: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if f := g.Faults(); f.ThrottleRate != 7 {
		t.Errorf("ThrottleRate %v, want the explicit 7", f.ThrottleRate)
	}
	_ = g.Shutdown(testCtx(t))
}

// #11 item 4: the throttle, latency and jitter are one runtime-settable set.
func TestThrottleAtRuntime(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s, connects, _, _ := limitsGateway(t, localgw.Config{Now: clock.Now})
	_, id := connect(t, s, connects)
	api := s.ManagementClient()
	ctx := testCtx(t)
	g := s.Gateway
	var limited *types.LimitExceededException

	if err := g.SetFaults(localgw.Faults{ThrottleRate: 1, ThrottleBurst: 2}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := post(ctx, api, id, []byte("x")); err != nil {
			t.Fatalf("post %d within the burst: %v", i, err)
		}
	}
	if err := post(ctx, api, id, []byte("x")); !errors.As(err, &limited) {
		t.Fatalf("over the throttle: %v, want LimitExceededException", err)
	}
	// Adding latency keeps the throttle and its (empty) bucket.
	f := g.Faults()
	f.Latency = time.Millisecond
	if err := g.SetFaults(f); err != nil {
		t.Fatal(err)
	}
	if err := post(ctx, api, id, []byte("x")); !errors.As(err, &limited) {
		t.Errorf("after changing only the latency: %v, want still throttled", err)
	}
	clock.Advance(time.Second)
	if err := post(ctx, api, id, []byte("x")); err != nil {
		t.Errorf("after a token refilled: %v", err)
	}
	if err := g.SetFaults(localgw.Faults{}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := post(ctx, api, id, []byte("x")); err != nil {
			t.Fatalf("throttle off, post %d: %v", i, err)
		}
	}
	for name, bad := range map[string]localgw.Faults{
		"negative rate": {ThrottleRate: -1}, "negative burst": {ThrottleBurst: -1}, "drop over 1": {DropDisconnect: 1.5},
	} {
		if err := g.SetFaults(bad); !errors.Is(err, localgw.ErrInvalidConfig) {
			t.Errorf("%s: SetFaults = %v, want ErrInvalidConfig", name, err)
		}
	}
}

// #12 item 5: DropDisconnect skips the $disconnect integration for that
// fraction of closes, and counts them.
func TestDropDisconnect(t *testing.T) {
	s, connects, disconnects, _ := limitsGateway(t, localgw.Config{})
	g := s.Gateway
	if err := g.SetFaults(localgw.Faults{DropDisconnect: 1}); err != nil {
		t.Fatal(err)
	}
	c, _ := connect(t, s, connects)
	_ = c.Close(websocket.StatusNormalClosure, "")
	eventually(t, "the close", func() bool { return g.Metrics().DisconnectsTotal == 1 })
	if m := g.Metrics(); m.DisconnectsDroppedTotal != 1 || len(disconnects.ch) != 0 {
		t.Fatalf("dropped %d, $disconnect ran %d times; want 1 dropped and none run", m.DisconnectsDroppedTotal, len(disconnects.ch))
	}

	// At 0.5 with a seed, about half of 40 closes are dropped, and every
	// close is either run or dropped.
	if err := g.SetFaults(localgw.Faults{DropDisconnect: 0.5, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	for range n {
		c, _ := connect(t, s, connects)
		_ = c.CloseNow()
	}
	eventually(t, "every close", func() bool { return g.Metrics().DisconnectsTotal == n+1 })
	dropped := g.Metrics().DisconnectsDroppedTotal - 1
	if ran := int64(len(disconnects.ch)); dropped+ran != n || dropped < 8 || dropped > 32 {
		t.Errorf("of %d closes %d dropped and %d run: want them to add up, about half dropped", n, dropped, ran)
	}
	if err := g.SetFaults(localgw.Faults{}); err != nil {
		t.Fatal(err)
	}
}
