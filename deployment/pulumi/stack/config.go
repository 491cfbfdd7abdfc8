package stack

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// ConfigNamespace is the Pulumi config namespace of this program (the
// project name in Pulumi.yaml): keys are written `streamer:logLevel`.
const ConfigNamespace = "streamer"

// ErrInvalidConfig wraps every configuration problem LoadConfig reports.
var ErrInvalidConfig = errors.New("invalid stack configuration")

// Config is everything that differs between environments. Zero values mean
// the documented defaults (applied by WithDefaults), so a stack file only
// states what it changes.
type Config struct {
	// Environment names the deployment (the ENVIRONMENT variable and the
	// Environment metric dimension). "" => the Pulumi stack name.
	Environment string `json:"environment"`
	// NamePrefix prefixes every physical resource name. "" => "streamer-<environment>".
	NamePrefix string `json:"namePrefix"`
	// LogLevel is the handlers' LOG_LEVEL. "" => info.
	LogLevel string `json:"logLevel"`
	// LogRetentionDays applies to every log group. 0 => 14. Must be a value
	// CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...).
	LogRetentionDays int `json:"logRetentionDays"`
	// MetricsNamespace is the CloudWatch namespace of the handlers' EMF
	// metrics. "" => contract.DefaultMetricsNamespace.
	MetricsNamespace string `json:"metricsNamespace"`
	// TableName is the connections table. "" => "<schema.DefaultTableName>-<environment>",
	// so several environments can share an account.
	TableName string `json:"tableName"`
	// DeletionProtection protects the table (and keeps the KMS key and the
	// secret for 30 days instead of 7 after a destroy). false in dev only.
	DeletionProtection bool `json:"deletionProtection"`
	// CloudTrail creates a trail (and its S3 bucket) recording data events
	// on the table.
	CloudTrail bool `json:"cloudTrail"`
	// APIGatewayAccountRole sets the account-wide API Gateway CloudWatch
	// role, which WebSocket stage logging requires. Keep it true in exactly
	// one stack per account and region.
	APIGatewayAccountRole bool `json:"apiGatewayAccountRole"`
	// StageName is the WebSocket API stage. "" => the environment name.
	StageName string `json:"stageName"`
	// APILoggingLevel is the stage's execution logging: OFF, ERROR or INFO.
	// "" => ERROR.
	APILoggingLevel string `json:"apiLoggingLevel"`
	// Throttling is the stage's default route throttling.
	Throttling Throttling `json:"throttling"`
	// JWT configures token verification on $connect.
	JWT JWT `json:"jwt"`
	// LambdaZipDir holds <function>.zip built by scripts/build-lambdas.sh,
	// relative to deployment/pulumi. "" => "../../dist".
	LambdaZipDir string `json:"lambdaZipDir"`
	// Functions sizes each function by name (connect, disconnect, default);
	// a function not listed gets the defaults of FunctionConfig.
	Functions map[string]FunctionConfig `json:"functions"`
	// AccountConcurrencyLimit is the account's Lambda concurrency limit in
	// this region (for the account-level concurrency alarm). 0 => 1000.
	AccountConcurrencyLimit int `json:"accountConcurrencyLimit"`
	// SlowSendMs is the duration_ms above which the saved "slow sends"
	// Logs Insights query reports a send. 0 => 500.
	SlowSendMs int `json:"slowSendMs"`
	// Alarms configures the CloudWatch alarms.
	Alarms Alarms `json:"alarms"`
	// Reaper schedules the reaper function.
	Reaper Reaper `json:"reaper"`
	// Routes adds routes of your own to the WebSocket API, each served by
	// a Lambda function you deploy yourself (examples/chat's sendmessage,
	// for instance). The stack creates each route's integration, the route
	// (with a route response when TwoWay) and the permission for this
	// API's stage, and only this route, to invoke the function.
	Routes []Route `json:"routes"`
}

