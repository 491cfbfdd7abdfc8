// Package contract is the agreement between the Lambda handlers and
// everything that deploys, emulates or watches them (the Pulumi stack, the
// local gateway, the dashboard): function names, route keys, the environment
// each handler reads, and the metrics it emits. It has no dependencies so the
// Pulumi program (its own module) imports the same list the handlers read;
// adding a variable to a handler without the IaC fails the deployment tests.
package contract

import "slices"

// Function names (also the dist/<name>.zip file names).
const (
	FunctionConnect    = "connect"
	FunctionDisconnect = "disconnect"
	FunctionDefault    = "default"
	// FunctionReaper is invoked by a schedule, not by a route: it removes
	// the records of connections whose $disconnect never came.
	FunctionReaper = "reaper"
)

// Route keys of the WebSocket API: $connect and $disconnect call their
// functions, and $default (every message) calls FunctionDefault.
const (
	RouteConnect    = "$connect"
	RouteDisconnect = "$disconnect"
	RouteDefault    = "$default"
)

// Client actions: the "action" of a client message's JSON body (the
// route selection expression is $request.body.action) that the $default
// handler answers through its route response. The stack routes no action
// to a route of its own, so they all arrive on $default, which the stack
// deploys two-way (with a route response): on AWS, as locally, the answer
// reaches the client.
const (
	ActionPing   = "ping"
	ActionWhoami = "whoami"
)

// WhoamiRequest is what a client sends to learn its own connection id,
// which API Gateway tells a client no other way.
type WhoamiRequest struct {
	Action string `json:"action"` // ActionWhoami
	// RequestID, when well formed (ValidWhoamiRequestID), is echoed in the
	// answer so a client can tell its answer from any other message.
	RequestID string `json:"request_id,omitempty"`
}

// Whoami is the $default handler's answer to a WhoamiRequest.
type Whoami struct {
	Action       string `json:"action"` // ActionWhoami
	ConnectionID string `json:"connection_id"`
	RequestID    string `json:"request_id,omitempty"`
}

// MaxWhoamiRequestID bounds the request id the handler echoes.
const MaxWhoamiRequestID = 64

// ValidWhoamiRequestID reports whether id may be echoed: 1 to
// MaxWhoamiRequestID characters of A-Z, a-z, 0-9, '-', '_' and '.'. The
// handler echoes nothing else, so an answer never carries arbitrary client
// text.
func ValidWhoamiRequestID(id string) bool {
	if id == "" || len(id) > MaxWhoamiRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// RouteSelectionExpression is the API's route selection expression: a
// message's "action" field names its route (no match: $default).
const RouteSelectionExpression = "$request.body.action"

// RouteResponseKey is the route response key of a two-way route, and the
// route response selection expression that selects it: "$default".
const RouteResponseKey = "$default"

// TwoWayRoutes lists the route keys that have a route response. On API
// Gateway only a two-way route sends its integration's response body back
// to the client; the body of every other route is dropped. The deployment
// creates exactly these route responses and the local gateway marks exactly
// these routes two-way, so a reply that works locally works on AWS.
func TwoWayRoutes() []string { return []string{RouteDefault} }

// IsTwoWayRoute reports whether routeKey is in TwoWayRoutes.
func IsTwoWayRoute(routeKey string) bool { return slices.Contains(TwoWayRoutes(), routeKey) }

// NamePrefix is the prefix of a deployed stack's resource names (functions
// "<prefix>-<function>", alarms) in environment, unless configured otherwise.
func NamePrefix(environment string) string { return "streamer-" + environment }

// InitDurationMetricPrefix + a deployed function's name is the metric (in the
// metrics namespace, without dimensions) the deployment's log metric filter
// writes for each cold start of that function.
const InitDurationMetricPrefix = "InitDuration-"

// Functions lists every Lambda function of the stack.
func Functions() []string {
	return []string{FunctionConnect, FunctionDisconnect, FunctionDefault, FunctionReaper}
}

// RouteOf is the route key that invokes function, "" for a function no
// route invokes (the reaper runs on a schedule).
func RouteOf(function string) string {
	switch function {
	case FunctionConnect:
		return RouteConnect
	case FunctionDisconnect:
		return RouteDisconnect
	case FunctionDefault:
		return RouteDefault
	}
	return ""
}

// ReaperCheckpoint names the reaper's checkpoint (store.Checkpoint): the
// internal item where one invocation leaves the cursor the next resumes
// from. The deployment scopes the reaper's item writes to it and to the
// active connection counter.
const ReaperCheckpoint = "reaper"

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
	// EnvManagementEndpoint is the API's @connections base URL with its
	// stage (https://{api-id}.execute-api.{region}.amazonaws.com/{stage}),
	// which the reaper asks about each connection.
	EnvManagementEndpoint = "MANAGEMENT_ENDPOINT"
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

var reaperOnly = []Var{
	{Name: EnvManagementEndpoint, Required: true, Deployed: true, Doc: "the API's management endpoint with stage (https://{api-id}.execute-api.{region}.amazonaws.com/{stage}); GetConnection asks it about each record"},
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
	case FunctionReaper:
		return append(append([]Var{}, common...), reaperOnly...)
	}
	return nil
}

