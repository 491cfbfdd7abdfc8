package cmd

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/store"
)

// The interfaces below are owned by the CLI: each lists only what the
// commands call, so tests use small hand-written fakes and the real
// implementations (pkg/store, pkg/connection, pkg/auth) plug in through the
// adapters in wire.go.

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

// Messenger sends through pkg/connection's Manager.
type Messenger interface {
	// Send delivers one message. Errors match ErrTargetNotFound /
	// ErrTargetStale with errors.Is when the connection is gone.
	Send(ctx context.Context, connectionID string, message []byte) error
	// Broadcast fans out; progress (may be nil) is called as targets finish,
	// possibly from several goroutines.
	Broadcast(ctx context.Context, ids []string, message []byte, progress func(done, total int)) (BroadcastSummary, error)
	IsActive(ctx context.Context, connectionID string) bool
	Shutdown(ctx context.Context) error
}

// MessengerOptions tune the Manager a command builds.
type MessengerOptions struct {
	Workers int // 0 => the Manager's default
}

// Target outcome statuses (the same words as pkg/connection's Status).
const (
	StatusSent      = "sent"
	StatusNotFound  = "not_found"
	StatusStale     = "stale"
	StatusSkipped   = "skipped"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// BroadcastSummary is a broadcast's outcome.
type BroadcastSummary struct {
	Total, Sent, NotFound, Stale, Skipped, Failed, Cancelled int
	Duration                                                 time.Duration
	// Undelivered lists every target that was not sent, with why.
	Undelivered []TargetOutcome
}

// TargetOutcome is one undelivered target.
type TargetOutcome struct {
	ConnectionID string
	Status       string
	Err          error
}

// Send errors the CLI branches on; adapters wrap the library's errors with
// these (both stay visible to errors.Is).
var (
	ErrTargetNotFound = errors.New("connection not found")
	ErrTargetStale    = errors.New("connection is stale (gateway answered 410 Gone)")
	ErrKeyExists      = errors.New("key already exists")
	ErrNotWired       = errors.New("not available in this build")
)

// MintSpec describes a token to mint (mirrors auth.MintOptions).
type MintSpec struct {
	UserID, TenantID string
	Permissions      []string
	Issuer           string
	Audience         []string
	TTL              time.Duration // 0 => 1h
	Expired          bool
	Now              func() time.Time
}

// AuthKit is what the token commands and smoke need from pkg/auth.
type AuthKit interface {
	Mint(key *rsa.PrivateKey, spec MintSpec) (string, error)
	// Verify checks signature, expiry, issuer and (when set) audience.
	Verify(ctx context.Context, pub *rsa.PublicKey, issuer, audience, token string) (auth.Claims, error)
	GenerateKey() (*rsa.PrivateKey, error)
	// WriteKeyPair refuses to overwrite unless force; the error then
	// matches ErrKeyExists.
	WriteKeyPair(dir string, force bool) (privPath, pubPath string, err error)
	LoadPrivateKey(path string) (*rsa.PrivateKey, error)
	LoadPublicKey(path string) (*rsa.PublicKey, error)
}

// Key file names inside a key directory: pkg/auth's.
const (
	PrivateKeyFile = auth.PrivateKeyFile
	PublicKeyFile  = auth.PublicKeyFile
)

// WSConn is a client WebSocket connection (smoke).
type WSConn interface {
	Read(ctx context.Context) ([]byte, error)
	Close() error
}

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
