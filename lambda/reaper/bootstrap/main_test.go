package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/reaper"
	"github.com/pay-theory/streamer/lambda/shared/boot"
	"github.com/pay-theory/streamer/lambda/shared/boot/boottest"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// gateway answers GET @connections/{id} as API Gateway does: 200 for the
// live ids, 410 GoneException for any other.
func gateway(t *testing.T, live map[string]bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.URL.EscapedPath(), "/prod/@connections/")
		id, err := url.PathUnescape(raw)
		if !ok || err != nil || r.Method != http.MethodGet {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if live[id] {
			fmt.Fprintf(w, `{"connectedAt":"2026-12-01T12:00:00.000Z","identity":{"sourceIp":"127.0.0.1","userAgent":"t"},"lastActiveAt":"2026-12-01T12:00:00.000Z"}`)
			return
		}
		w.Header().Set("x-amzn-ErrorType", "GoneException")
		w.WriteHeader(http.StatusGone)
		fmt.Fprint(w, `{"message":"gone"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/prod"
}

// TestDynamoDBCallsMatchContract runs this entry point's real cold start and
// build through the reaper's paths against a recording DynamoDB-API
// endpoint: together they call exactly the operations the deployed role
// grants (contract.DynamoDBActions), and the ones granted only on internal
// items (contract.DynamoDBInternalItemActions) touch only the counter and
// the reaper's checkpoint, the keys the role's condition names.
func TestDynamoDBCallsMatchContract(t *testing.T) {
	db := boottest.StartDynamoDB(t)
	ctx := context.Background()
	old := time.Now().Add(-10 * time.Minute)
	var conns []store.Connection
	live := map[string]bool{}
	for i := range 60 {
		id := fmt.Sprintf("R%02dReaperTestId=", i)
		conns = append(conns, store.Connection{ConnectionID: id, UserID: "u", TenantID: "t", ConnectedAt: old})
		if i%3 == 0 {
			live[id] = true
		}
	}
	if err := db.Store.SaveMany(ctx, conns); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Store.AddActive(ctx, 60); err != nil {
		t.Fatal(err)
	}
	vars := func(table string) map[string]string {
		return map[string]string{contract.EnvConnectionsTable: table, contract.EnvEnvironment: "test", contract.EnvManagementEndpoint: gateway(t, live)}
	}
	wire := func(table string) func(context.Context, events.EventBridgeEvent) (reaper.Result, error) {
		h, err := boot.WireFunc(contract.FunctionReaper, db.Getenv(t, vars(table)), io.Discard, build)
		if err != nil {
			t.Fatalf("cold start: %v", err)
		}
		return h
	}
	invoke := func(h func(context.Context, events.EventBridgeEvent) (reaper.Result, error), id string) (reaper.Result, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return h(lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: id}), events.EventBridgeEvent{Source: "aws.events"})
	}

	ok := wire(db.Table)
	res, err := invoke(ok, "req-1")
	if err != nil || !res.Complete || res.Checked != 60 || res.Live != 20 || res.Removed != 40 {
		t.Fatalf("pass: %+v, %v; want 60 checked, 20 live, 40 removed", res, err)
	}
	t.Logf("pass: DynamoDB %v", db.Take())
	for _, c := range conns {
		_, err := db.Store.Get(ctx, c.ConnectionID)
		if gone := err != nil; gone == live[c.ConnectionID] {
			t.Errorf("%s (live %v): Get = %v", c.ConnectionID, live[c.ConnectionID], err)
		}
	}
	if n, err := db.Store.AddActive(ctx, 0); err != nil || n != 20 {
		t.Errorf("ActiveConnections %d, %v; want 20", n, err)
	}
	res, err = invoke(ok, "req-2")
	if err != nil || res.Removed != 0 || res.Checked != 20 || res.Resumed {
		t.Fatalf("second pass: %+v, %v; want nothing left to remove", res, err)
	}
	t.Logf("second pass: DynamoDB %v", db.Take())

	res, err = invoke(wire("no-such-table"), "req-3")
	if err == nil || res.Errors != 1 {
		t.Fatalf("store fails: %+v, %v; want an error", res, err)
	}
	t.Logf("store fails: DynamoDB %v", db.Take())

	db.RequireContract(t, contract.FunctionReaper)
	internal := []string{schema.ActiveCounterKey, schema.CheckpointKey(contract.ReaperCheckpoint)}
	for _, op := range contract.DynamoDBInternalItemActions(contract.FunctionReaper) {
		keys := db.Keys(op)
		for _, k := range keys {
			if !slices.Contains(internal, k) {
				t.Errorf("%s on %q: the role grants %s only on %v", op, k, op, internal)
			}
		}
		if len(keys) == 0 {
			t.Errorf("no %s recorded", op)
		}
	}
}
