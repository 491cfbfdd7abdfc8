package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// localMetrics is the local gateway's GET /metrics.json (pkg/localgw).
type localMetrics struct {
	Time                   string   `json:"time"`
	UptimeSeconds          float64  `json:"uptime_seconds"`
	ActiveConnections      *float64 `json:"active_connections"`
	ConnectsTotal          float64  `json:"connects_total"`
	DisconnectsTotal       float64  `json:"disconnects_total"`
	ConnectRejectionsTotal float64  `json:"connect_rejections_total"`
	AuthFailuresTotal      float64  `json:"auth_failures_total"`
	MessagesInTotal        float64  `json:"messages_in_total"`
	MessagesOutTotal       float64  `json:"messages_out_total"`
	// Absent from gateways older than the field: no data, not 0.
	DisconnectsDroppedTotal *float64 `json:"disconnects_dropped_total"`
	Management              *struct {
		RequestsTotal float64            `json:"requests_total"`
		ErrorsTotal   map[string]float64 `json:"errors_total"`
		LatencyMS     *latencyMS         `json:"latency_ms"`
	} `json:"management"`
	Manager *struct {
		BreakerState    string     `json:"breaker_state"`
		SendsTotal      float64    `json:"sends_total"`
		SendErrorsTotal float64    `json:"send_errors_total"`
		LatencyMS       *latencyMS `json:"latency_ms"`
		// Absent from gateways older than the fields: no data.
		ConcurrencyLimit *float64 `json:"concurrency_limit"`
		InFlight         *float64 `json:"in_flight"`
		RatePerSecond    *float64 `json:"rate_per_second"`
	} `json:"manager"`
}

type latencyMS struct {
	P50 *float64 `json:"p50"`
	P90 *float64 `json:"p90"`
	P99 *float64 `json:"p99"`
}

// localSample is what a rate needs from one poll.
type localSample struct {
	at       time.Time
	uptime   float64
	connects float64
	msgsOut  float64
	requests float64
	errors   float64
}

// DefaultHistory is how many polls a LocalSource keeps for sparklines.
const DefaultHistory = 120

// LocalSource reads the local gateway's metrics endpoint. Rates come from
// the counter deltas between the last two polls, so the first poll has none;
// counts (auth failures) are totals since the gateway started. A counter
// that goes down means the gateway restarted: the history starts over.
//
// The zero value is not usable: set URL. Fields must not change after the
// first Fetch.
type LocalSource struct {
	// URL of the gateway (http://127.0.0.1:4510) or of its /metrics.json.
	URL string
	// HTTPClient defaults to a client with a 5 s timeout.
	HTTPClient *http.Client
	// Now is the clock used when the payload carries no usable "time".
	Now func() time.Time
	// History bounds the sparkline series (0 => DefaultHistory polls).
	History int

	mu      sync.Mutex
	client  *http.Client // HTTPClient or the default, made once
	prev    *localSample
	active  ring
	conns   ring
	msgs    ring
	errRate ring
}

// NewLocalSource returns a LocalSource for the gateway at baseURL.
func NewLocalSource(baseURL string) *LocalSource { return &LocalSource{URL: baseURL} }

// Name implements Source.
func (l *LocalSource) Name() string { return "local " + l.MetricsURL() }

// MetricsURL is the URL polled: URL itself when it names metrics.json,
// else the gateway base URL's metrics.json.
func (l *LocalSource) MetricsURL() string {
	u := strings.TrimRight(l.URL, "/")
	if strings.HasSuffix(u, "/metrics.json") {
		return u
	}
	return u + "/metrics.json"
}

