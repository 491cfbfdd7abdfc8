package connection

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Errors callers branch on with errors.Is. Every error returned by Send is a
// *SendError whose Unwrap yields one of these (or context.Canceled /
// context.DeadlineExceeded); the Management API's SDK error types never
// reach callers. A store failure keeps the store's error in the chain
// (store.ErrTableNotFound, store.ErrUnavailable naming the endpoint, ...).
var (
	// ErrConnectionNotFound: no unexpired record for the id in the store, so
	// nothing was posted. The client is not connected (or never was).
	ErrConnectionNotFound = errors.New("connection: connection not found")
	// ErrConnectionStale: the Management API answered 410 Gone; the record
	// has been removed from the store. Stop sending to this id.
	ErrConnectionStale = errors.New("connection: connection is gone (410), record removed")
	// ErrCircuitOpen: the circuit breaker is open after repeated endpoint
	// failures; nothing was sent. Retry after the breaker's open timeout.
	ErrCircuitOpen = errors.New("connection: circuit breaker open, management API considered unavailable")
	// ErrPayloadTooLarge: the message exceeds 128 KB (checked before any
	// network call) or the endpoint answered 413. Split or shrink it.
	ErrPayloadTooLarge = errors.New("connection: message larger than the 128 KB API Gateway limit")
	// ErrShuttingDown: Shutdown has been called; the call was not started
	// (or was cancelled by a Shutdown whose deadline passed).
	ErrShuttingDown = errors.New("connection: manager is shutting down")
	// ErrThrottled: the endpoint kept answering 429 LimitExceededException
	// through every retry. Slow down or raise the account's API Gateway limits.
	ErrThrottled = errors.New("connection: throttled by the management API (429)")
	// ErrForbidden: 403 ForbiddenException. The caller's credentials lack
	// execute-api:ManageConnections on this API/stage, or the endpoint URL is wrong.
	ErrForbidden = errors.New("connection: forbidden (403): check execute-api:ManageConnections permission and the endpoint URL")
	// ErrServerError: the endpoint kept answering 5xx through every retry.
	ErrServerError = errors.New("connection: management API server error (5xx)")
	// ErrNetwork: the request could not be sent or its response not read
	// (connection refused or reset, EOF, per-attempt timeout) through every retry.
	ErrNetwork = errors.New("connection: network error talking to the management API")
	// ErrRejected: the endpoint answered another 4xx; not retried. The error
	// text carries the status and AWS error code.
	ErrRejected = errors.New("connection: request rejected by the management API")
	// ErrInvalidMessage: the message could not be encoded as JSON.
	ErrInvalidMessage = errors.New("connection: message is not JSON-encodable")
	// ErrUnhealthy: Broadcast skipped the connection: its last deliveries
	// failed repeatedly and its cooldown has not passed.
	ErrUnhealthy = errors.New("connection: skipped, connection is unhealthy (repeated failures) and cooling down")
	// ErrStoreUnavailable: the connection store failed while checking
	// existence; nothing was posted. The store's error stays in the chain.
	ErrStoreUnavailable = errors.New("connection: connection store unavailable")
)

// SendError describes a failed delivery to one connection. Err is one of the
// package's sentinel errors (or a context error); StatusCode and Code keep the
// HTTP status and AWS error code as plain values for logs.
type SendError struct {
	ConnectionID string
	// Attempts is the number of HTTP requests made (0 when the call failed
	// before reaching the network: validation, store, breaker, shutdown).
	Attempts   int
	Err        error
	StatusCode int    // HTTP status of the last response, 0 if none
	Code       string // AWS error code of the last response (e.g. "GoneException")
	// Op names the operation when it was not a send: "get" for a
	// Reconcile's GetConnection.
	Op string
}

func (e *SendError) Error() string {
	what := "send to connection"
	if e.Op != "" {
		what = e.Op + " connection"
	}
	// With no request made, the failure was decided before the network
	// (not found, store, breaker, shutdown): counting 0 attempts says nothing.
	s := fmt.Sprintf("%s %q: %v", what, e.ConnectionID, e.Err)
	if e.Attempts > 0 {
		s = fmt.Sprintf("%s %q failed after %d attempt(s): %v", what, e.ConnectionID, e.Attempts, e.Err)
	}
	if e.StatusCode != 0 {
		s += fmt.Sprintf(" (HTTP %d", e.StatusCode)
		if e.Code != "" {
			s += " " + e.Code
		}
		s += ")"
	}
	return s
}

// Unwrap returns the sentinel so errors.Is(err, ErrConnectionStale) works.
func (e *SendError) Unwrap() error { return e.Err }

// errorKind is what the package decides about one kind of error.
type errorKind struct {
	err error
	// label names it in MetricsSnapshot.ErrorsByType.
	label string
	// status is the Outcome status of a delivery that failed with it.
	status Status
	// retry: DefaultShouldRetry retries it.
	retry bool
	// breaker: how the circuit breaker counts it (a success unless said).
	breaker breakerVerdict
	// unhealthy: it counts against the connection's health.
	unhealthy bool
	// fromAPI: a ManagementAPI implementation other than the SDK (a fake,
	// an in-process gateway) may return it directly.
	fromAPI bool
	// answered: the endpoint answered the request (a 4xx about this
	// request, not about load), so its latency is a round-trip sample for
	// the concurrency limit.
	answered bool
}

type breakerVerdict int

const (
	breakerSuccess  breakerVerdict = iota // proves the endpoint is up
	breakerFailure                        // endpoint trouble
	breakerExcluded                       // neither (429, cancellations)
)

