package connection

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// acquirePaced acquires a slot, advancing the fake clock through any
// rate-limit wait.
func acquirePaced(t *testing.T, l *limiter, c *fakeClock) ticket {
	t.Helper()
	type res struct {
		tk  ticket
		err error
	}
	got := make(chan res, 1)
	go func() {
		tk, err := l.acquire(context.Background())
		got <- res{tk, err}
	}()
	for {
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatal(r.err)
			}
			return r.tk
		case d := <-c.newT:
			c.Advance(d)
		case <-time.After(5 * time.Second):
			t.Fatal("acquire did not return")
		}
	}
}

// fillSlots acquires every slot the limit allows now (pacing through the
// rate limit on the fake clock).
func fillSlots(t *testing.T, l *limiter, c *fakeClock) []ticket {
	t.Helper()
	var ts []ticket
	for {
		l.mu.Lock()
		free := len(l.waiters) == 0 && l.inflight < l.slots()
		l.mu.Unlock()
		if !free {
			return ts
		}
		ts = append(ts, acquirePaced(t, l, c))
	}
}

// round acquires every slot, lets rtt pass and releases them all with s.
func round(t *testing.T, l *limiter, c *fakeClock, rtt time.Duration, s signal) int {
	t.Helper()
	ts := fillSlots(t, l, c)
	c.Advance(rtt)
	for _, tk := range ts {
		l.release(tk, s, rtt)
	}
	return len(ts)
}

func TestLimiterSlowStartGrowsByTheStartupGainUpToTheCap(t *testing.T) {
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{MaxInFlight: 64}, 10, c)
	var got []int
	for range 5 {
		got = append(got, round(t, l, c, 20*time.Millisecond, signalOK))
	}
	want := []int{10, 28, 64, 64, 64} // 10 × 2/ln 2 = 28.9, then 83 > the cap
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("requests per round trip = %v, want %v (slow start from Workers, capped at MaxInFlight)", got, want)
		}
	}
	if s := l.snapshot(); s.Limit != 64 || s.InFlight != 0 || s.Decreases != 0 {
		t.Fatalf("snapshot %+v", s)
	}
}

func TestLimiterDoesNotGrowWhileTheLimitIsNotInUse(t *testing.T) {
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{}, 10, c)
	for range 200 {
		tk, err := l.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Millisecond)
		l.release(tk, signalOK, time.Millisecond)
	}
	if got := l.snapshot().Limit; got != 10 {
		t.Fatalf("limit after 200 one-at-a-time sends = %d, want 10 (no evidence the endpoint takes more)", got)
	}
}

func TestLimiterThrottleCutsOncePerRoundTripAndTurnsOnTheRate(t *testing.T) {
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{}, 10, c)
	round(t, l, c, 10*time.Millisecond, signalOK) // limit 10 × 2/ln 2 = 28.85
	ts := fillSlots(t, l, c)
	if len(ts) != 28 {
		t.Fatalf("slots = %d, want 28", len(ts))
	}
	c.Advance(time.Millisecond)
	for _, tk := range ts { // a burst of 429s for requests sent before the cut
		l.release(tk, signalThrottled, time.Millisecond)
	}
	s := l.snapshot()
	if s.Limit != 20 || s.Decreases != 1 || s.Throttled != 28 {
		t.Fatalf("after 28 429s from one window: %+v, want limit 20 (28.85×0.7), 1 decrease, 28 throttled", s)
	}
	if s.RatePerSecond <= 0 {
		t.Fatalf("a 429 must turn on the client-side rate limit: %+v", s)
	}
	// A 429 for a request sent after the cut is a new signal.
	tk := acquirePaced(t, l, c)
	l.release(tk, signalThrottled, time.Millisecond)
	if s := l.snapshot(); s.Limit != 14 || s.Decreases != 2 {
		t.Fatalf("after a 429 of the next window: %+v, want limit 14 (20.2×0.7), 2 decreases", s)
	}
	// Growth after a cut is by √limit per round trip: 14 → ~26 in 3.
	for range 3 {
		round(t, l, c, 10*time.Millisecond, signalOK)
	}
	if got := l.snapshot().Limit; got < 24 || got > 28 {
		t.Fatalf("limit after 3 round trips past a cut = %d, want about 26 (14 + √limit per round trip)", got)
	}
}

func TestLimiterNeverGoesBelowTheFloor(t *testing.T) {
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{MinInFlight: 2}, 10, c)
	for range 30 {
		round(t, l, c, time.Millisecond, signalThrottled)
	}
	if got := l.snapshot().Limit; got != 2 {
		t.Fatalf("limit after 30 throttled rounds = %d, want the floor 2", got)
	}
}

