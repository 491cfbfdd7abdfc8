package connection

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// Defaults of LimitConfig.
const (
	// DefaultMaxInFlight caps the adaptive limit: at ~20 ms per
	// PostToConnection, 256 requests in flight are ~12.8k msgs/s, above the
	// default account throttle (10k req/s), so the cap is rarely what binds.
	DefaultMaxInFlight = 256
	// DefaultLatencyTolerance: a smoothed latency over twice the recent
	// minimum means requests are queueing at the endpoint.
	DefaultLatencyTolerance = 2.0
	// DefaultLatencyFloor: latencies within 5 ms of the minimum are never
	// congestion (loopback and same-host endpoints jitter by milliseconds
	// from CPU scheduling alone).
	DefaultLatencyFloor = 5 * time.Millisecond
	// DefaultMaxThrottledAttempts bounds the 429 answers one delivery
	// absorbs (they slow the sender down; they do not use up MaxAttempts).
	DefaultMaxThrottledAttempts = 10
)

// LimitConfig configures how many Management API requests a Manager keeps
// in flight, across all of its concurrent Send, Broadcast and IsActive
// calls: the endpoint's capacity (and the account's API Gateway throttle)
// is one resource. Every zero value means the documented default.
//
// Adaptive (the default): the limit starts at Config.Workers and grows
// 2.89× per round trip while the endpoint keeps up (slow start at BBR's
// startup gain), then by √limit per round trip. A 429 LimitExceededException
// cuts it by 30% and turns on a client-side rate limit (the AWS SDK's
// adaptive retry mode: a token bucket whose rate drops to 70% of the
// measured send rate and climbs back on a cubic curve); a smoothed latency
// above LatencyTolerance × the recent minimum cuts it by 10% when two
// rounds in a row bought no more throughput. Each cut
// reacts only to requests sent after the previous cut, so one burst of 429s
// is one signal. docs/decisions.md has the sources and the measurements.
type LimitConfig struct {
	// Fixed holds the limit at Config.Workers: no growth, no backoff and
	// no client-side rate limit; a 429 is retried with backoff like a 5xx.
	Fixed bool
	// MaxInFlight caps the adaptive limit; 0 => DefaultMaxInFlight (256).
	// It is raised to Config.Workers when lower.
	MaxInFlight int
	// MinInFlight is the floor backoff never goes below; 0 => 1.
	MinInFlight int
	// LatencyTolerance is the ratio of smoothed to minimum latency read as
	// congestion; 0 => DefaultLatencyTolerance (2); values below 1.1 are
	// raised to 1.1.
	LatencyTolerance float64
	// LatencyFloor: latency within this of the minimum is never
	// congestion; 0 => DefaultLatencyFloor (5 ms); negative => none.
	LatencyFloor time.Duration
	// MaxThrottledAttempts bounds the 429 answers one delivery absorbs
	// before it fails with ErrThrottled; 0 => DefaultMaxThrottledAttempts
	// (10). In Fixed mode 429s count against Config.MaxAttempts instead.
	MaxThrottledAttempts int
}

func (c LimitConfig) withDefaults(workers int) LimitConfig {
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	c.MaxInFlight = max(c.MaxInFlight, workers)
	if c.MinInFlight <= 0 {
		c.MinInFlight = 1
	}
	c.MinInFlight = min(c.MinInFlight, workers)
	if c.LatencyTolerance == 0 {
		c.LatencyTolerance = DefaultLatencyTolerance
	}
	c.LatencyTolerance = max(c.LatencyTolerance, 1.1)
	if c.LatencyFloor == 0 {
		c.LatencyFloor = DefaultLatencyFloor
	}
	c.LatencyFloor = max(c.LatencyFloor, 0)
	if c.MaxThrottledAttempts <= 0 {
		c.MaxThrottledAttempts = DefaultMaxThrottledAttempts
	}
	return c
}