// Fetch implements Source. window only labels nothing here: the gateway
// keeps totals, not windows.
func (l *LocalSource) Fetch(ctx context.Context, _ time.Duration) (Snapshot, error) {
	target := l.MetricsURL()
	if _, err := url.ParseRequestURI(target); err != nil || l.URL == "" {
		return Snapshot{}, &FetchError{Source: "local", Op: "metrics URL", Err: fmt.Errorf("%q is not a URL: set the gateway address, e.g. http://127.0.0.1:4510", l.URL)}
	}
	m, err := l.get(ctx, target)
	if err != nil {
		return Snapshot{}, err
	}
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	at := now()
	if t, err := time.Parse(time.RFC3339Nano, m.Time); err == nil {
		at = t
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.initRings()

	cur := localSample{at: at, uptime: m.UptimeSeconds, connects: m.ConnectsTotal, msgsOut: m.MessagesOutTotal}
	if m.Management != nil {
		cur.requests = m.Management.RequestsTotal
		for _, n := range m.Management.ErrorsTotal {
			cur.errors += n
		}
	}
	prev := l.prev
	if prev != nil && restarted(*prev, cur) {
		prev = nil
		l.active.reset()
		l.conns.reset()
		l.msgs.reset()
		l.errRate.reset()
	}
	l.prev = &cur

	s := Snapshot{
		Time:                   at,
		Window:                 time.Duration(m.UptimeSeconds * float64(time.Second)),
		CountsLabel:            "since gateway start",
		AuthenticationFailures: Some(m.AuthFailuresTotal),
		LatencyLabel:           "@connections latency",
	}
	if m.ActiveConnections != nil {
		s.ActiveConnections = Some(*m.ActiveConnections)
		l.active.push(*m.ActiveConnections)
	}
	if prev != nil {
		if dt := cur.at.Sub(prev.at).Minutes(); dt > 0 {
			s.ConnectionsPerMinute = Some((cur.connects - prev.connects) / dt)
			s.MessagesSentPerMinute = Some((cur.msgsOut - prev.msgsOut) / dt)
			l.conns.push(s.ConnectionsPerMinute.V)
			l.msgs.push(s.MessagesSentPerMinute.V)
		}
		if dr := cur.requests - prev.requests; dr > 0 {
			s.ErrorRatePercent = Some(100 * (cur.errors - prev.errors) / dr)
			l.errRate.push(s.ErrorRatePercent.V)
		}
	}
	if mg := m.Management; mg != nil && mg.RequestsTotal > 0 && mg.LatencyMS != nil {
		s.LatencyP50, s.LatencyP99 = ptrValue(mg.LatencyMS.P50), ptrValue(mg.LatencyMS.P99)
	} else if mn := m.Manager; mn != nil && mn.SendsTotal > 0 && mn.LatencyMS != nil {
		s.LatencyLabel = "send latency"
		s.LatencyP50, s.LatencyP99 = ptrValue(mn.LatencyMS.P50), ptrValue(mn.LatencyMS.P99)
	}
	if mn := m.Manager; mn != nil {
		s.BreakerState = mn.BreakerState
		s.SendLimit, s.SendInFlight, s.SendRate = ptrValue(mn.ConcurrencyLimit), ptrValue(mn.InFlight), ptrValue(mn.RatePerSecond)
	}
	s.DisconnectsDropped = ptrValue(m.DisconnectsDroppedTotal)
	s.ActiveSeries = l.active.values()
	s.ConnectionsSeries = l.conns.values()
	s.MessagesSeries = l.msgs.values()
	s.ErrorRateSeries = l.errRate.values()
	return s, nil
}

func (l *LocalSource) initRings() {
	if l.active.cap != 0 {
		return
	}
	n := l.History
	if n <= 0 {
		n = DefaultHistory
	}
	for _, r := range []*ring{&l.active, &l.conns, &l.msgs, &l.errRate} {
		r.cap = n
	}
}

// restarted: a counter or the uptime went backwards.
func restarted(prev, cur localSample) bool {
	return cur.uptime < prev.uptime || cur.connects < prev.connects || cur.msgsOut < prev.msgsOut ||
		cur.requests < prev.requests || cur.errors < prev.errors
}

func ptrValue(p *float64) Value {
	if p == nil {
		return Value{}
	}
	return Some(*p)
}

func (l *LocalSource) httpClient() *http.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.client == nil {
		l.client = l.HTTPClient
		if l.client == nil {
			l.client = &http.Client{Timeout: 5 * time.Second}
		}
	}
	return l.client
}

func (l *LocalSource) get(ctx context.Context, target string) (*localMetrics, error) {
	fail := func(op string, err error) error { return &FetchError{Source: "local", Op: op, Err: err} }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fail("GET "+target, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := l.httpClient().Do(req)
	if err != nil {
		return nil, fail("GET "+target, fmt.Errorf("%w (is `streamer local` running?)", err))
	}
	defer resp.Body.Close()
	// A metrics document is small; a bound keeps a wrong URL from eating memory.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fail("read "+target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fail("GET "+target, fmt.Errorf("%w: HTTP %d", ErrBadResponse, resp.StatusCode))
	}
	var m localMetrics
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fail("decode "+target, fmt.Errorf("%w: %v", ErrBadResponse, err))
	}
	return &m, nil
}

// ring is a bounded history, oldest first.
type ring struct {
	cap int
	buf []float64
}

func (r *ring) push(v float64) {
	if len(r.buf) == r.cap {
		copy(r.buf, r.buf[1:])
		r.buf = r.buf[:len(r.buf)-1]
	}
	r.buf = append(r.buf, v)
}

func (r *ring) reset() { r.buf = r.buf[:0] }

func (r *ring) values() []float64 { return append([]float64(nil), r.buf...) }
