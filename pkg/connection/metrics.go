package connection

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pay-theory/streamer/internal/latency"
)

// Observer receives events for export (EMF on Lambda, the local gateway's
// metrics endpoint). Calls are synchronous on the sending goroutine: keep
// them cheap and non-blocking.
type Observer interface {
	OnSend(o Outcome, latency time.Duration)
	OnBroadcast(r BroadcastResult)
	OnBreakerChange(from, to string)
}

// ObserverFuncs adapts functions to Observer; nil fields are skipped.
type ObserverFuncs struct {
	Send          func(o Outcome, latency time.Duration)
	Broadcast     func(r BroadcastResult)
	BreakerChange func(from, to string)
}

func (f ObserverFuncs) OnSend(o Outcome, latency time.Duration) {
	if f.Send != nil {
		f.Send(o, latency)
	}
}
func (f ObserverFuncs) OnBroadcast(r BroadcastResult) {
	if f.Broadcast != nil {
		f.Broadcast(r)
	}
}
func (f ObserverFuncs) OnBreakerChange(from, to string) {
	if f.BreakerChange != nil {
		f.BreakerChange(from, to)
	}
}

// LatencySnapshot summarises a latency histogram. Quantiles are bucket
// midpoints (capped at Max): within ~3% (1/32) of the true value.
type LatencySnapshot struct {
	Count         uint64
	Mean          time.Duration
	P50, P90, P99 time.Duration
	Max           time.Duration
}

// MetricsSnapshot is a point-in-time copy of the Manager's counters.
type MetricsSnapshot struct {
	// BreakerState is "closed", "open", "half-open" (or "disabled").
	BreakerState string
	// Sends counts deliveries attempted (Send calls and Broadcast ids that
	// reached the delivery step); Sent those that succeeded.
	Sends, Sent uint64
	// SendErrors counts failed deliveries; ErrorsByType splits every error
	// (including not_found and skipped) by label: not_found, gone,
	// circuit_open, payload_too_large, shutting_down, throttled, forbidden,
	// server_error, network, rejected, invalid_message, store, cancelled.
	SendErrors   uint64
	ErrorsByType map[string]uint64
	// Attempts counts Management API requests (PostToConnection, and
	// GetConnection for Reconcile); Retries those beyond the first of each
	// operation.
	Attempts, Retries uint64
	// Latency of whole deliveries (retries and backoff included).
	Latency LatencySnapshot
	// Broadcasts completed, the ids they covered, and delivered messages per
	// second of broadcast wall time (cumulative).
	Broadcasts, BroadcastMessages uint64
	BroadcastThroughput           float64
	InFlight                      int64
	UnhealthyConnections          int
	PendingSentCounts             int
	// Limit is the concurrency limiter's state: the current limit on
	// Management API requests in flight, the client-side rate after a 429.
	Limit LimitSnapshot
}

func latencySnapshot(s latency.Snapshot) LatencySnapshot {
	return LatencySnapshot{Count: s.Count, Mean: s.Mean, P50: s.P50, P90: s.P90, P99: s.P99, Max: s.Max}
}

// metrics holds the Manager's counters.
type metrics struct {
	sends, sent, sendErrors, attempts, retries atomic.Uint64
	broadcasts, broadcastMsgs                  atomic.Uint64
	broadcastNanos                             atomic.Int64
	latency                                    latency.Histogram
	errMu                                      sync.Mutex
	errs                                       map[string]uint64
}

func (m *metrics) countError(label string) {
	if label == "" {
		return
	}
	m.errMu.Lock()
	if m.errs == nil {
		m.errs = make(map[string]uint64)
	}
	m.errs[label]++
	m.errMu.Unlock()
}

func (m *metrics) errorsByType() map[string]uint64 {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	out := make(map[string]uint64, len(m.errs))
	for k, v := range m.errs {
		out[k] = v
	}
	return out
}