func TestLimiterBacksOffOnLatencyInflation(t *testing.T) {
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{MaxInFlight: 40}, 10, c)
	for range 4 { // learn a 20 ms baseline; limit reaches the cap
		round(t, l, c, 20*time.Millisecond, signalOK)
	}
	if got := l.snapshot().Limit; got != 40 {
		t.Fatalf("limit = %d, want 40", got)
	}
	for range 10 { // the endpoint starts queueing: 80 ms round trips
		round(t, l, c, 80*time.Millisecond, signalOK)
	}
	s := l.snapshot()
	if s.Decreases == 0 || s.Limit >= 40 {
		t.Fatalf("after sustained 4× latency: %+v, want the limit cut", s)
	}
	if s.MinLatency != 20*time.Millisecond || s.SmoothedLatency <= 40*time.Millisecond {
		t.Fatalf("latency estimates %v / %v, want min 20ms and smoothed > 40ms", s.MinLatency, s.SmoothedLatency)
	}
	// At most one cut per two rounds of queueing.
	if s.Decreases > 5 {
		t.Fatalf("%d cuts in 10 round trips", s.Decreases)
	}
}

func TestLimiterIgnoresMillisecondJitterBelowTheFloor(t *testing.T) {
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{}, 10, c)
	for range 3 {
		round(t, l, c, 100*time.Microsecond, signalOK)
	}
	for range 10 { // 20× the minimum, but only 2 ms: CPU scheduling, not queueing
		round(t, l, c, 2*time.Millisecond, signalOK)
	}
	if s := l.snapshot(); s.Decreases != 0 {
		t.Fatalf("loopback jitter counted as congestion: %+v", s)
	}
}

func TestLimiterIsSharedByConcurrentCallersInOrder(t *testing.T) {
	defer goleak.VerifyNone(t)
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{}, 4, c)
	held := fillSlots(t, l, c)
	if len(held) != 4 {
		t.Fatalf("slots %d", len(held))
	}
	// Two "broadcasts" of 3 each queue behind the limit.
	order := make(chan int, 6)
	var wg sync.WaitGroup
	for caller := range 2 {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tk, err := l.acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				order <- caller
				l.release(tk, signalNone, 0)
			}()
		}
	}
	waitFor(t, func() bool { return l.snapshot().Waiting == 6 })
	if s := l.snapshot(); s.InFlight != 4 {
		t.Fatalf("in flight %d with a limit of 4", s.InFlight)
	}
	for _, tk := range held {
		l.release(tk, signalNone, 0)
	}
	wg.Wait()
	if s := l.snapshot(); s.InFlight != 0 || s.Waiting != 0 {
		t.Fatalf("after all: %+v", s)
	}
}

func TestLimiterWaitEndsWithTheContext(t *testing.T) {
	defer goleak.VerifyNone(t)
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{Fixed: true}, 1, c)
	held, err := l.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := l.acquire(ctx)
		done <- err
	}()
	waitFor(t, func() bool { return l.snapshot().Waiting == 1 })
	cancel(ErrShuttingDown)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled wait for a slot did not return")
	}
	if s := l.snapshot(); s.Waiting != 0 || s.InFlight != 1 {
		t.Fatalf("after the cancelled wait: %+v", s)
	}
	l.release(held, signalNone, 0)
	if s := l.snapshot(); s.InFlight != 0 {
		t.Fatalf("slot leaked: %+v", s)
	}
}

func TestLimiterRatePacesAfterAThrottleAndRecoversOnACubic(t *testing.T) {
	defer goleak.VerifyNone(t)
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{}, 10, c)
	// Send at 1000/s for 200 ms, one at a time.
	var last ticket
	for i := range 200 {
		tk, err := l.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Millisecond)
		if i < 199 {
			l.release(tk, signalOK, time.Millisecond)
		}
		last = tk
	}
	l.release(last, signalThrottled, time.Millisecond)
	rate := l.snapshot().RatePerSecond
	if math.Abs(rate-700) > 35 {
		t.Fatalf("rate after a 429 at ~1000/s = %.0f/s, want ~700/s (0.7 × the measured send rate)", rate)
	}
	// The next request waits for a token: ~1/700 s.
	if d := pacedWait(t, l, c); d <= 0 || d > 3*time.Millisecond {
		t.Fatalf("paced wait %v, want about 1.4ms", d)
	}
	// Successes move the rate along the cubic: back at ~1000/s one
	// rateRecovery after the throttle, above it later, off after rateLift.
	answer := func(at time.Duration) float64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.rate.answered(l.rate.lastThrottle.Add(at))
		if !l.rate.on {
			return 0
		}
		return l.rate.fill
	}
	if r := answer(rateRecovery / 2); r <= 700 || r >= 1000 {
		t.Fatalf("rate half-way = %.0f, want between 700 and 1000 (concave climb)", r)
	}
	if r := answer(rateRecovery); math.Abs(r-1000) > 50 {
		t.Fatalf("rate at rateRecovery = %.0f, want ~1000 (the throttled rate)", r)
	}
	if r := answer(2 * rateRecovery); r <= 1000 {
		t.Fatalf("rate past rateRecovery = %.0f, want above 1000 (probing)", r)
	}
	if r := answer(rateLift); r != 0 {
		t.Fatalf("rate %v after %v without a throttle, want the limit off", r, rateLift)
	}
}

