// Package boot is the cold-start wiring the Lambda entry points share:
// configuration from the environment (names from contract/), the
// logger, tracing, the AWS SDK config with OpenTelemetry instrumentation, the
// DynamoDB client and the JWT verifier; Main runs all of it for an entry
// point. It never exits the process: Main returns the exit code (1 after a
// failed cold start, logged once) for main to pass to os.Exit.
package boot

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/observability"
)

// ErrConfig matches every configuration error (errors.Is).
var ErrConfig = errors.New("lambda configuration invalid")

// MissingError names required environment variables that are unset.
type MissingError struct {
	Function  string
	Variables []string // e.g. "CONNECTIONS_TABLE", "JWT_PUBLIC_KEY, JWT_PUBLIC_KEY_SECRET_ARN or JWT_JWKS_URL"
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s: missing required environment variable(s) %s: set them in the function configuration (see docs/lambda.md)",
		e.Function, strings.Join(e.Variables, ", "))
}

// Is makes errors.Is(err, ErrConfig) true.
func (e *MissingError) Is(target error) bool { return target == ErrConfig }

// InvalidError is a variable whose value cannot be used.
type InvalidError struct {
	Variable string
	Reason   string
	Err      error
}

func (e *InvalidError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Variable, e.Reason, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Variable, e.Reason)
}

// Is makes errors.Is(err, ErrConfig) true.
func (e *InvalidError) Is(target error) bool { return target == ErrConfig }

// Unwrap returns the cause.
func (e *InvalidError) Unwrap() error { return e.Err }

// Config is a handler's configuration, read from the environment.
type Config struct {
	// Function is the contract name (connect|disconnect|default).
	Function string
	// FunctionName is AWS_LAMBDA_FUNCTION_NAME, else Function: the "function"
	// log field.
	FunctionName string

	Table                 string
	JWTPublicKeyPEM       string
	JWTPublicKeySecretARN string
	JWTJWKSURL            string
	JWTIssuer             string
	JWTAudience           string
	LogLevel              slog.Level
	Environment           string
	MetricsNamespace      string
	OTLPEndpoint          string
	// ManagementEndpoint is MANAGEMENT_ENDPOINT, read only by the
	// functions whose contract has it (the reaper): the API's @connections
	// base URL with its stage.
	ManagementEndpoint string
	// DynamoDBEndpoint is AWS_ENDPOINT_URL_DYNAMODB, else AWS_ENDPOINT_URL:
	// set only when the store is an emulator or a custom endpoint. The SDK
	// reads these itself; it is kept here only to relax response checksum
	// validation for emulators (see NewDynamoDB).
	DynamoDBEndpoint string
}