// Platform variables: read by the handlers' own code (lambda/shared/boot,
// lambda/shared/observability) but set by the Lambda runtime or, locally,
// by the user, never by the IaC. They are not part of Vars because the
// deployment must not set them.
const (
	// EnvLambdaFunctionName is set by the Lambda runtime on every function;
	// it becomes the "function" log field (else the contract name).
	EnvLambdaFunctionName = "AWS_LAMBDA_FUNCTION_NAME"
	// EnvEndpointURLDynamoDB and EnvEndpointURL are the AWS SDK's standard
	// endpoint overrides. The SDK reads them itself; the handlers read them
	// only to relax response checksum validation against emulators. Unset on
	// AWS: `streamer local`, tests and users with DynamoDB Local set them.
	EnvEndpointURLDynamoDB = "AWS_ENDPOINT_URL_DYNAMODB"
	EnvEndpointURL         = "AWS_ENDPOINT_URL"
	// EnvXRayTraceID is set by the Lambda runtime per invocation (the X-Ray
	// trace header); the handlers parent their spans on it when the context
	// carries none.
	EnvXRayTraceID = "_X_AMZN_TRACE_ID"
)

// PlatformVars lists every environment variable the handlers' own code
// reads that is not in Vars: the explicit allow-list of the environment
// contract (a test fails when the code reads anything else, or when an
// entry here is no longer read). Variables only libraries read — AWS_REGION
// and the credentials chain (aws-sdk-go-v2's config), AWS_LAMBDA_RUNTIME_API
// (aws-lambda-go), OTEL_* beyond EnvOTLPEndpoint (the OpenTelemetry
// exporter) — are the runtime's business and are not listed.
func PlatformVars() []string {
	return []string{EnvLambdaFunctionName, EnvEndpointURLDynamoDB, EnvEndpointURL, EnvXRayTraceID}
}

// DynamoDB operations the handlers call on the connections table: the
// operation names of the DynamoDB API (the X-Amz-Target header is
// "DynamoDB_20120810." + name) and, prefixed with "dynamodb:", the IAM
// actions.
const (
	DynamoDBPutItem        = "PutItem"
	DynamoDBUpdateItem     = "UpdateItem"
	DynamoDBDeleteItem     = "DeleteItem"
	DynamoDBScan           = "Scan"
	DynamoDBBatchWriteItem = "BatchWriteItem"
)

// DynamoDBActions returns, sorted, exactly the DynamoDB operations function
// calls on the connections table over all of its paths (nil for an unknown
// function). The deployment grants exactly these and no more; a root-module
// test runs each real handler through every path against a recording
// DynamoDB-API endpoint and requires the same set, so a handler that starts
// (or stops) calling an operation fails until this list, and with it the
// IAM policy, follows.
func DynamoDBActions(function string) []string {
	switch function {
	case FunctionConnect:
		// store.Save (PutItem) and the active-connections counter
		// (store.AddActive(+1), UpdateItem ADD).
		return []string{DynamoDBPutItem, DynamoDBUpdateItem}
	case FunctionDisconnect:
		// store.Delete is one DeleteItem with ReturnValues ALL_OLD (the
		// record for the summary line, so no GetItem); AddActive(-1) is an
		// UpdateItem.
		return []string{DynamoDBDeleteItem, DynamoDBUpdateItem}
	case FunctionDefault:
		// store.Touch: UpdateItem conditioned on the record existing.
		return []string{DynamoDBUpdateItem}
	case FunctionReaper:
		// The whole-table listing (store.List without tenant or user:
		// Scan, no index), zombie records removed in batches of 25
		// (store.DeleteMany: BatchWriteItem), and UpdateItem on internal
		// items only (DynamoDBInternalItemActions): the counter
		// (AddActive) and its checkpoint (AcquireCheckpoint,
		// SaveCheckpoint).
		return []string{DynamoDBBatchWriteItem, DynamoDBScan, DynamoDBUpdateItem}
	}
	return nil
}

// DynamoDBInternalItemActions returns, sorted, the operations of
// DynamoDBActions(function) that function calls only on internal items
// (the active connection counter, its checkpoint), never on a connection
// record: the deployment grants them only on those keys (IAM's
// dynamodb:LeadingKeys), and a root-module test holds every such request
// of the real handler to those keys.
func DynamoDBInternalItemActions(function string) []string {
	if function == FunctionReaper {
		return []string{DynamoDBUpdateItem}
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
	// MetricZombieRecordsRemoved counts the records of gone connections
	// (their $disconnect was lost) the reaper removed.
	MetricZombieRecordsRemoved = "ZombieRecordsRemoved" // counter (Count)
	// MetricReaperErrors counts what the reaper could not do: records it
	// could not check (5xx, 429, timeouts, an open breaker; never removed)
	// plus one for a run that stopped early on a failure (listing,
	// removing, its checkpoint).
	MetricReaperErrors = "ReaperErrors" // counter (Count)
)

// Metrics lists the custom metric names.
func Metrics() []string {
	return []string{MetricActiveConnections, MetricConnectionsPerMinute, MetricAuthenticationFailures, MetricMessagesSentPerMinute,
		MetricStoreErrors, MetricKeySourceErrors, MetricZombieRecordsRemoved, MetricReaperErrors}
}
