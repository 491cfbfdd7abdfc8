package localgw_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests; nothing here should take
// more than a fraction of it.
const waitTimeout = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// sink records the events an integration receives.
type sink struct {
	ch chan events.APIGatewayWebsocketProxyRequest
}

func newSink() *sink { return &sink{ch: make(chan events.APIGatewayWebsocketProxyRequest, 256)} }

// handler records the event and answers with resp.
func (s *sink) handler(resp events.APIGatewayProxyResponse) localgw.HandlerFunc {
	return func(_ context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		s.ch <- ev
		return resp, nil
	}
}

func (s *sink) next(t testing.TB) events.APIGatewayWebsocketProxyRequest {
	t.Helper()
	select {
	case ev := <-s.ch:
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for an integration event")
		return events.APIGatewayWebsocketProxyRequest{}
	}
}

func ok() events.APIGatewayProxyResponse { return events.APIGatewayProxyResponse{StatusCode: 200} }

// dial connects a real WebSocket client and closes it at cleanup.
func dial(t testing.TB, s *localgwtest.Server, suffix string, hdr http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(testCtx(t), s.WSURL+suffix, &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: s.HTTPClient()})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", s.WSURL+suffix, err, status)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	c.SetReadLimit(-1)
	return c
}

// connect dials and returns the connection id from the $connect event.
func connect(t testing.TB, s *localgwtest.Server, connects *sink) (*websocket.Conn, string) {
	t.Helper()
	c := dial(t, s, "", nil)
	ev := connects.next(t)
	return c, ev.RequestContext.ConnectionID
}

func readText(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	typ, b, err := c.Read(testCtx(t))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("frame type %v, want text", typ)
	}
	return string(b)
}

// readClose reads until the connection closes and returns the close status.
func readClose(t testing.TB, c *websocket.Conn) websocket.CloseError {
	t.Helper()
	ctx := testCtx(t)
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended without a close frame: %v", err)
		}
		return ce
	}
}

func post(ctx context.Context, api *apigatewaymanagementapi.Client, id string, data []byte) error {
	_, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: data})
	return err
}

// errCode is the smithy error code (x-amzn-ErrorType) of err, or "".
func errCode(err error) string {
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func contains(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%q does not contain %q", s, sub)
	}
}

// eventually polls cond until it holds or waitTimeout passes. For counters
// updated just after a frame is written (the client can read it first).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
