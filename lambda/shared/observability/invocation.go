package observability

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Operations, the "operation" log field.
const (
	OpConnect    = "connect"
	OpDisconnect = "disconnect"
	OpMessage    = "message"
	OpSend       = "send"
)

// Invocation holds the fields every log line of one invocation carries.
// Handlers fill it in as they learn things (the user only after the token is
// verified); the log handler reads it from the context on every line. It is
// safe for concurrent use because a handler may log from goroutines.
type Invocation struct {
	mu            sync.Mutex
	start         time.Time
	now           func() time.Time
	coldStart     bool
	correlationID string
	operation     string
	userID        string
	tenantID      string
	connectionID  string
}

// InvocationFields is a snapshot of an Invocation.
type InvocationFields struct {
	CorrelationID string
	Operation     string
	UserID        string
	TenantID      string
	ConnectionID  string
	ColdStart     bool
	Start         time.Time
}

// BeginOptions describe a new invocation.
type BeginOptions struct {
	Operation string
	// RequestID is the API Gateway request id; when empty the Lambda request
	// id from the context (lambdacontext) is used as the correlation id.
	RequestID    string
	ConnectionID string
	ColdStart    bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type invocationKey struct{}

// Begin returns a context carrying a new Invocation.
func Begin(ctx context.Context, o BeginOptions) (context.Context, *Invocation) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	id := o.RequestID
	if id == "" {
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			id = lc.AwsRequestID
		}
	}
	inv := &Invocation{
		start:         now(),
		now:           now,
		coldStart:     o.ColdStart,
		correlationID: id,
		operation:     o.Operation,
		connectionID:  o.ConnectionID,
	}
	return context.WithValue(ctx, invocationKey{}, inv), inv
}

// FromContext returns the context's Invocation, or nil.
func FromContext(ctx context.Context) *Invocation {
	inv, _ := ctx.Value(invocationKey{}).(*Invocation)
	return inv
}

// SetUser records the authenticated (or looked-up) user and tenant.
func (i *Invocation) SetUser(userID, tenantID string) {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.userID, i.tenantID = userID, tenantID
	i.mu.Unlock()
}

// Fields returns a snapshot.
func (i *Invocation) Fields() InvocationFields {
	if i == nil {
		return InvocationFields{}
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return InvocationFields{
		CorrelationID: i.correlationID,
		Operation:     i.operation,
		UserID:        i.userID,
		TenantID:      i.tenantID,
		ConnectionID:  i.connectionID,
		ColdStart:     i.coldStart,
		Start:         i.start,
	}
}

// Elapsed is the time since the invocation began.
func (i *Invocation) Elapsed() time.Duration {
	if i == nil {
		return 0
	}
	return i.now().Sub(i.start)
}
