package localgw_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/pkg/localgw"
)

func getBody(t *testing.T, hc *http.Client, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestMetricsEndpoints(t *testing.T) {
	s, connects, disconnects, defaults := limitsGateway(t, localgw.Config{})
	c1, id1 := connect(t, s, connects)
	c2, id2 := connect(t, s, connects)
	api := s.ManagementClient()
	ctx := testCtx(t)
	_ = c1.Write(ctx, websocket.MessageText, []byte("in"))
	defaults.next(t)
	_ = post(ctx, api, id2, []byte("out"))
	readText(t, c2)
	eventually(t, "messages_out_total 1", func() bool { return s.Gateway.Metrics().MessagesOutTotal == 1 })
	_ = post(ctx, api, "L0SM9cOFvHcCIhw=", []byte("gone"))
	_ = c1.Close(websocket.StatusNormalClosure, "")
	assertDisconnect(t, disconnects, id1, 1000, "")

	resp, body := getBody(t, s.HTTPClient(), s.BaseURL+"/metrics.json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/metrics.json %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Decode generically: the keys are the contract the dashboard reads.
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"active_connections": 1, "connects_total": 2, "disconnects_total": 1, "connect_rejections_total": 0,
		"auth_failures_total": 0, "messages_in_total": 1,
	}
	for k, v := range want {
		if got, ok := m[k].(float64); !ok || got != v {
			t.Errorf("%s = %v, want %v (keys: %s)", k, m[k], v, keys(m))
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil {
		t.Errorf("time %v: %v", m["time"], err)
	}
	if up, _ := m["uptime_seconds"].(float64); up <= 0 {
		t.Errorf("uptime_seconds %v", m["uptime_seconds"])
	}
	if _, ok := m["manager"]; ok {
		t.Error(`"manager" present without a reporter`)
	}
	mg := m["management"].(map[string]any)
	if mg["requests_total"].(float64) != 2 {
		t.Errorf("management.requests_total %v", mg["requests_total"])
	}
	errs := mg["errors_total"].(map[string]any)
	for _, k := range []string{"GoneException", "PayloadTooLargeException", "ForbiddenException", "LimitExceededException", "InternalServerErrorException"} {
		if _, ok := errs[k]; !ok {
			t.Errorf("errors_total lacks %s", k)
		}
	}
	if errs["GoneException"].(float64) != 1 {
		t.Errorf("GoneException %v", errs["GoneException"])
	}
	lat := mg["latency_ms"].(map[string]any)
	if !(lat["p50"].(float64) > 0 && lat["p50"].(float64) <= lat["p90"].(float64) && lat["p90"].(float64) <= lat["p99"].(float64)) {
		t.Errorf("latency_ms %v", lat)
	}
	if m["messages_out_total"].(float64) != 1 {
		t.Errorf("messages_out_total %v", m["messages_out_total"])
	}

	s.Gateway.SetManagerReporter(func() localgw.ManagerMetrics {
		return localgw.ManagerMetrics{BreakerState: "half-open", SendsTotal: 7, SendErrorsTotal: 2, LatencyMS: localgw.LatencyMS{P50: 1, P90: 2, P99: 3}}
	})
	_, body = getBody(t, s.HTTPClient(), s.BaseURL+"/metrics.json")
	var withMgr struct {
		Manager *localgw.ManagerMetrics `json:"manager"`
	}
	_ = json.Unmarshal(body, &withMgr)
	if withMgr.Manager == nil || withMgr.Manager.BreakerState != "half-open" || withMgr.Manager.SendsTotal != 7 || withMgr.Manager.LatencyMS.P99 != 3 {
		t.Errorf("manager %+v from %s", withMgr.Manager, body)
	}

	resp, body = getBody(t, s.HTTPClient(), s.BaseURL+"/metrics")
	text := string(body)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	for _, line := range []string{
		"# TYPE localgw_active_connections gauge\nlocalgw_active_connections 1\n",
		"localgw_connects_total 2\n",
		"localgw_disconnects_total 1\n",
		"localgw_messages_in_total 1\n",
		`localgw_management_errors_total{type="GoneException"} 1` + "\n",
		`localgw_management_errors_total{type="LimitExceededException"} 0` + "\n",
		"# TYPE localgw_management_latency_seconds summary\n",
		`localgw_management_latency_seconds{quantile="0.99"} `,
		"localgw_management_latency_seconds_count 2\n",
		`streamer_manager_breaker_state{state="half-open"} 1` + "\n",
		`streamer_manager_breaker_state{state="open"} 0` + "\n",
		"streamer_manager_sends_total 7\n",
		`streamer_manager_send_latency_seconds{quantile="0.5"} 0.001` + "\n",
	} {
		contains(t, text, line)
	}
	// Every sample line is "name[{labels}] value".
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if f := strings.Fields(l); len(f) != 2 {
			t.Errorf("malformed sample line %q", l)
		}
	}
	s.Gateway.SetManagerReporter(nil)
	if m := s.Gateway.Metrics(); m.Manager != nil {
		t.Error("manager still reported after SetManagerReporter(nil)")
	}
}

func TestAuthFailuresCountOnly401And403(t *testing.T) {
	statuses := []int{401, 403, 400}
	var i atomic.Int64
	s, _, _, _ := limitsGateway(t, localgw.Config{})
	s.Gateway.SetRoute(localgw.RouteConnect, localgw.HandlerFunc(func(_ context.Context, _ events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		st := statuses[int(i.Add(1)-1)%len(statuses)]
		return events.APIGatewayProxyResponse{StatusCode: st}, nil
	}))
	for range statuses {
		if _, _, err := websocket.Dial(testCtx(t), s.WSURL, &websocket.DialOptions{HTTPClient: s.HTTPClient()}); err == nil {
			t.Fatal("upgrade accepted")
		}
	}
	if m := s.Gateway.Metrics(); m.AuthFailuresTotal != 2 || m.ConnectRejectionsTotal != 3 {
		t.Errorf("auth_failures_total %d connect_rejections_total %d, want 2 and 3", m.AuthFailuresTotal, m.ConnectRejectionsTotal)
	}
}
