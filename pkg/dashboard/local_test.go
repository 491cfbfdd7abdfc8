package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
)

// metricsServer serves the scripted /metrics.json bodies in order (the last
// repeats) and counts requests.
type metricsServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
	status int
	hits   int
	paths  []string
}

func newMetricsServer(t *testing.T, bodies ...string) *metricsServer {
	t.Helper()
	ms := &metricsServer{bodies: bodies, status: http.StatusOK}
	ms.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ms.mu.Lock()
		i := min(ms.hits, len(ms.bodies)-1)
		ms.hits++
		ms.paths = append(ms.paths, r.URL.Path)
		status := ms.status
		ms.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(ms.bodies[i]))
	}))
	t.Cleanup(ms.Close)
	return ms
}

func (ms *metricsServer) source() *LocalSource {
	return &LocalSource{URL: ms.URL, HTTPClient: ms.Client()}
}

// The documented example from the shared brief, at t0.
const metricsT0 = `{"time":"2026-11-27T12:00:00Z","uptime_seconds":1.5,"active_connections":3,"connects_total":10,"disconnects_total":7,
 "connect_rejections_total":4,"auth_failures_total":3,"messages_in_total":50,"messages_out_total":60,
 "management":{"requests_total":70,"errors_total":{"GoneException":2,"PayloadTooLargeException":0,"ForbiddenException":0,"LimitExceededException":1,"InternalServerErrorException":0},
               "latency_ms":{"p50":0.2,"p90":0.5,"p99":1.1}}}`

// 30 s later: +15 connects (30/min), +45 messages out (90/min),
// +50 management requests of which +5 errors (10%), breaker reported.
const metricsT1 = `{"time":"2026-11-27T12:00:30Z","uptime_seconds":31.5,"active_connections":8,"connects_total":25,"disconnects_total":10,"disconnects_dropped_total":4,
 "connect_rejections_total":6,"auth_failures_total":5,"messages_in_total":80,"messages_out_total":105,
 "management":{"requests_total":120,"errors_total":{"GoneException":6,"PayloadTooLargeException":0,"ForbiddenException":1,"LimitExceededException":1,"InternalServerErrorException":0},
               "latency_ms":{"p50":0.3,"p90":0.9,"p99":2.5}},
 "manager":{"breaker_state":"half-open","sends_total":5,"send_errors_total":0,"latency_ms":{"p50":1,"p90":2,"p99":3},
            "concurrency_limit":37,"in_flight":12,"rate_per_second":280}}`

