package main

import (
	"context"
	"testing"
	"time"

	"github.com/pay-theory/streamer/lambda/contract"
	"github.com/pay-theory/streamer/lambda/shared/boot/boottest"
	"github.com/pay-theory/streamer/lambda/shared/lambdatest"
	"github.com/pay-theory/streamer/pkg/store"
)

// TestDynamoDBCallsMatchContract runs this entry point's real cold start and
// build through every $default path against a recording DynamoDB-API
// endpoint: together the paths call exactly the operations the deployed role
// grants (contract.DynamoDBActions).
func TestDynamoDBCallsMatchContract(t *testing.T) {
	db := boottest.StartDynamoDB(t)
	vars := func(table string) map[string]string {
		return map[string]string{contract.EnvConnectionsTable: table, contract.EnvEnvironment: "test"}
	}
	h := db.Wire(t, contract.FunctionDefault, vars(db.Table), nil, build)
	storeFails := db.Wire(t, contract.FunctionDefault, vars("no-such-table"), nil, build)

	const recorded = "R1knPc2ntjMCFIA="
	if err := db.Store.Save(context.Background(), store.Connection{
		ConnectionID: recorded, UserID: "user-1", TenantID: "tenant-1",
		Endpoint: "https://dl7ptocha9.execute-api.ap-northeast-1.amazonaws.com/prod", ConnectedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		h      boottest.Handler
		event  string
		id     string
		status int
	}{
		{"message", h, "message.json", recorded, 200},
		{"ping", h, "ping.json", recorded, 200},
		{"record vanished", h, "message.json", "R1knPc2ntjMCFIB=", 200},
		{"store fails", storeFails, "message.json", recorded, 500},
		{"no connection id", h, "message.json", "", 500},
	} {
		req := lambdatest.Event(t, "../testdata/"+c.event, map[string]string{"CONNECTION_ID": c.id})
		resp, err := c.h(context.Background(), req)
		if err != nil || resp.StatusCode != c.status {
			t.Fatalf("%s: %d %q, %v; want %d", c.name, resp.StatusCode, resp.Body, err, c.status)
		}
		t.Logf("%s: %d, DynamoDB %v", c.name, resp.StatusCode, db.Take())
	}
	got, err := db.Store.Get(context.Background(), recorded)
	if err != nil || got.MessagesReceived != 2 {
		t.Errorf("record after a message and a ping: %+v, %v; want messages_received 2", got, err)
	}
	if _, err := db.Store.Get(context.Background(), "R1knPc2ntjMCFIB="); err == nil {
		t.Error("a message resurrected a deleted record")
	}
	db.RequireContract(t, contract.FunctionDefault)
}
