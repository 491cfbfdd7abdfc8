package localgw

import (
	"fmt"
	"io"
	"sort"
	"sync/atomic"
	"time"

	"github.com/pay-theory/streamer/internal/latency"
)

// Management API error types (the x-amzn-ErrorType values).
const (
	ErrTypeGone            = "GoneException"
	ErrTypePayloadTooLarge = "PayloadTooLargeException"
	ErrTypeForbidden       = "ForbiddenException"
	ErrTypeLimitExceeded   = "LimitExceededException"
	ErrTypeInternal        = "InternalServerErrorException"
	// ErrTypeBadRequest answers a connection id that cannot be one (not
	// percent-decodable, or not shaped like an API Gateway id).
	ErrTypeBadRequest = "BadRequestException"
)

var errorTypes = []string{ErrTypeGone, ErrTypePayloadTooLarge, ErrTypeForbidden, ErrTypeLimitExceeded, ErrTypeInternal, ErrTypeBadRequest}

func latencyMS(s latency.Snapshot) LatencyMS {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return LatencyMS{P50: ms(s.P50), P90: ms(s.P90), P99: ms(s.P99)}
}

// LatencyMS holds latency percentiles in milliseconds, each within ~3% (1/32)
// of the true value (internal/latency bucket midpoints).
type LatencyMS struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// ManagerMetrics is what a connection Manager reports into /metrics.json
// (the "manager" object) through SetManagerReporter.
type ManagerMetrics struct {
	BreakerState    string    `json:"breaker_state"` // closed | open | half-open
	SendsTotal      int64     `json:"sends_total"`
	SendErrorsTotal int64     `json:"send_errors_total"`
	LatencyMS       LatencyMS `json:"latency_ms"`
	// ConcurrencyLimit is the Manager's current limit on @connections
	// requests in flight (adaptive: it grows while the endpoint keeps up
	// and backs off on 429 and queueing); InFlight holds a slot now.
	ConcurrencyLimit int `json:"concurrency_limit"`
	InFlight         int `json:"in_flight"`
	// RatePerSecond is the client-side rate limit a 429 turned on; 0 when off.
	RatePerSecond float64 `json:"rate_per_second"`
	// ThrottledTotal counts 429 answers the Manager absorbed.
	ThrottledTotal int64 `json:"throttled_total"`
}

// ManagementMetrics is the @connections API part of a snapshot.
type ManagementMetrics struct {
	RequestsTotal int64            `json:"requests_total"`
	ErrorsTotal   map[string]int64 `json:"errors_total"` // by x-amzn-ErrorType; every type always present
	LatencyMS     LatencyMS        `json:"latency_ms"`
	// FaultsInjectedTotal counts requests answered by fault injection.
	FaultsInjectedTotal int64 `json:"faults_injected_total"`
}

// MetricsSnapshot is GET /metrics.json.
type MetricsSnapshot struct {
	Time                   string  `json:"time"` // RFC 3339 with nanoseconds
	UptimeSeconds          float64 `json:"uptime_seconds"`
	ActiveConnections      int64   `json:"active_connections"`
	ConnectsTotal          int64   `json:"connects_total"`
	DisconnectsTotal       int64   `json:"disconnects_total"`
	ConnectRejectionsTotal int64   `json:"connect_rejections_total"` // $connect answered non-2xx (or failed)
	AuthFailuresTotal      int64   `json:"auth_failures_total"`      // $connect answered 401 or 403
	MessagesInTotal        int64   `json:"messages_in_total"`        // client data messages received
	MessagesOutTotal       int64   `json:"messages_out_total"`       // frames written to clients
	IntegrationErrorsTotal int64   `json:"integration_errors_total"` // integration errors, panics and timeouts
	// IntegrationTimeoutsTotal counts integrations that overran
	// Config.IntegrationTimeout (also in IntegrationErrorsTotal).
	IntegrationTimeoutsTotal int64 `json:"integration_timeouts_total"`
	// RouteResponsesDroppedTotal counts response bodies of one-way routes,
	// dropped as API Gateway drops them.
	RouteResponsesDroppedTotal int64 `json:"route_responses_dropped_total"`
	// ConnectsThrottledTotal counts upgrades answered 429 by
	// Config.ConnectRateLimit (also in ConnectRejectionsTotal).
	ConnectsThrottledTotal int64 `json:"connects_throttled_total"`
	// DisconnectsDroppedTotal counts closes whose $disconnect integration
	// was skipped by Faults.DropDisconnect (also in DisconnectsTotal).
	DisconnectsDroppedTotal int64             `json:"disconnects_dropped_total"`
	Management              ManagementMetrics `json:"management"`
	Manager                 *ManagerMetrics   `json:"manager,omitempty"`

	mgmtLatencySumSec float64
	mgmtLatencyCount  uint64
}

