package localgw_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/internal/syncbuf"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
)

// fakeInvoke is a Lambda Invoke endpoint (the RIE's or Lambda's) answering
// with a canned status, headers and body, and recording the events.
func fakeInvoke(t *testing.T, status int, hdr map[string]string, body string) (*httptest.Server, chan events.APIGatewayWebsocketProxyRequest) {
	got := make(chan events.APIGatewayWebsocketProxyRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/2015-03-31/functions/function/invocations" {
			http.Error(w, "wrong invoke path", http.StatusNotFound)
			return
		}
		var ev events.APIGatewayWebsocketProxyRequest
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &ev); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		got <- ev
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

const invokePath = "/2015-03-31/functions/function/invocations"

func TestLambdaInvokeResponses(t *testing.T) {
	ev := events.APIGatewayWebsocketProxyRequest{RequestContext: events.APIGatewayWebsocketProxyRequestContext{RouteKey: "$default", ConnectionID: "L0SM9cOFvHcCIhw="}}
	for _, tc := range []struct {
		name       string
		status     int
		hdr        map[string]string
		body       string
		wantStatus int
		wantBody   string
		wantErr    error
		wantFnErr  string
	}{
		{name: "proxy response", status: 200, body: `{"statusCode":201,"body":"hi"}`, wantStatus: 201, wantBody: "hi"},
		{name: "null result", status: 200, body: `null`, wantStatus: 200},
		{name: "object without statusCode", status: 200, body: `{"body":"x"}`, wantStatus: 200, wantBody: "x"},
		{name: "function error header", status: 200, hdr: map[string]string{"X-Amz-Function-Error": "Unhandled"},
			body: `{"errorMessage":"boom","errorType":"errorString"}`, wantFnErr: "errorString"},
		{name: "function error body (RIE)", status: 200, body: `{"errorMessage":"bad token","errorType":"AuthError"}`, wantFnErr: "AuthError"},
		{name: "invoke endpoint 500", status: 500, body: `oops`, wantErr: localgw.ErrInvoke},
		{name: "not an object", status: 200, body: `"just a string"`, wantErr: localgw.ErrInvoke},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, got := fakeInvoke(t, tc.status, tc.hdr, tc.body)
			in := localgw.LambdaInvoke(srv.URL+invokePath, srv.Client())
			resp, err := in.Invoke(testCtx(t), ev)
			if sent := <-got; sent.RequestContext.ConnectionID != "L0SM9cOFvHcCIhw=" {
				t.Errorf("event not sent as JSON: %+v", sent.RequestContext)
			}
			var fe *localgw.FunctionError
			switch {
			case tc.wantFnErr != "":
				if !errors.As(err, &fe) || fe.Type != tc.wantFnErr || fe.Message == "" {
					t.Errorf("err %v, want *FunctionError %s", err, tc.wantFnErr)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("err %v, want %v", err, tc.wantErr)
				}
			default:
				if err != nil || resp.StatusCode != tc.wantStatus || resp.Body != tc.wantBody {
					t.Errorf("resp %+v err %v", resp, err)
				}
			}
		})
	}
	t.Run("endpoint down", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		if _, err := localgw.LambdaInvoke(url+invokePath, nil).Invoke(testCtx(t), ev); !errors.Is(err, localgw.ErrInvoke) {
			t.Errorf("err %v, want ErrInvoke", err)
		}
	})
}

// Routes backed by invoke endpoints behave as API Gateway with Lambda proxy
// integrations: a 403 result rejects the upgrade, a function error becomes
// the "Internal server error" frame.
func TestLambdaInvokeBehindTheGateway(t *testing.T) {
	deny, _ := fakeInvoke(t, 200, nil, `{"statusCode":403,"body":"{\"message\":\"Forbidden\"}"}`)
	allow, connected := fakeInvoke(t, 200, nil, `{"statusCode":200}`)
	crash, crashed := fakeInvoke(t, 200, map[string]string{"X-Amz-Function-Error": "Unhandled"}, `{"errorMessage":"runtime error: invalid memory address","errorType":"Runtime.ExitError"}`)
	echo, _ := fakeInvoke(t, 200, nil, `{"statusCode":200,"body":"{\"echo\":true}"}`)

	s := localgwtest.Start(t, localgw.Config{Routes: map[string]localgw.Integration{
		localgw.RouteConnect: localgw.LambdaInvoke(deny.URL+invokePath, deny.Client()),
	}})
	_, resp, err := websocket.Dial(testCtx(t), s.WSURL, &websocket.DialOptions{HTTPClient: s.HTTPClient()})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("dial: %v %+v, want 403", err, resp)
	}

	s.Gateway.SetRoute(localgw.RouteConnect, localgw.LambdaInvoke(allow.URL+invokePath, allow.Client()))
	s.Gateway.SetRoute(localgw.RouteDefault, localgw.LambdaInvoke(crash.URL+invokePath, crash.Client()))
	s.Gateway.SetRoute("echo", localgw.TwoWay(localgw.LambdaInvoke(echo.URL+invokePath, echo.Client())))
	c := dial(t, s, "", nil)
	id := (<-connected).RequestContext.ConnectionID
	ctx := testCtx(t)

	_ = c.Write(ctx, websocket.MessageText, []byte(`{"action":"echo"}`))
	if got := readText(t, c); got != `{"echo":true}` {
		t.Errorf("route response %q", got)
	}
	_ = c.Write(ctx, websocket.MessageText, []byte(`hello`))
	if ev := <-crashed; ev.Body != "hello" || ev.RequestContext.EventType != "MESSAGE" {
		t.Errorf("event %+v", ev.RequestContext)
	}
	want := regexp.MustCompile(`^\{"message": "Internal server error", "connectionId":"` + regexp.QuoteMeta(id) + `", "requestId":"[A-Za-z0-9_-]{15}="\}$`)
	if got := readText(t, c); !want.MatchString(got) {
		t.Errorf("frame %q", got)
	}
}

