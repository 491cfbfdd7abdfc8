// Package schema is the single definition of the connections table: its key,
// indexes and TTL attribute. It has no dependencies so that the store, the
// local stack and the Pulumi program (its own module) all import the same
// values instead of copying them.
package schema

// Attribute names of a connection record.
const (
	AttrConnectionID     = "connection_id"
	AttrUserID           = "user_id"
	AttrTenantID         = "tenant_id"
	AttrEndpoint         = "endpoint"
	AttrConnectedAt      = "connected_at" // epoch milliseconds (N): the GSI sort key
	AttrLastPing         = "last_ping"    // epoch milliseconds (N)
	AttrMetadata         = "metadata"     // map {user_agent, ip_address}
	AttrPermissions      = "permissions"  // list of strings
	AttrMessagesSent     = "messages_sent"
	AttrMessagesReceived = "messages_received"
	AttrTTL              = "ttl" // epoch seconds (N): the table's TTL attribute
)

// Index names.
const (
	IndexTenant = "tenant-index"
	IndexUser   = "user-index"
)

// Internal items share the table with the connection records, under keys
// starting with ReservedKeyPrefix, which no connection id may: listings
// skip them and no client can name one. The deployment scopes the writes
// some functions make to them (IAM's dynamodb:LeadingKeys) by these keys.
const (
	ReservedKeyPrefix = "#"
	// ActiveCounterKey holds the table-wide active connection counter.
	ActiveCounterKey = ReservedKeyPrefix + "stats"
	// CheckpointKeyPrefix + a job's name holds that job's checkpoint.
	CheckpointKeyPrefix = ReservedKeyPrefix + "checkpoint/"
)

// CheckpointKey is the key of the checkpoint item of the job name.
func CheckpointKey(name string) string { return CheckpointKeyPrefix + name }

// DefaultTableName is used when no table name is configured.
const DefaultTableName = "streamer-connections"

// AttributeType is a DynamoDB scalar key type.
type AttributeType string

// Key attribute types.
const (
	TypeString AttributeType = "S"
	TypeNumber AttributeType = "N"
)

// Attribute is a key attribute definition.
type Attribute struct {
	Name string
	Type AttributeType
}

// Index is a global secondary index with ALL projection.
type Index struct {
	Name     string
	HashKey  string
	RangeKey string
}

// Table is the connections table definition.
type Table struct {
	HashKey      string
	Attributes   []Attribute // key attributes of the table and its indexes
	Indexes      []Index
	TTLAttribute string
}

// Connections returns the connections table definition. It is a function,
// not a variable, so no caller can mutate the shared definition.
func Connections() Table {
	return Table{
		HashKey: AttrConnectionID,
		Attributes: []Attribute{
			{Name: AttrConnectionID, Type: TypeString},
			{Name: AttrTenantID, Type: TypeString},
			{Name: AttrUserID, Type: TypeString},
			{Name: AttrConnectedAt, Type: TypeNumber},
		},
		Indexes: []Index{
			{Name: IndexTenant, HashKey: AttrTenantID, RangeKey: AttrConnectedAt},
			{Name: IndexUser, HashKey: AttrUserID, RangeKey: AttrConnectedAt},
		},
		TTLAttribute: AttrTTL,
	}
}
