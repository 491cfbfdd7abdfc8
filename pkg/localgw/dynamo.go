package localgw

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/truora/minidyn/server"

	"github.com/pay-theory/streamer/pkg/store"
)

// maxDynamoRequest bounds a DynamoDB API request body (BatchWriteItem's
// 16 MB limit).
const maxDynamoRequest = 16 << 20

// dynamoTargetPrefix is the X-Amz-Target prefix of the DynamoDB API.
const dynamoTargetPrefix = "DynamoDB_20120810."

// dynamoOps are the operations minidyn serves; anything else is
// UnknownOperationException, as DynamoDB answers it.
var dynamoOps = map[string]bool{
	"CreateTable": true, "UpdateTable": true, "DeleteTable": true, "DescribeTable": true,
	"PutItem": true, "GetItem": true, "UpdateItem": true, "DeleteItem": true,
	"Query": true, "Scan": true, "BatchWriteItem": true, "BatchGetItem": true,
	"TransactWriteItems": true, "TransactGetItems": true,
}

// embeddedDynamo serves minidyn behind a guard that makes it answer as
// DynamoDB does where minidyn does not:
//
//   - it validates what minidyn dereferences without checking (a Query or
//     Scan naming an index the table lacks made it panic on nil);
//   - it recovers a panic per request and answers 400 ValidationException,
//     so one bad request cannot drop the connection or the process;
//   - PutItem answers Attributes only for ReturnValues ALL_OLD, and then the
//     item it replaced (minidyn always returns the new item);
//   - a Query or Scan resumes after an ExclusiveStartKey whose item was
//     deleted in between (see placeStartKey; minidyn answered an empty,
//     final page).
//
// Requests are served one at a time: minidyn's CreateTable and table map are
// not safe for concurrent use. Bodies are read before the lock so a slow
// client never holds it.
type embeddedDynamo struct {
	mu     sync.Mutex
	srv    http.Handler // minidyn's server; a test may put a panicking one
	tables map[string]*tableInfo
	logger *slog.Logger
	// mirrors answer the store's index listings (dynamo_index.go), by
	// table; nil: a table whose schema they do not support.
	mirrors map[string]*mirrorTable
}

// tableInfo is what the guard and the mirrors need to know of a table,
// from DescribeTable.
type tableInfo struct {
	keys    []string          // key attribute names, the hash key first
	indexes map[string]bool   // every index, global or local
	types   map[string]string // attribute definitions (name → S, N or B); minidyn describes none
	globals []globalIndex
	locals  bool // any local secondary index
}

// globalIndex is a global secondary index's key schema and projection.
type globalIndex struct {
	name, hash, rng string // rng "" when the index has no range key
	projection      string // ALL, KEYS_ONLY or INCLUDE
}