// Route is a route of your own, served by your function.
type Route struct {
	// Key is the route key the route selection expression
	// ($request.body.action) yields: "sendmessage" for
	// {"action":"sendmessage"}. Letters, digits and - _ . / only (the
	// resource names are built from it); not one of the stack's own
	// ($connect, $disconnect, $default).
	Key string `json:"key"`
	// FunctionArn is the function's ARN
	// (arn:aws:lambda:REGION:ACCOUNT:function:NAME, or with :ALIAS), in the
	// stack's region.
	FunctionArn string `json:"functionArn"`
	// TwoWay gives the route a route response: the function's response
	// body goes back to the sender. Default false (one-way, as AWS).
	TwoWay bool `json:"twoWay"`
}

// Reaper configures the scheduled reaper (lambda/reaper).
type Reaper struct {
	// Schedule is an EventBridge schedule expression, "rate(15 minutes)"
	// or "cron(0/15 * * * ? *)"; "" => no schedule (the function is
	// deployed and runs only when invoked by hand).
	Schedule string `json:"schedule"`
}

// Throttling is API Gateway stage throttling. Zero values => 500 burst, 1000 rps.
type Throttling struct {
	BurstLimit int     `json:"burstLimit"`
	RateLimit  float64 `json:"rateLimit"`
}

// JWT is what $connect verifies.
type JWT struct {
	// Issuer is the required iss claim (required: no default).
	Issuer string `json:"issuer"`
	// Audience is the required aud claim; "" => not checked.
	Audience string `json:"audience"`
}

// FunctionConfig sizes one Lambda function.
type FunctionConfig struct {
	// MemoryMB => 0 means 256.
	MemoryMB int `json:"memoryMb"`
	// TimeoutSeconds => 0 means 10 (the reaper: 300). At most 29 for the
	// route functions: API Gateway stops waiting for an integration after
	// 29 s, so a longer timeout only burns money. The reaper, invoked by a
	// schedule, may take up to Lambda's 900: it works until its timeout
	// (less a margin) and resumes in the next run.
	TimeoutSeconds int `json:"timeoutSeconds"`
	// ReservedConcurrency => 0 means unreserved (the account pool).
	ReservedConcurrency int `json:"reservedConcurrency"`
}

// Alarms configures alarm thresholds. Zero values => the defaults noted.
type Alarms struct {
	// Enabled creates the SNS topics and alarms (false in dev).
	Enabled bool `json:"enabled"`
	// ErrorRateLowPercent => 1: Errors/Invocations*100 above it pages the low topic.
	ErrorRateLowPercent float64 `json:"errorRateLowPercent"`
	// ErrorRateHighPercent => 5: above it pages the high topic.
	ErrorRateHighPercent float64 `json:"errorRateHighPercent"`
	// InitDurationMs => 1000: cold start (Init Duration) above it.
	InitDurationMs float64 `json:"initDurationMs"`
	// ConcurrencyPercent => 80: concurrent executions above this share of the limit.
	ConcurrencyPercent float64 `json:"concurrencyPercent"`
	// AuthFailures => 50: AuthenticationFailures summed over one period above it.
	AuthFailures float64 `json:"authFailures"`
	// DynamoThrottles => 0: any throttled DynamoDB request or event above it.
	DynamoThrottles float64 `json:"dynamoThrottles"`
	// ReaperErrors => 0: ReaperErrors plus the reaper's Lambda Errors (a
	// crashed or timed-out run writes no metric) summed over one hour
	// above it.
	ReaperErrors float64 `json:"reaperErrors"`
	// PeriodSeconds => 300.
	PeriodSeconds int `json:"periodSeconds"`
	// EvaluationPeriods => 1.
	EvaluationPeriods int `json:"evaluationPeriods"`
	// EmailLow / EmailHigh subscribe an address to each topic (optional;
	// AWS sends a confirmation mail first).
	EmailLow  string `json:"emailLow"`
	EmailHigh string `json:"emailHigh"`
}