// startupGain is how much slow start multiplies the limit per round trip:
// BBR's STARTUP gain, 2/ln 2, the smallest that still doubles the delivery
// rate every round while the pipe fills. TCP's 2 took two more round trips
// from 10 to 256, which on a sender sharing its CPU (where round trips
// stretch to 2-3× the endpoint's latency) was a tenth of a 2,000-target
// broadcast.
const startupGain = 2 / math.Ln2

// Multiplicative decreases: CUBIC's beta for a 429 (the endpoint said no),
// Netflix concurrency-limits' AIMD backoff ratio for latency (a softer
// signal: the endpoint still answers).
const (
	throttleBeta = 0.7
	latencyBeta  = 0.9
)

// signal is what one request's answer says about the endpoint's capacity.
type signal uint8

const (
	// signalNone: no capacity information (cancelled, 5xx, network error:
	// the breaker and retries deal with those).
	signalNone signal = iota
	// signalOK: the endpoint answered (2xx, 410, another 4xx); the latency
	// is a round-trip sample.
	signalOK
	// signalThrottled: 429 LimitExceededException.
	signalThrottled
)

// ticket is one granted request slot.
type ticket struct {
	seq   uint64
	start time.Time
}

// LimitSnapshot is the limiter's state, in MetricsSnapshot.Limit.
type LimitSnapshot struct {
	// Mode is "adaptive" or "fixed".
	Mode string
	// Limit is the current concurrency limit; InFlight the requests holding
	// a slot; Waiting the callers queued for one.
	Limit, InFlight, Waiting int
	// RatePerSecond is the client-side rate limit in requests per second;
	// 0 when off (no recent 429).
	RatePerSecond float64
	// Throttled counts 429 answers; Decreases the limit cuts (429 or latency).
	Throttled, Decreases uint64
	// MinLatency and SmoothedLatency are the round-trip estimates the
	// latency signal compares.
	MinLatency, SmoothedLatency time.Duration
}

// limiter hands out request slots: at most limit in flight, FIFO among
// waiters, and (after a 429) no faster than the client-side rate.
type limiter struct {
	cfg     LimitConfig
	clock   Clock
	initial float64 // Workers: where the limit starts, and the floor of the BDP cap

	mu       sync.Mutex
	limit    float64
	inflight int
	waiters  []*waiter // FIFO
	seq      uint64    // tickets issued
	recover  uint64    // cuts react only to tickets with seq >= recover
	fullSeq  uint64    // seq when the limit was last found full
	// Rounds of about one round trip measure the delivery rate.
	delivered  uint64    // requests answered (signalOK)
	roundSeq   uint64    // the round ends when a ticket with seq >= roundSeq returns
	roundStart time.Time // ... measured from here
	roundOK    uint64    // delivered when the round began
	rates      [10]float64
	ri         int
	flat       int     // slow-start rounds without 25% more throughput
	strikes    int     // consecutive rounds of queueing (latency up, rate flat)
	ssthresh   float64 // slow start while limit < ssthresh
	rtt        rttEstimator
	rate       rateLimiter
	throttled  uint64
	decreases  uint64
}

type waiter struct {
	ch      chan struct{}
	t       ticket
	granted bool
}

func newLimiter(cfg LimitConfig, workers int, clock Clock) *limiter {
	cfg = cfg.withDefaults(workers)
	return &limiter{cfg: cfg, clock: clock, limit: float64(workers), initial: float64(workers), ssthresh: math.Inf(1)}
}

// slots is the whole number of requests the limit allows now.
func (l *limiter) slots() int {
	return max(l.cfg.MinInFlight, int(l.limit))
}

// grant issues a ticket; l.mu is held.
func (l *limiter) grant(now time.Time) ticket {
	l.inflight++
	l.seq++
	if l.inflight >= l.slots() {
		l.fullSeq = l.seq
	}
	if !l.cfg.Fixed {
		l.rate.sent(now)
	}
	return ticket{seq: l.seq, start: now}
}

