package localgw

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/pay-theory/streamer/internal/wait"
)

type injectedError struct {
	status  int
	errType string
	message string
}

var (
	fault500 = &injectedError{http.StatusInternalServerError, ErrTypeInternal, "Internal server error (injected fault)"}
	fault429 = &injectedError{http.StatusTooManyRequests, ErrTypeLimitExceeded, "Rate exceeded (injected fault)"}
	fault410 = &injectedError{http.StatusGone, ErrTypeGone, "connection is gone (injected fault)"}
)

// faultInjector holds the runtime fault settings and draws per-request
// faults from one generator under a mutex, so a seeded run is reproducible
// for a given request order.
type faultInjector struct {
	mu       sync.Mutex
	f        Faults
	rng      *rand.Rand
	delays   bool         // errors, latency or jitter to apply
	throttle *tokenBucket // nil: unlimited
	now      func() time.Time
}

func newFaultInjector(f Faults, now func() time.Time) *faultInjector {
	fi := &faultInjector{now: now}
	fi.set(f)
	return fi
}

func (fi *faultInjector) set(f Faults) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	// A throttle setting that did not change keeps its bucket, so changing
	// the latency does not refill it.
	if fi.throttle == nil || f.ThrottleRate != fi.f.ThrottleRate || f.ThrottleBurst != fi.f.ThrottleBurst {
		fi.throttle = nil
		if f.ThrottleRate > 0 {
			fi.throttle = newTokenBucket(f.ThrottleRate, f.ThrottleBurst, fi.now)
		}
	}
	fi.f = f
	fi.delays = f.delays()
	switch {
	case f.Rand != nil:
		fi.rng = f.Rand
	case f.Seed != 0:
		fi.rng = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
	default:
		fi.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
}

func (fi *faultInjector) get() Faults {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	return fi.f
}

// throttled takes a token from the @connections throttle; true when there
// was none (429).
func (fi *faultInjector) throttled() (bool, Faults) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	return fi.throttle != nil && !fi.throttle.allow(), fi.f
}

// dropDisconnect draws whether to skip a $disconnect integration.
func (fi *faultInjector) dropDisconnect() bool {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	return fi.f.DropDisconnect > 0 && fi.rng.Float64() < fi.f.DropDisconnect
}

func (fi *faultInjector) active() bool {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	return fi.delays
}

// apply waits the injected latency (cancellable by ctx) and returns the
// injected error, if any. One draw picks at most one error.
func (fi *faultInjector) apply(ctx context.Context) (*injectedError, error) {
	fi.mu.Lock()
	f := fi.f
	delay := f.Latency
	if f.Jitter > 0 {
		delay += time.Duration(fi.rng.Int64N(int64(f.Jitter)))
	}
	var inj *injectedError
	if f.Error500+f.Error429+f.Error410 > 0 {
		u := fi.rng.Float64()
		switch {
		case u < f.Error500:
			inj = fault500
		case u < f.Error500+f.Error429:
			inj = fault429
		case u < f.Error500+f.Error429+f.Error410:
			inj = fault410
		}
	}
	fi.mu.Unlock()
	if delay > 0 {
		if err := wait.Sleep(ctx, delay); err != nil {
			return nil, err
		}
	}
	return inj, nil
}

// tokenBucket is a rate limit (the @connections throttle, new connections
// per second) on the injected clock.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newTokenBucket(rate float64, burst int, now func() time.Time) *tokenBucket {
	b := bucketSize(rate, burst)
	return &tokenBucket{rate: rate, burst: b, tokens: b, last: now(), now: now}
}

// bucketSize is a token bucket's size: burst, or max(1, rate) when 0.
func bucketSize(rate float64, burst int) float64 {
	if burst == 0 {
		return max(1, rate)
	}
	return float64(burst)
}

func throttleBurst(f Faults) float64 { return bucketSize(f.ThrottleRate, f.ThrottleBurst) }

func (b *tokenBucket) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.burst, b.tokens+el.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
