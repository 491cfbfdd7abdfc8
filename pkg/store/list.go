package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"iter"
	"maps"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// cursor is the decoded form of Page.Next: which listing it continues and
// DynamoDB's LastEvaluatedKey. Callers treat the encoded form as opaque.
type cursor struct {
	V     int               `json:"v"`
	Index string            `json:"i"`
	Hash  string            `json:"h"` // the tenant or user id listed
	S     map[string]string `json:"s,omitempty"`
	N     map[string]string `json:"n,omitempty"`
}

func encodeCursor(index, hash string, key map[string]types.AttributeValue) (string, error) {
	if len(key) == 0 {
		return "", nil
	}
	c := cursor{V: 1, Index: index, Hash: hash, S: map[string]string{}, N: map[string]string{}}
	for k, v := range key {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			c.S[k] = v.Value
		case *types.AttributeValueMemberN:
			c.N[k] = v.Value
		default:
			return "", invalid("cursor", "cannot encode key attribute %s of type %T", k, v)
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func decodeCursor(s, index, hash string) (map[string]types.AttributeValue, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, invalid("cursor", "is not a cursor returned by List (bad encoding); start again without one")
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.V != 1 || len(c.S)+len(c.N) == 0 {
		return nil, invalid("cursor", "is not a cursor returned by List (bad content); start again without one")
	}
	if c.Index != index || c.Hash != hash {
		return nil, invalid("cursor", "belongs to a different listing (%s %q); use it with the same tenant/user query", c.Index, c.Hash)
	}
	key := make(map[string]types.AttributeValue, len(c.S)+len(c.N))
	for k, v := range c.S {
		key[k] = &types.AttributeValueMemberS{Value: v}
	}
	for k, v := range c.N {
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return nil, invalid("cursor", "holds a malformed number; start again without one")
		}
		key[k] = &types.AttributeValueMemberN{Value: v}
	}
	return key, nil
}

// scanListing names the whole-table listing in cursors (where a GSI name
// goes for tenant and user listings); no index has this name.
const scanListing = "*table"

// unexpiredFilter keeps records unexpired exactly as Connection.Expired
// (Get, Existing) decides: a record without a ttl, or with ttl 0 (written by
// another tool), never expires; otherwise it is listed until its ttl second.
// It needs #ttl, :now and :zero (see unexpiredValues).
const unexpiredFilter = "(attribute_not_exists(#ttl) OR #ttl <= :zero OR #ttl > :now)"

func (d *Dynamo) unexpiredValues() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		":now":  num(d.now().Unix()),
		":zero": num(0),
	}
}

func pageSize(size int32) (int32, error) {
	switch {
	case size < 0:
		return 0, invalid("page_size", "is negative (%d)", size)
	case size == 0:
		return DefaultListPageSize, nil
	case size > MaxListPageSize:
		return MaxListPageSize, nil
	}
	return size, nil
}