// A second 429 while the rate is on empties the client-side bucket: the
// next request waits a token's time at the new rate instead of spending
// tokens saved at the old one (each of which would meet a 429 and cut
// again).
func TestLimiterThrottleEmptiesTheBucket(t *testing.T) {
	defer goleak.VerifyNone(t)
	c := newFakeClock(false)
	l := throttledLimiter(c)
	l.mu.Lock()
	l.rate.setFill(c.Now(), 1000)
	l.mu.Unlock()
	c.Advance(time.Second) // the bucket fills: 50 ms of 1000/s = 50 tokens
	tk := acquirePaced(t, l, c)
	l.release(tk, signalThrottled, time.Millisecond) // a 429 for a request sent after the cut
	fill := l.snapshot().RatePerSecond
	if d, want := pacedWait(t, l, c), time.Duration(float64(time.Second)/fill); d < want/2 || d > 2*want {
		t.Fatalf("wait after the second 429 = %v, want about %v (one token at %.0f/s)", d, want, fill)
	}
}

// throttledLimiter is a limiter of 10 whose first request met a 429: the
// client-side rate limit is on and its bucket empty.
func throttledLimiter(c *fakeClock) *limiter {
	l := newLimiter(LimitConfig{}, 10, c)
	tk, _ := l.acquire(context.Background())
	c.Advance(10 * time.Millisecond)
	l.release(tk, signalThrottled, time.Millisecond)
	return l
}

// pacedWait acquires a slot that the rate limit makes wait, lets the wait
// pass on the fake clock and returns how long it was.
func pacedWait(t *testing.T, l *limiter, c *fakeClock) time.Duration {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		tk, err := l.acquire(context.Background())
		if err == nil {
			l.release(tk, signalNone, 0)
		}
		got <- err
	}()
	d := c.waitTimer(t)
	c.Advance(d)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLimiterPacedWaitEndsWithTheContextAndRefunds(t *testing.T) {
	defer goleak.VerifyNone(t)
	c := newFakeClock(false)
	l := throttledLimiter(c) // bucket empty
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := l.acquire(ctx)
		done <- err
	}()
	c.waitTimer(t)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if s := l.snapshot(); s.InFlight != 0 {
		t.Fatalf("a cancelled paced wait kept its slot: %+v", s)
	}
}

func TestLimiterFixedModeNeverMoves(t *testing.T) {
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{Fixed: true}, 10, c)
	round(t, l, c, time.Millisecond, signalOK)
	round(t, l, c, time.Millisecond, signalThrottled)
	round(t, l, c, time.Second, signalOK)
	if s := l.snapshot(); s.Limit != 10 || s.RatePerSecond != 0 || s.Decreases != 0 || s.Mode != "fixed" {
		t.Fatalf("fixed limiter moved: %+v", s)
	}
}

func TestLimitConfigDefaults(t *testing.T) {
	c := LimitConfig{}.withDefaults(10)
	if c.MaxInFlight != DefaultMaxInFlight || c.MinInFlight != 1 || c.LatencyTolerance != 2 ||
		c.LatencyFloor != DefaultLatencyFloor || c.MaxThrottledAttempts != DefaultMaxThrottledAttempts {
		t.Fatalf("defaults %+v", c)
	}
	if c := (LimitConfig{MaxInFlight: 4}).withDefaults(10); c.MaxInFlight != 10 {
		t.Fatalf("MaxInFlight below Workers = %d, want raised to 10", c.MaxInFlight)
	}
	if c := (LimitConfig{LatencyFloor: -1, LatencyTolerance: 0.5}).withDefaults(10); c.LatencyFloor != 0 || c.LatencyTolerance != 1.1 {
		t.Fatalf("clamps %+v", c)
	}
}

