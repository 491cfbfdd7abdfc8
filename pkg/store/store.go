package store

import (
	"context"
	"errors"
	"time"

	"github.com/pay-theory/streamer/pkg/store/schema"
)

// Limits enforced before any write.
const (
	MaxIDLength          = 128
	MaxUserAgentLength   = 512
	MaxIPAddressLength   = 64
	MaxPermissions       = 64
	MaxPermissionLength  = 128
	DefaultTTL           = 24 * time.Hour
	BatchGetLimit        = 100 // BatchGetItem keys per request
	BatchWriteLimit      = 25  // BatchWriteItem requests per call
	DefaultListPageSize  = 100
	MaxListPageSize      = 1000
	reservedIDPrefix     = schema.ReservedKeyPrefix // ids of internal items (the active counter, checkpoints)
	activeCounterItemKey = schema.ActiveCounterKey
)

// Errors callers branch on.
var (
	// ErrNotFound: the record does not exist (or was deleted).
	ErrNotFound = errors.New("store: connection not found")
	// ErrInvalid: the record or argument failed validation; wrapped with detail.
	ErrInvalid = errors.New("store: invalid input")
)

// Metadata is what the gateway told us about the client at connect.
type Metadata struct {
	UserAgent string `json:"user_agent,omitempty"`
	IPAddress string `json:"ip_address,omitempty"`
}

// Connection is one live WebSocket connection's record.
type Connection struct {
	ConnectionID     string    `json:"connection_id"`
	UserID           string    `json:"user_id"`
	TenantID         string    `json:"tenant_id"`
	Endpoint         string    `json:"endpoint"` // https://{domainName}/{stage}
	ConnectedAt      time.Time `json:"connected_at"`
	LastPing         time.Time `json:"last_ping"`
	Metadata         Metadata  `json:"metadata"`
	Permissions      []string  `json:"permissions"`
	MessagesSent     int64     `json:"messages_sent"`
	MessagesReceived int64     `json:"messages_received"`
	TTL              int64     `json:"ttl"` // epoch seconds
}

// Expired reports whether the record's TTL has passed at now. DynamoDB deletes
// expired items lazily (up to days later), so readers must filter them.
func (c Connection) Expired(now time.Time) bool {
	return c.TTL > 0 && now.Unix() >= c.TTL
}

// ListQuery selects the connections to list: a tenant's (the tenant index), a
// user's (the user index), a user's within a tenant (both set), or, with
// neither set, the whole table (a Scan: it reads every item, so it costs read
// capacity in proportion to the table and returns rows in no order).
type ListQuery struct {
	TenantID string
	UserID   string
	// PageSize bounds the items read per request; zero means DefaultListPageSize.
	PageSize int32
	// Cursor continues from a previous Page.Next; empty starts at the beginning.
	Cursor string
	// IDsOnly reads only what a fan-out needs (each record's
	// ConnectionID, ConnectedAt and TTL: whom, since when, whether
	// expired; the other fields are zero) and drops expired records after
	// the read instead of in a DynamoDB filter: less to read, send and
	// decode per record. For a tenant's or a user's listing; a whole-table
	// listing reads whole records either way.
	IDsOnly bool
}

// Page is one page of a listing, ordered by connected_at. A page may be empty
// while Next is set (every item on it had expired): keep going until Next is "".
type Page struct {
	Connections []Connection
	Next        string
}

// Store is the set of operations the handlers, the Manager and the CLI need.
// Consumers should declare the subset they use as their own interface.
type Store interface {
	// Save writes a new record (overwriting one with the same id).
	Save(ctx context.Context, c Connection) error
	// Get returns ErrNotFound when absent.
	Get(ctx context.Context, connectionID string) (Connection, error)
	// Delete removes the record and returns what was deleted; found is false
	// (and err nil) when there was nothing to delete.
	Delete(ctx context.Context, connectionID string) (deleted Connection, found bool, err error)
	// Touch sets last_ping and adds received messages; ErrNotFound when the
	// record is gone (it is never recreated).
	Touch(ctx context.Context, connectionID string, at time.Time, received int64) error
	// AddSent adds sent-message counts for many connections in one call;
	// ids whose records are gone are skipped, never recreated.
	AddSent(ctx context.Context, counts map[string]int64) error
	// List returns one page of the unexpired connections q selects.
	List(ctx context.Context, q ListQuery) (Page, error)
	// Existing returns the subset of ids with an unexpired record
	// (BatchGetItem in chunks of 100).
	Existing(ctx context.Context, connectionIDs []string) (map[string]bool, error)
	// DeleteMany removes records in BatchWriteItem chunks of 25, retrying
	// unprocessed items.
	DeleteMany(ctx context.Context, connectionIDs []string) error
	// AddActive adjusts the table-wide active connection counter and returns
	// its new value (the ActiveConnections gauge).
	AddActive(ctx context.Context, delta int64) (int64, error)
}
