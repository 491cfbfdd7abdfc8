package cmd

import (
	"context"
	"fmt"
	"iter"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/store"
)

// The interfaces below are owned by the CLI: each lists only what the
// commands call, in the signatures of the packages that implement them
// (pkg/store, pkg/connection, the AWS SDK), so the real implementations plug
// in unchanged and tests use small fakes or connectiontest.Recorder.

// ConnStore is the part of store.Store the CLI uses.
type ConnStore interface {
	Get(ctx context.Context, connectionID string) (store.Connection, error)
	Delete(ctx context.Context, connectionID string) (store.Connection, bool, error)
	List(ctx context.Context, q store.ListQuery) (store.Page, error)
}

// ManagementAPI is the part of the API Gateway management API the CLI calls
// directly (conn inspect, conn kick).
type ManagementAPI interface {
	GetConnection(ctx context.Context, in *apigatewaymanagementapi.GetConnectionInput, optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.GetConnectionOutput, error)
	DeleteConnection(ctx context.Context, in *apigatewaymanagementapi.DeleteConnectionInput, optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.DeleteConnectionOutput, error)
}

// Messenger is the part of pkg/connection's Manager the CLI sends through;
// *connection.Manager and connectiontest.Recorder implement it. Its errors,
// statuses and results are the library's own (connection.ErrConnectionNotFound,
// connection.Status, connection.BroadcastResult).
type Messenger interface {
	Send(ctx context.Context, connectionID string, message any) error
	// BroadcastWithProgress calls progress (may be nil) serially as
	// targets finish.
	BroadcastWithProgress(ctx context.Context, connectionIDs []string, message any, progress func(done, total int)) (connection.BroadcastResult, error)
	// BroadcastQuery sends to a listing as its pages arrive;
	// BroadcastIDs to a stream of ids.
	BroadcastQuery(ctx context.Context, lister store.Lister, q store.ListQuery, message any, opts connection.BroadcastOptions) (connection.BroadcastResult, error)
	BroadcastIDs(ctx context.Context, ids iter.Seq2[string, error], message any, opts connection.BroadcastOptions) (connection.BroadcastResult, error)
	IsActive(ctx context.Context, connectionID string) bool
	// Reconcile removes the records of connections the gateway says are
	// gone (conn prune).
	Reconcile(ctx context.Context, lister store.Lister, opts connection.ReconcileOptions) (connection.ReconcileResult, error)
	Shutdown(ctx context.Context) error
}

// MessengerOptions tune the Manager a command builds (0 => the Manager's
// defaults).
type MessengerOptions struct {
	// Workers is where the concurrency limit starts (and stays, Fixed).
	Workers int
	// MaxInFlight caps the adaptive limit (and the client's connections).
	MaxInFlight int
	// Fixed holds the limit at Workers.
	Fixed bool
}

// Key file names inside a key directory: pkg/auth's.
const (
	PrivateKeyFile = auth.PrivateKeyFile
	PublicKeyFile  = auth.PublicKeyFile
)

// WSConn is a client WebSocket connection (smoke, listen). Read and Write
// may run concurrently with each other and with Close.
type WSConn interface {
	// Read returns the next message. When the peer closed the connection
	// the error is a *WSCloseError with its code and reason; any other
	// error means the connection ended without a close frame (1006).
	Read(ctx context.Context) ([]byte, error)
	// Write sends one text message.
	Write(ctx context.Context, msg []byte) error
	// Close sends a 1000 (normal closure) close frame and waits, bounded,
	// for the peer's answer; Read then returns.
	Close() error
}

// WSCloseError is a close frame the peer sent: its code (1000 normal,
// 1001 going away, 1009 too big, ...) and reason.
type WSCloseError struct {
	Code   int
	Reason string
	Err    error // the WebSocket library's error
}

func (e *WSCloseError) Error() string {
	return fmt.Sprintf("closed with %d %s", e.Code, e.Reason)
}
func (e *WSCloseError) Unwrap() error { return e.Err }

// WSDialer opens a client WebSocket. status is the HTTP status of the
// upgrade response when there was one (101 on success, 401 when refused).
type WSDialer func(ctx context.Context, url string, header http.Header) (conn WSConn, status int, err error)

// LocalStack is an embedded `streamer local` started for one command
// (`smoke --local`), provided through Factory.StartLocal.
type LocalStack interface {
	// Config points every client at the stack (endpoint, ws url, dynamodb
	// endpoint, table, key dir holding the stack's signing key, issuer).
	Config() Config
	Close(ctx context.Context) error
}
