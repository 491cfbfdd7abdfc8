package dashboard

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
)

// TestLocalSourceAgainstRealGateway reads the real local gateway's
// /metrics.json (not a canned copy of its format) while WebSocket clients
// connect, get rejected and receive @connections posts.
func TestLocalSourceAgainstRealGateway(t *testing.T) {
	ok := func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
	}
	var mu sync.Mutex
	var ids []string
	connect := func(_ context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		if req.QueryStringParameters["token"] != "good" {
			return events.APIGatewayProxyResponse{StatusCode: http.StatusUnauthorized}, nil
		}
		mu.Lock()
		ids = append(ids, req.RequestContext.ConnectionID)
		mu.Unlock()
		return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
	}
	gw := localgwtest.Start(t, localgw.Config{Routes: map[string]localgw.Integration{
		"$connect": localgw.HandlerFunc(connect), "$disconnect": localgw.HandlerFunc(ok), "$default": localgw.HandlerFunc(ok),
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hc := gw.HTTPClient()

	dial := func(token string) (*websocket.Conn, error) {
		c, _, err := websocket.Dial(ctx, gw.WSURL+"?token="+token, &websocket.DialOptions{HTTPClient: hc})
		if err == nil {
			t.Cleanup(func() { c.CloseNow() })
		}
		return c, err
	}
	for range 2 {
		if _, err := dial("good"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dial("bad"); err == nil {
		t.Fatal("the gateway accepted a rejected $connect")
	}

	src := &LocalSource{URL: gw.BaseURL, HTTPClient: hc}
	s0, err := src.Fetch(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if s0.ActiveConnections.V != 2 || s0.AuthenticationFailures.V != 1 {
		t.Errorf("first poll: active %+v auth failures %+v, want 2 and 1", s0.ActiveConnections, s0.AuthenticationFailures)
	}
	if s0.ConnectionsPerMinute.OK {
		t.Errorf("first poll has no rate, got %+v", s0.ConnectionsPerMinute)
	}

	// Between the polls: one more connection, one post delivered to it, one
	// post to a connection that does not exist (410 GoneException).
	c3, err := dial("good")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	id3 := ids[len(ids)-1]
	mu.Unlock()
	mc := gw.ManagementClient()
	if _, err := mc.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id3), Data: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c3.Read(ctx); err != nil || string(msg) != "hello" {
		t.Fatalf("client read %q, %v", msg, err)
	}
	_, err = mc.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String("bm9uZXhpc3RlbnQ="), Data: []byte("x")})
	var gone *types.GoneException
	if !errors.As(err, &gone) {
		t.Fatalf("post to an unknown connection: %v, want GoneException", err)
	}
	time.Sleep(20 * time.Millisecond) // a measurable interval between polls; nothing asserts on its length
	s1, err := src.Fetch(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if s1.ActiveConnections.V != 3 {
		t.Errorf("active = %+v, want 3", s1.ActiveConnections)
	}
	if !s1.ConnectionsPerMinute.OK || s1.ConnectionsPerMinute.V <= 0 {
		t.Errorf("connections/min = %+v, want > 0 after a new connection", s1.ConnectionsPerMinute)
	}
	if !s1.MessagesSentPerMinute.OK || s1.MessagesSentPerMinute.V <= 0 {
		t.Errorf("messages sent/min = %+v, want > 0 after a delivered post", s1.MessagesSentPerMinute)
	}
	if !s1.ErrorRatePercent.OK || s1.ErrorRatePercent.V != 50 {
		t.Errorf("error rate = %+v, want 50%% (one of two @connections requests failed)", s1.ErrorRatePercent)
	}
	if !s1.LatencyP99.OK {
		t.Errorf("latency p99 = %+v, want a value after a management request", s1.LatencyP99)
	}
	if s1.BreakerState != "" {
		t.Errorf("no manager reporter attached: breaker %q, want none", s1.BreakerState)
	}
	if s1.DisconnectsDropped.V != 0 || !s1.DisconnectsDropped.OK {
		t.Errorf("dropped $disconnects = %+v, want 0", s1.DisconnectsDropped)
	}

	// A close whose $disconnect fault injection drops shows on the dashboard.
	if err := gw.Gateway.SetFaults(localgw.Faults{DropDisconnect: 1}); err != nil {
		t.Fatal(err)
	}
	_ = c3.Close(websocket.StatusNormalClosure, "")
	var s2 Snapshot
	for s2.DisconnectsDropped.V != 1 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond) // the close is processed after the client's handshake
		if s2, err = src.Fetch(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if !s2.DisconnectsDropped.OK || s2.DisconnectsDropped.V != 1 || s2.ActiveConnections.V != 2 {
		t.Errorf("after a dropped $disconnect: dropped %+v active %+v, want 1 and 2", s2.DisconnectsDropped, s2.ActiveConnections)
	}
}