// acquire waits for a slot (and, while the client-side rate limit is on,
// for the rate), or until ctx ends. Every acquired ticket must be released.
func (l *limiter) acquire(ctx context.Context) (ticket, error) {
	l.mu.Lock()
	if len(l.waiters) == 0 && l.inflight < l.slots() {
		t := l.grant(l.clock.Now())
		d := l.reserveLocked(t.start)
		l.mu.Unlock()
		return l.pace(ctx, t, d)
	}
	if err := ctx.Err(); err != nil {
		l.mu.Unlock()
		return ticket{}, err
	}
	w := &waiter{ch: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.fullSeq = l.seq + 1
	l.mu.Unlock()
	select {
	case <-w.ch:
		l.mu.Lock()
		d := l.reserveLocked(w.t.start)
		l.mu.Unlock()
		return l.pace(ctx, w.t, d)
	case <-ctx.Done():
	}
	l.mu.Lock()
	if w.granted {
		// Granted as ctx ended: hand the slot on.
		l.releaseLocked(w.t, signalNone, 0)
	} else {
		for i, x := range l.waiters {
			if x == w {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				break
			}
		}
	}
	l.mu.Unlock()
	return ticket{}, ctx.Err()
}

// reserveLocked takes a rate token; the result is how long to wait for it.
func (l *limiter) reserveLocked(now time.Time) time.Duration {
	if l.cfg.Fixed {
		return 0
	}
	return l.rate.reserve(now)
}

// pace waits d (the rate limit) holding the slot; on cancellation it gives
// the slot and the token back.
func (l *limiter) pace(ctx context.Context, t ticket, d time.Duration) (ticket, error) {
	if d <= 0 {
		return t, nil
	}
	tm := l.clock.NewTimer(d)
	defer tm.Stop()
	select {
	case now := <-tm.C():
		t.start = now
		return t, nil
	case <-ctx.Done():
		l.mu.Lock()
		l.rate.refund()
		l.releaseLocked(t, signalNone, 0)
		l.mu.Unlock()
		return ticket{}, ctx.Err()
	}
}

// release returns a slot with what the request's answer said; rtt is the
// request's round trip (ignored unless s is signalOK).
func (l *limiter) release(t ticket, s signal, rtt time.Duration) {
	l.mu.Lock()
	l.releaseLocked(t, s, rtt)
	l.mu.Unlock()
}

func (l *limiter) releaseLocked(t ticket, s signal, rtt time.Duration) {
	l.inflight--
	if !l.cfg.Fixed {
		now := l.clock.Now()
		switch s {
		case signalOK:
			l.rate.answered(now)
			l.rtt.add(now, rtt)
			l.delivered++
			if l.fullSeq >= t.seq && t.seq >= l.recover && l.strikes == 0 {
				// Grow only when the limit was full during this request
				// (RFC 7661's "cwnd-limited": a limit nobody reaches
				// proves nothing about the endpoint), not on answers to
				// requests sent before the last cut, and not while the
				// last round looked like queueing.
				if l.limit < l.ssthresh {
					l.limit += startupGain - 1 // slow start: ×startupGain per round trip
				} else {
					// +√limit per round trip (Gradient2's headroom):
					// back to a lost limit in a few dozen round
					// trips, not hundreds.
					l.limit += math.Sqrt(l.limit) / l.limit
				}
				l.limit = min(l.limit, float64(l.cfg.MaxInFlight))
			}
			if t.seq >= l.roundSeq && now.Sub(l.roundStart) >= minRound {
				l.endRound(now)
			}
		case signalThrottled:
			l.throttled++
			if t.seq >= l.recover {
				l.cut(throttleBeta)
				l.rate.throttle(now)
			}
		}
	}
	l.wakeLocked()
}

// bdpGain bounds the limit to this many bandwidth-delay products.
const bdpGain = 4

// minRound is the shortest round measured: a loopback round trip lasts
// microseconds, too few deliveries for a rate.
const minRound = 5 * time.Millisecond

// endRound closes one round (about one round trip: it ends when a request
// sent after it began comes back), measures its delivery rate and decides
// from it. More in flight that buys no more throughput is queueing (BBR's
// and Vegas' insight): a smoothed latency over LatencyTolerance × the
// minimum cuts the limit only when two rounds in a row delivered no more
// than 1.1 × the best of the last ten. In slow start, three rounds without
// 25% more throughput mean the pipe is full (BBR's full-pipe test): growth
// turns to √limit per round, and latency counts only once the rate has
// stopped doubling.
func (l *limiter) endRound(now time.Time) {
	if l.roundStart.IsZero() { // the first answer starts the first round
		l.roundSeq, l.roundStart, l.roundOK = l.seq+1, now, l.delivered
		return
	}
	rate := float64(l.delivered-l.roundOK) / now.Sub(l.roundStart).Seconds()
	best := 0.0
	for _, r := range l.rates {
		best = max(best, r)
	}
	l.rates[l.ri] = rate
	l.ri = (l.ri + 1) % len(l.rates)
	// No more in flight than bdpGain bandwidth-delay products (BBR's cwnd
	// cap): at 20 ms and 4,500/s that is 360, at loopback speed a handful,
	// where more in flight only adds queueing and CPU. Never below where
	// the limit started. In slow start the cap is startupGain times wider,
	// as BBR's STARTUP cwnd gain is: a round's rate measures the flight
	// sent a round earlier, a startupGain-th of the limit now, and on a
	// sender sharing its CPU round trips stretch to 1.5-2× the minimum, so
	// the plain cap ended slow start near 90 of 256 at 20 ms and the rest
	// took √limit steps (a fifth of a 2,000-target broadcast).
	gain := float64(bdpGain)
	if l.limit < l.ssthresh {
		gain *= startupGain
	}
	if bdp := max(best, rate) * l.rtt.min().Seconds(); bdp > 0 {
		if capped := max(l.initial, gain*bdp); l.limit > capped {
			l.limit = capped
			l.ssthresh = min(l.ssthresh, capped) // the pipe is full
		}
	}
	queueing := rate < best*1.1 && l.rtt.inflated(l.cfg.LatencyTolerance, l.cfg.LatencyFloor)
	if l.limit < l.ssthresh {
		// Slow start: doubling that still buys throughput goes on
		// whatever the latency.
		if rate >= best*1.25 {
			l.flat = 0
		} else if l.flat++; l.flat >= 3 {
			l.ssthresh = l.limit
		}
		queueing = queueing && l.flat >= 2
	}
	// Two such rounds in a row: one is noise (a GC pause, a burst).
	if queueing && l.recover <= l.roundSeq {
		if l.strikes++; l.strikes >= 2 {
			l.cut(latencyBeta)
			l.strikes = 0
		}
	} else {
		l.strikes = 0
	}
	l.roundSeq, l.roundStart, l.roundOK = l.seq+1, now, l.delivered
}

// cut decreases the limit by beta and ends slow start; requests already
// sent cannot make it cut again.
func (l *limiter) cut(beta float64) {
	l.limit = max(float64(l.cfg.MinInFlight), l.limit*beta)
	l.ssthresh = l.limit
	l.recover = l.seq + 1
	l.decreases++
}

// wakeLocked grants slots to waiters, in order, while the limit allows.
func (l *limiter) wakeLocked() {
	for len(l.waiters) > 0 && l.inflight < l.slots() {
		w := l.waiters[0]
		l.waiters[0] = nil
		l.waiters = l.waiters[1:]
		w.t = l.grant(l.clock.Now())
		w.granted = true
		close(w.ch)
	}
}

func (l *limiter) snapshot() LimitSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LimitSnapshot{Mode: "adaptive", Limit: l.slots(), InFlight: l.inflight, Waiting: len(l.waiters),
		Throttled: l.throttled, Decreases: l.decreases, MinLatency: l.rtt.min(), SmoothedLatency: l.rtt.srtt}
	if l.cfg.Fixed {
		s.Mode = "fixed"
	} else if l.rate.on {
		s.RatePerSecond = l.rate.fill
	}
	return s
}

