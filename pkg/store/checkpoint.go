package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// Checkpoint is how far a long job over the table is (the reaper's pass
// over every record, which a table of millions finishes over several
// invocations): the listing cursor it resumes from, kept in the table
// itself on an internal item (schema.CheckpointKey), which no listing
// returns and no connection id can name. A lease on it keeps two runs of
// the job from working at once.
type Checkpoint struct {
	Name string
	// Cursor resumes the job's listing (a Page.Next); "" starts over.
	Cursor string
	// Owner holds (or, once LeaseUntil has passed, last held) the lease;
	// SaveCheckpoint releases it by setting LeaseUntil to the epoch.
	Owner      string
	LeaseUntil time.Time
	// UpdatedAt is when the checkpoint was last written.
	UpdatedAt time.Time
}

// ErrLeaseHeld: another owner holds an unexpired lease on the checkpoint
// (AcquireCheckpoint), or took it over after the caller's expired
// (SaveCheckpoint: the newer run's cursor stands).
var ErrLeaseHeld = errors.New("store: checkpoint lease held by another owner")

// Bounds of checkpoint arguments.
const (
	MaxCheckpointName   = 64
	MaxCheckpointCursor = 4096
)

// Attributes of a checkpoint item (only this file writes them).
const (
	attrCursor     = "cursor"
	attrLeaseOwner = "lease_owner"
	attrLeaseUntil = "lease_until" // epoch milliseconds
	attrUpdatedAt  = "updated_at"  // epoch milliseconds
)

func validateCheckpointName(name string) error {
	if name == "" || len(name) > MaxCheckpointName {
		return invalid("checkpoint", "name %q must be 1 to %d characters", name, MaxCheckpointName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return invalid("checkpoint", "name %q may hold only a-z, 0-9, - and _", name)
		}
	}
	return nil
}

// AcquireCheckpoint takes the lease on the checkpoint name for owner until
// until, when the lease is free, expired, or owner's already (then it is
// extended), and returns the checkpoint with the cursor saved last. It
// fails with ErrLeaseHeld when another owner's lease has not expired. The
// first acquisition creates the item. It is one conditional UpdateItem on
// the checkpoint's key.
func (d *Dynamo) AcquireCheckpoint(ctx context.Context, name, owner string, until time.Time) (Checkpoint, error) {
	if err := validateCheckpointName(name); err != nil {
		return Checkpoint{}, err
	}
	if err := validateID("lease owner", owner); err != nil {
		return Checkpoint{}, err
	}
	now := d.now()
	if !until.After(now) {
		return Checkpoint{}, invalid("lease", "until %s is not after now (%s)", until.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	}
	out, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(d.table),
		Key:                 keyOf(schema.CheckpointKey(name)),
		UpdateExpression:    aws.String("SET #o = :o, #l = :l, #u = :now"),
		ConditionExpression: aws.String("attribute_not_exists(#o) OR #l <= :now OR #o = :o"),
		ExpressionAttributeNames: map[string]string{
			"#o": attrLeaseOwner, "#l": attrLeaseUntil, "#u": attrUpdatedAt,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":o": &types.AttributeValueMemberS{Value: owner}, ":l": num(until.UnixMilli()), ":now": num(now.UnixMilli()),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if isConditionFailed(err) {
		return Checkpoint{}, d.wrapErr("acquire checkpoint", strconv.Quote(name), ErrLeaseHeld)
	}
	if err != nil {
		return Checkpoint{}, d.wrapErr("acquire checkpoint", strconv.Quote(name), err)
	}
	return checkpointOf(name, out.Attributes)
}

// SaveCheckpoint records cursor ("" starts the next run over) on the
// checkpoint name and releases owner's lease (LeaseUntil becomes zero). It fails with ErrLeaseHeld,
// writing nothing, when owner no longer holds the lease (it expired and
// another run took it over).
func (d *Dynamo) SaveCheckpoint(ctx context.Context, name, owner, cursor string) error {
	if err := validateCheckpointName(name); err != nil {
		return err
	}
	if err := validateID("lease owner", owner); err != nil {
		return err
	}
	if len(cursor) > MaxCheckpointCursor {
		return invalid("checkpoint", "cursor is %d bytes, longer than the limit of %d", len(cursor), MaxCheckpointCursor)
	}
	// The lease is released by expiring it (lease_until 0) rather than
	// by REMOVE: minidyn ignores a REMOVE clause beside SET.
	names := map[string]string{"#o": attrLeaseOwner, "#l": attrLeaseUntil, "#u": attrUpdatedAt, "#c": attrCursor}
	values := map[string]types.AttributeValue{
		":o": &types.AttributeValueMemberS{Value: owner}, ":now": num(d.now().UnixMilli()),
		":c": &types.AttributeValueMemberS{Value: cursor}, ":free": num(0),
	}
	_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       keyOf(schema.CheckpointKey(name)),
		UpdateExpression:          aws.String("SET #u = :now, #c = :c, #l = :free"),
		ConditionExpression:       aws.String("#o = :o"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if isConditionFailed(err) {
		return d.wrapErr("save checkpoint", strconv.Quote(name), ErrLeaseHeld)
	}
	return d.wrapErr("save checkpoint", strconv.Quote(name), err)
}

// checkpointOf decodes a checkpoint item.
func checkpointOf(name string, item map[string]types.AttributeValue) (Checkpoint, error) {
	cp := Checkpoint{Name: name}
	if v, ok := item[attrCursor].(*types.AttributeValueMemberS); ok {
		cp.Cursor = v.Value
	}
	if v, ok := item[attrLeaseOwner].(*types.AttributeValueMemberS); ok {
		cp.Owner = v.Value
	}
	for attr, dst := range map[string]*time.Time{attrLeaseUntil: &cp.LeaseUntil, attrUpdatedAt: &cp.UpdatedAt} {
		v, ok := item[attr].(*types.AttributeValueMemberN)
		if !ok {
			continue
		}
		ms, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return Checkpoint{}, invalid("checkpoint", "%s holds a malformed number %q", attr, v.Value)
		}
		if ms != 0 {
			*dst = time.UnixMilli(ms).UTC()
		}
	}
	return cp, nil
}