func TestLocalSourceRatesFromTwoPolls(t *testing.T) {
	ms := newMetricsServer(t, metricsT0, metricsT1)
	src := ms.source()
	ctx := context.Background()

	s0, err := src.Fetch(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !s0.ActiveConnections.OK || s0.ActiveConnections.V != 3 {
		t.Errorf("active = %+v, want 3", s0.ActiveConnections)
	}
	if s0.ConnectionsPerMinute.OK || s0.MessagesSentPerMinute.OK || s0.ErrorRatePercent.OK {
		t.Errorf("first poll cannot know rates: conns %+v msgs %+v errRate %+v",
			s0.ConnectionsPerMinute, s0.MessagesSentPerMinute, s0.ErrorRatePercent)
	}
	if s0.AuthenticationFailures.V != 3 || s0.CountsLabel != "since gateway start" {
		t.Errorf("auth failures = %+v (%q), want 3 since gateway start", s0.AuthenticationFailures, s0.CountsLabel)
	}
	if s0.LatencyP50.V != 0.2 || s0.LatencyP99.V != 1.1 {
		t.Errorf("latency = %+v/%+v, want 0.2/1.1", s0.LatencyP50, s0.LatencyP99)
	}
	if s0.BreakerState != "" {
		t.Errorf("no manager object: breaker = %q, want none", s0.BreakerState)
	}
	if s0.DisconnectsDropped.OK {
		t.Errorf("no disconnects_dropped_total (an older gateway): %+v, want no data", s0.DisconnectsDropped)
	}
	if want := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC); !s0.Time.Equal(want) {
		t.Errorf("time = %v, want the payload's %v", s0.Time, want)
	}

	s1, err := src.Fetch(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	checkValue(t, "connections/min", s1.ConnectionsPerMinute, 30)
	checkValue(t, "messages sent/min", s1.MessagesSentPerMinute, 90)
	checkValue(t, "error rate %", s1.ErrorRatePercent, 10)
	checkValue(t, "active", s1.ActiveConnections, 8)
	checkValue(t, "auth failures", s1.AuthenticationFailures, 5)
	checkValue(t, "p50", s1.LatencyP50, 0.3)
	checkValue(t, "p99", s1.LatencyP99, 2.5)
	checkValue(t, "dropped $disconnects", s1.DisconnectsDropped, 4)
	if s1.SendLimit != Some(37) || s1.SendInFlight != Some(12) || s1.SendRate != Some(280) {
		t.Errorf("send limit %+v in flight %+v rate %+v, want 37, 12, 280", s1.SendLimit, s1.SendInFlight, s1.SendRate)
	}
	if s1.BreakerState != "half-open" {
		t.Errorf("breaker = %q, want half-open", s1.BreakerState)
	}
	if got := s1.ActiveSeries; len(got) != 2 || got[0] != 3 || got[1] != 8 {
		t.Errorf("active series = %v, want [3 8]", got)
	}
	if got := s1.ConnectionsSeries; len(got) != 1 || got[0] != 30 {
		t.Errorf("connections series = %v, want [30]", got)
	}
	for _, p := range ms.paths {
		if p != "/metrics.json" {
			t.Errorf("requested %q, want /metrics.json", p)
		}
	}

	// The same numbers on screen.
	m := NewModel(testOptions(src))
	deliver(t, m, tea.WindowSizeMsg{Width: 100, Height: 30})
	deliver(t, m, fetchedMsg{snap: s1})
	v := m.View().Content
	for _, want := range []string{"30", "90", "10.00%", "0.300 ms / 2.5 ms", "half-open", "send limit 37 · 12 in flight", "throttled: 280 requests/s", "since gateway start", "4 $disconnect dropped"} {
		if !strings.Contains(v, want) {
			t.Errorf("view lacks %q:\n%s", want, v)
		}
	}
}

func TestLocalSourceNoRequestsNoErrorRate(t *testing.T) {
	body := `{"time":"2026-11-27T12:00:00Z","uptime_seconds":1,"active_connections":0,"connects_total":0,"messages_out_total":0,
	  "management":{"requests_total":0,"errors_total":{},"latency_ms":{"p50":0,"p90":0,"p99":0}}}`
	body2 := strings.Replace(strings.Replace(body, "12:00:00Z", "12:00:10Z", 1), `"uptime_seconds":1`, `"uptime_seconds":11`, 1)
	src := newMetricsServer(t, body, body2).source()
	if _, err := src.Fetch(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	s, err := src.Fetch(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !s.ConnectionsPerMinute.OK || s.ConnectionsPerMinute.V != 0 {
		t.Errorf("idle gateway: connections/min = %+v, want 0", s.ConnectionsPerMinute)
	}
	if s.ErrorRatePercent.OK || s.LatencyP50.OK {
		t.Errorf("no @connections requests: error rate %+v and latency %+v should be no data", s.ErrorRatePercent, s.LatencyP50)
	}
}

func TestLocalSourceRestartResetsRates(t *testing.T) {
	restarted := `{"time":"2026-11-27T12:01:00Z","uptime_seconds":2,"active_connections":1,"connects_total":1,"messages_out_total":0,"auth_failures_total":0}`
	src := newMetricsServer(t, metricsT0, metricsT1, restarted).source()
	ctx := context.Background()
	for range 2 {
		if _, err := src.Fetch(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	s, err := src.Fetch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.ConnectionsPerMinute.OK {
		t.Errorf("after a restart the deltas are meaningless: got %+v", s.ConnectionsPerMinute)
	}
	if len(s.ActiveSeries) != 1 || s.ActiveSeries[0] != 1 {
		t.Errorf("history should start over: %v", s.ActiveSeries)
	}
}

func TestLocalSourceHistoryIsBounded(t *testing.T) {
	var bodies []string
	for i := range 6 {
		ts := time.Date(2026, 11, 27, 12, 0, i*10, 0, time.UTC).Format(time.RFC3339Nano)
		bodies = append(bodies, `{"time":"`+ts+`","uptime_seconds":`+itoa(10+i*10)+`,"active_connections":`+itoa(i)+`,"connects_total":`+itoa(i*2)+`}`)
	}
	ms := newMetricsServer(t, bodies...)
	src := ms.source()
	src.History = 3
	var s Snapshot
	for range 6 {
		var err error
		if s, err = src.Fetch(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.ActiveSeries; len(got) != 3 || got[0] != 3 || got[2] != 5 {
		t.Errorf("series = %v, want the newest 3: [3 4 5]", got)
	}
	if !s.ConnectionsPerMinute.OK || s.ConnectionsPerMinute.V != 12 {
		t.Errorf("connections/min = %+v, want 12 (2 per 10 s)", s.ConnectionsPerMinute)
	}
}

func itoa(i int) string { return strings.TrimSpace(Some(float64(i)).Count()) }

func TestLocalSourceErrors(t *testing.T) {
	ctx := context.Background()

	t.Run("server down", func(t *testing.T) {
		ms := newMetricsServer(t, metricsT0)
		src := ms.source()
		ms.Close()
		_, err := src.Fetch(ctx, 0)
		var fe *FetchError
		if !errors.As(err, &fe) || fe.Source != "local" {
			t.Fatalf("err = %v, want a *FetchError from local", err)
		}
		if !strings.Contains(err.Error(), "streamer local") {
			t.Errorf("error should say what to do: %v", err)
		}
	})
	t.Run("malformed JSON", func(t *testing.T) {
		src := newMetricsServer(t, `{"active_connections": "three"`).source()
		_, err := src.Fetch(ctx, 0)
		if !errors.Is(err, ErrBadResponse) {
			t.Fatalf("err = %v, want ErrBadResponse", err)
		}
	})
	t.Run("HTTP 500", func(t *testing.T) {
		ms := newMetricsServer(t, `oops`)
		ms.status = http.StatusInternalServerError
		_, err := ms.source().Fetch(ctx, 0)
		if !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), "HTTP 500") {
			t.Fatalf("err = %v, want ErrBadResponse with the status", err)
		}
	})
	t.Run("no URL", func(t *testing.T) {
		_, err := (&LocalSource{}).Fetch(ctx, 0)
		var fe *FetchError
		if !errors.As(err, &fe) {
			t.Fatalf("err = %v, want *FetchError", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		src := newMetricsServer(t, metricsT0).source()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := src.Fetch(cctx, 0); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("recovers after an error", func(t *testing.T) {
		ms := newMetricsServer(t, `nope`, metricsT0)
		src := ms.source()
		if _, err := src.Fetch(ctx, 0); err == nil {
			t.Fatal("want an error from the malformed first answer")
		}
		if s, err := src.Fetch(ctx, 0); err != nil || s.ActiveConnections.V != 3 {
			t.Fatalf("second fetch = %+v, %v; want data", s.ActiveConnections, err)
		}
	})
}

func TestLocalSourceURLForms(t *testing.T) {
	ms := newMetricsServer(t, metricsT0)
	for _, u := range []string{ms.URL, ms.URL + "/", ms.URL + "/metrics.json"} {
		src := &LocalSource{URL: u, HTTPClient: ms.Client()}
		if _, err := src.Fetch(context.Background(), 0); err != nil {
			t.Errorf("URL %q: %v", u, err)
		}
		if src.Name() != "local "+ms.URL+"/metrics.json" {
			t.Errorf("Name() = %q", src.Name())
		}
	}
}