// waitFor polls cond (state another goroutine reaches) for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// Latency that buys throughput is not congestion: a round whose latency is
// inflated but whose delivery rate beat the best recent one by more than
// 10% does not cut; the same latency with no gain does.
func TestLimiterCutsOnLatencyOnlyWithoutThroughputGain(t *testing.T) {
	c := newFakeClock(false)
	setup := func() *limiter {
		l := newLimiter(LimitConfig{}, 10, c)
		for range 10 {
			l.rtt.add(c.Now(), 20*time.Millisecond)
		}
		for range 20 {
			l.rtt.add(c.Now(), 60*time.Millisecond) // smoothed ~57 ms: inflated
		}
		l.limit, l.ssthresh = 100, 100
		l.rates[0] = 10000 // the best recent round: 10,000/s (a BDP of 200 at 20 ms: no cap)
		l.roundSeq, l.roundStart, l.roundOK = 1, c.Now(), 0
		l.seq = 1
		return l
	}
	gain := setup()
	gain.delivered = 130 // 130 in 10 ms: 13,000/s, 30% more
	gain.endRound(c.Now().Add(10 * time.Millisecond))
	if gain.decreases != 0 {
		t.Errorf("inflated latency with 30%% more throughput cut the limit to %v", gain.limit)
	}
	flat := setup()
	for i := range 2 { // 10,000/s: no gain, two rounds in a row
		flat.delivered += 100
		flat.endRound(flat.roundStart.Add(10 * time.Millisecond))
		if want := i; flat.decreases != uint64(want) {
			t.Fatalf("round %d of queueing: %d cuts, want %d (the second round cuts)", i+1, flat.decreases, want)
		}
	}
	if flat.limit != 90 {
		t.Errorf("inflated latency with no gain: limit %v, want 90", flat.limit)
	}
}

// In slow start, three rounds without 25% more throughput end it.
func TestLimiterSlowStartEndsWhenThePipeIsFull(t *testing.T) {
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{}, 10, c)
	l.roundStart = c.Now()
	now := c.Now()
	for i := range 4 {
		l.rates = [10]float64{1000}
		l.roundOK, l.delivered = 0, 10 // 1000/s each round: flat (no RTT sample: no BDP cap)
		now = now.Add(10 * time.Millisecond)
		l.roundStart = now.Add(-10 * time.Millisecond)
		l.endRound(now)
		if ended := l.ssthresh < math.Inf(1); ended != (i >= 2) {
			t.Fatalf("round %d: slow start ended = %v", i+1, ended)
		}
	}
}

// Round trips that stretch as the limit grows (a sender sharing its CPU
// with what it sends to: 20 ms at the start, 2.3× that at 83 in flight)
// keep slow start going while each round delivers more: the BDP cap is
// startupGain times wider in slow start, as BBR's STARTUP cwnd. (With the
// plain 4× cap it ended at 92 here.) Once the rate stops growing, the
// plain cap holds: about 4 BDP, under 256.
func TestLimiterSlowStartSurvivesStretchingRoundTrips(t *testing.T) {
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{}, 10, c)
	var got []int
	for range 6 {
		lim := l.snapshot().Limit
		got = append(got, round(t, l, c, 20*time.Millisecond*time.Duration(64+lim)/64, signalOK))
	}
	if peak := slices.Max(got); peak < 200 || l.snapshot().Decreases != 0 {
		t.Fatalf("rounds of %v requests (%d cuts); want slow start past 200", got, l.snapshot().Decreases)
	}
	// 20 ms × (64+256)/64 = 100 ms round trips at ~250/round: 2,500/s ×
	// the 23 ms minimum × 4 = ~230.
	if got := l.snapshot().Limit; got > 240 {
		t.Fatalf("limit %d once the rate stopped growing, want the 4 BDP cap (~230)", got)
	}
}

// The limit never holds more than four bandwidth-delay products in flight
// (BBR's cap), nor less than it started at: fast and near, a handful is all
// the pipe holds.
func TestLimiterCapsAtFourBandwidthDelayProducts(t *testing.T) {
	c := newFakeClock(false)
	l := newLimiter(LimitConfig{}, 10, c)
	for range 8 {
		round(t, l, c, 10*time.Millisecond, signalOK) // 10 ms round trips: the limit doubles
	}
	// Rounds deliver at most ~limit/10ms; with min RTT 10 ms the BDP is
	// about the limit itself, so the cap (4×) does not bind while it grows.
	if got := l.snapshot().Limit; got < 200 {
		t.Fatalf("limit %d after 8 doubling rounds at 10 ms, want ~256 (no cap while throughput grows)", got)
	}
	fast := newLimiter(LimitConfig{}, 10, c)
	for range 8 {
		round(t, fast, c, 200*time.Microsecond, signalOK)
		c.Advance(5 * time.Millisecond) // rounds of at least 5 ms
	}
	// 10 per 5.2 ms is ~1,900/s × 0.2 ms = 0.4 BDP: the cap is the floor,
	// 10 (plus at most one round's growth, √10, before the next round ends).
	if got := fast.snapshot().Limit; got < 10 || got > 13 {
		t.Fatalf("limit %d at loopback speed, want 10-13 (4 BDP is under the starting limit)", got)
	}
}
