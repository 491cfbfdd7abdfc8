package localgw_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/dynamotest"
	"github.com/pay-theory/streamer/pkg/store/schema"
	"github.com/pay-theory/streamer/pkg/store/storetest"
)

func TestEmbeddedDynamoDBOnTheSameListener(t *testing.T) {
	s := localgwtest.Start(t, localgw.Config{EmbeddedDynamoDB: true})
	if s.DynamoDBEndpoint != s.BaseURL || s.Table != schema.DefaultTableName {
		t.Fatalf("endpoint %q table %q", s.DynamoDBEndpoint, s.Table)
	}
	db := s.DynamoDBClient()
	ctx := testCtx(t)

	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.Table)})
	if err != nil {
		t.Fatalf("DescribeTable through the gateway's listener: %v", err)
	}
	var idx []string
	for _, g := range out.Table.GlobalSecondaryIndexes {
		idx = append(idx, aws.ToString(g.IndexName))
	}
	if len(idx) != 2 || aws.ToString(out.Table.KeySchema[0].AttributeName) != schema.AttrConnectionID {
		t.Errorf("table from pkg/store/schema expected, got key %v indexes %v", aws.ToString(out.Table.KeySchema[0].AttributeName), idx)
	}

	// The real store works against it end to end.
	st := store.New(db, store.Config{Table: s.Table})
	c := store.Connection{ConnectionID: "L0SM9cOFvHcCIhw=", UserID: "u1", TenantID: "t1", Endpoint: s.ManagementEndpoint}
	if err := st.Save(ctx, c); err != nil {
		t.Fatalf("store.Save: %v", err)
	}
	got, err := st.Get(ctx, c.ConnectionID)
	if err != nil || got.TenantID != "t1" {
		t.Fatalf("store.Get: %+v %v", got, err)
	}
	page, err := st.List(ctx, store.ListQuery{TenantID: "t1"})
	if err != nil || len(page.Connections) != 1 {
		t.Fatalf("List by tenant (GSI): %+v %v", page, err)
	}
	_, err = db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.Table),
		Key:       map[string]types.AttributeValue{schema.AttrConnectionID: &types.AttributeValueMemberS{Value: c.ConnectionID}},
	})
	if err != nil {
		t.Errorf("raw GetItem: %v", err)
	}
}

func TestEmbeddedDynamoDBCustomTable(t *testing.T) {
	s := localgwtest.Start(t, localgw.Config{EmbeddedDynamoDB: true, Table: "my-conns"})
	if _, err := s.DynamoDBClient().DescribeTable(testCtx(t), &dynamodb.DescribeTableInput{TableName: aws.String("my-conns")}); err != nil {
		t.Fatal(err)
	}
}

// #16 item 4: a Query or Scan naming an index the table lacks made minidyn
// dereference nil and drop the connection; the gateway answers as DynamoDB.
func TestEmbeddedDynamoDBUnknownIndex(t *testing.T) {
	s := localgwtest.Start(t, localgw.Config{EmbeddedDynamoDB: true})
	db := s.DynamoDBClient()
	ctx := testCtx(t)
	want := "The table does not have the specified index: nope"
	_, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(s.Table), IndexName: aws.String("nope")})
	if errCode(err) != "ValidationException" || !strings.Contains(err.Error(), want) {
		t.Errorf("Scan on index nope: %v, want ValidationException %q", err, want)
	}
	_, err = db.Query(ctx, &dynamodb.QueryInput{
		TableName: aws.String(s.Table), IndexName: aws.String("nope"),
		KeyConditionExpression:    aws.String("tenant_id = :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberS{Value: "t1"}},
	})
	if errCode(err) != "ValidationException" || !strings.Contains(err.Error(), want) {
		t.Errorf("Query on index nope: %v, want ValidationException %q", err, want)
	}
	// The exact request, on the wire.
	req, _ := http.NewRequest(http.MethodPost, s.DynamoDBEndpoint+"/", strings.NewReader(`{"TableName":"`+s.Table+`","IndexName":"nope"}`))
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810.Scan")
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("the endpoint dropped the connection: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var body struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	if resp.StatusCode != 400 || json.Unmarshal(b, &body) != nil || !strings.HasSuffix(body.Type, "#ValidationException") || body.Message != want {
		t.Errorf("raw Scan: %d %s", resp.StatusCode, b)
	}
	// Real indexes still work.
	for _, idx := range []string{schema.IndexTenant, schema.IndexUser} {
		if _, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(s.Table), IndexName: aws.String(idx)}); err != nil {
			t.Errorf("Scan on %s: %v", idx, err)
		}
	}
	// An operation minidyn does not have.
	_, err = db.ListTables(ctx, &dynamodb.ListTablesInput{})
	if errCode(err) != "UnknownOperationException" {
		t.Errorf("ListTables: %v, want UnknownOperationException", err)
	}
}