// Defaults.
const (
	DefaultLogLevel                = "info"
	DefaultLogRetentionDays        = 14
	DefaultAPILoggingLevel         = "ERROR"
	DefaultBurstLimit              = 500
	DefaultRateLimit               = 1000
	DefaultLambdaZipDir            = "../../dist"
	DefaultMemoryMB                = 256
	DefaultTimeoutSeconds          = 10
	DefaultReaperTimeoutSeconds    = 300
	MaxRouteTimeoutSeconds         = 29
	MaxLambdaTimeoutSeconds        = 900
	DefaultAccountConcurrencyLimit = 1000
	DefaultSlowSendMs              = 500
	DefaultErrorRateLowPercent     = 1
	DefaultErrorRateHighPercent    = 5
	DefaultInitDurationMs          = 1000
	DefaultConcurrencyPercent      = 80
	DefaultAuthFailures            = 50
	DefaultAlarmPeriodSeconds      = 300
	DefaultEvaluationPeriods       = 1
)

// Shapes of Route fields.
var (
	routeKeyPattern    = regexp.MustCompile(`^[A-Za-z0-9_./-]{1,128}$`)
	functionArnPattern = regexp.MustCompile(`^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]{1,128})?$`)
)

// validRetention are the values CloudWatch Logs accepts.
var validRetention = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// LoadConfig reads the `streamer:` namespace of the stack's Pulumi config.
// Scalars are plain keys; throttling, jwt, functions and alarms are objects.
func LoadConfig(ctx *pulumi.Context) (Config, error) {
	c := config.New(ctx, ConfigNamespace)
	var cfg Config
	cfg.Environment = c.Get("environment")
	cfg.NamePrefix = c.Get("namePrefix")
	cfg.LogLevel = c.Get("logLevel")
	cfg.LogRetentionDays = c.GetInt("logRetentionDays")
	cfg.MetricsNamespace = c.Get("metricsNamespace")
	cfg.TableName = c.Get("tableName")
	cfg.DeletionProtection = c.GetBool("deletionProtection")
	cfg.CloudTrail = c.GetBool("cloudTrail")
	cfg.APIGatewayAccountRole = c.GetBool("apiGatewayAccountRole")
	cfg.StageName = c.Get("stageName")
	cfg.APILoggingLevel = c.Get("apiLoggingLevel")
	cfg.LambdaZipDir = c.Get("lambdaZipDir")
	cfg.AccountConcurrencyLimit = c.GetInt("accountConcurrencyLimit")
	cfg.SlowSendMs = c.GetInt("slowSendMs")
	// GetInt/GetBool return zero on a malformed value; catch that instead of
	// silently deploying defaults.
	for _, k := range []string{"logRetentionDays", "accountConcurrencyLimit", "slowSendMs"} {
		if _, err := c.TryInt(k); err != nil && !errors.Is(err, config.ErrMissingVar) {
			return Config{}, fmt.Errorf("%w: streamer:%s: %v", ErrInvalidConfig, k, err)
		}
	}
	for _, k := range []string{"deletionProtection", "cloudTrail", "apiGatewayAccountRole"} {
		if _, err := c.TryBool(k); err != nil && !errors.Is(err, config.ErrMissingVar) {
			return Config{}, fmt.Errorf("%w: streamer:%s: %v", ErrInvalidConfig, k, err)
		}
	}
	objects := []struct {
		key string
		out any
	}{
		{"throttling", &cfg.Throttling},
		{"jwt", &cfg.JWT},
		{"functions", &cfg.Functions},
		{"alarms", &cfg.Alarms},
		{"reaper", &cfg.Reaper},
		{"routes", &cfg.Routes},
	}
	for _, o := range objects {
		if err := c.TryObject(o.key, o.out); err != nil && !errors.Is(err, config.ErrMissingVar) {
			return Config{}, fmt.Errorf("%w: streamer:%s: %v", ErrInvalidConfig, o.key, err)
		}
	}
	cfg = cfg.WithDefaults(ctx.Stack())
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// WithDefaults returns cfg with every zero value replaced by its default.
// stack is the Pulumi stack name (the default environment).
func (cfg Config) WithDefaults(stack string) Config {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defF := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.Environment, stack)
	def(&cfg.NamePrefix, contract.NamePrefix(cfg.Environment))
	def(&cfg.LogLevel, DefaultLogLevel)
	defInt(&cfg.LogRetentionDays, DefaultLogRetentionDays)
	def(&cfg.MetricsNamespace, contract.DefaultMetricsNamespace)
	def(&cfg.TableName, schema.DefaultTableName+"-"+cfg.Environment)
	def(&cfg.StageName, cfg.Environment)
	def(&cfg.APILoggingLevel, DefaultAPILoggingLevel)
	cfg.APILoggingLevel = strings.ToUpper(cfg.APILoggingLevel)
	defInt(&cfg.Throttling.BurstLimit, DefaultBurstLimit)
	defF(&cfg.Throttling.RateLimit, DefaultRateLimit)
	def(&cfg.LambdaZipDir, DefaultLambdaZipDir)
	defInt(&cfg.AccountConcurrencyLimit, DefaultAccountConcurrencyLimit)
	defInt(&cfg.SlowSendMs, DefaultSlowSendMs)

	fns := make(map[string]FunctionConfig, len(cfg.Functions))
	for name, f := range cfg.Functions {
		fns[name] = f
	}
	for _, name := range contract.Functions() {
		f := fns[name]
		defInt(&f.MemoryMB, DefaultMemoryMB)
		if contract.RouteOf(name) == "" {
			defInt(&f.TimeoutSeconds, DefaultReaperTimeoutSeconds)
		}
		defInt(&f.TimeoutSeconds, DefaultTimeoutSeconds)
		fns[name] = f
	}
	cfg.Functions = fns

	a := &cfg.Alarms
	defF(&a.ErrorRateLowPercent, DefaultErrorRateLowPercent)
	defF(&a.ErrorRateHighPercent, DefaultErrorRateHighPercent)
	defF(&a.InitDurationMs, DefaultInitDurationMs)
	defF(&a.ConcurrencyPercent, DefaultConcurrencyPercent)
	defF(&a.AuthFailures, DefaultAuthFailures)
	defInt(&a.PeriodSeconds, DefaultAlarmPeriodSeconds)
	defInt(&a.EvaluationPeriods, DefaultEvaluationPeriods)
	return cfg
}

