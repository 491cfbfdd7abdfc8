package main

import (
	"context"
	"testing"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/boot/boottest"
	"github.com/pay-theory/streamer/lambda/shared/lambdatest"
)

// TestDynamoDBCallsMatchContract runs this entry point's real cold start and
// build through every $disconnect path against a recording DynamoDB-API
// endpoint: together the paths call exactly the operations the deployed role
// grants (contract.DynamoDBActions).
func TestDynamoDBCallsMatchContract(t *testing.T) {
	fx := boottest.NewFixture(t, contract.FunctionDisconnect, "R1koeHsUtjMFbRw=", build)
	db, h, storeFails, recorded := fx.DB, fx.OK, fx.StoreFails, fx.Recorded
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
