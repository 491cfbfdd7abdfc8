package store

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// DynamoAPI is the subset of *dynamodb.Client the store uses. Tests may wrap
// a real client to inject faults (e.g. unprocessed batch items).
type DynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// Config configures a Dynamo store. Every zero value means the documented
// default.
type Config struct {
	// Table is the table name; "" means schema.DefaultTableName.
	Table string
	// Now is the clock used for defaults (connected_at, ttl) and for
	// filtering expired records; nil means time.Now.
	Now func() time.Time
	// Logger receives retry diagnostics; nil discards them.
	Logger *slog.Logger
	// Workers bounds concurrent batch requests in Existing and DeleteMany
	// (each carries up to 100 or 25 items); 0 means 8.
	Workers int
	// UpdateWorkers bounds concurrent UpdateItem calls in AddSent, which
	// writes one item per connection: after a broadcast to thousands, 8 at
	// a time over an 80 ms round trip (an operator's laptop far from the
	// region) would take seconds; 0 means 32.
	UpdateWorkers int
	// BatchAttempts bounds requests per batch chunk when DynamoDB returns
	// unprocessed items or keys; 0 means 8.
	BatchAttempts int
	// RetryBase and RetryMax shape the capped exponential backoff (with
	// jitter) between those attempts; 0 means 25ms and 2s.
	RetryBase time.Duration
	RetryMax  time.Duration
}

// Dynamo is the DynamoDB implementation of Store. It is safe for concurrent
// use.
type Dynamo struct {
	client   DynamoAPI
	table    string
	endpoint string // for UnavailableError
	now      func() time.Time
	log      *slog.Logger
	workers  int
	updaters int
	attempts int
	base     time.Duration
	max      time.Duration
}

var _ Store = (*Dynamo)(nil)

// New returns a store over client (which must be non-nil) for cfg.Table.
func New(client DynamoAPI, cfg Config) *Dynamo {
	d := &Dynamo{
		client: client, table: cfg.Table, now: cfg.Now, log: cfg.Logger,
		workers: cfg.Workers, updaters: cfg.UpdateWorkers, attempts: cfg.BatchAttempts, base: cfg.RetryBase, max: cfg.RetryMax,
	}
	if d.table == "" {
		d.table = schema.DefaultTableName
	}
	d.endpoint = clientEndpoint(client)
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.workers <= 0 {
		d.workers = 8
	}
	if d.updaters <= 0 {
		d.updaters = 32
	}
	if d.attempts <= 0 {
		d.attempts = 8
	}
	if d.base <= 0 {
		d.base = 25 * time.Millisecond
	}
	if d.max <= 0 {
		d.max = 2 * time.Second
	}
	return d
}

// clientEndpoint names the endpoint client sends to, for errors: a
// *dynamodb.Client's BaseEndpoint, else its region's AWS endpoint; other
// DynamoAPI implementations are just "DynamoDB".
func clientEndpoint(client DynamoAPI) string {
	c, ok := client.(interface{ Options() dynamodb.Options })
	if !ok {
		return "DynamoDB"
	}
	o := c.Options()
	switch {
	case o.BaseEndpoint != nil && *o.BaseEndpoint != "":
		return strings.TrimRight(*o.BaseEndpoint, "/")
	case o.Region != "":
		return "https://dynamodb." + o.Region + ".amazonaws.com"
	}
	return "DynamoDB"
}

// Table returns the table name the store uses.
func (d *Dynamo) Table() string { return d.table }

// withDefaults fills connected_at (now) and ttl (connected_at + DefaultTTL).
func (d *Dynamo) withDefaults(c Connection) Connection {
	if c.ConnectedAt.IsZero() {
		c.ConnectedAt = d.now()
	}
	if c.TTL == 0 {
		c.TTL = c.ConnectedAt.Add(DefaultTTL).Unix()
	}
	return c
}

// Save writes a record, overwriting one with the same id. A zero ConnectedAt
// means now; a zero TTL means ConnectedAt + 24h.
func (d *Dynamo) Save(ctx context.Context, c Connection) error {
	if err := Validate(c); err != nil {
		return err
	}
	c = d.withDefaults(c)
	_, err := d.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(d.table),
		Item:      MarshalItem(c),
	})
	return d.wrapErr("save", strconv.Quote(c.ConnectionID), err)
}

