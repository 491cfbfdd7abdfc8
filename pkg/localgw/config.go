package localgw

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// AWS API Gateway WebSocket limits the gateway enforces.
const (
	// MaxMessageBytes is the largest client message (and PostToConnection
	// payload) API Gateway accepts: 128 KB.
	MaxMessageBytes = 128 * 1024
	// MaxFrameBytes is the largest single WebSocket frame a client may send:
	// 32 KB. Larger messages must be fragmented.
	MaxFrameBytes = 32 * 1024
	// DefaultIdleTimeout closes a connection with no client activity.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultMaxDuration closes every connection this long after connect.
	DefaultMaxDuration = 2 * time.Hour
	// DefaultIntegrationTimeout is API Gateway's integration timeout.
	DefaultIntegrationTimeout = 29 * time.Second
	// DefaultWriteTimeout bounds one frame write to a client.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultOutboundBuffer bounds the bytes queued for one client.
	DefaultOutboundBuffer = 1 << 20
	// DefaultStage is the stage when Config.Stage is empty.
	DefaultStage = "local"
	// DefaultAPIID is the apiId in events when Config.APIID is empty.
	DefaultAPIID = "local"
	// DefaultRouteSelectionExpression is API Gateway's usual expression (the
	// one the deployment uses).
	DefaultRouteSelectionExpression = contract.RouteSelectionExpression
)

// API Gateway's default account quotas, which Config.AWSQuotas applies
// (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html,
// .../apigateway-execution-service-websocket-limits-table.html).
const (
	// AWSConnectRateLimit is the new WebSocket connections per second per
	// account and Region.
	AWSConnectRateLimit = 500
	// AWSThrottleRate and AWSThrottleBurst are the account throttle (a token
	// bucket) that @connections calls count against.
	AWSThrottleRate  = 10000
	AWSThrottleBurst = 5000
)

// Route keys with special meaning (the same keys the handlers and the
// deployment use).
const (
	RouteConnect    = contract.RouteConnect
	RouteDisconnect = contract.RouteDisconnect
	RouteDefault    = contract.RouteDefault
)

// ErrInvalidConfig is returned by New (wrapped, with the field at fault).
var ErrInvalidConfig = errors.New("localgw: invalid configuration")

