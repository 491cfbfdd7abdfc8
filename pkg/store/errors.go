package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// More errors callers branch on (see also ErrNotFound and ErrInvalid).
var (
	// ErrTableNotFound: the configured table does not exist at the endpoint.
	ErrTableNotFound = errors.New("store: table not found")
	// ErrThrottled: DynamoDB refused the request for capacity reasons even
	// after the SDK's own retries; back off and retry later.
	ErrThrottled = errors.New("store: throttled by DynamoDB")
	// ErrUnprocessed: a batch operation gave up with items still unprocessed;
	// the error is an *UnprocessedError saying how many.
	ErrUnprocessed = errors.New("store: batch items left unprocessed")
)

// ValidationError says which field failed validation and why. It matches
// ErrInvalid with errors.Is.
type ValidationError struct {
	Field  string // attribute or argument name, e.g. "connection_id"
	Reason string // e.g. "is required", "is longer than 128 bytes"
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("store: invalid input: %s %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// UnprocessedError reports a batch that still had items left after every
// attempt. It matches ErrUnprocessed with errors.Is.
type UnprocessedError struct {
	Op        string // "BatchWriteItem" or "BatchGetItem"
	Remaining int    // items or keys never processed
	Attempts  int
}

func (e *UnprocessedError) Error() string {
	return fmt.Sprintf("store: %s left %d item(s) unprocessed after %d attempts (table under-provisioned or throttled); retry later",
		e.Op, e.Remaining, e.Attempts)
}

// Unwrap makes errors.Is(err, ErrUnprocessed) true.
func (e *UnprocessedError) Unwrap() error { return ErrUnprocessed }

// tableNotFoundError names the table and how to create it.
type tableNotFoundError struct {
	table string
	err   error
}

func (e *tableNotFoundError) Error() string {
	return fmt.Sprintf("store: table %q does not exist at this endpoint; create it first (`streamer local` does, the Pulumi stack does in AWS, or call store.EnsureTable): %v",
		e.table, e.err)
}

func (e *tableNotFoundError) Unwrap() []error { return []error{ErrTableNotFound, e.err} }

// wrapErr turns an SDK error into one that says what failed and matches the
// package's sentinels; context errors stay matchable with errors.Is.
func (d *Dynamo) wrapErr(op, subject string, err error) error {
	if err == nil {
		return nil
	}
	var rnf *types.ResourceNotFoundException
	if errors.As(err, &rnf) {
		return &tableNotFoundError{table: d.table, err: err}
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException":
			return fmt.Errorf("store: %s %s: %w: %w", op, subject, ErrThrottled, err)
		}
	}
	if subject != "" {
		return fmt.Errorf("store: %s %s: %w", op, subject, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

func errorMessage(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return strings.ToLower(api.ErrorMessage())
	}
	return strings.ToLower(err.Error())
}
