package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/examples/chat"
	"github.com/pay-theory/streamer/internal/syncbuf"
	"github.com/pay-theory/streamer/lambda/shared/boot/boottest"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
	"github.com/pay-theory/streamer/pkg/store"
)

// A cold start without its table fails with one JSON line naming the
// variable, and exit code 1 (the runtime then reports the failed init).
func TestColdStartWithoutTable(t *testing.T) {
	logs := &syncbuf.Buffer{}
	env := map[string]string{"LOG_LEVEL": "loud"}
	if code := run(func(k string) string { return env[k] }, logs); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"value":"loud"`) ||
		!strings.Contains(lines[1], `"msg":"cold start failed: the function cannot serve requests","error":"CONNECTIONS_TABLE is not set`) {
		t.Errorf("log:\n%s", logs)
	}
}

// The real cold start and handler, against a DynamoDB-API endpoint that
// records every operation and a gateway's @connections API, through every
// path that touches the table: together they call exactly
// chat.DynamoDBActions (what the function's role must grant).
func TestDynamoDBOperations(t *testing.T) {
	db := boottest.StartDynamoDB(t)
	gw := localgwtest.Start(t, localgw.Config{})
	getenv := db.Getenv(t, map[string]string{contract.EnvConnectionsTable: db.Table})
	h, err := build(t.Context(), getenv, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })

	// Two live connections (alice sends, bob receives) and one gone.
	for range 2 {
		c, _, err := websocket.Dial(t.Context(), gw.WSURL, &websocket.DialOptions{HTTPClient: gw.HTTPClient()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	ids := gw.Gateway.ConnectionIDs()
	for i, id := range append(ids, "goneConnection1=") {
		rec := store.Connection{ConnectionID: id, UserID: fmt.Sprint("user-", i), TenantID: "acme", Endpoint: gw.ManagementEndpoint}
		if err := db.Store.Save(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
	}
	message := func(from string) events.APIGatewayWebsocketProxyRequest {
		var ev events.APIGatewayWebsocketProxyRequest
		ev.Body = `{"action":"sendmessage","data":"hi"}`
		ev.RequestContext.RouteKey, ev.RequestContext.ConnectionID, ev.RequestContext.RequestID = chat.Route, from, "req-"+from
		return ev
	}
	for _, c := range []struct {
		name, from, want string
	}{
		{"sent, one stale", ids[0], `{"action":"sent","recipients":1,"stale":1}`},
		{"sender without a record", "noRecordHere12=", `{"action":"error","recipients":0,"error":"this connection is no longer registered: reconnect"}`},
	} {
		resp, err := h.Handle(t.Context(), message(c.from))
		if err != nil || resp.Body != c.want {
			t.Fatalf("%s: %+v %v; want %s", c.name, resp, err, c.want)
		}
		t.Logf("%s: DynamoDB %v", c.name, db.Take())
	}
	got, want := db.Ops(), slices.Sorted(slices.Values(chat.DynamoDBActions()))
	if !slices.Equal(got, want) {
		t.Errorf("the function called DynamoDB %v; chat.DynamoDBActions says %v", got, want)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile(`"dynamodb:(\w+)"`).FindAllStringSubmatch(string(readme), -1) {
		documented = append(documented, m[1])
	}
	if slices.Sort(documented); !slices.Equal(slices.Compact(documented), want) {
		t.Errorf("README.md's policy grants DynamoDB %v; the function calls %v", documented, want)
	}
}
