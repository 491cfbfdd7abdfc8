package connection

import (
	"log/slog"
	"math/rand/v2"
	"time"
)

// MaxMessageBytes is API Gateway's WebSocket message limit (128 KB).
const MaxMessageBytes = 128 * 1024

// Defaults applied to zero Config fields.
const (
	DefaultWorkers        = 10
	DefaultMaxAttempts    = 4 // the first attempt + 3 retries
	DefaultBaseDelay      = 100 * time.Millisecond
	DefaultMaxDelay       = 5 * time.Second
	DefaultMultiplier     = 2.0
	DefaultJitter         = 0.25
	DefaultAttemptTimeout = 10 * time.Second
	DefaultFlushInterval  = 5 * time.Second
)

// Config configures a Manager. Every zero value means the documented default.
type Config struct {
	// Workers is where the concurrency limit on Management API requests
	// starts (and where it stays with Limit.Fixed); 0 => DefaultWorkers
	// (10). The limit is shared by every Send, Broadcast and IsActive of
	// the Manager; see LimitConfig.
	Workers int
	// Limit configures the adaptive concurrency limit (or a fixed one).
	Limit LimitConfig
	// MaxAttempts is the total number of HTTP requests one delivery may make,
	// the first included; 0 => DefaultMaxAttempts (4 = 1 + 3 retries);
	// 1 disables retries.
	MaxAttempts int
	// Retry is the retry policy (backoff and which errors retry).
	Retry RetryPolicy
	// AttemptTimeout bounds one HTTP request so a hung endpoint becomes a
	// retryable network error; 0 => DefaultAttemptTimeout (10 s); negative => none.
	AttemptTimeout time.Duration
	// Breaker configures the endpoint circuit breaker.
	Breaker BreakerConfig
	// Health configures per-connection health tracking.
	Health HealthConfig
	// FlushInterval is how often accumulated messages_sent counts are written
	// to the store; 0 => DefaultFlushInterval (5 s); negative => only on
	// Flush and Shutdown. In a Lambda use -1 and call Flush before the
	// handler returns: a frozen environment runs no flusher, and a reclaimed
	// one never calls Shutdown.
	FlushInterval time.Duration
	// Logger receives one record per operation; nil => slog.Default().
	Logger *slog.Logger
	// Clock drives backoff waits, the flush interval, health cooldowns and
	// expiry checks; nil => the system clock. (The breaker's open timeout
	// uses the system clock: gobreaker has no clock hook.)
	Clock Clock
	// Observer receives every send outcome, broadcast result and breaker
	// change (for EMF metrics or a local metrics endpoint); nil => none.
	Observer Observer
}

// RetryPolicy decides which failed attempts are retried and how long to wait.
// Policies are function fields so callers can replace one piece.
type RetryPolicy struct {
	// BaseDelay is the wait before the first retry; 0 => 100 ms.
	BaseDelay time.Duration
	// MaxDelay caps every wait, jitter included; 0 => 5 s.
	MaxDelay time.Duration
	// Multiplier grows the wait per retry; 0 => 2.
	Multiplier float64
	// Jitter spreads each wait uniformly by ±Jitter (a fraction); 0 => 0.25;
	// negative => no jitter.
	Jitter float64
	// ShouldRetry reports whether a failed attempt (err is one of this
	// package's sentinels) is worth retrying; nil => DefaultShouldRetry.
	ShouldRetry func(err error) bool
	// Backoff returns the wait before retry n (n = 1 before the second
	// attempt); nil => exponential from BaseDelay with jitter, capped.
	Backoff func(retry int) time.Duration
	// Rand returns a uniform float in [0,1) for jitter; nil => math/rand/v2.
	Rand func() float64
}

// DefaultShouldRetry retries 5xx, 429 and network errors (connection
// refused/reset, EOF, per-attempt timeouts); never other 4xx.
func DefaultShouldRetry(err error) bool { return err != nil && kindOf(err).retry }

// BreakerConfig configures the circuit breaker on the endpoint. 410, 4xx
// and cancellations never count as failures; 429 is neutral.
type BreakerConfig struct {
	// Disabled turns the breaker off.
	Disabled bool
	// ConsecutiveFailures opens the breaker; 0 => 5.
	ConsecutiveFailures uint32
	// OpenTimeout is how long it stays open before letting probes through
	// (half-open); 0 => 30 s.
	OpenTimeout time.Duration
	// HalfOpenRequests is how many probes half-open allows (all must
	// succeed to close); 0 => 1.
	HalfOpenRequests uint32
}

// HealthConfig configures per-connection health. A connection whose
// deliveries failed FailureThreshold times in a row is unhealthy: Broadcast
// skips it until Cooldown has passed since its last failure, then lets one
// single-attempt probe through; success makes it healthy again.
type HealthConfig struct {
	// FailureThreshold; 0 => 3.
	FailureThreshold int
	// Cooldown; 0 => 30 s.
	Cooldown time.Duration
	// MaxTracked bounds how many failing connections are remembered (least
	// recently failed are forgotten first); 0 => 10000.
	MaxTracked int
}

func (c Config) withDefaults() Config {
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	c.Limit = c.Limit.withDefaults(c.Workers)
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	r := &c.Retry
	if r.BaseDelay <= 0 {
		r.BaseDelay = DefaultBaseDelay
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = DefaultMaxDelay
	}
	if r.Multiplier <= 0 {
		r.Multiplier = DefaultMultiplier
	}
	if r.Jitter == 0 {
		r.Jitter = DefaultJitter
	} else if r.Jitter < 0 {
		r.Jitter = 0
	}
	if r.ShouldRetry == nil {
		r.ShouldRetry = DefaultShouldRetry
	}
	if r.Rand == nil {
		r.Rand = rand.Float64
	}
	if r.Backoff == nil {
		p := *r
		r.Backoff = func(n int) time.Duration {
			return ExponentialBackoff(p.BaseDelay, p.MaxDelay, p.Multiplier, p.Jitter, p.Rand(), n)
		}
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.Breaker.ConsecutiveFailures == 0 {
		c.Breaker.ConsecutiveFailures = 5
	}
	if c.Breaker.OpenTimeout <= 0 {
		c.Breaker.OpenTimeout = 30 * time.Second
	}
	if c.Breaker.HalfOpenRequests == 0 {
		c.Breaker.HalfOpenRequests = 1
	}
	if c.Health.FailureThreshold <= 0 {
		c.Health.FailureThreshold = 3
	}
	if c.Health.Cooldown <= 0 {
		c.Health.Cooldown = 30 * time.Second
	}
	if c.Health.MaxTracked <= 0 {
		c.Health.MaxTracked = 10000
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = SystemClock()
	}
	return c
}

// ExponentialBackoff returns the wait before retry n (1-based):
// base*mult^(n-1), capped at max, spread by ±jitter using u in [0,1), and
// clamped to [0, max] again so jitter never pushes a wait past the cap.
func ExponentialBackoff(base, maxDelay time.Duration, mult, jitter, u float64, n int) time.Duration {
	d := float64(base)
	for i := 1; i < n && d < float64(maxDelay); i++ {
		d *= mult
	}
	d = min(d, float64(maxDelay))
	d *= 1 + jitter*(2*u-1)
	d = min(max(d, 0), float64(maxDelay))
	return time.Duration(d)
}

// Clock is the time source; tests inject a fake one.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer from a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// SystemClock is the real clock.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time                 { return time.Now() }
func (systemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop() bool          { return t.t.Stop() }