type metrics struct {
	active, connects, disconnects, rejections, authFailures atomic.Int64
	msgsIn, msgsOut, integrationErrors, integrationTimeouts atomic.Int64
	routeResponsesDropped, connectsThrottled                atomic.Int64
	disconnectsDropped                                      atomic.Int64
	mgmtRequests, faultsInjected                            atomic.Int64
	mgmtErrors                                              map[string]*atomic.Int64 // fixed keys, map never written after init
	mgmtLatency                                             latency.Histogram
}

func newMetrics() *metrics {
	m := &metrics{mgmtErrors: make(map[string]*atomic.Int64, len(errorTypes))}
	for _, t := range errorTypes {
		m.mgmtErrors[t] = new(atomic.Int64)
	}
	return m
}

func (m *metrics) countError(errType string) {
	if c, ok := m.mgmtErrors[errType]; ok {
		c.Add(1)
	}
}

// Metrics returns a snapshot of the gateway's counters.
func (g *Gateway) Metrics() MetricsSnapshot {
	m := g.metrics
	lat := m.mgmtLatency.Snapshot()
	s := MetricsSnapshot{
		Time:                       g.cfg.Now().UTC().Format(time.RFC3339Nano),
		UptimeSeconds:              time.Since(g.started).Seconds(),
		ActiveConnections:          m.active.Load(),
		ConnectsTotal:              m.connects.Load(),
		DisconnectsTotal:           m.disconnects.Load(),
		ConnectRejectionsTotal:     m.rejections.Load(),
		AuthFailuresTotal:          m.authFailures.Load(),
		MessagesInTotal:            m.msgsIn.Load(),
		MessagesOutTotal:           m.msgsOut.Load(),
		IntegrationErrorsTotal:     m.integrationErrors.Load(),
		IntegrationTimeoutsTotal:   m.integrationTimeouts.Load(),
		RouteResponsesDroppedTotal: m.routeResponsesDropped.Load(),
		ConnectsThrottledTotal:     m.connectsThrottled.Load(),
		DisconnectsDroppedTotal:    m.disconnectsDropped.Load(),
		mgmtLatencySumSec:          lat.Sum.Seconds(),
		mgmtLatencyCount:           lat.Count,
		Management: ManagementMetrics{
			RequestsTotal:       m.mgmtRequests.Load(),
			ErrorsTotal:         make(map[string]int64, len(errorTypes)),
			LatencyMS:           latencyMS(lat),
			FaultsInjectedTotal: m.faultsInjected.Load(),
		},
	}
	for t, c := range m.mgmtErrors {
		s.Management.ErrorsTotal[t] = c.Load()
	}
	if rep := g.managerReporter.Load(); rep != nil {
		mm := (*rep)()
		s.Manager = &mm
	}
	return s
}

// SetManagerReporter attaches (or, with nil, detaches) a function whose
// result is published as the "manager" object of /metrics.json and the
// streamer_manager_* Prometheus series. It is called on every scrape.
func (g *Gateway) SetManagerReporter(f func() ManagerMetrics) {
	if f == nil {
		g.managerReporter.Store(nil)
		return
	}
	g.managerReporter.Store(&f)
}