func (s LimitSnapshot) String() string {
	r := "off"
	if s.RatePerSecond > 0 {
		r = fmt.Sprintf("%.0f/s", s.RatePerSecond)
	}
	return fmt.Sprintf("%s limit %d (in flight %d, waiting %d, rate %s)", s.Mode, s.Limit, s.InFlight, s.Waiting, r)
}

// rttEstimator keeps a smoothed round trip (TCP's SRTT, gain 1/8) and the
// minimum over the last one to two windows, so the baseline follows an
// endpoint whose latency really changed instead of remembering a fast
// moment forever.
type rttEstimator struct {
	srtt        time.Duration
	samples     int
	cur, prev   time.Duration // window minimums; -1 = no sample
	windowStart time.Time
}

const rttWindow = 10 * time.Second

func (e *rttEstimator) add(now time.Time, d time.Duration) {
	d = max(d, 0)
	if e.samples == 0 {
		e.srtt, e.cur, e.prev, e.windowStart = d, d, -1, now
	} else {
		e.srtt += (d - e.srtt) / 8
		if now.Sub(e.windowStart) >= rttWindow {
			e.prev, e.cur, e.windowStart = e.cur, d, now
		} else if d < e.cur || e.cur < 0 {
			e.cur = d
		}
	}
	e.samples++
}