// errorKinds is the one table of the package's error rules: kindOf takes
// the first row whose error matches, so an error matching two rows (a store
// failure that also wraps a deadline) gets the earlier one.
var errorKinds = []errorKind{
	{err: ErrConnectionNotFound, label: "not_found", status: StatusNotFound, fromAPI: true},
	{err: ErrConnectionStale, label: "gone", status: StatusStale, fromAPI: true, answered: true},
	{err: ErrCircuitOpen, label: "circuit_open", status: StatusFailed},
	{err: ErrPayloadTooLarge, label: "payload_too_large", status: StatusFailed, fromAPI: true, answered: true},
	{err: ErrShuttingDown, label: "shutting_down", status: StatusCancelled, breaker: breakerExcluded},
	{err: ErrThrottled, label: "throttled", status: StatusFailed, retry: true, breaker: breakerExcluded, fromAPI: true},
	{err: ErrForbidden, label: "forbidden", status: StatusFailed, fromAPI: true, answered: true},
	{err: ErrServerError, label: "server_error", status: StatusFailed, retry: true, breaker: breakerFailure, unhealthy: true, fromAPI: true},
	{err: ErrNetwork, label: "network", status: StatusFailed, retry: true, breaker: breakerFailure, unhealthy: true, fromAPI: true},
	{err: ErrRejected, label: "rejected", status: StatusFailed, unhealthy: true, fromAPI: true, answered: true},
	{err: ErrInvalidMessage, label: "invalid_message", status: StatusFailed},
	{err: ErrUnhealthy, label: "skipped", status: StatusSkipped},
	{err: ErrStoreUnavailable, label: "store", status: StatusFailed},
	{err: context.Canceled, label: "cancelled", status: StatusCancelled, breaker: breakerExcluded},
	{err: context.DeadlineExceeded, label: "cancelled", status: StatusCancelled, breaker: breakerExcluded},
}

// otherKind is the verdict on an error no row matches.
var otherKind = errorKind{label: "other", status: StatusFailed}

// kindOf returns err's row of errorKinds (otherKind when none matches).
func kindOf(err error) errorKind {
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			return k
		}
	}
	return otherKind
}

// limitSignal is what a request's classified result tells the concurrency
// limit: a round-trip sample when the endpoint answered, a congestion
// signal on 429, nothing otherwise (5xx and network errors are the
// breaker's business).
func limitSignal(kind error) signal {
	switch {
	case kind == nil:
		return signalOK
	case kind == ErrThrottled:
		return signalThrottled
	case kindOf(kind).answered:
		return signalOK
	}
	return signalNone
}

// errorType is the metrics label of an error ("" for nil).
func errorType(err error) string {
	if err == nil {
		return ""
	}
	return kindOf(err).label
}

// StatusOf is the Outcome status a delivery gets when it ends with err:
// StatusSent for nil, StatusNotFound, StatusStale, StatusSkipped or
// StatusCancelled for those sentinels (and context errors), else
// StatusFailed. The Manager and connectiontest.Recorder decide with it.
func StatusOf(err error) Status {
	if err == nil {
		return StatusSent
	}
	return kindOf(err).status
}

// attemptResult is one classified attempt: kind is a sentinel (nil on success).
type attemptResult struct {
	kind   error
	status int
	code   string
}

// kindOfCode classifies an error answer by its type (x-amzn-ErrorType; the
// SDK names its typed exceptions by the same code); nil for any other.
func kindOfCode(code string) error {
	switch code {
	case "GoneException":
		return ErrConnectionStale
	case "PayloadTooLargeException":
		return ErrPayloadTooLarge
	case "ForbiddenException":
		return ErrForbidden
	case "LimitExceededException":
		return ErrThrottled
	}
	return nil
}

// kindOfStatus classifies an error answer (status >= 400) by its status.
func kindOfStatus(status int) error {
	switch {
	case status == 410:
		return ErrConnectionStale
	case status == 413:
		return ErrPayloadTooLarge
	case status == 403:
		return ErrForbidden
	case status == 429:
		return ErrThrottled
	case status >= 500:
		return ErrServerError
	}
	return ErrRejected
}

// classify turns an SDK (or fake) error into our vocabulary. parent is the
// caller's context: a deadline on it is the caller's, not a network timeout.
func classify(parent context.Context, err error) attemptResult {
	if err == nil {
		return attemptResult{}
	}
	if cerr := parent.Err(); cerr != nil {
		if errors.Is(context.Cause(parent), ErrShuttingDown) {
			return attemptResult{kind: ErrShuttingDown}
		}
		return attemptResult{kind: cerr}
	}
	// Implementations of ManagementAPI other than the SDK (fakes, the local
	// gateway in-process) may return our sentinels directly; for the API,
	// "not found" is the connection being gone.
	if k := kindOf(err); k.fromAPI {
		if k.err == ErrConnectionNotFound {
			return attemptResult{kind: ErrConnectionStale}
		}
		return attemptResult{kind: k.err}
	}
	var r attemptResult
	if e, ok := err.(*apiError); ok {
		// The direct path's answer: no chain to walk.
		r.status, r.code = e.status, e.code
	} else {
		r.status = httpStatus(err)
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			r.code = apiErr.ErrorCode()
		}
	}
	switch k := kindOfCode(r.code); {
	case k != nil:
		r.kind = k
	case r.status >= 400:
		r.kind = kindOfStatus(r.status)
	case isNetwork(err):
		r.kind = ErrNetwork
	default:
		// An error without a response: the SDK failed before or while
		// talking to the endpoint (signing, endpoint resolution, I/O).
		r.kind = ErrNetwork
	}
	return r
}

func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func isNetwork(err error) bool {
	var send *smithyhttp.RequestSendError
	var ne net.Error
	return errors.As(err, &send) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, context.DeadlineExceeded)
}
