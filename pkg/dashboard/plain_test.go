package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRenderPlainLocal(t *testing.T) {
	var b strings.Builder
	if err := RenderPlain(&b, localSnapshot(), "local http://127.0.0.1:4510/metrics.json"); err != nil {
		t.Fatal(err)
	}
	want := `source: local http://127.0.0.1:4510/metrics.json
time: 2026-11-27T12:00:05Z
counts: since gateway start
active_connections: 42
connections_per_minute: 12
authentication_failures: 3
messages_sent_per_minute: 360
error_rate: 1.25%
latency_p50: 0.400 ms
latency_p99: 2.8 ms
latency_source: @connections latency
breaker_state: closed
send_limit: 37
send_in_flight: 12
send_rate_limit: 0
disconnects_dropped: 2
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestRenderPlainNoData(t *testing.T) {
	var b strings.Builder
	if err := RenderPlain(&b, Snapshot{Warnings: []string{"partial\ndata"}}, "x"); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		name, value, ok := strings.Cut(l, ": ")
		if !ok || name == "" || value == "" {
			t.Errorf("line %q is not name: value", l)
		}
		if strings.ContainsAny(l, "\x1b—") {
			t.Errorf("plain line %q has escapes or the TUI's dash", l)
		}
	}
	for _, want := range []string{"active_connections: n/a\n", "error_rate: n/a\n", "breaker_state: n/a\n", "warning: partial data\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "lambda_errors") {
		t.Error("no Lambda lines for a source without Lambda metrics")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRenderPlainWriteError(t *testing.T) {
	if err := RenderPlain(failWriter{}, localSnapshot(), "x"); err == nil {
		t.Error("a failed write must be reported")
	}
}

func TestOnce(t *testing.T) {
	first := localSnapshot()
	first.ConnectionsPerMinute = Value{}
	src := &fakeSource{results: []fakeResult{{snap: first}, {snap: localSnapshot()}}}
	var b strings.Builder
	if err := Once(context.Background(), Options{Source: src, Out: &b, Window: 15 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if src.Calls() != 1 || src.windows[0] != 15*time.Minute || !strings.Contains(b.String(), "connections_per_minute: n/a\n") {
		t.Errorf("single fetch: calls %d windows %v\n%s", src.Calls(), src.windows, b.String())
	}

	// OnceSettle: a second sample gives the rates.
	src = &fakeSource{results: []fakeResult{{snap: first}, {snap: localSnapshot()}}}
	b.Reset()
	if err := Once(context.Background(), Options{Source: src, Out: &b, OnceSettle: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if src.Calls() != 2 || !strings.Contains(b.String(), "connections_per_minute: 12\n") {
		t.Errorf("settled fetch: calls %d\n%s", src.Calls(), b.String())
	}

	// Errors are returned, nothing is printed.
	boom := errors.New("boom")
	b.Reset()
	if err := Once(context.Background(), Options{Source: &fakeSource{results: []fakeResult{{err: boom}}}, Out: &b}); !errors.Is(err, boom) || b.Len() != 0 {
		t.Errorf("err = %v, output %q", err, b.String())
	}

	// The settle wait honours ctx.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	src = &fakeSource{results: []fakeResult{{snap: first}}}
	if err := Once(ctx, Options{Source: src, Out: &b, OnceSettle: time.Hour}); err == nil {
		t.Error("a cancelled ctx must end Once")
	}
}

func TestSparkline(t *testing.T) {
	cases := []struct {
		in    []float64
		width int
		want  string
	}{
		{nil, 10, ""},
		{[]float64{0, 0, 0}, 0, "▁▁▁"},
		{[]float64{5, 5}, 0, "██"},
		{[]float64{0, 1, 2, 3, 4, 5, 6, 7}, 0, "▁▂▃▄▅▆▇█"},
		{[]float64{0, 1, 2, 3, 4, 5, 6, 7}, 3, "▆▇█"},
		{[]float64{-1, 0, 1}, 0, "▁▅█"},
		{[]float64{1, nan(), 2}, 0, "▅ █"},
	}
	for _, c := range cases {
		if got := Sparkline(c.in, c.width); got != c.want {
			t.Errorf("Sparkline(%v, %d) = %q, want %q", c.in, c.width, got, c.want)
		}
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestValueFormats(t *testing.T) {
	cases := []struct{ got, want string }{
		{Value{}.Count(), "—"}, {Some(3).Count(), "3"}, {Some(2.5).Count(), "2.5"}, {Some(12.4).Count(), "12"},
		{Some(1.2987).Percent(), "1.30%"}, {Value{}.Percent(), "—"},
		{Some(0.25).Millis(), "0.250 ms"}, {Some(12.5).Millis(), "12.5 ms"}, {Value{}.Millis(), "—"},
		{Some(nan()).Count(), "—"},
	}
	for i, c := range cases {
		if c.got != c.want {
			t.Errorf("case %d: %q, want %q", i, c.got, c.want)
		}
	}
}

func TestRenderJSONLocal(t *testing.T) {
	var b strings.Builder
	if err := RenderJSON(&b, localSnapshot(), "local http://127.0.0.1:4510/metrics.json"); err != nil {
		t.Fatal(err)
	}
	want := `{
  "source": "local http://127.0.0.1:4510/metrics.json",
  "time": "2026-11-27T12:00:05Z",
  "counts": "since gateway start",
  "active_connections": 42,
  "connections_per_minute": 12,
  "authentication_failures": 3,
  "messages_sent_per_minute": 360,
  "error_rate": 1.25,
  "latency_p50": 0.4,
  "latency_p99": 2.75,
  "latency_source": "@connections latency",
  "breaker_state": "closed",
  "send_limit": 37,
  "send_in_flight": 12,
  "send_rate_limit": 0,
  "disconnects_dropped": 2,
  "lambda_errors": null,
  "lambda_throttles": null,
  "lambda_cold_starts": null,
  "functions": null,
  "alarms_in_alarm": null,
  "alarms": null,
  "warnings": []
}
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestRenderJSONCloudWatch(t *testing.T) {
	s := cloudSnapshot()
	s.Functions[2].ColdStarts = Value{}
	s.MessagesSentPerMinute = Some(59.891684212135196)
	s.LatencyP50 = Some(0.004736)
	s.Alarms[0].Name = "streamer-prod-lambda-errors\x1b[31m"
	s.Warnings = []string{" alarms: partial\n"}
	var b strings.Builder
	if err := RenderJSON(&b, s, "cloudwatch prod"); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Messages         float64  `json:"messages_sent_per_minute"`
		LatencyP50       float64  `json:"latency_p50"`
		LambdaErrors     *float64 `json:"lambda_errors"`
		LambdaThrottles  *float64 `json:"lambda_throttles"`
		LambdaColdStarts *float64 `json:"lambda_cold_starts"`
		BreakerState     *string  `json:"breaker_state"`
		Functions        []struct {
			Name                                       string
			Invocations, Errors, Throttles, ColdStarts *float64
		} `json:"functions"`
		AlarmsInAlarm *int `json:"alarms_in_alarm"`
		Alarms        []struct {
			Name, State string
			Reason      *string
		} `json:"alarms"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(b.String()), &got); err != nil {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	if got.LambdaErrors == nil || *got.LambdaErrors != 4 || got.LambdaThrottles == nil || *got.LambdaThrottles != 0 || got.LambdaColdStarts == nil || *got.LambdaColdStarts != 7 {
		t.Errorf("lambda totals: %s", b.String())
	}
	if got.Messages != 59.892 || got.LatencyP50 != 0.005 {
		t.Errorf("rounding to three decimals: messages %v, latency %v", got.Messages, got.LatencyP50)
	}
	if got.BreakerState != nil {
		t.Errorf("breaker_state = %q, want null (CloudWatch cannot see it)", *got.BreakerState)
	}
	if len(got.Functions) != 3 || got.Functions[0].Name != "streamer-prod-connect" || *got.Functions[0].Invocations != 100 ||
		*got.Functions[0].Errors != 3 || got.Functions[2].ColdStarts != nil {
		t.Errorf("functions: %s", b.String())
	}
	if got.AlarmsInAlarm == nil || *got.AlarmsInAlarm != 1 || len(got.Alarms) != 3 ||
		got.Alarms[0].Name != "streamer-prod-lambda-errors" || got.Alarms[0].State != "ALARM" ||
		got.Alarms[0].Reason == nil || *got.Alarms[0].Reason != "Threshold Crossed" || got.Alarms[1].Reason != nil {
		t.Errorf("alarms: %s", b.String())
	}
	if len(got.Warnings) != 1 || got.Warnings[0] != "alarms: partial" {
		t.Errorf("warnings %q", got.Warnings)
	}
	if strings.Contains(b.String(), `\u001b`) {
		t.Errorf("escape sequences reached the JSON: %s", b.String())
	}
}

// TestRenderJSONMatchesPlain: the JSON object has RenderPlain's keys (its
// per-function, per-alarm and warning lines as arrays), the same key set
// for every snapshot, numbers where plain shows a value and null where
// plain shows n/a.
func TestRenderJSONMatchesPlain(t *testing.T) {
	noData := Snapshot{HasLambda: true, Functions: []FunctionStats{{Name: "f"}}}
	var keys []string
	for i, s := range []Snapshot{localSnapshot(), cloudSnapshot(), {}, noData} {
		var p, j strings.Builder
		if err := RenderPlain(&p, s, "src"); err != nil {
			t.Fatal(err)
		}
		if err := RenderJSON(&j, s, "src"); err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(j.String()), &obj); err != nil {
			t.Fatal(err)
		}
		var got []string
		for k := range obj {
			got = append(got, k)
		}
		slices.Sort(got)
		if keys == nil {
			keys = got
		} else if !slices.Equal(got, keys) {
			t.Errorf("snapshot %d: keys %v, want the same keys as snapshot 0 %v", i, got, keys)
		}
		for _, l := range strings.Split(strings.TrimSuffix(p.String(), "\n"), "\n") {
			name, value, _ := strings.Cut(l, ": ")
			switch {
			case strings.HasPrefix(name, "function "):
				name = "functions"
			case strings.HasPrefix(name, "alarm "):
				name = "alarms"
			case name == "warning":
				name = "warnings"
			}
			jv, ok := obj[name]
			if !ok {
				t.Errorf("snapshot %d: plain key %q missing from the JSON", i, name)
				continue
			}
			switch name {
			case "functions", "alarms", "warnings", "source", "time", "counts", "latency_source":
				continue
			}
			if value == plainNoData {
				if jv != nil {
					t.Errorf("snapshot %d: %s is n/a in plain, %v in JSON", i, name, jv)
				}
				continue
			}
			switch v := jv.(type) {
			case float64:
				// Plain rounds more than the JSON.
				num := strings.TrimSuffix(strings.TrimSuffix(value, "%"), " ms")
				pv, err := strconv.ParseFloat(num, 64)
				if err != nil || math.Abs(pv-v) > 0.5 {
					t.Errorf("snapshot %d: %s plain %q, JSON %v", i, name, value, v)
				}
			case string:
				if v != value {
					t.Errorf("snapshot %d: %s plain %q, JSON %q", i, name, value, v)
				}
			default:
				t.Errorf("snapshot %d: %s plain %q, JSON %v (%T)", i, name, value, jv, jv)
			}
		}
	}
}

func TestOnceJSON(t *testing.T) {
	src := &fakeSource{results: []fakeResult{{snap: localSnapshot()}}}
	var b strings.Builder
	if err := Once(context.Background(), Options{Source: src, Out: &b, Output: OutputJSON}); err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(b.String()), &obj); err != nil || obj["active_connections"] != 42.0 {
		t.Errorf("Once json: %v\n%s", err, b.String())
	}

	src = &fakeSource{results: []fakeResult{{snap: localSnapshot()}}}
	b.Reset()
	if err := Once(context.Background(), Options{Source: src, Out: &b, Output: "yaml"}); !errors.Is(err, ErrUnknownOutput) || src.Calls() != 0 || b.Len() != 0 {
		t.Errorf("unknown output: err %v, %d fetches, output %q", err, src.Calls(), b.String())
	}
}