// #18 item 11: PutItem returns Attributes only for ReturnValues ALL_OLD,
// and then the replaced item, as DynamoDB does (minidyn always returned
// the new item).
func TestEmbeddedDynamoDBPutItemReturnValues(t *testing.T) {
	s := localgwtest.Start(t, localgw.Config{EmbeddedDynamoDB: true})
	db := s.DynamoDBClient()
	ctx := testCtx(t)
	item := func(v string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{
			schema.AttrConnectionID: &types.AttributeValueMemberS{Value: "ab-_cd-_ef-_ghI="},
			"note":                  &types.AttributeValueMemberS{Value: v},
		}
	}
	out, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: item("one")})
	if err != nil || len(out.Attributes) != 0 {
		t.Fatalf("PutItem without ReturnValues: attributes %v, err %v; want none", out.Attributes, err)
	}
	out, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: item("two"), ReturnValues: types.ReturnValueAllOld})
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := out.Attributes["note"].(*types.AttributeValueMemberS); !ok || n.Value != "one" {
		t.Errorf("ALL_OLD returned %v, want the replaced item (note one)", out.Attributes)
	}
	out, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: map[string]types.AttributeValue{
		schema.AttrConnectionID: &types.AttributeValueMemberS{Value: "new-_cd-_ef-_gh="},
	}, ReturnValues: types.ReturnValueAllOld})
	if err != nil || len(out.Attributes) != 0 {
		t.Errorf("ALL_OLD of a new item: %v %v, want no attributes", out.Attributes, err)
	}
	_, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: item("three"), ReturnValues: types.ReturnValueAllNew})
	if errCode(err) != "ValidationException" {
		t.Errorf("PutItem ALL_NEW: %v, want ValidationException", err)
	}
}

// A listing resumed from a cursor whose item was deleted in between (a
// prune removes the records it listed) goes on from there, as on DynamoDB;
// minidyn alone answered an empty, final page. The start key's item is not
// left behind.
func TestEmbeddedDynamoDBResumesAfterADeletedStartKey(t *testing.T) {
	s := localgwtest.Start(t, localgw.Config{EmbeddedDynamoDB: true})
	st := store.New(s.DynamoDBClient(), store.Config{Table: s.Table})
	ctx := testCtx(t)
	var all []store.Connection
	for i := range 30 {
		all = append(all, store.Connection{ConnectionID: fmt.Sprintf("Resume%09d=", i), UserID: "u", TenantID: "t",
			ConnectedAt: time.Now().Add(time.Duration(i) * time.Second)})
	}
	for _, q := range []store.ListQuery{{PageSize: 10}, {TenantID: "t", PageSize: 10}} {
		if err := st.SaveMany(ctx, all); err != nil {
			t.Fatal(err)
		}
		first, err := st.List(ctx, q)
		if err != nil || len(first.Connections) != 10 || first.Next == "" {
			t.Fatalf("%+v: first page %d records, %v", q, len(first.Connections), err)
		}
		var ids []string
		for _, c := range first.Connections {
			ids = append(ids, c.ConnectionID)
		}
		if err := st.DeleteMany(ctx, ids); err != nil {
			t.Fatal(err)
		}
		q.Cursor = first.Next
		var rest []string
		for c, err := range store.All(ctx, st, q) {
			if err != nil {
				t.Fatal(err)
			}
			rest = append(rest, c.ConnectionID)
		}
		if len(rest) != 20 {
			t.Errorf("%+v: resumed after a deleted start key: %d records, want the 20 not deleted", q, len(rest))
		}
		if _, err := st.Get(ctx, ids[len(ids)-1]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%+v: the deleted start key's item is back: %v", q, err)
		}
		if err := st.DeleteMany(ctx, rest); err != nil {
			t.Fatal(err)
		}
	}
}

// The store's conformance suite, on the embedded DynamoDB behind the
// guard: its own index listings included (dynamo_index.go).
func TestEmbeddedDynamoDBConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) *dynamotest.Endpoint {
		s := localgwtest.Start(t, localgw.Config{EmbeddedDynamoDB: true})
		return dynamotest.Connect(t, s.DynamoDBEndpoint, s.Table)
	})
}
