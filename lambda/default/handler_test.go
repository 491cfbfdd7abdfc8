package defaultroute_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/contract"
	defaultroute "github.com/pay-theory/streamer/lambda/default"
	"github.com/pay-theory/streamer/lambda/shared/lambdatest"
	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/dynamotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	h       *defaultroute.Handler
	ep      *dynamotest.Endpoint
	logs    *lambdatest.Buffer
	metrics *lambdatest.Buffer
	now     time.Time
}

const connID = "R1kmxc2VNjMCFIA="

// setup saves a record connected a minute ago on minidyn (unless st is set).
func setup(t *testing.T, st defaultroute.Store) *env {
	t.Helper()
	e := &env{logs: &lambdatest.Buffer{}, metrics: &lambdatest.Buffer{}, now: time.Now().UTC().Truncate(time.Millisecond)}
	if st == nil {
		e.ep = dynamotest.Start(t)
		st = e.ep.Store
		at := e.now.Add(-time.Minute)
		if err := e.ep.Store.Save(context.Background(), store.Connection{ConnectionID: connID, UserID: "u", TenantID: "t",
			Endpoint: "https://x/prod", ConnectedAt: at, LastPing: at}); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	e.h, err = defaultroute.New(defaultroute.Deps{
		Store:   st,
		Logger:  observability.NewLogger(observability.LogConfig{Writer: e.logs, Function: "default", Level: slog.LevelDebug}),
		Metrics: observability.NewEMF(observability.EMFConfig{Writer: e.metrics, Environment: "test"}),
		Now:     func() time.Time { return e.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) record(t *testing.T) store.Connection {
	t.Helper()
	c, err := e.ep.Store.Get(context.Background(), connID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMessageTouchesRecord(t *testing.T) {
	e := setup(t, nil)
	req := lambdatest.Event(t, "testdata/message.json", map[string]string{"CONNECTION_ID": connID})
	for i := 0; i < 2; i++ {
		resp, err := e.h.Handle(context.Background(), req)
		if err != nil || resp.StatusCode != 200 || resp.Body != "" {
			t.Fatalf("Handle = %d %q, %v; want 200 with no body (nothing to send back)", resp.StatusCode, resp.Body, err)
		}
	}
	c := e.record(t)
	if c.MessagesReceived != 2 || !c.LastPing.Equal(e.now) {
		t.Errorf("record messages_received %d last_ping %v, want 2 and %v", c.MessagesReceived, c.LastPing, e.now)
	}
	lines := lambdatest.Lines(t, e.logs.String())
	lambdatest.CheckCommon(t, lines)
	for _, l := range lines {
		if l["operation"] != "message" || l["correlation_id"] != "R1knPH17NjMFftw=" {
			t.Errorf("log line %v", l)
		}
	}
	if e.metrics.String() != "" {
		t.Errorf("a plain message emits no metric: %s", e.metrics.String())
	}
}

func TestPingIsAnsweredWithPong(t *testing.T) {
	for _, c := range []struct {
		name   string
		mutate func(*testing.T, *env) (route string)
	}{
		{"body action on $default", func(*testing.T, *env) string { return "" }},
		{"ping route", func(*testing.T, *env) string { return defaultroute.RoutePing }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, nil)
			req := lambdatest.Event(t, "testdata/ping.json", map[string]string{"CONNECTION_ID": connID})
			if r := c.mutate(t, e); r != "" {
				req.RequestContext.RouteKey = r
			}
			resp, err := e.h.Handle(context.Background(), req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("Handle = %d, %v", resp.StatusCode, err)
			}
			var pong struct {
				Action    string `json:"action"`
				Timestamp string `json:"timestamp"`
			}
			if err := json.Unmarshal([]byte(resp.Body), &pong); err != nil || pong.Action != "pong" {
				t.Fatalf("body %q is not a pong (%v)", resp.Body, err)
			}
			if ts, err := time.Parse(time.RFC3339Nano, pong.Timestamp); err != nil || !ts.Equal(e.now) {
				t.Errorf("pong timestamp %q (%v), want %v", pong.Timestamp, err, e.now)
			}
			if got := e.record(t); got.MessagesReceived != 1 {
				t.Errorf("a ping is a message too: messages_received = %d", got.MessagesReceived)
			}
			doc := lambdatest.OneEMF(t, e.metrics.String())
			if v, _ := doc.Value(contract.MetricMessagesSentPerMinute); v != 1 {
				t.Errorf("MessagesSentPerMinute = %v, want 1 (the pong)", v)
			}
		})
	}
}

func TestMalformedJSONIsStillAMessage(t *testing.T) {
	e := setup(t, nil)
	req := lambdatest.Event(t, "testdata/message.json", map[string]string{"CONNECTION_ID": connID})
	req.Body = `{"action":"ping"` // truncated
	resp, err := e.h.Handle(context.Background(), req)
	if err != nil || resp.StatusCode != 200 || resp.Body != "" {
		t.Fatalf("Handle = %d %q, %v; want 200 and no body", resp.StatusCode, resp.Body, err)
	}
	if got := e.record(t); got.MessagesReceived != 1 {
		t.Errorf("messages_received = %d, want 1", got.MessagesReceived)
	}
}

func TestMessageAfterRecordVanishedIs200(t *testing.T) {
	e := setup(t, nil)
	if _, _, err := e.ep.Store.Delete(context.Background(), connID); err != nil {
		t.Fatal(err)
	}
	req := lambdatest.Event(t, "testdata/ping.json", map[string]string{"CONNECTION_ID": connID})
	resp, err := e.h.Handle(context.Background(), req)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(resp.Body, `"pong"`) {
		t.Fatalf("Handle = %d %q, %v; want 200 pong", resp.StatusCode, resp.Body, err)
	}
	if _, err := e.ep.Store.Get(context.Background(), connID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the touch recreated a deleted record (Get err %v)", err)
	}
	lines := lambdatest.Find(lambdatest.Lines(t, e.logs.String()), "message from a connection without a record (deleted or expired); not recreated")
	if len(lines) != 1 || lines[0]["level"] != "warn" {
		t.Errorf("want one warning, got %v", lines)
	}
}

type failingStore struct{}

func (failingStore) Touch(context.Context, string, time.Time, int64) error {
	return errors.New("ProvisionedThroughputExceededException: table arn:aws:dynamodb:us-east-1:123456789012:table/x")
}

func TestStoreFailureIs500WithoutInternals(t *testing.T) {
	e := setup(t, failingStore{})
	req := lambdatest.Event(t, "testdata/message.json", map[string]string{"CONNECTION_ID": connID})
	resp, err := e.h.Handle(context.Background(), req)
	if err != nil || resp.StatusCode != 500 || resp.Body != defaultroute.BodyInternal {
		t.Fatalf("Handle = %d %q, %v; want 500 generic", resp.StatusCode, resp.Body, err)
	}
	doc := lambdatest.OneEMF(t, e.metrics.String())
	if v, _ := doc.Value(contract.MetricStoreErrors); v != 1 {
		t.Errorf("StoreErrors = %v", v)
	}
}

// TestWhoamiAnswersTheConnectionsOwnID: the answer carries the id of the
// connection that asked (from the gateway's request context) and echoes a
// well-formed request id; it is a message like any other (touched,
// counted) and a message sent (the metric).
func TestWhoamiAnswersTheConnectionsOwnID(t *testing.T) {
	e := setup(t, nil)
	req := lambdatest.Event(t, "testdata/whoami.json", map[string]string{"CONNECTION_ID": connID})
	resp, err := e.h.Handle(context.Background(), req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Handle = %d %q, %v", resp.StatusCode, resp.Body, err)
	}
	var w contract.Whoami
	if err := json.Unmarshal([]byte(resp.Body), &w); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	want := contract.Whoami{Action: contract.ActionWhoami, ConnectionID: connID, RequestID: "req-7f3a.1_x"}
	if w != want {
		t.Errorf("answer %+v, want %+v", w, want)
	}
	if got := e.record(t); got.MessagesReceived != 1 {
		t.Errorf("a whoami is a message too: messages_received = %d", got.MessagesReceived)
	}
	doc := lambdatest.OneEMF(t, e.metrics.String())
	if v, _ := doc.Value(contract.MetricMessagesSentPerMinute); v != 1 {
		t.Errorf("MessagesSentPerMinute = %v, want 1 (the answer)", v)
	}
}

// TestWhoamiEchoesOnlyWellFormedRequestIDs: a request id the contract does
// not allow (too long, other characters, not a string) is left out of the
// answer, which still carries the connection id.
func TestWhoamiEchoesOnlyWellFormedRequestIDs(t *testing.T) {
	long := strings.Repeat("a", contract.MaxWhoamiRequestID)
	for body, echoed := range map[string]string{
		`{"action":"whoami"}`:                                     "",
		`{"action":"whoami","request_id":"` + long + `"}`:         long,
		`{"action":"whoami","request_id":"` + long + `b"}`:        "",
		`{"action":"whoami","request_id":"<script>"}`:             "",
		`{"action":"whoami","request_id":"a b"}`:                  "",
		`{"action":"whoami","request_id":"\u001b[2J"}`:            "",
		`{"action":"whoami","request_id":7}`:                      "no answer",
		`{"action":"whoami","request_id":"ok-1","extra":[1,2,3]}`: "ok-1",
	} {
		e := setup(t, nil)
		req := lambdatest.Event(t, "testdata/whoami.json", map[string]string{"CONNECTION_ID": connID})
		req.Body = body
		resp, err := e.h.Handle(context.Background(), req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: Handle = %d %q, %v", body, resp.StatusCode, resp.Body, err)
		}
		if echoed == "no answer" {
			// Not a whoami the handler can read: an ordinary message.
			if resp.Body != "" {
				t.Errorf("%s: answered %q, want no body", body, resp.Body)
			}
			continue
		}
		var w contract.Whoami
		if err := json.Unmarshal([]byte(resp.Body), &w); err != nil || w.ConnectionID != connID || w.RequestID != echoed {
			t.Errorf("%s: answer %q (%v), want connection %s and request id %q", body, resp.Body, err, connID, echoed)
		}
	}
}

// TestWhoamiAfterRecordVanished: the id comes from the gateway, not the
// table, so a connection whose record is gone still learns it.
func TestWhoamiAfterRecordVanished(t *testing.T) {
	e := setup(t, nil)
	if _, _, err := e.ep.Store.Delete(context.Background(), connID); err != nil {
		t.Fatal(err)
	}
	req := lambdatest.Event(t, "testdata/whoami.json", map[string]string{"CONNECTION_ID": connID})
	resp, err := e.h.Handle(context.Background(), req)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(resp.Body, `"connection_id":"`+connID+`"`) {
		t.Fatalf("Handle = %d %q, %v; want 200 with the connection id", resp.StatusCode, resp.Body, err)
	}
}
