package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"iter"
	"strconv"

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

// List returns one page of a tenant's or a user's unexpired connections,
// oldest connected_at first. Setting both TenantID and UserID lists that user
// within that tenant. PageSize above MaxListPageSize is lowered to it.
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
		return Page{}, invalid("query", "needs a TenantID or a UserID")
	}
	if err := validateID(hashAttr, hash); err != nil {
		return Page{}, err
	}
	size := q.PageSize
	switch {
	case size < 0:
		return Page{}, invalid("page_size", "is negative (%d)", size)
	case size == 0:
		size = DefaultListPageSize
	case size > MaxListPageSize:
		size = MaxListPageSize
	}
	start, err := decodeCursor(q.Cursor, index, hash)
	if err != nil {
		return Page{}, err
	}
	names := map[string]string{"#h": hashAttr, "#ttl": schema.AttrTTL}
	values := map[string]types.AttributeValue{
		":h":    &types.AttributeValueMemberS{Value: hash},
		":now":  num(d.now().Unix()),
		":zero": num(0),
	}
	// Unexpired exactly as Connection.Expired (Get, Existing) decides: a
	// record without a ttl, or with ttl 0 (written by another tool), never
	// expires; otherwise it is listed until its ttl second.
	filter := "(attribute_not_exists(#ttl) OR #ttl <= :zero OR #ttl > :now)"
	if q.UserID != "" && q.TenantID != "" {
		if err := validateID("tenant_id", q.TenantID); err != nil {
			return Page{}, err
		}
		filter += " AND #t = :t"
		names["#t"] = schema.AttrTenantID
		values[":t"] = &types.AttributeValueMemberS{Value: q.TenantID}
	}
	out, err := d.client.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(d.table),
		IndexName:                 aws.String(index),
		KeyConditionExpression:    aws.String("#h = :h"),
		FilterExpression:          aws.String(filter),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ExclusiveStartKey:         start,
		Limit:                     aws.Int32(size),
		ScanIndexForward:          aws.Bool(true),
	})
	if err != nil {
		return Page{}, d.wrapErr("list", index+" "+strconv.Quote(hash), err)
	}
	page := Page{Connections: make([]Connection, 0, len(out.Items))}
	for _, item := range out.Items {
		c, err := UnmarshalItem(item)
		if err != nil {
			return Page{}, err
		}
		page.Connections = append(page.Connections, c)
	}
	page.Next, err = encodeCursor(index, hash, out.LastEvaluatedKey)
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
