package main

import (
	"context"
	"testing"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/boot/boottest"
	"github.com/pay-theory/streamer/lambda/shared/lambdatest"
)

// TestDynamoDBCallsMatchContract runs this entry point's real cold start and
// build through every $default path against a recording DynamoDB-API
// endpoint: together the paths call exactly the operations the deployed role
// grants (contract.DynamoDBActions).
func TestDynamoDBCallsMatchContract(t *testing.T) {
	fx := boottest.NewFixture(t, contract.FunctionDefault, "R1knPc2ntjMCFIA=", build)
	db, h, storeFails, recorded := fx.DB, fx.OK, fx.StoreFails, fx.Recorded
	for _, c := range []struct {
		name   string
		h      boottest.Handler
		event  string
		id     string
		status int
	}{
		{"message", h, "message.json", recorded, 200},
		{"ping", h, "ping.json", recorded, 200},
		{"whoami", h, "whoami.json", recorded, 200},
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
	if err != nil || got.MessagesReceived != 3 {
		t.Errorf("record after a message, a ping and a whoami: %+v, %v; want messages_received 3", got, err)
	}
	if _, err := db.Store.Get(context.Background(), "R1knPc2ntjMCFIB="); err == nil {
		t.Error("a message resurrected a deleted record")
	}
	db.RequireContract(t, contract.FunctionDefault)
}
