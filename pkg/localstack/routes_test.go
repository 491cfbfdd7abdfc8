package localstack_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/localstack/localstacktest"
)

const invokePath = "/2015-03-31/functions/function/invocations"

// invokeEndpoint is a Lambda Invoke API (what aws-lambda-rie serves)
// answering every event with resp and handing the events to the test.
func invokeEndpoint(t *testing.T, resp events.APIGatewayProxyResponse) (string, <-chan events.APIGatewayWebsocketProxyRequest) {
	t.Helper()
	got := make(chan events.APIGatewayWebsocketProxyRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev events.APIGatewayWebsocketProxyRequest
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path != invokePath || json.Unmarshal(b, &ev) != nil {
			http.Error(w, "not an invocation", http.StatusBadRequest)
			return
		}
		got <- ev
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + invokePath, got
}

// closedURL is an Invoke URL nothing listens at.
func closedURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL + invokePath
	srv.Close()
	return u
}

func yes() *bool { b := true; return &b }

func TestRoutesOfYourOwn(t *testing.T) {
	echoURL, echoed := invokeEndpoint(t, events.APIGatewayProxyResponse{StatusCode: 200, Body: `{"echo":true}`})
	quietURL, quiet := invokeEndpoint(t, events.APIGatewayProxyResponse{StatusCode: 200, Body: `dropped`})
	s := localstacktest.Start(t, localstack.Config{Routes: []localstack.Route{
		{Key: "sendmessage", Target: quietURL},
		{Key: "echo", Target: echoURL, TwoWay: yes()},
		{Key: "ping", Target: localstack.BuiltinDefault, TwoWay: yes()},
	}})
	want := []localstack.RouteInfo{
		{Key: "$connect", Target: localstack.BuiltinConnect},
		{Key: "$disconnect", Target: localstack.BuiltinDisconnect},
		{Key: "$default", Target: localstack.BuiltinDefault, TwoWay: true},
		{Key: "echo", Target: echoURL, TwoWay: true},
		{Key: "ping", Target: localstack.BuiltinDefault, TwoWay: true},
		{Key: "sendmessage", Target: quietURL},
	}
	if got, _ := json.Marshal(s.Routes); string(got) != string(must(json.Marshal(want))) {
		t.Errorf("routes in effect:\n%s\nwant\n%s", got, must(json.Marshal(want)))
	}
	if s.RouteSelectionExpression != "$request.body.action" {
		t.Errorf("selection expression %q", s.RouteSelectionExpression)
	}

	ctx := testCtx(t)
	c, err := s.Dial(ctx, "alice", "acme")
	if err != nil {
		t.Fatal(err)
	}
	// One-way: the function runs, its body is dropped (as on AWS); then a
	// two-way route's body comes back: the first frame is the echo.
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"action":"sendmessage","data":"hi"}`))
	if ev := <-quiet; ev.RequestContext.RouteKey != "sendmessage" || ev.RequestContext.ConnectionID != c.ID || ev.Body != `{"action":"sendmessage","data":"hi"}` {
		t.Errorf("sendmessage event %+v", ev)
	}
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"action":"echo"}`))
	if _, b, err := c.Read(ctx); err != nil || string(b) != `{"echo":true}` {
		t.Fatalf("first frame %q %v, want the two-way route's body (and not the one-way route's)", b, err)
	}
	<-echoed
	// A builtin on a key of its own: the $default handler answers pings.
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"action":"ping"}`))
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), `"pong"`) {
		t.Errorf("ping: %q %v", b, err)
	}
}

// $connect replaced by your own authorizer function: its 403 refuses the
// upgrade with 403, and its event is API Gateway's $connect event.
func TestConnectOfYourOwn(t *testing.T) {
	denyURL, denied := invokeEndpoint(t, events.APIGatewayProxyResponse{StatusCode: 403, Body: `{"message":"Forbidden"}`})
	s := localstacktest.Start(t, localstack.Config{Routes: []localstack.Route{{Key: "$connect", Target: denyURL}}})
	ctx := testCtx(t)
	_, resp, err := websocket.Dial(ctx, s.WebSocketURL+"?Authorization=x", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial: %v %+v, want 403", err, resp)
	}
	if ev := <-denied; ev.RequestContext.EventType != "CONNECT" || ev.QueryStringParameters["Authorization"] != "x" {
		t.Errorf("$connect event %+v", ev)
	}
	if s.Routes[0] != (localstack.RouteInfo{Key: "$connect", Target: denyURL}) {
		t.Errorf("routes %+v", s.Routes)
	}
}

// Bad routes are ErrConfig, each naming its route, all reported at once;
// an Invoke URL nothing listens at is ErrRouteUnreachable, naming every
// route that uses it. Either way nothing started: no key pair was written.
func TestRouteErrors(t *testing.T) {
	okURL, _ := invokeEndpoint(t, events.APIGatewayProxyResponse{StatusCode: 200})
	gone := closedURL(t)
	for _, tc := range []struct {
		name   string
		routes []localstack.Route
		expr   string
		is     error
		want   []string
	}{
		{"unknown builtin", []localstack.Route{{Key: "x", Target: "builtin:chat"}}, "", localstack.ErrConfig,
			[]string{`route "x": unknown target "builtin:chat": the builtin handlers are builtin:connect, builtin:disconnect and builtin:default`}},
		{"builtin on the wrong key", []localstack.Route{{Key: "x", Target: localstack.BuiltinConnect}, {Key: "$connect", Target: localstack.BuiltinDefault}}, "", localstack.ErrConfig,
			[]string{`route "x": builtin:connect handles only $connect`, `route "$connect": builtin:default handles messages`}},
		{"reserved key", []localstack.Route{{Key: "$chat", Target: okURL}}, "", localstack.ErrConfig, []string{"route keys starting with $ are reserved"}},
		{"empty key", []localstack.Route{{Key: "", Target: okURL}}, "", localstack.ErrConfig, []string{"the route key is empty"}},
		{"spaces", []localstack.Route{{Key: " x", Target: okURL}}, "", localstack.ErrConfig, []string{"starts or ends with a space"}},
		{"control", []localstack.Route{{Key: "a\x1bb", Target: okURL}}, "", localstack.ErrConfig, []string{"control or invisible character"}},
		{"long", []localstack.Route{{Key: strings.Repeat("k", 129), Target: okURL}}, "", localstack.ErrConfig, []string{"129 bytes long: at most 128"}},
		{"twice", []localstack.Route{{Key: "x", Target: okURL}, {Key: "x", Target: okURL}}, "", localstack.ErrConfig, []string{`route "x": given twice (routes 1 and 2)`}},
		{"no target", []localstack.Route{{Key: "x"}}, "", localstack.ErrConfig, []string{"no target: give a Lambda Invoke URL"}},
		{"not a URL", []localstack.Route{{Key: "x", Target: "lambda"}}, "", localstack.ErrConfig, []string{`unknown target "lambda": want a Lambda Invoke URL`}},
		{"not the invoke path", []localstack.Route{{Key: "x", Target: "http://127.0.0.1:9001"}}, "", localstack.ErrConfig,
			[]string{`is not a Lambda Invoke URL: its path must be /2015-03-31/functions/NAME/invocations (the emulator's: http://127.0.0.1:9001/2015-03-31/functions/function/invocations)`}},
		{"credentials", []localstack.Route{{Key: "x", Target: "http://u:secret@127.0.0.1:9001" + invokePath}}, "", localstack.ErrConfig, []string{"carries credentials", "u:xxxxx@"}},
		{"unreachable", []localstack.Route{{Key: "a", Target: gone}, {Key: "b", Target: gone}, {Key: "c", Target: okURL}}, "", localstack.ErrRouteUnreachable,
			[]string{`route "a": nothing answers at 127.0.0.1:`, `route "b": nothing answers at`, "connection refused", "start the function's emulator first"}},
		{"selection expression", nil, "action", localstack.ErrConfig, []string{`RouteSelectionExpression "action" has no $request.body variable`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keyDir := filepath.Join(t.TempDir(), "keys")
			cfg := localstack.Config{Listen: "127.0.0.1:0", KeyDir: keyDir, Routes: tc.routes}
			cfg.Gateway.RouteSelectionExpression = tc.expr
			s, err := localstack.Start(testCtx(t), cfg)
			if err == nil {
				_ = s.Close(testCtx(t))
				t.Fatal("started")
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("%v: not %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %v", err)
			}
			var re *localstack.RouteError
			if tc.routes != nil && (!errors.As(err, &re) || re.Key != tc.routes[0].Key) {
				t.Errorf("%v: not a *RouteError for %q", err, tc.routes[0].Key)
			}
			if _, err := os.Stat(keyDir); !os.IsNotExist(err) {
				t.Errorf("a refused configuration wrote %s (%v)", keyDir, err)
			}
		})
	}

	// A key set both as a Route and an Integration.
	_, err := localstack.Start(testCtx(t), localstack.Config{
		Listen: "127.0.0.1:0", KeyDir: t.TempDir(),
		Routes:       []localstack.Route{{Key: "x", Target: okURL}},
		Integrations: map[string]localgw.Integration{"x": localgw.HandlerFunc(nil)},
	})
	if !errors.Is(err, localstack.ErrConfig) || !strings.Contains(err.Error(), "both in Config.Routes and Config.Integrations") {
		t.Errorf("route and integration on one key: %v", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// An Invoke URL gets one invocation at a time, even from clients sending
// at once, as the one execution environment behind it (the emulator)
// serves them: aws-lambda-rie crashes on a second concurrent one.
func TestInvocationsOfOneURLQueue(t *testing.T) {
	var (
		mu                sync.Mutex
		inFlight, maxSeen int
		calls             int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		calls++
		maxSeen = max(maxSeen, inFlight)
		mu.Unlock()
		// Long enough for the other clients' messages to arrive meanwhile.
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		_, _ = io.WriteString(w, `{"statusCode":200,"body":"done"}`)
	}))
	t.Cleanup(srv.Close)
	s := localstacktest.Start(t, localstack.Config{Routes: []localstack.Route{
		{Key: "work", Target: srv.URL + invokePath, TwoWay: yes()},
		{Key: "same", Target: srv.URL + invokePath, TwoWay: yes()}, // the same function
	}})
	ctx := testCtx(t)
	var clients []*localstacktest.Client
	for i := range 4 {
		c, err := s.Dial(ctx, fmt.Sprint("u", i), "t")
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	for i, c := range clients {
		route := []string{"work", "same"}[i%2]
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"action":"`+route+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range clients {
		if _, b, err := c.Read(ctx); err != nil || string(b) != "done" {
			t.Fatalf("read %q %v", b, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 4 || maxSeen != 1 {
		t.Errorf("%d invocations, at most %d at once; want 4, one at a time", calls, maxSeen)
	}
}
