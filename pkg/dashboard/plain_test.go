package dashboard

import (
	"context"
	"errors"
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
