// Package store keeps connection records in DynamoDB (or any endpoint that
// speaks the DynamoDB API: minidyn, dynalite, DynamoDB Local). Dynamo is the
// implementation of Store; storetest is the conformance suite every endpoint
// must pass; dynamotest starts endpoints for tests.
//
// # Schema
//
// One table (name configurable, default schema.DefaultTableName), defined
// once in pkg/store/schema and turned into a CreateTable request by
// CreateTableInput; the local stack, the tests and the Pulumi program all use
// it. Partition key connection_id (S). Two global secondary indexes with ALL
// projection, tenant-index (tenant_id, connected_at) and user-index (user_id,
// connected_at), so a tenant's or a user's connections list in connect order.
// connected_at and last_ping are epoch milliseconds (N, so the indexes sort
// numerically); ttl is epoch seconds, the table's TTL attribute, by default
// connected_at + 24h. metadata is a map {user_agent, ip_address};
// permissions a list (order and duplicates kept). Empty optional attributes
// are left out.
//
// # No resurrection
//
// Writes that follow a connect (Touch, AddSent) are UpdateItems conditioned on
// attribute_exists(connection_id). Without the condition, an update racing a
// $disconnect would recreate a record holding only the updated attributes,
// which no later $disconnect would ever remove. A failed condition is
// ErrNotFound for Touch and a silent skip for AddSent. Delete returns the old
// record (ReturnValues ALL_OLD) and is idempotent.
//
// # TTL filtering
//
// DynamoDB deletes expired items lazily, sometimes days late, and the
// emulators never do. So readers filter: List (a Query on the tenant or user
// index, or a Scan of the whole table when neither is set) keeps
// attribute_not_exists(ttl) OR ttl <= 0 OR ttl > now, and Existing and Get drop
// records whose ttl has passed (an absent or zero ttl never expires). A filter is
// applied after DynamoDB reads a page, so a page may come back short or empty
// with a cursor still set; callers keep going until Page.Next is "" (All does
// this). Cursors are opaque base64 of LastEvaluatedKey, bound to the index and
// the tenant/user they came from.
//
// # The active counter
//
// The ActiveConnections gauge is one item with the reserved key "#stats",
// updated with ADD active_connections :d (atomic, no read-modify-write) and
// ReturnValues UPDATED_NEW. It has no tenant_id or user_id, so it never
// appears in the indexes. Connection ids starting with "#" fail validation, so
// no client id can collide with it. A single hot item is fine at connect rates
// (one write per connect/disconnect); counting by Scan would cost a full table
// read per sample.
//
// # Why no transactions
//
// dynalite, the emulator CI runs against, has no TransactWriteItems, and no
// operation here needs one: each write touches a single item and is made safe
// by its own condition, and batch operations (BatchGetItem by 100,
// BatchWriteItem by 25) retry UnprocessedKeys/UnprocessedItems with capped,
// jittered backoff that honours ctx, then fail with *UnprocessedError naming
// how many remained. The counter may drift from the true count if a handler
// dies between its two writes; the gauge is advisory and DynamoDB's TTL sweep
// is the backstop for records.
//
// # Errors
//
// Callers branch with errors.Is: ErrNotFound, ErrInvalid (a *ValidationError
// naming the field), ErrTableNotFound, ErrThrottled, ErrUnprocessed, and
// ErrUnavailable when the endpoint did not answer (refused, no such host, or
// still silent at the caller's deadline): an *UnavailableError naming the
// endpoint, with the network or context error still in the chain.
package store