func (d *embeddedDynamo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDynamoRequest+1))
	if err != nil || len(body) > maxDynamoRequest {
		writeDynamoError(w, http.StatusBadRequest, "ValidationException", "request body unreadable or over 16 MB")
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), dynamoTargetPrefix)
	if !ok || !dynamoOps[op] {
		writeDynamoError(w, http.StatusBadRequest, "UnknownOperationException",
			fmt.Sprintf("operation %q is not served by the embedded DynamoDB (minidyn)", r.Header.Get("X-Amz-Target")))
		return
	}
	if r.Method != http.MethodPost {
		writeDynamoError(w, http.StatusBadRequest, "ValidationException", "DynamoDB API requests are POSTs")
		return
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	var old map[string]json.RawMessage // PutItem ALL_OLD: the item before the put
	switch op {
	case "CreateTable", "UpdateTable", "DeleteTable":
		defer clear(d.tables) // the next request describes them again
	case "Query", "Scan":
		if op == "Query" {
			if b, ok := d.tryQueryIndex(body); ok {
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				_, _ = w.Write(b)
				return
			}
		}
		var in struct {
			TableName, IndexName string
			ExclusiveStartKey    map[string]any
		}
		if json.Unmarshal(body, &in) == nil && in.IndexName != "" {
			if t := d.table(in.TableName); t != nil && !t.indexes[in.IndexName] {
				writeDynamoError(w, http.StatusBadRequest, "ValidationException", "The table does not have the specified index: "+in.IndexName)
				return
			}
		}
		if len(in.ExclusiveStartKey) > 0 {
			if undo := d.placeStartKey(in.TableName, in.ExclusiveStartKey); undo != nil {
				defer undo() // before the unlock: no other request sees it
			}
		}
	case "PutItem":
		var in struct {
			TableName    string
			ReturnValues string
			Item         map[string]any
		}
		if json.Unmarshal(body, &in) == nil {
			switch in.ReturnValues {
			case "", "NONE":
			case "ALL_OLD":
				old = d.oldItem(in.TableName, in.Item)
			default:
				writeDynamoError(w, http.StatusBadRequest, "ValidationException",
					"Return values set to invalid value: PutItem takes NONE or ALL_OLD, not "+truncate(in.ReturnValues, 64))
				return
			}
		}
	}

	rec := d.call(r.Context(), op, body, r.Header)
	d.afterWrite(op, body, rec.Code, rec.Body.Bytes())
	if rec.Code == http.StatusOK && op == "PutItem" {
		rec.Body = putItemOutput(rec.Body.Bytes(), old)
	}
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// call runs one request on minidyn into a recorder, turning a panic into
// DynamoDB's 400 ValidationException: minidyn panics on input it does not
// validate, and DynamoDB answers invalid input with exactly that. Called
// with d.mu held.
func (d *embeddedDynamo) call(ctx context.Context, op string, body []byte, hdr http.Header) (rec *httptest.ResponseRecorder) {
	rec = httptest.NewRecorder()
	defer func() {
		if p := recover(); p != nil {
			d.logger.Error("localgw: the embedded DynamoDB (minidyn) panicked; answered 400 ValidationException",
				"operation", op, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			rec = httptest.NewRecorder()
			writeDynamoError(rec, http.StatusBadRequest, "ValidationException",
				fmt.Sprintf("the embedded DynamoDB could not process this %s request; check it against the DynamoDB API reference (minidyn: %v)", op, p))
		}
	}()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(body))
	req.Header = hdr.Clone()
	d.srv.ServeHTTP(rec, req)
	return rec
}

// internalCall serves one request the guard makes itself: op with the
// JSON of in. Called with d.mu held.
func (d *embeddedDynamo) internalCall(op string, in any) *httptest.ResponseRecorder {
	body, _ := json.Marshal(in)
	return d.call(context.Background(), op, body, http.Header{"X-Amz-Target": {dynamoTargetPrefix + op}})
}

// table describes a table through minidyn itself (cached until a table
// changes); nil when it does not exist (minidyn then answers the request
// with ResourceNotFoundException). Called with d.mu held.
func (d *embeddedDynamo) table(name string) *tableInfo {
	if t, ok := d.tables[name]; ok {
		return t
	}
	rec := d.internalCall("DescribeTable", map[string]string{"TableName": name})
	type keyElem struct{ AttributeName, KeyType string }
	var out struct {
		Table struct {
			KeySchema              []keyElem
			AttributeDefinitions   []struct{ AttributeName, AttributeType string }
			GlobalSecondaryIndexes []struct {
				IndexName  string
				KeySchema  []keyElem
				Projection struct{ ProjectionType string }
			}
			LocalSecondaryIndexes []struct{ IndexName string }
		}
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		return nil
	}
	// keysOf orders a key schema hash key first.
	keysOf := func(ks []keyElem) (hash, rng string) {
		for _, k := range ks {
			if k.KeyType == "RANGE" {
				rng = k.AttributeName
			} else {
				hash = k.AttributeName
			}
		}
		return hash, rng
	}
	t := &tableInfo{indexes: map[string]bool{}, types: map[string]string{}, locals: len(out.Table.LocalSecondaryIndexes) > 0}
	if hash, rng := keysOf(out.Table.KeySchema); rng == "" {
		t.keys = []string{hash}
	} else {
		t.keys = []string{hash, rng}
	}
	for _, a := range out.Table.AttributeDefinitions {
		t.types[a.AttributeName] = a.AttributeType
	}
	for _, g := range out.Table.GlobalSecondaryIndexes {
		t.indexes[g.IndexName] = true
		hash, rng := keysOf(g.KeySchema)
		t.globals = append(t.globals, globalIndex{name: g.IndexName, hash: hash, rng: rng, projection: g.Projection.ProjectionType})
	}
	for _, i := range out.Table.LocalSecondaryIndexes {
		t.indexes[i.IndexName] = true
	}
	d.tables[name] = t
	return t
}

// placeStartKey makes a Query or Scan resume after an ExclusiveStartKey
// whose item no longer exists, as DynamoDB does. minidyn starts a page only
// at a stored item's key, so a listing resumed from a cursor whose last item
// was deleted in between (conn prune and the reaper remove the records they
// listed) came back empty and final, as if the table ended there. The
// missing item is put back for this one request, holding only the start
// key's attributes (so it sits where the table's or the index's order puts
// it; a page never returns its start key), and undo deletes it. Called with
// d.mu held, so no other request sees it; nil when there is nothing to do.
func (d *embeddedDynamo) placeStartKey(table string, start map[string]any) (undo func()) {
	key := d.keyOf(table, start)
	if key == nil {
		return nil
	}
	if item, _ := d.getItem(table, key); item != nil {
		return nil
	}
	if rec := d.internalCall("PutItem", map[string]any{"TableName": table, "Item": start}); rec.Code != http.StatusOK {
		return nil
	}
	return func() {
		rec := d.internalCall("DeleteItem", map[string]any{"TableName": table, "Key": key})
		if rec.Code != http.StatusOK {
			d.logger.Error("localgw: the embedded DynamoDB kept a listing's start key placeholder", "table", table, "status", rec.Code)
		}
	}
}

// oldItem reads the item a PutItem is about to replace (nil when none).
// Called with d.mu held.
func (d *embeddedDynamo) oldItem(table string, item map[string]any) map[string]json.RawMessage {
	key := d.keyOf(table, item)
	if key == nil {
		return nil // minidyn answers the put's own validation error
	}
	old, _ := d.getItem(table, key)
	return old
}

// keyOf is item's key attributes in table's key schema; nil when the
// table does not exist or item lacks one of them. Called with d.mu held.
func (d *embeddedDynamo) keyOf(table string, item map[string]any) map[string]any {
	t := d.table(table)
	if t == nil {
		return nil
	}
	key := map[string]any{}
	for _, k := range t.keys {
		v, ok := item[k]
		if !ok {
			return nil
		}
		key[k] = v
	}
	return key
}

// getItem reads the item with key: nil when there is none; ok is false
// when the read failed. Called with d.mu held.
func (d *embeddedDynamo) getItem(table string, key any) (item map[string]json.RawMessage, ok bool) {
	rec := d.internalCall("GetItem", map[string]any{"TableName": table, "Key": key})
	var out struct{ Item map[string]json.RawMessage }
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		return nil, false
	}
	if len(out.Item) == 0 {
		return nil, true
	}
	return out.Item, true
}

