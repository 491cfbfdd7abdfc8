package connection

import (
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
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
// midpoints: within ~6% of the true value.
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
	// Attempts counts HTTP requests (PostToConnection calls); Retries those
	// beyond the first of each delivery.
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
}

// histogram is a lock-free log-linear latency histogram: 8 sub-buckets per
// power of two of nanoseconds (≤12.5% bucket width), striped over shards so
// concurrent recorders rarely share a cache line. Record is O(1).
type histogram struct {
	shards [histShards]histShard
}

const (
	histSubBits = 3
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits + 1) * histSub
	histShards  = 8
)

type histShard struct {
	counts [histBuckets]atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
	_      [64]byte
}

func bucketOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	exp := bits.Len64(v) - 1 // ≥ histSubBits
	mant := (v >> (exp - histSubBits)) & (histSub - 1)
	return (exp-histSubBits+1)*histSub + int(mant)
}

// bucketRange returns [lo, hi) of a bucket.
func bucketRange(i int) (lo, hi uint64) {
	if i < histSub {
		return uint64(i), uint64(i) + 1
	}
	exp := i/histSub + histSubBits - 1
	mant := uint64(i % histSub)
	width := uint64(1) << (exp - histSubBits)
	lo = (histSub + mant) << (exp - histSubBits)
	return lo, lo + width
}

func (h *histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	v := uint64(d)
	s := &h.shards[rand.Uint32()%histShards]
	s.counts[bucketOf(v)].Add(1)
	s.sum.Add(v)
	for {
		m := s.max.Load()
		if v <= m || s.max.CompareAndSwap(m, v) {
			break
		}
	}
}

func (h *histogram) Snapshot() LatencySnapshot {
	var counts [histBuckets]uint64
	var total, sum, max uint64
	for i := range h.shards {
		s := &h.shards[i]
		for b := range counts {
			c := s.counts[b].Load()
			counts[b] += c
			total += c
		}
		sum += s.sum.Load()
		if m := s.max.Load(); m > max {
			max = m
		}
	}
	out := LatencySnapshot{Count: total, Max: time.Duration(max)}
	if total == 0 {
		return out
	}
	out.Mean = time.Duration(sum / total)
	q := func(p float64) time.Duration {
		rank := uint64(p*float64(total) + 0.5)
		if rank < 1 {
			rank = 1
		}
		var seen uint64
		for b, c := range counts {
			seen += c
			if seen >= rank {
				lo, hi := bucketRange(b)
				mid := lo + (hi-lo)/2
				if mid > max {
					mid = max
				}
				return time.Duration(mid)
			}
		}
		return time.Duration(max)
	}
	out.P50, out.P90, out.P99 = q(0.50), q(0.90), q(0.99)
	return out
}

// metrics holds the Manager's counters.
type metrics struct {
	sends, sent, sendErrors, attempts, retries atomic.Uint64
	broadcasts, broadcastMsgs                  atomic.Uint64
	broadcastNanos                             atomic.Int64
	latency                                    histogram
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