// Config configures a Gateway. Every zero value means the documented default.
type Config struct {
	// Stage is the first path segment: ws://HOST:PORT/{Stage}. "" => "local".
	Stage string
	// Routes maps route keys ("$connect", "$disconnect", "$default", or any
	// action such as "ping") to integrations. A missing $connect accepts every
	// connection; a missing $disconnect is skipped; a message matching no route
	// and no $default gets AWS's "Forbidden" error frame. Routes are one-way
	// (their integration's response body is dropped, as on AWS) unless
	// wrapped in TwoWay. Routes can be replaced later with SetRoute.
	Routes map[string]Integration
	// RouteSelectionExpression picks the route key from a message body, as
	// on API Gateway: "$request.body.<field>[.<field>...]", or a template
	// joining several "${request.body.<path>}" variables and literal text
	// (e.g. "${request.body.type}/${request.body.action}"; "\$" is a literal
	// "$"). Non-string values are stringified; a message missing a field
	// goes to $default. "" => "$request.body.action".
	RouteSelectionExpression string
	// IdleTimeout closes a connection when the client sent nothing (no data
	// message and no ping) for this long. 0 => 10 minutes.
	IdleTimeout time.Duration
	// MaxDuration closes every connection this long after it connected.
	// 0 => 2 hours.
	MaxDuration time.Duration
	// IntegrationTimeout bounds each integration call. 0 => 29 s.
	IntegrationTimeout time.Duration
	// WriteTimeout bounds one frame write to a client; a client that does not
	// read for this long is disconnected. 0 => 10 s.
	WriteTimeout time.Duration
	// OutboundBuffer bounds the bytes queued for one client. A
	// PostToConnection that does not fit gets 429 LimitExceededException, as
	// API Gateway answers when "the WebSocket client side buffer is full".
	// One message always fits an empty buffer. 0 => 1 MiB.
	OutboundBuffer int

	// EmbeddedDynamoDB serves a DynamoDB API (minidyn, in memory) on the same
	// listener for requests carrying X-Amz-Target, with Table created at New.
	EmbeddedDynamoDB bool
	// Table is the connections table created in the embedded DynamoDB.
	// "" => schema.DefaultTableName.
	Table string

	// ManagementRateLimit and ManagementBurst are the initial
	// Faults.ThrottleRate and Faults.ThrottleBurst when those are zero (kept
	// from before the throttle could change at runtime; prefer Faults).
	ManagementRateLimit float64
	ManagementBurst     int

	// ConnectRateLimit is the new connections per second the gateway
	// accepts (a token bucket of ConnectBurst): an upgrade beyond it is
	// answered 429 before $connect runs, as API Gateway answers beyond its
	// account quota. 0 => unlimited (AWSConnectRateLimit with AWSQuotas).
	ConnectRateLimit float64
	// ConnectBurst is that bucket's size. 0 => max(1, ConnectRateLimit).
	ConnectBurst int
	// AWSQuotas applies API Gateway's default account quotas where the
	// fields for them are zero: ConnectRateLimit AWSConnectRateLimit and the
	// @connections throttle (Faults.ThrottleRate/ThrottleBurst)
	// AWSThrottleRate/AWSThrottleBurst. Off by default: a local stack is
	// usually faster than a fresh AWS account allows, which is what tests and
	// demos want.
	AWSQuotas bool

	// Faults injects management API failures, latency and throttling, and
	// drops $disconnect events; off by default. SetFaults changes it while
	// serving.
	Faults Faults

	// Logger receives diagnostics. nil => discard.
	Logger *slog.Logger
	// Now is the clock for event timestamps, GetConnection times and the rate
	// limiter. Timeouts use real timers. nil => time.Now.
	Now func() time.Time
	// DomainName is the domainName in events. "" => the request's Host header.
	DomainName string
	// APIID is the apiId in events. "" => "local".
	APIID string
	// NewID generates connection ids (tests use it for ids with "-", "_"
	// or characters that need URL-encoding). It must return unique strings.
	// nil => random AWS-shaped ids: 11 random bytes in URL-safe base64, 15
	// characters of [A-Za-z0-9_-] and "=", like "L0SM9cOFvHcCIhw=".
	NewID func() string
}

// Faults is the AWS regime the gateway imposes at runtime: injected
// @connections failures, latency and throttling, and dropped $disconnect
// events. The zero value injects nothing. Set it in Config.Faults or, while
// serving, with Gateway.SetFaults (read the current set with
// Gateway.Faults).
type Faults struct {
	// Error500, Error429 and Error410 are the probabilities, per
	// @connections request, of a 500 InternalServerErrorException, a 429
	// LimitExceededException and a 410 GoneException. They must sum to <= 1.
	Error500 float64
	Error429 float64
	Error410 float64
	// Latency is added to every @connections request.
	Latency time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter).
	Jitter time.Duration
	// ThrottleRate is the @connections requests per second allowed (a token
	// bucket of ThrottleBurst tokens, as API Gateway's account throttle);
	// beyond it requests get 429 LimitExceededException. 0 => unlimited.
	// Changing the rate or burst starts a full bucket.
	ThrottleRate float64
	// ThrottleBurst is the bucket size. 0 => max(1, ThrottleRate).
	ThrottleBurst int
	// DropDisconnect is the probability (0 to 1) that a closing connection's
	// $disconnect integration is skipped, as AWS may skip it ($disconnect is
	// best-effort). Dropped events are counted in disconnects_dropped_total.
	DropDisconnect float64
	// Rand draws the probabilities and jitter. It is used under a mutex.
	// nil => a generator seeded with Seed (or randomly when Seed is 0).
	Rand *rand.Rand
	// Seed seeds the generator when Rand is nil; 0 => random.
	Seed uint64
}

// delays reports whether requests wait or may fail by injection (the
// throttle is checked on its own).
func (f Faults) delays() bool {
	return f.Error500 > 0 || f.Error429 > 0 || f.Error410 > 0 || f.Latency > 0 || f.Jitter > 0
}