func (e *rttEstimator) min() time.Duration {
	switch {
	case e.samples == 0:
		return 0
	case e.prev >= 0 && e.prev < e.cur:
		return e.prev
	}
	return e.cur
}

// inflated reports queueing: the smoothed round trip is over tolerance ×
// the minimum and more than floor above it. Eight samples first, so one
// slow request at the start is not a trend.
func (e *rttEstimator) inflated(tolerance float64, floor time.Duration) bool {
	if e.samples < 8 {
		return false
	}
	base := e.min()
	return e.srtt > time.Duration(float64(base)*tolerance) && e.srtt > base+floor
}

// rateLimiter is the client-side rate limit a 429 turns on: the AWS SDKs'
// adaptive retry mode (a token bucket; on a throttle the rate drops to beta
// × the measured send rate, then follows a cubic curve back to it and
// beyond), with the curve normalised to climb back in rateRecovery whatever
// the rate, and lifted once rateLift passes without a throttle.
type rateLimiter struct {
	on           bool
	fill         float64 // requests per second
	tokens       float64 // may go negative: reserved ahead
	capacity     float64
	last         time.Time
	lastMax      float64
	lastThrottle time.Time

	measured    float64 // smoothed send rate, requests per second
	bucketStart time.Time
	bucketN     int
}

const (
	rateRecovery = time.Second     // back to the rate that was throttled
	rateLift     = 3 * time.Second // no throttle for this long: limit off
	rateBucket   = 50 * time.Millisecond
	rateSmooth   = 0.8
	minRate      = 1.0  // requests per second
	rateBurst    = 0.05 // bucket capacity: 50 ms of the rate
)

// sent counts one request towards the measured send rate.
func (r *rateLimiter) sent(now time.Time) {
	if r.bucketStart.IsZero() {
		r.bucketStart = now
	}
	if el := now.Sub(r.bucketStart); el >= rateBucket {
		rate := float64(r.bucketN) / el.Seconds()
		if r.measured == 0 {
			r.measured = rate
		} else {
			r.measured = rateSmooth*rate + (1-rateSmooth)*r.measured
		}
		r.bucketStart, r.bucketN = now, 0
	}
	r.bucketN++
}