// Get reads a record with a strongly consistent read. Records whose TTL has
// passed are reported as ErrNotFound: DynamoDB deletes them lazily, but they
// are gone as far as callers are concerned.
func (d *Dynamo) Get(ctx context.Context, connectionID string) (Connection, error) {
	if err := validateConnectionID(connectionID); err != nil {
		return Connection{}, err
	}
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(d.table),
		Key:            keyOf(connectionID),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Connection{}, d.wrapErr("get", strconv.Quote(connectionID), err)
	}
	if len(out.Item) == 0 {
		return Connection{}, ErrNotFound
	}
	c, err := UnmarshalItem(out.Item)
	if err != nil {
		return Connection{}, err
	}
	if c.Expired(d.now()) {
		return Connection{}, ErrNotFound
	}
	return c, nil
}

// Delete removes a record and returns it (ReturnValues ALL_OLD). Deleting a
// missing record is not an error: found is false.
func (d *Dynamo) Delete(ctx context.Context, connectionID string) (Connection, bool, error) {
	if err := validateConnectionID(connectionID); err != nil {
		return Connection{}, false, err
	}
	out, err := d.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:    aws.String(d.table),
		Key:          keyOf(connectionID),
		ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return Connection{}, false, d.wrapErr("delete", strconv.Quote(connectionID), err)
	}
	if len(out.Attributes) == 0 {
		return Connection{}, false, nil
	}
	c, err := UnmarshalItem(out.Attributes)
	return c, true, err
}

// Touch sets last_ping (zero at means now) and adds received messages. The
// write is conditional on the record existing, so activity racing a
// $disconnect can never recreate a half-empty record: ErrNotFound instead.
func (d *Dynamo) Touch(ctx context.Context, connectionID string, at time.Time, received int64) error {
	if err := validateConnectionID(connectionID); err != nil {
		return err
	}
	if received < 0 {
		return invalid("received", "is negative (%d)", received)
	}
	if at.IsZero() {
		at = d.now()
	}
	_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(d.table),
		Key:                 keyOf(connectionID),
		UpdateExpression:    aws.String("SET #lp = :at ADD #mr :n"),
		ConditionExpression: aws.String("attribute_exists(#id)"),
		ExpressionAttributeNames: map[string]string{
			"#lp": schema.AttrLastPing, "#mr": schema.AttrMessagesReceived, "#id": schema.AttrConnectionID,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":at": num(at.UnixMilli()), ":n": num(received),
		},
	})
	if isConditionFailed(err) {
		return ErrNotFound
	}
	return d.wrapErr("touch", strconv.Quote(connectionID), err)
}

// AddActive adds delta to the table-wide active connection counter, kept on
// the item with the reserved id "#stats", and returns the new value. ADD is
// atomic, so concurrent $connect/$disconnect handlers never lose updates.
//
// AddActive(ctx, 0) reads the counter without writing.
func (d *Dynamo) AddActive(ctx context.Context, delta int64) (int64, error) {
	if delta == 0 {
		return d.readActive(ctx)
	}
	out, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       keyOf(activeCounterItemKey),
		UpdateExpression:          aws.String("ADD #a :d"),
		ExpressionAttributeNames:  map[string]string{"#a": attrActive},
		ExpressionAttributeValues: map[string]types.AttributeValue{":d": num(delta)},
		ReturnValues:              types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return 0, d.wrapErr("add active", "", err)
	}
	n, ok, err := counterValue(out.Attributes)
	if err == nil && !ok {
		err = errNoValue
	}
	if err != nil {
		return 0, d.wrapErr("add active", "", err)
	}
	return n, nil
}

// readActive reads the counter (0 before the first AddActive).
func (d *Dynamo) readActive(ctx context.Context) (int64, error) {
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(d.table),
		Key:            keyOf(activeCounterItemKey),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return 0, d.wrapErr("read active", "", err)
	}
	n, _, err := counterValue(out.Item) // absent: 0
	if err != nil {
		return 0, d.wrapErr("read active", "", err)
	}
	return n, nil
}

// counterValue parses the active counter attribute of item; ok is false when
// the item carries none.
func counterValue(item map[string]types.AttributeValue) (n int64, ok bool, err error) {
	v, ok := item[attrActive].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false, nil
	}
	n, err = strconv.ParseInt(v.Value, 10, 64)
	return n, true, err
}