// Load reads the configuration of function (a contract.Function* name) from
// getenv (os.Getenv in production). Every missing required variable is named
// in one *MissingError.
func Load(function string, getenv func(string) string) (Config, error) {
	vars := contract.Vars(function)
	if vars == nil {
		return Config{}, &InvalidError{Variable: "function", Reason: fmt.Sprintf("unknown function %q (want one of %v)", function, contract.Functions())}
	}
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	// Only variables of contract.Vars(function) and contract.PlatformVars()
	// are read (a test records every name): what a function reads, the IaC
	// deploys.
	c := Config{
		Function:         function,
		FunctionName:     get(contract.EnvLambdaFunctionName),
		Table:            get(contract.EnvConnectionsTable),
		Environment:      get(contract.EnvEnvironment),
		MetricsNamespace: get(contract.EnvMetricsNamespace),
		OTLPEndpoint:     get(contract.EnvOTLPEndpoint),
		DynamoDBEndpoint: get(contract.EnvEndpointURLDynamoDB),
	}
	needsKey := slices.ContainsFunc(vars, func(v contract.Var) bool { return slices.Contains(contract.KeyVars(), v.Name) })
	if needsKey { // the function verifies tokens ($connect)
		c.JWTPublicKeyPEM = pemFromEnv(getenv(contract.EnvJWTPublicKey))
		c.JWTPublicKeySecretARN = get(contract.EnvJWTPublicKeySecretARN)
		c.JWTJWKSURL = get(contract.EnvJWTJWKSURL)
		c.JWTIssuer = get(contract.EnvJWTIssuer)
		c.JWTAudience = get(contract.EnvJWTAudience)
	}
	if slices.ContainsFunc(vars, func(v contract.Var) bool { return v.Name == contract.EnvManagementEndpoint }) {
		c.ManagementEndpoint = get(contract.EnvManagementEndpoint)
	}
	if c.FunctionName == "" {
		c.FunctionName = function
	}
	if c.DynamoDBEndpoint == "" {
		c.DynamoDBEndpoint = get(contract.EnvEndpointURL)
	}
	if c.Environment == "" {
		c.Environment = observability.DefaultEnvironment
	}
	if c.MetricsNamespace == "" {
		c.MetricsNamespace = contract.DefaultMetricsNamespace
	}
	lvl, ok := observability.ParseLevel(getenv(contract.EnvLogLevel))
	if !ok {
		return c, &InvalidError{Variable: contract.EnvLogLevel, Reason: fmt.Sprintf("unknown level %q: use debug, info, warn or error", getenv(contract.EnvLogLevel))}
	}
	c.LogLevel = lvl

	var missing []string
	for _, v := range vars {
		if slices.Contains(contract.KeyVars(), v.Name) {
			continue
		}
		if v.Required && get(v.Name) == "" {
			missing = append(missing, v.Name)
		}
	}
	if needsKey {
		var set []string
		for _, name := range contract.KeyVars() {
			if get(name) != "" {
				set = append(set, name)
			}
		}
		switch {
		case len(set) == 0:
			missing = append(missing, keyVarsChoice())
		case len(set) > 1:
			// Two sources of trust are ambiguous: refuse rather than guess.
			return c, &InvalidError{Variable: strings.Join(set, ", "), Reason: "set exactly one of " + keyVarsChoice() + ", not " + strings.Join(set, " and ")}
		}
	}
	if len(missing) > 0 {
		return c, &MissingError{Function: function, Variables: missing}
	}
	if c.ManagementEndpoint != "" {
		if err := checkManagementEndpoint(c.ManagementEndpoint); err != nil {
			return c, &InvalidError{Variable: contract.EnvManagementEndpoint, Reason: "not a management endpoint: want https://{api-id}.execute-api.{region}.amazonaws.com/{stage}", Err: err}
		}
	}
	return c, nil
}

// checkManagementEndpoint accepts an absolute http(s) URL whose path is a
// stage API Gateway would accept.
func checkManagementEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q carries credentials, a query or a fragment", s)
	}
	return contract.CheckStage(strings.Trim(u.Path, "/"))
}

// keyVarsChoice is "JWT_PUBLIC_KEY, JWT_PUBLIC_KEY_SECRET_ARN or JWT_JWKS_URL".
func keyVarsChoice() string {
	k := contract.KeyVars()
	return strings.Join(k[:len(k)-1], ", ") + " or " + k[len(k)-1]
}

// pemFromEnv accepts a PEM with real newlines or with literal "\n"
// sequences (how many deployment tools put a multi-line value in one line).
func pemFromEnv(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "\n") && strings.Contains(s, `\n`) {
		s = strings.ReplaceAll(s, `\n`, "\n")
	}
	return s
}

// LogInitError writes the one log line a failed cold start leaves behind,
// naming the variables at fault so the fix is obvious.
func LogInitError(log *slog.Logger, err error) {
	attrs := []any{observability.ErrAttr(err)}
	var me *MissingError
	var ie *InvalidError
	switch {
	case errors.As(err, &me):
		attrs = append(attrs, slog.Any("missing", me.Variables))
	case errors.As(err, &ie):
		attrs = append(attrs, slog.String("variable", ie.Variable))
	}
	log.Error("cold start failed: the function cannot serve requests", attrs...)
}

// NewLogger is the process logger for cfg (JSON to stdout unless w is set).
func NewLogger(cfg Config, w io.Writer) *slog.Logger {
	lc := observability.LogConfig{Level: cfg.LogLevel, Function: cfg.FunctionName}
	if w != nil {
		lc.Writer = w
	}
	return observability.NewLogger(lc)
}
