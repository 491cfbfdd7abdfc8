package localgw_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/schema"
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