// Validate reports every problem at once, each naming its config key.
func (cfg Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }

	if !slices.Contains([]string{"debug", "info", "warn", "error"}, cfg.LogLevel) {
		bad("streamer:logLevel %q: use debug, info, warn or error", cfg.LogLevel)
	}
	if !slices.Contains(validRetention, cfg.LogRetentionDays) {
		bad("streamer:logRetentionDays %d: CloudWatch Logs accepts only %v", cfg.LogRetentionDays, validRetention)
	}
	if !slices.Contains([]string{"OFF", "ERROR", "INFO"}, cfg.APILoggingLevel) {
		bad("streamer:apiLoggingLevel %q: use OFF, ERROR or INFO", cfg.APILoggingLevel)
	}
	if cfg.JWT.Issuer == "" {
		bad("streamer:jwt.issuer is required: the iss claim $connect accepts (the issuer you mint tokens with)")
	}
	if cfg.Throttling.BurstLimit < 0 || cfg.Throttling.RateLimit < 0 {
		bad("streamer:throttling: burstLimit and rateLimit must be positive")
	}
	names := make([]string, 0, len(cfg.Functions))
	for name := range cfg.Functions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f := cfg.Functions[name]
		if !slices.Contains(contract.Functions(), name) {
			bad("streamer:functions.%s: unknown function (known: %v)", name, contract.Functions())
			continue
		}
		if f.MemoryMB < 128 || f.MemoryMB > 10240 {
			bad("streamer:functions.%s.memoryMb %d: Lambda allows 128..10240", name, f.MemoryMB)
		}
		switch {
		case contract.RouteOf(name) == "" && (f.TimeoutSeconds < 1 || f.TimeoutSeconds > MaxLambdaTimeoutSeconds):
			bad("streamer:functions.%s.timeoutSeconds %d: use 1..%d (Lambda's limit)", name, f.TimeoutSeconds, MaxLambdaTimeoutSeconds)
		case contract.RouteOf(name) != "" && (f.TimeoutSeconds < 1 || f.TimeoutSeconds > MaxRouteTimeoutSeconds):
			bad("streamer:functions.%s.timeoutSeconds %d: use 1..%d (API Gateway waits at most 29 s for an integration)", name, f.TimeoutSeconds, MaxRouteTimeoutSeconds)
		}
		if f.ReservedConcurrency < 0 {
			bad("streamer:functions.%s.reservedConcurrency %d: use 0 (unreserved) or a positive number", name, f.ReservedConcurrency)
		}
	}
	a := cfg.Alarms
	if a.ErrorRateLowPercent >= a.ErrorRateHighPercent {
		bad("streamer:alarms: errorRateLowPercent (%g) must be below errorRateHighPercent (%g)", a.ErrorRateLowPercent, a.ErrorRateHighPercent)
	}
	if a.ConcurrencyPercent <= 0 || a.ConcurrencyPercent > 100 {
		bad("streamer:alarms.concurrencyPercent %g: use 1..100", a.ConcurrencyPercent)
	}
	if a.PeriodSeconds < 10 || (a.PeriodSeconds >= 60 && a.PeriodSeconds%60 != 0) || (a.PeriodSeconds < 60 && a.PeriodSeconds != 10 && a.PeriodSeconds != 30) {
		bad("streamer:alarms.periodSeconds %d: use 10, 30 or a multiple of 60", a.PeriodSeconds)
	}
	if a.EvaluationPeriods < 1 {
		bad("streamer:alarms.evaluationPeriods %d: use 1 or more", a.EvaluationPeriods)
	}
	if a.ReaperErrors < 0 {
		bad("streamer:alarms.reaperErrors %g: use 0 (any) or more", a.ReaperErrors)
	}
	if err := checkSchedule(cfg.Reaper.Schedule); err != nil {
		bad("streamer:reaper.schedule %q: %v", cfg.Reaper.Schedule, err)
	}
	seen := map[string]bool{}
	for i, r := range cfg.Routes {
		switch {
		case !routeKeyPattern.MatchString(r.Key):
			bad("streamer:routes[%d].key %q: use 1 to 128 letters, digits, -, _, . and /, not a $ key (the stack deploys $connect, $disconnect and $default itself)", i, r.Key)
		case seen[r.Key]:
			bad("streamer:routes[%d].key %q: given twice", i, r.Key)
		}
		seen[r.Key] = true
		if !functionArnPattern.MatchString(r.FunctionArn) {
			bad("streamer:routes[%d].functionArn %q: want arn:aws:lambda:REGION:ACCOUNT:function:NAME[:ALIAS]", i, r.FunctionArn)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrInvalidConfig, strings.Join(errs, "\n  "))
	}
	return nil
}

