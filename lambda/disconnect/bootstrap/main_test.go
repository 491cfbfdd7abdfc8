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
// build through every $disconnect path against a recording DynamoDB-API
// endpoint: together the paths call exactly the operations the deployed role
// grants (contract.DynamoDBActions).
func TestDynamoDBCallsMatchContract(t *testing.T) {
	db := boottest.StartDynamoDB(t)
	vars := func(table string) map[string]string {
		return map[string]string{contract.EnvConnectionsTable: table, contract.EnvEnvironment: "test"}
	}
	h := db.Wire(t, contract.FunctionDisconnect, vars(db.Table), nil, build)
	storeFails := db.Wire(t, contract.FunctionDisconnect, vars("no-such-table"), nil, build)

	const recorded = "R1koeHsUtjMFbRw="
	if err := db.Store.Save(context.Background(), store.Connection{
		ConnectionID: recorded, UserID: "user-1", TenantID: "tenant-1",
		Endpoint: "https://dl7ptocha9.execute-api.ap-northeast-1.amazonaws.com/prod", ConnectedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    boottest.Handler
		id   string
	}{
		{"record exists", h, recorded},
		{"no record", h, "R1koeHsUtjMFbRx="},
		{"store fails", storeFails, "R1koeHsUtjMFbRy="},
		{"no connection id", h, ""},
	} {
		req := lambdatest.Event(t, "../testdata/disconnect.json", map[string]string{"CONNECTION_ID": c.id})
		resp, err := c.h(context.Background(), req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %q, %v; want 200 (always)", c.name, resp.StatusCode, resp.Body, err)
		}
		t.Logf("%s: DynamoDB %v", c.name, db.Take())
	}
	if _, err := db.Store.Get(context.Background(), recorded); err == nil {
		t.Error("the record survived $disconnect")
	}
	db.RequireContract(t, contract.FunctionDisconnect)
}
