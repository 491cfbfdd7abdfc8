// Package contract is the agreement between the Lambda handlers and the
// infrastructure that deploys them: function names, the environment each
// handler reads, and the metrics it emits. It has no dependencies so the
// Pulumi program (its own module) imports the same list the handlers read;
// adding a variable to a handler without the IaC fails the deployment tests.
package contract

// Function names (also the dist/<name>.zip file names).
const (
	FunctionConnect    = "connect"
	FunctionDisconnect = "disconnect"
	FunctionDefault    = "default"
)

// Functions lists every Lambda function of the stack.
func Functions() []string {
	return []string{FunctionConnect, FunctionDisconnect, FunctionDefault}
}

// Environment variable names.
const (
	EnvConnectionsTable      = "CONNECTIONS_TABLE"
	EnvJWTPublicKey          = "JWT_PUBLIC_KEY"
	EnvJWTPublicKeySecretARN = "JWT_PUBLIC_KEY_SECRET_ARN"
	EnvJWTJWKSURL            = "JWT_JWKS_URL"
	EnvJWTIssuer             = "JWT_ISSUER"
	EnvJWTAudience           = "JWT_AUDIENCE"
	EnvLogLevel              = "LOG_LEVEL"
	EnvEnvironment           = "ENVIRONMENT"
	EnvMetricsNamespace      = "METRICS_NAMESPACE"
	// EnvOTLPEndpoint is the standard OpenTelemetry variable; when unset,
	// tracing is a no-op.
	EnvOTLPEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
)

// Var describes one environment variable a handler reads.
type Var struct {
	Name string
	// Required: the handler refuses to start without it. The JWT key
	// variables (KeyVars) are each optional, but $connect needs exactly one
	// of them.
	Required bool
	// Deployed: the IaC sets it on the function. Variables a user sets only
	// locally (JWT_PUBLIC_KEY instead of the secret) are not deployed.
	Deployed bool
	Doc      string
}

var common = []Var{
	{Name: EnvConnectionsTable, Required: true, Deployed: true, Doc: "DynamoDB table holding connection records"},
	{Name: EnvLogLevel, Deployed: true, Doc: "debug|info|warn|error (default info)"},
	{Name: EnvEnvironment, Deployed: true, Doc: "environment name, the Environment metric dimension (default dev)"},
	{Name: EnvMetricsNamespace, Deployed: true, Doc: "CloudWatch namespace for EMF metrics (default " + DefaultMetricsNamespace + ")"},
	{Name: EnvOTLPEndpoint, Doc: "OTLP/HTTP endpoint for traces (the ADOT collector extension); unset = tracing off"},
}

var connectOnly = []Var{
	{Name: EnvJWTPublicKey, Doc: "PEM RSA public key (PKIX or PKCS#1); for local use"},
	{Name: EnvJWTPublicKeySecretARN, Deployed: true, Doc: "Secrets Manager secret holding the PEM public key; read once per cold start"},
	// The stack deploys the secret ARN; a user who verifies tokens of an
	// identity provider sets JWT_JWKS_URL instead (and removes the ARN).
	{Name: EnvJWTJWKSURL, Doc: "JSON Web Key Set URL (keys selected by kid, refreshed); instead of the secret, set by the user"},
	{Name: EnvJWTIssuer, Required: true, Deployed: true, Doc: "required iss claim"},
	{Name: EnvJWTAudience, Deployed: true, Doc: "required aud claim, when set"},
}

// KeyVars are the sources of the $connect token verification key; exactly
// one must be set.
func KeyVars() []string {
	return []string{EnvJWTPublicKey, EnvJWTPublicKeySecretARN, EnvJWTJWKSURL}
}

// Vars returns the variables function reads (nil for an unknown function).
func Vars(function string) []Var {
	switch function {
	case FunctionConnect:
		return append(append([]Var{}, common...), connectOnly...)
	case FunctionDisconnect, FunctionDefault:
		return append([]Var{}, common...)
	}
	return nil
}

// Metrics emitted as CloudWatch Embedded Metric Format.
const (
	DefaultMetricsNamespace = "Streamer"
	DimensionEnvironment    = "Environment"

	MetricActiveConnections      = "ActiveConnections"      // gauge (Count)
	MetricConnectionsPerMinute   = "ConnectionsPerMinute"   // counter (Count), summed per minute
	MetricAuthenticationFailures = "AuthenticationFailures" // counter (Count)
	MetricMessagesSentPerMinute  = "MessagesSentPerMinute"  // counter (Count), summed per minute
	// MetricStoreErrors counts store failures a handler absorbed without
	// failing the request ($disconnect always answers 200).
	MetricStoreErrors = "StoreErrors" // counter (Count)
	// MetricKeySourceErrors counts $connect requests answered 500 because
	// the token verification keys could not be had (Secrets Manager or the
	// JWKS endpoint unavailable): a server fault, not an authentication
	// failure.
	MetricKeySourceErrors = "KeySourceErrors" // counter (Count)
)

// Metrics lists the custom metric names.
func Metrics() []string {
	return []string{MetricActiveConnections, MetricConnectionsPerMinute, MetricAuthenticationFailures, MetricMessagesSentPerMinute, MetricStoreErrors, MetricKeySourceErrors}
}