// rateExpr is EventBridge's rate expression: a positive whole number and a
// unit, singular for 1 and plural otherwise.
var rateExpr = regexp.MustCompile(`^rate\(([1-9][0-9]*) (minute|minutes|hour|hours|day|days)\)$`)

// checkSchedule accepts "" (no schedule), a rate expression, or a cron
// expression of EventBridge's six fields; EventBridge itself checks the
// fields' values.
func checkSchedule(s string) error {
	if s == "" {
		return nil
	}
	if m := rateExpr.FindStringSubmatch(s); m != nil {
		if one := m[1] == "1"; one != !strings.HasSuffix(m[2], "s") {
			return errors.New(`use a singular unit for 1 and a plural one otherwise: "rate(1 minute)", "rate(15 minutes)"`)
		}
		return nil
	}
	if inner, ok := strings.CutPrefix(s, "cron("); ok && strings.HasSuffix(inner, ")") {
		if n := len(strings.Fields(strings.TrimSuffix(inner, ")"))); n != 6 {
			return fmt.Errorf("a cron expression has 6 fields (minutes hours day-of-month month day-of-week year), not %d", n)
		}
		return nil
	}
	return errors.New(`use "rate(N minutes|hours|days)" or "cron(...)" (EventBridge schedule expressions), or leave it empty for no schedule`)
}
