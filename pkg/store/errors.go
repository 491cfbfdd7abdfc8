package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
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
	// ErrUnavailable: the DynamoDB endpoint could not be reached (connection
	// refused or reset, no such host, or no answer before the caller's
	// deadline). The error is an *UnavailableError naming the endpoint; it
	// also matches the underlying network or context error.
	ErrUnavailable = errors.New("store: DynamoDB endpoint unavailable")
)

// UnavailableError reports a request that never got an answer from the
// DynamoDB endpoint. It matches ErrUnavailable and the underlying error
// (e.g. context.DeadlineExceeded) with errors.Is.
type UnavailableError struct {
	// Endpoint is the URL the request went to: the client's BaseEndpoint,
	// the URL of the failed request, or the regional AWS endpoint.
	Endpoint string
	Err      error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("cannot reach DynamoDB at %s: %v", e.Endpoint, e.Err)
}

// Unwrap makes errors.Is(err, ErrUnavailable) true and keeps Err in the chain.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// unreachable reports whether err means no answer came from the endpoint: a
// request that could not be sent or read, or one still waiting when the
// deadline passed. A cancellation is the caller's decision, not the
// endpoint's failure.
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var send *smithyhttp.RequestSendError
	var ne net.Error
	return errors.As(err, &send) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}

// endpointOf is the endpoint an unreachable request went to: the failed
// request's own URL when the error carries it, else the store's.
func (d *Dynamo) endpointOf(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			return u.Scheme + "://" + u.Host
		}
	}
	return d.endpoint
}

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
	if unreachable(err) {
		err = &UnavailableError{Endpoint: d.endpointOf(err), Err: err}
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

// errorMessage is the service's own message of an API error (lower case),
// "" for any other error. DynamoDB says some things only there ("TimeToLive
// is already enabled" is a plain ValidationException).
func errorMessage(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return strings.ToLower(api.ErrorMessage())
	}
	return ""
}