func (f Faults) validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Error500", f.Error500}, {"Error429", f.Error429}, {"Error410", f.Error410}, {"DropDisconnect", f.DropDisconnect}} {
		if !(p.v >= 0 && p.v <= 1) { // also NaN
			return fmt.Errorf("%w: Faults.%s = %v, want a probability in [0, 1]", ErrInvalidConfig, p.name, p.v)
		}
	}
	if sum := f.Error500 + f.Error429 + f.Error410; sum > 1+1e-9 {
		return fmt.Errorf("%w: fault probabilities sum to %v, want <= 1", ErrInvalidConfig, sum)
	}
	if f.Latency < 0 || f.Jitter < 0 {
		return fmt.Errorf("%w: Faults.Latency and Faults.Jitter must not be negative", ErrInvalidConfig)
	}
	if !(f.ThrottleRate >= 0) || f.ThrottleBurst < 0 || math.IsInf(f.ThrottleRate, 0) {
		return fmt.Errorf("%w: Faults.ThrottleRate %v and ThrottleBurst %d: want a finite rate >= 0 (0 = unlimited) and a burst >= 0",
			ErrInvalidConfig, f.ThrottleRate, f.ThrottleBurst)
	}
	return nil
}

// withDefaults returns cfg with zero values replaced and validates it.
func (cfg Config) withDefaults() (Config, selector, error) {
	if cfg.Stage == "" {
		cfg.Stage = DefaultStage
	}
	if strings.ContainsAny(cfg.Stage, "/?#@ ") {
		return cfg, nil, fmt.Errorf("%w: Stage %q must be a single path segment", ErrInvalidConfig, cfg.Stage)
	}
	if cfg.RouteSelectionExpression == "" {
		cfg.RouteSelectionExpression = DefaultRouteSelectionExpression
	}
	sel, err := parseSelectionExpression(cfg.RouteSelectionExpression)
	if err != nil {
		return cfg, nil, err
	}
	if cfg.IdleTimeout < 0 || cfg.MaxDuration < 0 || cfg.IntegrationTimeout < 0 || cfg.WriteTimeout < 0 || cfg.OutboundBuffer < 0 {
		return cfg, nil, fmt.Errorf("%w: timeouts and OutboundBuffer must not be negative", ErrInvalidConfig)
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxDuration == 0 {
		cfg.MaxDuration = DefaultMaxDuration
	}
	if cfg.IntegrationTimeout == 0 {
		cfg.IntegrationTimeout = DefaultIntegrationTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.OutboundBuffer == 0 {
		cfg.OutboundBuffer = DefaultOutboundBuffer
	}
	if cfg.Table == "" {
		cfg.Table = schema.DefaultTableName
	}
	if !(cfg.ManagementRateLimit >= 0) || cfg.ManagementBurst < 0 {
		return cfg, nil, fmt.Errorf("%w: ManagementRateLimit and ManagementBurst must not be negative", ErrInvalidConfig)
	}
	if !(cfg.ConnectRateLimit >= 0) || cfg.ConnectBurst < 0 || math.IsInf(cfg.ConnectRateLimit, 0) {
		return cfg, nil, fmt.Errorf("%w: ConnectRateLimit %v and ConnectBurst %d: want a finite rate >= 0 (0 = unlimited) and a burst >= 0",
			ErrInvalidConfig, cfg.ConnectRateLimit, cfg.ConnectBurst)
	}
	if cfg.Faults.ThrottleRate == 0 && cfg.ManagementRateLimit > 0 {
		cfg.Faults.ThrottleRate, cfg.Faults.ThrottleBurst = cfg.ManagementRateLimit, cfg.ManagementBurst
	}
	if cfg.AWSQuotas {
		if cfg.ConnectRateLimit == 0 {
			cfg.ConnectRateLimit, cfg.ConnectBurst = AWSConnectRateLimit, AWSConnectRateLimit
		}
		if cfg.Faults.ThrottleRate == 0 {
			cfg.Faults.ThrottleRate, cfg.Faults.ThrottleBurst = AWSThrottleRate, AWSThrottleBurst
		}
	}
	if err := cfg.Faults.validate(); err != nil {
		return cfg, nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = newID
	}
	if cfg.APIID == "" {
		cfg.APIID = DefaultAPIID
	}
	return cfg, sel, nil
}