// sendRate is the measured send rate, falling back to the open bucket's
// before the first bucket has closed.
func (r *rateLimiter) sendRate(now time.Time) float64 {
	if r.measured > 0 {
		return r.measured
	}
	el := now.Sub(r.bucketStart).Seconds()
	if el <= 0 {
		el = rateBucket.Seconds()
	}
	return float64(r.bucketN) / el
}

// throttle cuts the rate (and turns the limit on).
func (r *rateLimiter) throttle(now time.Time) {
	use := r.sendRate(now)
	if r.on {
		use = min(use, r.fill)
	}
	r.lastMax = max(use, minRate)
	r.lastThrottle = now
	r.setFill(now, max(minRate, r.lastMax*throttleBeta))
	// The bucket starts empty at the new rate: the endpoint's bucket is
	// empty too (it just said so), and a burst of the tokens saved at the
	// old rate would meet 429s that each cut again, down to a few requests
	// a second within a millisecond (seen on loopback: 460/s to 38/s, and
	// 3 s to climb back).
	r.tokens = min(r.tokens, 0)
	r.on = true
}

// answered moves the rate along the cubic curve after a success.
func (r *rateLimiter) answered(now time.Time) {
	if !r.on {
		return
	}
	t := now.Sub(r.lastThrottle)
	if t >= rateLift {
		r.on = false
		return
	}
	x := (t - rateRecovery).Seconds() / rateRecovery.Seconds()
	r.setFill(now, max(minRate, r.lastMax*(1+(1-throttleBeta)*x*x*x)))
}

func (r *rateLimiter) setFill(now time.Time, fill float64) {
	r.refill(now)
	r.fill = fill
	r.capacity = max(1, fill*rateBurst)
	r.tokens = min(r.tokens, r.capacity)
}

func (r *rateLimiter) refill(now time.Time) {
	if r.last.IsZero() {
		r.last, r.tokens = now, r.capacity
	}
	if el := now.Sub(r.last); el > 0 {
		r.tokens = min(r.capacity, r.tokens+el.Seconds()*r.fill)
		r.last = now
	}
}

// reserve takes a token and returns how long to wait for it (0 when the
// limit is off or a token is there).
func (r *rateLimiter) reserve(now time.Time) time.Duration {
	if !r.on {
		return 0
	}
	r.refill(now)
	r.tokens--
	if r.tokens >= 0 {
		return 0
	}
	return time.Duration(-r.tokens / r.fill * float64(time.Second))
}

// refund returns a reserved token that was not used.
func (r *rateLimiter) refund() {
	if r.on {
		r.tokens = min(r.capacity, r.tokens+1)
	}
}

// dispatch runs work for every item of in, each with a limiter slot taken
// before its worker gets it, so the requests in flight never pass the
// limit and the workers never outnumber the slots handed out: a worker is
// spawned only when none is idle. admit (may be nil) sees each item first
// and may settle it itself (false). Once ctx ends the items left go to
// drop. It returns when in is closed and every work call has returned.
func dispatch[T any](ctx context.Context, lim *limiter, in <-chan T, admit func(*T) bool, work func(T, ticket), drop func(T)) {
	type job struct {
		item T
		tk   ticket
	}
	jobs := make(chan job)
	var workers sync.WaitGroup
	for item := range in {
		if ctx.Err() == nil {
			if admit != nil && !admit(&item) {
				continue
			}
			if tk, err := lim.acquire(ctx); err == nil {
				select {
				case jobs <- job{item, tk}:
				default:
					workers.Add(1)
					go func(j job) {
						defer workers.Done()
						for ok := true; ok; j, ok = <-jobs {
							work(j.item, j.tk)
						}
					}(job{item, tk})
				}
				continue
			}
		}
		drop(item)
	}
	close(jobs)
	workers.Wait()
}
