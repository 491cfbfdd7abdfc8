package localgw

import (
	"errors"
	"fmt"
	"log/slog"
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
	// DefaultRouteSelectionExpression is API Gateway's usual expression.
	DefaultRouteSelectionExpression = "$request.body.action"
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
	// and no $default gets AWS's "Forbidden" error frame. Routes can be
	// replaced later with SetRoute.
	Routes map[string]Integration
	// RouteSelectionExpression picks the route key from a message body.
	// Supported: "$request.body.<field>[.<field>...]" (also "${...}").
	// "" => "$request.body.action".
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

	// ManagementRateLimit is the @connections requests per second allowed
	// (token bucket); excess requests get 429 LimitExceededException.
	// 0 => unlimited.
	ManagementRateLimit float64
	// ManagementBurst is the token bucket size. 0 => max(1, rate).
	ManagementBurst int

	// Faults injects management API failures and latency; off by default.
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
	// NewID generates connection ids (tests use it for ids with "+" and
	// "/"). It must return unique strings. nil => random AWS-shaped ids:
	// 11 random bytes in standard base64, like "L0SM9cOFvHcCIhw=".
	NewID func() string
}

// Faults describes injected management API failures. The zero value injects
// nothing. Probabilities are per @connections request and must sum to <= 1.
type Faults struct {
	// Error500 is the probability of a 500 InternalServerErrorException.
	Error500 float64
	// Error429 is the probability of a 429 LimitExceededException.
	Error429 float64
	// Error410 is the probability of a 410 GoneException.
	Error410 float64
	// Latency is added to every management request.
	Latency time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter).
	Jitter time.Duration
	// Rand draws the probabilities and jitter. It is used under a mutex.
	// nil => a generator seeded with Seed (or randomly when Seed is 0).
	Rand *rand.Rand
	// Seed seeds the generator when Rand is nil; 0 => random.
	Seed uint64
}

func (f Faults) enabled() bool {
	return f.Error500 > 0 || f.Error429 > 0 || f.Error410 > 0 || f.Latency > 0 || f.Jitter > 0
}

func (f Faults) validate() error {
	for name, p := range map[string]float64{"Error500": f.Error500, "Error429": f.Error429, "Error410": f.Error410} {
		if p < 0 || p > 1 {
			return fmt.Errorf("%w: Faults.%s = %v, want a probability in [0, 1]", ErrInvalidConfig, name, p)
		}
	}
	if sum := f.Error500 + f.Error429 + f.Error410; sum > 1+1e-9 {
		return fmt.Errorf("%w: fault probabilities sum to %v, want <= 1", ErrInvalidConfig, sum)
	}
	if f.Latency < 0 || f.Jitter < 0 {
		return fmt.Errorf("%w: Faults.Latency and Faults.Jitter must not be negative", ErrInvalidConfig)
	}
	return nil
}

// withDefaults returns cfg with zero values replaced and validates it.
func (cfg Config) withDefaults() (Config, []string, error) {
	if cfg.Stage == "" {
		cfg.Stage = DefaultStage
	}
	if strings.ContainsAny(cfg.Stage, "/?#@ ") {
		return cfg, nil, fmt.Errorf("%w: Stage %q must be a single path segment", ErrInvalidConfig, cfg.Stage)
	}
	if cfg.RouteSelectionExpression == "" {
		cfg.RouteSelectionExpression = DefaultRouteSelectionExpression
	}
	path, err := parseSelectionExpression(cfg.RouteSelectionExpression)
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
	if cfg.ManagementRateLimit < 0 || cfg.ManagementBurst < 0 {
		return cfg, nil, fmt.Errorf("%w: ManagementRateLimit and ManagementBurst must not be negative", ErrInvalidConfig)
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
	return cfg, path, nil
}

// parseSelectionExpression turns "$request.body.a.b" (or "${request.body.a.b}")
// into the JSON path ["a", "b"].
func parseSelectionExpression(expr string) ([]string, error) {
	e := expr
	if strings.HasPrefix(e, "${") && strings.HasSuffix(e, "}") {
		e = "$" + e[2:len(e)-1]
	}
	const prefix = "$request.body."
	if !strings.HasPrefix(e, prefix) || len(e) == len(prefix) {
		return nil, fmt.Errorf("%w: RouteSelectionExpression %q is not supported; use $request.body.<field> (e.g. %q)",
			ErrInvalidConfig, expr, DefaultRouteSelectionExpression)
	}
	path := strings.Split(e[len(prefix):], ".")
	for _, p := range path {
		if p == "" {
			return nil, fmt.Errorf("%w: RouteSelectionExpression %q has an empty field name", ErrInvalidConfig, expr)
		}
	}
	return path, nil
}