// putItemOutput rewrites minidyn's PutItem answer: Attributes is the
// replaced item for ALL_OLD (old, nil when there was none) and absent
// otherwise, as in DynamoDB.
func putItemOutput(body []byte, old map[string]json.RawMessage) *bytes.Buffer {
	var out map[string]json.RawMessage
	if json.Unmarshal(body, &out) != nil {
		return bytes.NewBuffer(body)
	}
	delete(out, "Attributes")
	if len(old) > 0 {
		out["Attributes"], _ = json.Marshal(old)
	}
	b, _ := json.Marshal(out)
	return bytes.NewBuffer(b)
}

// writeDynamoError answers as DynamoDB does: status, and a JSON body whose
// __type ends in the error code the SDKs map to their typed errors.
func writeDynamoError(w http.ResponseWriter, status int, code, message string) {
	b, _ := json.Marshal(map[string]string{"__type": "com.amazonaws.dynamodb.v20120810#" + code, "message": message})
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// newEmbeddedDynamo starts an in-memory DynamoDB API with the connections
// table already created, through the real SDK client over an in-process
// transport (the listener does not exist yet).
func newEmbeddedDynamo(ctx context.Context, table string, logger *slog.Logger) (*embeddedDynamo, error) {
	d := &embeddedDynamo{srv: server.NewServer(), tables: map[string]*tableInfo{}, logger: logger, mirrors: map[string]*mirrorTable{}}
	// The SDK's default retryer applies: the table setup is idempotent, so a
	// retried 5xx or throttle from the store is harmless.
	client, err := store.NewDynamoClient(ctx, store.ClientConfig{
		Endpoint:   "http://localgw.embedded",
		HTTPClient: &http.Client{Transport: handlerTransport{d}},
	})
	if err != nil {
		return nil, fmt.Errorf("localgw: embedded DynamoDB client: %w", err)
	}
	// pkg/store owns the table definition (from pkg/store/schema).
	if err := store.EnsureTable(ctx, client, table); err != nil {
		return nil, fmt.Errorf("localgw: create table %q in the embedded DynamoDB: %w", table, err)
	}
	return d, nil
}

// handlerTransport serves requests with an http.Handler in process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// slogErrorLog routes net/http's internal error log to the gateway logger.
func slogErrorLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelWarn)
}