func TestHandlerFuncIsAnIntegration(t *testing.T) {
	var in localgw.Integration = localgw.HandlerFunc(func(_ context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return events.APIGatewayProxyResponse{StatusCode: 200, Body: ev.Body}, nil
	})
	resp, err := in.Invoke(context.Background(), events.APIGatewayWebsocketProxyRequest{Body: "x"})
	if err != nil || resp.Body != "x" {
		t.Errorf("%+v %v", resp, err)
	}
}

// A failing integration is logged with its route key and the request id
// the client's error frame carries (and the integration's event had), so a
// developer can match the frame a client got to the failure: a function
// error, an unreachable endpoint, a timeout, and a failing $connect.
func TestIntegrationFailuresNameRouteAndRequest(t *testing.T) {
	crash, crashed := fakeInvoke(t, 200, map[string]string{"X-Amz-Function-Error": "Unhandled"}, `{"errorMessage":"boom","errorType":"Runtime.ExitError"}`)
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL + invokePath
	gone.Close()
	logs := &syncbuf.Buffer{}
	connects := newSink()
	release, finished := make(chan struct{}), make(chan struct{})
	var slowCalled atomic.Bool
	s := localgwtest.Start(t, localgw.Config{
		Logger:             slog.New(slog.NewJSONHandler(logs, nil)),
		IntegrationTimeout: 100 * time.Millisecond,
		Routes: map[string]localgw.Integration{
			localgw.RouteConnect: connects.handler(ok()),
			"crash":              localgw.LambdaInvoke(crash.URL+invokePath, crash.Client()),
			"gone":               localgw.LambdaInvoke(goneURL, nil),
			"slow": localgw.HandlerFunc(func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
				slowCalled.Store(true)
				defer close(finished)
				<-release // ignores its ctx, as a stuck function would
				return ok(), nil
			}),
		},
	})
	t.Cleanup(func() { // before the gateway's cleanup (goleak)
		close(release)
		if slowCalled.Load() {
			<-finished
		}
	})
	c, id := connect(t, s, connects)
	ctx := testCtx(t)

	// logged returns the gateway's log record for route and request id.
	logged := func(route, requestID string) map[string]any {
		t.Helper()
		var found map[string]any
		eventually(t, "the log line of route "+route, func() bool {
			for _, line := range strings.Split(logs.String(), "\n") {
				var rec map[string]any
				if json.Unmarshal([]byte(line), &rec) == nil && rec["route"] == route && rec["requestId"] == requestID {
					found = rec
					return true
				}
			}
			return false
		})
		return found
	}
	frame := regexp.MustCompile(`^\{"message": "([^"]+)", "connectionId":"` + regexp.QuoteMeta(id) + `", "requestId":"([A-Za-z0-9_-]{15}=)"\}$`)
	for _, tc := range []struct{ route, message, logMsg, errText string }{
		{"crash", "Internal server error", "localgw: route integration failed", "Runtime.ExitError: boom"},
		{"gone", "Internal server error", "localgw: route integration failed", "is the function's invoke endpoint"},
		{"slow", "Endpoint request timed out", "localgw: route integration timed out", ""},
	} {
		_ = c.Write(ctx, websocket.MessageText, []byte(`{"action":"`+tc.route+`"}`))
		m := frame.FindStringSubmatch(readText(t, c))
		if m == nil || m[1] != tc.message {
			t.Fatalf("%s: frame %q, want API Gateway's %q frame", tc.route, m, tc.message)
		}
		rec := logged(tc.route, m[2])
		if rec["msg"] != tc.logMsg || rec["connectionId"] != id || rec["level"] != "ERROR" {
			t.Errorf("%s: log record %v", tc.route, rec)
		}
		if err, _ := rec["err"].(string); !strings.Contains(err, tc.errText) {
			t.Errorf("%s: logged error %q lacks %q", tc.route, err, tc.errText)
		}
		if tc.route == "crash" {
			if ev := <-crashed; ev.RequestContext.RequestID != m[2] {
				t.Errorf("the function got request %s, the client %s", ev.RequestContext.RequestID, m[2])
			}
		}
	}

	// $connect: the upgrade fails with 502 and the log names $connect and
	// the request the function received.
	s.Gateway.SetRoute(localgw.RouteConnect, localgw.LambdaInvoke(crash.URL+invokePath, crash.Client()))
	_, resp, err := websocket.Dial(ctx, s.WSURL, &websocket.DialOptions{HTTPClient: s.HTTPClient()})
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("dial with a crashing $connect: %v %+v, want 502", err, resp)
	}
	ev := <-crashed
	if rec := logged(localgw.RouteConnect, ev.RequestContext.RequestID); rec["connectionId"] != ev.RequestContext.ConnectionID {
		t.Errorf("$connect log record %v", rec)
	}
}
