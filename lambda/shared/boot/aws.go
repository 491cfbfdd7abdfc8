package boot

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"go.opentelemetry.io/contrib/instrumentation/github.com/aws/aws-sdk-go-v2/otelaws"
	"go.opentelemetry.io/contrib/propagators/aws/xray"
	"go.opentelemetry.io/otel/trace"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/store"
)

// LoadAWS loads the SDK's default configuration (AWS_REGION, the Lambda
// role's credentials, AWS_ENDPOINT_URL_DYNAMODB, ...) and instruments it so
// every AWS call is a span carrying the X-Ray trace header.
func LoadAWS(ctx context.Context, tp trace.TracerProvider) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS SDK configuration: %w (check AWS_REGION and the credentials chain)", err)
	}
	otelaws.AppendMiddlewares(&cfg.APIOptions,
		otelaws.WithTracerProvider(tp),
		otelaws.WithTextMapPropagator(xray.Propagator{}))
	return cfg, nil
}

// NewDynamoDB returns the DynamoDB client of the handlers.
//
// When an endpoint is configured through the environment (an emulator such
// as minidyn, dynalite or DynamoDB Local) the CRC32 response checksum check
// is turned off. Checked against minidyn with the default configuration:
// calls succeed, but minidyn's X-Amz-Crc32 never matches, so the SDK prints a
// plain-text "SDK ... WARN response did not match expected checksum" line to
// stderr on every call (breaking the one-JSON-object-per-line log contract)
// and may not reuse the connection. Against AWS (no endpoint variable) the
// check stays on.
func NewDynamoDB(awsCfg aws.Config, cfg Config) *dynamodb.Client {
	return dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
		if cfg.DynamoDBEndpoint != "" {
			o.DisableValidateResponseChecksum = true
		}
	})
}

// NewStore is the DynamoDB store on cfg.Table.
func NewStore(client *dynamodb.Client, cfg Config, log *slog.Logger) *store.Dynamo {
	return store.New(client, store.Config{Table: cfg.Table, Logger: log})
}

// NewVerifier builds the $connect token verifier. The key comes from
// JWT_PUBLIC_KEY (PEM), from the Secrets Manager secret
// JWT_PUBLIC_KEY_SECRET_ARN, which is fetched here, once per cold start, so a
// missing or unreadable secret fails the cold start with a clear log line
// instead of failing every client, or from the JSON Web Key Set at
// JWT_JWKS_URL (fetched on first use and refreshed; see auth.NewJWKS).
func NewVerifier(ctx context.Context, cfg Config, awsCfg aws.Config) (*auth.Verifier, error) {
	var keys auth.KeySource
	switch {
	case cfg.JWTPublicKeyPEM != "":
		k, err := auth.ParsePublicKeyPEM([]byte(cfg.JWTPublicKeyPEM))
		if err != nil {
			return nil, &InvalidError{Variable: contract.EnvJWTPublicKey, Reason: "not a usable RSA public key PEM (PKIX or PKCS#1, at least 2048 bits)", Err: err}
		}
		keys = auth.StaticKey(k)
	case cfg.JWTPublicKeySecretARN != "":
		keys = auth.SecretsManagerKey(secretsmanager.NewFromConfig(awsCfg), cfg.JWTPublicKeySecretARN)
		if _, err := keys.PublicKey(ctx, ""); err != nil {
			return nil, &InvalidError{Variable: contract.EnvJWTPublicKeySecretARN, Reason: "cannot read the public key from Secrets Manager (check the ARN, the secret's PEM value and the function role's secretsmanager:GetSecretValue)", Err: err}
		}
	case cfg.JWTJWKSURL != "":
		// Fetched lazily, on the first token: cold start makes no request,
		// and while the endpoint is down $connect answers 500 (key_source).
		src, err := auth.NewJWKS(auth.JWKSConfig{URL: cfg.JWTJWKSURL})
		if err != nil {
			return nil, &InvalidError{Variable: contract.EnvJWTJWKSURL, Reason: "not a usable JWKS URL (an absolute http(s) URL)", Err: err}
		}
		keys = src
	default:
		return nil, &MissingError{Function: cfg.Function, Variables: []string{keyVarsChoice()}}
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Keys: keys, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		return nil, &InvalidError{Variable: contract.EnvJWTIssuer, Reason: "cannot build the token verifier", Err: err}
	}
	return v, nil
}

// NewTracing is the process tracer provider: OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set, else a no-op.
func NewTracing(ctx context.Context, cfg Config) (*observability.Tracing, error) {
	t, err := observability.NewTracing(ctx, observability.TracingConfig{Endpoint: cfg.OTLPEndpoint, ServiceName: cfg.FunctionName})
	if err != nil {
		return nil, &InvalidError{Variable: contract.EnvOTLPEndpoint, Reason: "cannot set up trace export", Err: err}
	}
	return t, nil
}

// NewMetrics is the EMF writer (stdout) for cfg.
func NewMetrics(cfg Config) *observability.EMF {
	return observability.NewEMF(observability.EMFConfig{
		Namespace:   cfg.MetricsNamespace,
		Environment: cfg.Environment,
		Function:    cfg.Function,
	})
}
