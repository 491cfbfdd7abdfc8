package localgw

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// The embedded table's own index listings answer as DynamoDB would: after
// random writes of every kind the store and a user might send (puts,
// updates that move an item between tenants or change its sort key,
// deletes, batches, transactions, ttl values on both sides of now), every
// listing shape the mirror serves, paged with every limit, returns the
// pages worked out from the table's items themselves (a Scan): the same
// items, counts, ScannedCount and LastEvaluatedKey, in range-key order
// (ties by table key). minidyn's own index is not the reference: it loses
// entries after some of these writes, and its Limit with a filter counts
// items outside the partition.
func TestIndexQueriesAnswerAsDynamoDB(t *testing.T) {
	ctx := context.Background()
	const table = "streamer-connections"
	d, err := newEmbeddedDynamo(ctx, table, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.NewDynamoClient(ctx, store.ClientConfig{Endpoint: "http://localgw.embedded", HTTPClient: &http.Client{Transport: handlerTransport{d}}})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v int) types.AttributeValue { return &types.AttributeValueMemberN{Value: strconv.Itoa(v)} }
	id := func() string { return fmt.Sprintf("id%03d=", rng.IntN(300)) }
	item := func() map[string]types.AttributeValue {
		it := map[string]types.AttributeValue{
			schema.AttrConnectionID: s(id()),
			schema.AttrConnectedAt:  n(1000 + rng.IntN(20)), // ties
			"messages_sent":         n(rng.IntN(5)),
		}
		if rng.IntN(10) > 0 { // some items in no tenant: a sparse index
			it[schema.AttrTenantID] = s(fmt.Sprintf("t%d", rng.IntN(3)))
		}
		it[schema.AttrUserID] = s(fmt.Sprintf("u%d", rng.IntN(4)))
		switch rng.IntN(4) { // no ttl, 0, past, future
		case 1:
			it[schema.AttrTTL] = n(0)
		case 2:
			it[schema.AttrTTL] = n(500)
		case 3:
			it[schema.AttrTTL] = n(5000)
		}
		return it
	}
	key := func() map[string]types.AttributeValue {
		return map[string]types.AttributeValue{schema.AttrConnectionID: s(id())}
	}
	write := func() {
		var err error
		switch rng.IntN(6) {
		case 0, 1:
			_, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item()})
		case 2:
			_, err = db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: key(),
				UpdateExpression:          aws.String("SET #t = :t, #at = :at"),
				ExpressionAttributeNames:  map[string]string{"#t": schema.AttrTenantID, "#at": schema.AttrConnectedAt},
				ExpressionAttributeValues: map[string]types.AttributeValue{":t": s(fmt.Sprintf("t%d", rng.IntN(3))), ":at": n(1000 + rng.IntN(20))}})
		case 3:
			_, err = db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: key()})
		case 4:
			var reqs []types.WriteRequest
			seen := map[string]bool{}
			for range 1 + rng.IntN(25) {
				var r types.WriteRequest
				if rng.IntN(2) == 0 {
					r.PutRequest = &types.PutRequest{Item: item()}
				} else {
					r.DeleteRequest = &types.DeleteRequest{Key: key()}
				}
				k := r.PutRequest
				var pk string
				if k != nil {
					pk = k.Item[schema.AttrConnectionID].(*types.AttributeValueMemberS).Value
				} else {
					pk = r.DeleteRequest.Key[schema.AttrConnectionID].(*types.AttributeValueMemberS).Value
				}
				if !seen[pk] { // one request per key, as DynamoDB requires
					seen[pk] = true
					reqs = append(reqs, r)
				}
			}
			_, err = db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs}})
		case 5:
			a, b := item(), key()
			if a[schema.AttrConnectionID].(*types.AttributeValueMemberS).Value == b[schema.AttrConnectionID].(*types.AttributeValueMemberS).Value {
				return
			}
			_, err = db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
				{Put: &types.Put{TableName: aws.String(table), Item: a}},
				{Delete: &types.Delete{TableName: aws.String(table), Key: b}},
			}})
		}
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	// list pages through one listing with the mirror on or off; each page
	// is its items' JSON, Count and ScannedCount.
	type page struct {
		items          []string
		count, scanned int32
		more           bool
	}
	list := func(in dynamodb.QueryInput) []page {
		var pages []page
		for {
			out, err := db.Query(ctx, &in)
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			var p page
			for _, it := range out.Items {
				b, _ := json.Marshal(flatten(it))
				p.items = append(p.items, string(b))
			}
			p.count, p.scanned, p.more = out.Count, out.ScannedCount, len(out.LastEvaluatedKey) > 0
			pages = append(pages, p)
			if !p.more || len(pages) > 1000 {
				return pages
			}
			in.ExclusiveStartKey = out.LastEvaluatedKey
		}
	}
	// expected is DynamoDB's answer worked out from the table itself (a
	// Scan, which minidyn serves from its items, not its index): the
	// partition's items in (connected_at, connection_id) order, Limit
	// items read per page, the filter and the projection applied to each.
	expected := func(in dynamodb.QueryInput, attr, val string, limit int32, shape string) []page {
		out, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table)})
		if err != nil || out.LastEvaluatedKey != nil {
			t.Fatalf("Scan: %v (or more than one page)", err)
		}
		var part []map[string]string
		for _, it := range out.Items {
			f := flatten(it)
			if _, ok := f[schema.AttrConnectedAt]; ok && f[attr] == val {
				part = append(part, f)
			}
		}
		at := func(f map[string]string) int { v, _ := strconv.Atoi(f[schema.AttrConnectedAt]); return v }
		slices.SortFunc(part, func(a, b map[string]string) int {
			if c := at(a) - at(b); c != 0 {
				return c
			}
			return strings.Compare(a[schema.AttrConnectionID], b[schema.AttrConnectionID])
		})
		var pages []page
		for i := 0; ; {
			n := len(part) - i
			if limit > 0 && int(limit) < n {
				n = int(limit)
			}
			p := page{scanned: int32(n), more: limit > 0 && n == int(limit)}
			for _, f := range part[i : i+n] {
				if ttl, ok := f[schema.AttrTTL]; strings.Contains(shape, "unexpired") && ok {
					if v, _ := strconv.Atoi(ttl); v > 0 && v <= 1000 {
						continue // expired at :now = 1000
					}
				}
				if strings.Contains(shape, "tenant") && f[schema.AttrTenantID] != "t1" {
					continue
				}
				if strings.Contains(shape, "projected") {
					g := map[string]string{}
					for _, k := range []string{schema.AttrConnectionID, schema.AttrConnectedAt, schema.AttrTTL} {
						if v, ok := f[k]; ok {
							g[k] = v
						}
					}
					f = g
				}
				b, _ := json.Marshal(f)
				p.items = append(p.items, string(b))
			}
			p.count = int32(len(p.items))
			pages = append(pages, p)
			i += n
			if !p.more {
				return pages
			}
		}
	}
	served := 0
	for round := range 30 {
		for range 20 {
			write()
		}
		for _, ix := range []struct{ name, attr, val string }{
			{schema.IndexTenant, schema.AttrTenantID, fmt.Sprintf("t%d", rng.IntN(3))},
			{schema.IndexUser, schema.AttrUserID, fmt.Sprintf("u%d", rng.IntN(4))},
		} {
			for _, limit := range []int32{0, 1, 3, 7, 100} {
				// The store's listings: everything, ids only (projected),
				// unexpired, and a user's within a tenant both ways.
				for _, shape := range []string{"all", "projected", "unexpired", "unexpired tenant", "projected tenant"} {
					in := dynamodb.QueryInput{TableName: aws.String(table), IndexName: aws.String(ix.name),
						KeyConditionExpression:    aws.String("#h = :h"),
						ExpressionAttributeNames:  map[string]string{"#h": ix.attr},
						ExpressionAttributeValues: map[string]types.AttributeValue{":h": s(ix.val)},
						ScanIndexForward:          aws.Bool(true)}
					if limit > 0 {
						in.Limit = aws.Int32(limit)
					}
					names, values := in.ExpressionAttributeNames, in.ExpressionAttributeValues
					var filters []string
					if strings.Contains(shape, "projected") {
						in.ProjectionExpression = aws.String("#id, #at, #ttl")
						names["#id"], names["#at"], names["#ttl"] = schema.AttrConnectionID, schema.AttrConnectedAt, schema.AttrTTL
					}
					if strings.Contains(shape, "unexpired") {
						filters = append(filters, "(attribute_not_exists(#ttl) OR #ttl <= :zero OR #ttl > :now)")
						names["#ttl"] = schema.AttrTTL
						values[":zero"], values[":now"] = n(0), n(1000)
					}
					if strings.Contains(shape, "tenant") {
						filters = append(filters, "#t = :t")
						names["#t"], values[":t"] = schema.AttrTenantID, s("t1")
					}
					if len(filters) > 0 {
						in.FilterExpression = aws.String(strings.Join(filters, " AND "))
					}
					mine := list(in)
					want := expected(in, ix.attr, ix.val, limit, shape)
					what := fmt.Sprintf("round %d %s=%s limit %d %s", round, ix.attr, ix.val, limit, shape)
					if len(mine) != len(want) {
						t.Fatalf("%s: %d pages, want %d", what, len(mine), len(want))
					}
					for i := range want {
						m, w := mine[i], want[i]
						if !slices.Equal(m.items, w.items) || m.count != w.count || m.scanned != w.scanned || m.more != w.more {
							t.Fatalf("%s page %d:\n got %d/%d more %v %s\nwant %d/%d more %v %s", what, i,
								m.count, m.scanned, m.more, strings.Join(m.items, " "), w.count, w.scanned, w.more, strings.Join(w.items, " "))
						}
					}
					served++
				}
			}
		}
	}
	if len(d.mirrors) == 0 || d.mirrors[table] == nil {
		t.Fatal("the mirror of the connections table was never built: nothing was compared")
	}
	t.Logf("%d listings compared", served)
}

// flatten is an item as attribute name → its scalar, for comparing.
func flatten(it map[string]types.AttributeValue) map[string]string {
	out := map[string]string{}
	for k, v := range it {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			out[k] = v.Value
		case *types.AttributeValueMemberN:
			out[k] = v.Value
		default:
			out[k] = fmt.Sprintf("%T", v)
		}
	}
	return out
}
