package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/examples/chat"
	"github.com/pay-theory/streamer/internal/syncbuf"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/localstack/localstacktest"
	"github.com/pay-theory/streamer/pkg/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stack is a whole local stack (gateway, builtin handlers, DynamoDB API)
// with the chat handler on a two-way sendmessage route, so the sender gets
// the Reply: a reply means the broadcast has ended.
func stack(t *testing.T) (*localstacktest.Stack, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	var h *chat.Handler
	s := localstacktest.Start(t, localstack.Config{Integrations: map[string]localgw.Integration{
		chat.Route: localgw.TwoWay(localgw.HandlerFunc(func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return h.Handle(ctx, ev)
		})),
	}})
	var err error
	h, err = chat.New(chat.Deps{
		Store:  s.Store,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Broadcaster: func(endpoint string) (chat.Broadcaster, error) {
			return connection.New(connection.NewManagementClient(endpoint, connection.ClientOptions{}), s.Store,
				connection.Config{FlushInterval: -1, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the stack's own cleanup (LIFO): no message is in flight
		if err := h.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s, logs
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func send(t *testing.T, c *localstacktest.Client, msg string) {
	t.Helper()
	if err := c.Write(ctxFor(t), websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// next reads c's next frame as a Chat (action "message") or a Reply.
func next(t *testing.T, c *localstacktest.Client) (chat.Chat, chat.Reply) {
	t.Helper()
	_, b, err := c.Read(ctxFor(t))
	if err != nil {
		t.Fatalf("%s read: %v", c.UserID, err)
	}
	var m chat.Chat
	var r chat.Reply
	if json.Unmarshal(b, &m) != nil || json.Unmarshal(b, &r) != nil {
		t.Fatalf("%s got %q: not JSON", c.UserID, b)
	}
	return m, r
}

func TestTenantChat(t *testing.T) {
	s, _ := stack(t)
	ctx := ctxFor(t)
	dial := func(user, tenant string) *localstacktest.Client {
		c, err := s.Dial(ctx, user, tenant)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob, carol := dial("alice", "acme"), dial("bob", "acme"), dial("carol", "globex")

	send(t, alice, `{"action":"sendmessage","data":"hi acme"}`)
	if m, _ := next(t, bob); m.Action != "message" || m.From != "alice" || m.ConnectionID != alice.ID || string(m.Data) != `"hi acme"` || !strings.HasSuffix(m.SentAt, "Z") {
		t.Errorf("bob got %+v", m)
	}
	if _, r := next(t, alice); r != (chat.Reply{Action: "sent", Recipients: 1}) {
		t.Errorf("alice's reply %+v, want sent to 1 (her tenant but herself)", r)
	}

	// carol's own message, sent to herself too, is the first frame she
	// gets: nothing of acme's reached her.
	send(t, carol, `{"action":"sendmessage","data":{"text":"globex only"},"include_sender":true}`)
	if m, _ := next(t, carol); m.From != "carol" || string(m.Data) != `{"text":"globex only"}` {
		t.Errorf("carol's first frame %+v, want her own message", m)
	}
	if _, r := next(t, carol); r.Recipients != 1 {
		t.Errorf("carol's reply %+v", r)
	}
	send(t, alice, `{"action":"sendmessage","data":"again","include_sender":true}`)
	for _, c := range []*localstacktest.Client{alice, bob} {
		if m, _ := next(t, c); string(m.Data) != `"again"` {
			t.Errorf("%s got %+v", c.UserID, m)
		}
	}
	if _, r := next(t, alice); r.Recipients != 2 {
		t.Errorf("alice's reply %+v, want 2 (include_sender)", r)
	}
}

// Records of connections that are gone (their $disconnect lost) over
// several listing pages: every live connection still receives, exactly the
// stale records are removed, and the sender is never one of them.
func TestStaleRecordsAreRemovedAndTheRestReceive(t *testing.T) {
	s, logs := stack(t)
	ctx := ctxFor(t)
	alice, err := s.Dial(ctx, "alice", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := s.Dial(ctx, "bob", "acme")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.Store.Get(ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	const stale = 150 // more than one page (store.DefaultListPageSize)
	for i := range stale {
		gone := rec
		gone.ConnectionID, gone.UserID = fmt.Sprintf("gone%011d=", i), fmt.Sprintf("gone-%d", i)
		if err := s.Store.Save(ctx, gone); err != nil {
			t.Fatal(err)
		}
	}

	send(t, alice, `{"action":"sendmessage","data":"still here?"}`)
	if m, _ := next(t, bob); string(m.Data) != `"still here?"` {
		t.Errorf("bob got %+v", m)
	}
	if _, r := next(t, alice); r != (chat.Reply{Action: "sent", Recipients: 1, Stale: stale}) {
		t.Errorf("reply %+v, want 1 recipient and %d stale", r, stale)
	}
	var left []string
	for c, err := range store.All(ctx, s.Store, store.ListQuery{TenantID: "acme"}) {
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, c.ConnectionID)
	}
	if len(left) != 2 {
		t.Errorf("records left in acme: %d %v, want alice's and bob's", len(left), left)
	}
	if !strings.Contains(logs.String(), `"msg":"message sent"`) || !strings.Contains(logs.String(), `"stale":150`) {
		t.Errorf("no summary line:\n%s", logs)
	}
}

func TestRefusals(t *testing.T) {
	s, logs := stack(t)
	ctx := ctxFor(t)
	alice, err := s.Dial(ctx, "alice", "acme")
	if err != nil {
		t.Fatal(err)
	}
	// (A body that is not JSON never gets here: route selection sends it
	// to $default.)
	for _, msg := range []string{`{"action":"sendmessage"}`, `{"action":"sendmessage","data":null}`, `{"action":"sendmessage","data":"x","include_sender":"yes"}`} {
		send(t, alice, msg)
		if _, r := next(t, alice); r.Action != "error" || !strings.Contains(r.Error, `want {"action":"sendmessage","data":...}`) {
			t.Errorf("%s: reply %+v", msg, r)
		}
	}
	// Data that fits a client message but not, wrapped in a Chat, a
	// delivery; sent in frames of at most 32 KB, as API Gateway requires.
	big := `{"action":"sendmessage","data":"` + strings.Repeat("x", connection.MaxMessageBytes-100) + `"}`
	w, err := alice.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	for chunk := range slices.Chunk([]byte(big), localgw.MaxFrameBytes) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, r := next(t, alice); r.Error != "the message is too large: API Gateway delivers at most 128 KB" {
		t.Errorf("oversized: reply %+v", r)
	}
	if _, _, err := s.Store.Delete(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	send(t, alice, `{"action":"sendmessage","data":"x"}`)
	if _, r := next(t, alice); r.Error != "this connection is no longer registered: reconnect" {
		t.Errorf("no record: reply %+v", r)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("a refusal logged as an error:\n%s", logs)
	}
}

// A store failure is a generic 500 for the client; the cause is only logged.
func TestStoreFailureIsNotShownToTheClient(t *testing.T) {
	logs := &syncbuf.Buffer{}
	h, err := chat.New(chat.Deps{
		Store:       failingStore{},
		Logger:      slog.New(slog.NewJSONHandler(logs, nil)),
		Broadcaster: func(string) (chat.Broadcaster, error) { return nil, errors.New("unused") },
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayWebsocketProxyRequest
	ev.Body = `{"action":"sendmessage","data":"x"}`
	ev.RequestContext.ConnectionID, ev.RequestContext.RequestID = "L0SM9cOFvHcCIhw=", "req-1"
	resp, err := h.Handle(context.Background(), ev)
	if err != nil || resp.StatusCode != 500 || resp.Body != `{"action":"error","recipients":0,"error":"Internal server error"}` {
		t.Errorf("%+v %v", resp, err)
	}
	if !strings.Contains(logs.String(), `"error":"table on fire"`) || !strings.Contains(logs.String(), `"request_id":"req-1"`) {
		t.Errorf("log lacks the cause or the request id:\n%s", logs)
	}
	if _, err := chat.New(chat.Deps{Store: failingStore{}}); err == nil {
		t.Error("New without a Broadcaster succeeded")
	}
}

type failingStore struct{}

func (failingStore) Get(context.Context, string) (store.Connection, error) {
	return store.Connection{}, errors.New("table on fire")
}

func (failingStore) List(context.Context, store.ListQuery) (store.Page, error) {
	return store.Page{}, errors.New("table on fire")
}
