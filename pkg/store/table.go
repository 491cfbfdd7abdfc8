package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/pay-theory/streamer/internal/wait"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// CreateTableInput returns the CreateTable request for the connections table
// as pkg/store/schema defines it: on-demand billing, GSIs with ALL projection.
func CreateTableInput(table string) *dynamodb.CreateTableInput {
	def := schema.Connections()
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		KeySchema:   []types.KeySchemaElement{{AttributeName: aws.String(def.HashKey), KeyType: types.KeyTypeHash}},
	}
	for _, a := range def.Attributes {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a.Name), AttributeType: types.ScalarAttributeType(a.Type),
		})
	}
	for _, ix := range def.Indexes {
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName: aws.String(ix.Name),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(ix.HashKey), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(ix.RangeKey), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		})
	}
	return in
}

// TableAPI is the subset of *dynamodb.Client that EnsureTable uses.
type TableAPI interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// EnsureTable creates the table if it is missing, waits until it and its
// indexes are active, and enables TTL on the ttl attribute where the endpoint
// supports it. It uses DescribeTable rather than ListTables or SDK waiters:
// minidyn has no ListTables and reports an empty TableStatus, which is taken
// as ready. Emulators without UpdateTimeToLive (minidyn, dynalite) are
// tolerated: they never expire items, and readers filter on ttl anyway.
func EnsureTable(ctx context.Context, client TableAPI, table string) error {
	if table == "" {
		table = schema.DefaultTableName
	}
	_, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	var rnf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &rnf):
		_, err = client.CreateTable(ctx, CreateTableInput(table))
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) { // a concurrent creator won: fine
			return fmt.Errorf("store: create table %q: %w", table, err)
		}
	case err != nil:
		return fmt.Errorf("store: describe table %q: %w", table, err)
	}
	if err := waitActive(ctx, client, table); err != nil {
		return err
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(schema.AttrTTL), Enabled: aws.Bool(true),
		},
	})
	if err != nil && !ttlUnsupportedOrSet(err) {
		return fmt.Errorf("store: enable TTL on table %q: %w", table, err)
	}
	return nil
}

// ttlUnsupportedOrSet reports errors that mean "nothing to do": the endpoint
// has no TTL API, or TTL is already enabled.
func ttlUnsupportedOrSet(err error) bool {
	if isCtxErr(err) {
		return false
	}
	switch errorCode(err) {
	case "UnknownOperationException", "UnrecognizedClientException":
		return true
	case "ValidationException":
		return strings.Contains(errorMessage(err), "already enabled")
	}
	// minidyn answers unknown operations with a plain-text 400 that the SDK
	// cannot decode.
	var de *smithy.DeserializationError
	if errors.As(err, &de) {
		return true
	}
	msg := errorMessage(err)
	return strings.Contains(msg, "unsupported operation") || strings.Contains(msg, "unknown operation")
}

func waitActive(ctx context.Context, client TableAPI, table string) error {
	delay := 50 * time.Millisecond
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			return fmt.Errorf("store: describe table %q: %w", table, err)
		}
		if ready(out.Table) {
			return nil
		}
		if err := wait.Sleep(ctx, delay); err != nil {
			return fmt.Errorf("store: waiting for table %q to become active: %w", table, err)
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func ready(t *types.TableDescription) bool {
	if t == nil {
		return false
	}
	if t.TableStatus != "" && t.TableStatus != types.TableStatusActive {
		return false
	}
	for _, ix := range t.GlobalSecondaryIndexes {
		if ix.IndexStatus != "" && ix.IndexStatus != types.IndexStatusActive {
			return false
		}
	}
	return true
}

// ClientConfig selects a DynamoDB endpoint.
type ClientConfig struct {
	// Endpoint is a DynamoDB-API URL such as http://127.0.0.1:8000; "" means
	// AWS with the SDK's default configuration chain.
	Endpoint string
	// Region; "" means the default chain's region, or us-east-1 when Endpoint
	// is set.
	Region string
	// HTTPClient overrides the HTTP client; nil means the SDK default for AWS,
	// or a dedicated keep-alive client (100 idle connections) for Endpoint.
	HTTPClient *http.Client
}

// NewDynamoClient returns a client for cfg. With an Endpoint it uses static
// dummy credentials (emulators accept any) and turns off response checksum
// validation (minidyn sends none); without one it loads the SDK default
// configuration (environment, shared config, instance role).
func NewDynamoClient(ctx context.Context, cfg ClientConfig) (*dynamodb.Client, error) {
	if cfg.Endpoint == "" {
		var opts []func(*config.LoadOptions) error
		if cfg.Region != "" {
			opts = append(opts, config.WithRegion(cfg.Region))
		}
		if cfg.HTTPClient != nil {
			opts = append(opts, config.WithHTTPClient(cfg.HTTPClient))
		}
		awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("store: load AWS configuration: %w", err)
		}
		return dynamodb.NewFromConfig(awsCfg), nil
	}
	if !strings.HasPrefix(cfg.Endpoint, "http://") && !strings.HasPrefix(cfg.Endpoint, "https://") {
		return nil, fmt.Errorf("store: endpoint %q must start with http:// or https://", cfg.Endpoint)
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 100
		tr.MaxIdleConnsPerHost = 100
		hc = &http.Client{Transport: tr}
	}
	return dynamodb.New(dynamodb.Options{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient:  hc,
	}, EndpointOptions(cfg.Endpoint)), nil
}

// EndpointOptions points a DynamoDB client at endpoint, a DynamoDB-API URL
// such as http://127.0.0.1:8000, and turns off response checksum validation
// there (the embedded DynamoDB API, minidyn, sends no matching CRC32). With
// endpoint "" it changes nothing: AWS, checksums on.
func EndpointOptions(endpoint string) func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		if endpoint == "" {
			return
		}
		o.BaseEndpoint = aws.String(endpoint)
		o.DisableValidateResponseChecksum = true
	}
}
