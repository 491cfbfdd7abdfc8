// Package boottest runs a Lambda entry point's real cold start and build
// (boot.Wire) against an in-process DynamoDB-API endpoint (minidyn) that
// records the operation of every request, so a test can require that a
// function calls exactly the DynamoDB operations its IAM role is granted
// (contract.DynamoDBActions).
package boottest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/truora/minidyn/server"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/boot"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// targetPrefix is the X-Amz-Target prefix of every DynamoDB API request
// ("DynamoDB_20120810.PutItem").
const targetPrefix = "DynamoDB_20120810."

// DynamoDB is one minidyn instance served twice: at URL through a handler
// that records every request's operation (what the functions under test
// use), and unrecorded for Store (seeding and inspection by the test).
type DynamoDB struct {
	// URL is the recording endpoint.
	URL string
	// Table is the connections table, created on start.
	Table string
	// Store reaches the same data without being recorded.
	Store *store.Dynamo

	mu    sync.Mutex
	all   map[string]bool
	since map[string]bool
	keys  map[string]map[string]bool // per operation, the items' keys it named
}

// StartDynamoDB serves minidyn for the life of t and creates the table.
func StartDynamoDB(t testing.TB) *DynamoDB {
	t.Helper()
	d := &DynamoDB{Table: schema.DefaultTableName, all: map[string]bool{}, since: map[string]bool{}, keys: map[string]map[string]bool{}}
	mini := server.NewServer()
	raw := httptest.NewServer(mini)
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get("X-Amz-Target")
		op, ok := strings.CutPrefix(target, targetPrefix)
		if !ok || op == "" {
			op = "unrecognised X-Amz-Target " + target // fails any comparison, loudly
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req struct {
			Key map[string]map[string]string
		}
		_ = json.Unmarshal(body, &req) // operations without a Key name none
		d.mu.Lock()
		d.all[op], d.since[op] = true, true
		if k, ok := req.Key[schema.AttrConnectionID]["S"]; ok {
			if d.keys[op] == nil {
				d.keys[op] = map[string]bool{}
			}
			d.keys[op][k] = true
		}
		d.mu.Unlock()
		mini.ServeHTTP(w, r)
	}))
	d.URL = rec.URL

	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Cleanups run last-registered first: servers close (waiting for
	// in-flight requests), then the idle client connections go.
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(raw.Close)
	t.Cleanup(rec.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := store.NewDynamoClient(ctx, store.ClientConfig{Endpoint: raw.URL, HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatalf("boottest: DynamoDB client: %v", err)
	}
	if err := store.EnsureTable(ctx, client, d.Table); err != nil {
		t.Fatalf("boottest: create table %s: %v", d.Table, err)
	}
	d.Store = store.New(client, store.Config{Table: d.Table})
	return d
}

// Take returns, sorted, the operations recorded since the previous Take.
func (d *DynamoDB) Take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := keys(d.since)
	d.since = map[string]bool{}
	return out
}

// Ops returns, sorted, every operation recorded so far.
func (d *DynamoDB) Ops() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return keys(d.all)
}

// Keys returns, sorted, the keys of the items that requests of op (one
// naming a single item: GetItem, UpdateItem, DeleteItem) named so far.
func (d *DynamoDB) Keys(op string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return keys(d.keys[op])
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// RequireContract fails t unless the operations recorded so far are exactly
// contract.DynamoDBActions(function): an operation the role does not grant
// would be AccessDenied in production, and a granted one never called is a
// stale privilege.
func (d *DynamoDB) RequireContract(t testing.TB, function string) {
	t.Helper()
	got, want := d.Ops(), append([]string(nil), contract.DynamoDBActions(function)...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s called DynamoDB operations %v over all its paths; contract.DynamoDBActions(%q) (the IAM grant) is %v: "+
			"change the handler or contract/ (the deployment follows it)", function, got, function, want)
	}
}

// Handler is a wired entry point, as boot.Main serves it.
type Handler = func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)

// Wire runs the cold start of boot.Main for function with build, as the
// bootstrap does: configuration from vars (plus AWS_ENDPOINT_URL_DYNAMODB,
// the recording endpoint), the AWS SDK's default configuration from the
// process environment, set here for the life of t (a region, static
// credentials, the endpoint; no shared config files, no instance metadata),
// logs to logs (nil => discarded). Tests using it cannot run in parallel.
func (d *DynamoDB) Wire(t testing.TB, function string, vars map[string]string, logs io.Writer, build boot.Build) Handler {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	h, err := boot.Wire(function, d.Getenv(t, vars), logs, build)
	if err != nil {
		t.Fatalf("boottest: cold start of %s failed: %v", function, err)
	}
	return h
}

// Getenv prepares the environment of Wire (the process environment of the
// AWS SDK, set for the life of t) and returns the getenv of a cold start
// with vars: for boot.WireFunc, which entry points that are not WebSocket
// routes (the reaper) run through. Tests using it cannot run in parallel.
func (d *DynamoDB) Getenv(t testing.TB, vars map[string]string) func(string) string {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_REGION":                         "us-east-1",
		"AWS_ACCESS_KEY_ID":                  "boottest",
		"AWS_SECRET_ACCESS_KEY":              "boottest",
		"AWS_SESSION_TOKEN":                  "",
		"AWS_PROFILE":                        "",
		"AWS_CONFIG_FILE":                    none,
		"AWS_SHARED_CREDENTIALS_FILE":        none,
		"AWS_EC2_METADATA_DISABLED":          "true",
		"AWS_ENDPOINT_URL":                   "",
		contract.EnvEndpointURLDynamoDB:      d.URL,
		contract.EnvOTLPEndpoint:             "",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
	} {
		t.Setenv(k, v)
	}
	env := map[string]string{contract.EnvEndpointURLDynamoDB: d.URL}
	for k, v := range vars {
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

// Fixture is the usual setup of an entry point's contract test: a recording
// endpoint, the function wired against its table (OK) and against a table
// that does not exist (StoreFails: every store call fails), and one stored
// connection record (Recorded).
type Fixture struct {
	DB         *DynamoDB
	OK         Handler
	StoreFails Handler
	Recorded   string
}

// NewFixture builds a Fixture for a function that needs only the common
// variables (disconnect, default); recorded is the stored record's id.
func NewFixture(t testing.TB, function, recorded string, build boot.Build) *Fixture {
	t.Helper()
	db := StartDynamoDB(t)
	vars := func(table string) map[string]string {
		return map[string]string{contract.EnvConnectionsTable: table, contract.EnvEnvironment: "test"}
	}
	f := &Fixture{
		DB:         db,
		OK:         db.Wire(t, function, vars(db.Table), nil, build),
		StoreFails: db.Wire(t, function, vars("no-such-table"), nil, build),
		Recorded:   recorded,
	}
	if err := db.Store.Save(context.Background(), store.Connection{
		ConnectionID: recorded, UserID: "user-1", TenantID: "tenant-1",
		Endpoint: "https://dl7ptocha9.execute-api.ap-northeast-1.amazonaws.com/prod", ConnectedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	return f
}