// writePrometheus writes s in the Prometheus text exposition format 0.0.4.
func writePrometheus(w io.Writer, s MetricsSnapshot) {
	p := func(name, typ, help string, v any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, typ, name, v)
	}
	p("localgw_uptime_seconds", "gauge", "Seconds since the gateway started.", s.UptimeSeconds)
	p("localgw_active_connections", "gauge", "Established WebSocket connections.", s.ActiveConnections)
	p("localgw_connects_total", "counter", "Connections established.", s.ConnectsTotal)
	p("localgw_disconnects_total", "counter", "Connections closed.", s.DisconnectsTotal)
	p("localgw_connect_rejections_total", "counter", "Upgrades rejected by $connect (non-2xx or failure).", s.ConnectRejectionsTotal)
	p("localgw_auth_failures_total", "counter", "Upgrades rejected by $connect with 401 or 403.", s.AuthFailuresTotal)
	p("localgw_messages_in_total", "counter", "Client data messages received.", s.MessagesInTotal)
	p("localgw_messages_out_total", "counter", "Frames written to clients.", s.MessagesOutTotal)
	p("localgw_integration_errors_total", "counter", "Integration errors, panics and timeouts.", s.IntegrationErrorsTotal)
	p("localgw_integration_timeouts_total", "counter", "Integrations that overran the integration timeout.", s.IntegrationTimeoutsTotal)
	p("localgw_route_responses_dropped_total", "counter", "Response bodies of one-way routes, dropped as API Gateway does.", s.RouteResponsesDroppedTotal)
	p("localgw_connects_throttled_total", "counter", "Upgrades answered 429 by the new-connection rate limit.", s.ConnectsThrottledTotal)
	p("localgw_disconnects_dropped_total", "counter", "Closes whose $disconnect integration fault injection skipped.", s.DisconnectsDroppedTotal)
	p("localgw_management_requests_total", "counter", "@connections API requests.", s.Management.RequestsTotal)
	p("localgw_management_faults_injected_total", "counter", "@connections requests answered by fault injection.", s.Management.FaultsInjectedTotal)

	fmt.Fprintf(w, "# HELP localgw_management_errors_total @connections API errors by x-amzn-ErrorType.\n# TYPE localgw_management_errors_total counter\n")
	types := make([]string, 0, len(s.Management.ErrorsTotal))
	for t := range s.Management.ErrorsTotal {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		fmt.Fprintf(w, "localgw_management_errors_total{type=%q} %d\n", t, s.Management.ErrorsTotal[t])
	}
	writeSummary(w, "localgw_management_latency_seconds", "@connections API latency.", s.Management.LatencyMS)
	fmt.Fprintf(w, "localgw_management_latency_seconds_sum %g\nlocalgw_management_latency_seconds_count %d\n", s.mgmtLatencySumSec, s.mgmtLatencyCount)

	if m := s.Manager; m != nil {
		fmt.Fprintf(w, "# HELP streamer_manager_breaker_state Circuit breaker state of the attached Manager (1 for the current state).\n# TYPE streamer_manager_breaker_state gauge\n")
		for _, st := range []string{"closed", "half-open", "open"} {
			v := 0
			if st == m.BreakerState {
				v = 1
			}
			fmt.Fprintf(w, "streamer_manager_breaker_state{state=%q} %d\n", st, v)
		}
		p("streamer_manager_sends_total", "counter", "Sends by the attached Manager.", m.SendsTotal)
		p("streamer_manager_send_errors_total", "counter", "Failed sends by the attached Manager.", m.SendErrorsTotal)
		// No sum/count from the reporter: a gauge per quantile, not a summary.
		fmt.Fprintf(w, "# HELP streamer_manager_send_latency_seconds Send latency percentiles of the attached Manager.\n# TYPE streamer_manager_send_latency_seconds gauge\n")
		writeQuantiles(w, "streamer_manager_send_latency_seconds", m.LatencyMS)
	}
}

func writeSummary(w io.Writer, name, help string, l LatencyMS) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s summary\n", name, help, name)
	writeQuantiles(w, name, l)
}

func writeQuantiles(w io.Writer, name string, l LatencyMS) {
	for _, q := range []struct {
		q  string
		ms float64
	}{{"0.5", l.P50}, {"0.9", l.P90}, {"0.99", l.P99}} {
		fmt.Fprintf(w, "%s{quantile=%q} %g\n", name, q.q, q.ms/1000)
	}
}