// List returns one page of a tenant's or a user's unexpired connections,
// oldest connected_at first. Setting both TenantID and UserID lists that user
// within that tenant. PageSize above MaxListPageSize is lowered to it.
//
// With neither TenantID nor UserID, List pages through every connection in
// the table with Scan: it reads the whole table (every item, expired ones
// and the internal counter item included, costs read capacity), and its
// pages are in no particular order. Use it for operator listings, not on a
// hot path. Its cursors work only with another whole-table List.
//
// Expired records are filtered after DynamoDB reads the page, so a page can
// hold fewer items than PageSize, even none, while Next is still set. A
// record without a ttl (or with ttl 0) never expires, as for Get.
func (d *Dynamo) List(ctx context.Context, q ListQuery) (Page, error) {
	var (
		index, hashAttr, hash string
	)
	switch {
	case q.UserID != "":
		index, hashAttr, hash = schema.IndexUser, schema.AttrUserID, q.UserID
	case q.TenantID != "":
		index, hashAttr, hash = schema.IndexTenant, schema.AttrTenantID, q.TenantID
	default:
		return d.scan(ctx, q)
	}
	if err := validateID(hashAttr, hash); err != nil {
		return Page{}, err
	}
	size, err := pageSize(q.PageSize)
	if err != nil {
		return Page{}, err
	}
	start, err := decodeCursor(q.Cursor, index, hash)
	if err != nil {
		return Page{}, err
	}
	names := map[string]string{"#h": hashAttr, "#ttl": schema.AttrTTL}
	values := map[string]types.AttributeValue{":h": &types.AttributeValueMemberS{Value: hash}}
	var filters []string
	if q.IDsOnly {
		// The expiry check moves to after the read (Connection.Expired, the
		// same rule), on the projected ttl.
		names["#id"] = schema.AttrConnectionID
		names["#at"] = schema.AttrConnectedAt
	} else {
		filters = append(filters, unexpiredFilter)
		maps.Copy(values, d.unexpiredValues())
	}
	if q.UserID != "" && q.TenantID != "" {
		if err := validateID("tenant_id", q.TenantID); err != nil {
			return Page{}, err
		}
		filters = append(filters, "#t = :t")
		names["#t"] = schema.AttrTenantID
		values[":t"] = &types.AttributeValueMemberS{Value: q.TenantID}
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(d.table),
		IndexName:                 aws.String(index),
		KeyConditionExpression:    aws.String("#h = :h"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ExclusiveStartKey:         start,
		Limit:                     aws.Int32(size),
		ScanIndexForward:          aws.Bool(true),
	}
	if len(filters) > 0 {
		in.FilterExpression = aws.String(strings.Join(filters, " AND "))
	}
	if q.IDsOnly {
		in.ProjectionExpression = aws.String("#id, #at, #ttl")
	}
	out, err := d.client.Query(ctx, in)
	if err != nil {
		return Page{}, d.wrapErr("list", index+" "+strconv.Quote(hash), err)
	}
	page, err := pageOf(out.Items, index, hash, out.LastEvaluatedKey)
	if err == nil && q.IDsOnly {
		now := d.now()
		kept := page.Connections[:0]
		for _, c := range page.Connections {
			if !c.Expired(now) {
				kept = append(kept, c)
			}
		}
		page.Connections = kept
	}
	return page, err
}

// ScanAPI is what a whole-table List needs beyond DynamoAPI;
// *dynamodb.Client has it. A DynamoAPI without Scan still serves every
// other operation, and whole-table listings fail with ErrInvalid.
type ScanAPI interface {
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// scan is List without a tenant or user: a paginated Scan of the whole
// table, with the same unexpired filter as the index listings, leaving out
// internal items (ids starting with reservedIDPrefix, like the counter).
func (d *Dynamo) scan(ctx context.Context, q ListQuery) (Page, error) {
	size, err := pageSize(q.PageSize)
	if err != nil {
		return Page{}, err
	}
	start, err := decodeCursor(q.Cursor, scanListing, "")
	if err != nil {
		return Page{}, err
	}
	client, ok := d.client.(ScanAPI)
	if !ok {
		return Page{}, invalid("query", "needs a TenantID or a UserID: this store's client (%T) cannot Scan the whole table", d.client)
	}
	values := d.unexpiredValues()
	values[":rsv"] = &types.AttributeValueMemberS{Value: reservedIDPrefix}
	out, err := client.Scan(ctx, &dynamodb.ScanInput{
		TableName:                 aws.String(d.table),
		FilterExpression:          aws.String(unexpiredFilter + " AND NOT begins_with(#id, :rsv)"),
		ExpressionAttributeNames:  map[string]string{"#ttl": schema.AttrTTL, "#id": schema.AttrConnectionID},
		ExpressionAttributeValues: values,
		ExclusiveStartKey:         start,
		Limit:                     aws.Int32(size),
	})
	if err != nil {
		return Page{}, d.wrapErr("list", "table "+strconv.Quote(d.table), err)
	}
	return pageOf(out.Items, scanListing, "", out.LastEvaluatedKey)
}

// pageOf decodes a page of items and its cursor.
func pageOf(items []map[string]types.AttributeValue, index, hash string, last map[string]types.AttributeValue) (Page, error) {
	page := Page{Connections: make([]Connection, 0, len(items))}
	for _, item := range items {
		c, err := UnmarshalItem(item)
		if err != nil {
			return Page{}, err
		}
		page.Connections = append(page.Connections, c)
	}
	var err error
	page.Next, err = encodeCursor(index, hash, last)
	return page, err
}

// Lister is the part of Store that All needs.
type Lister interface {
	List(ctx context.Context, q ListQuery) (Page, error)
}

// All streams every connection matching q, page after page, until the
// listing ends, the consumer stops, or an error (yielded once, last).
// q.Cursor may resume an earlier listing.
func All(ctx context.Context, s Lister, q ListQuery) iter.Seq2[Connection, error] {
	return func(yield func(Connection, error) bool) {
		for {
			if err := ctx.Err(); err != nil {
				yield(Connection{}, err)
				return
			}
			page, err := s.List(ctx, q)
			if err != nil {
				yield(Connection{}, err)
				return
			}
			for _, c := range page.Connections {
				if !yield(c, nil) {
					return
				}
			}
			if page.Next == "" {
				return
			}
			q.Cursor = page.Next
		}
	}
}
