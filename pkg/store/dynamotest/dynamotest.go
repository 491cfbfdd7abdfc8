// Package dynamotest starts DynamoDB-API endpoints for tests: minidyn
// in-process on loopback (always available) and dynalite (when
// STREAMER_TEST_DYNAMODB_ENDPOINT is set, as `make test` does).
package dynamotest

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/pay-theory/streamer/internal/testenv"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/schema"
	"github.com/truora/minidyn/server"
)

// EnvEndpoint names the variable holding a dynalite (or other DynamoDB-API)
// endpoint URL for tests.
const EnvEndpoint = "STREAMER_TEST_DYNAMODB_ENDPOINT"

// Endpoint is a ready DynamoDB-API endpoint with the connections table.
type Endpoint struct {
	URL    string
	Client *dynamodb.Client
	Table  string
	Store  *store.Dynamo
}

// Start serves minidyn on a loopback httptest server for the life of t and
// creates the default table there. Each call gets its own server.
func Start(t testing.TB) *Endpoint {
	t.Helper()
	srv := httptest.NewServer(server.NewServer())
	ep := connect(t, srv.URL, schema.DefaultTableName)
	// Cleanups run last-registered first: the server closes (waiting for
	// in-flight requests), then the client drops its idle connections, so
	// no goroutine outlives the test.
	t.Cleanup(srv.Close)
	return ep
}

// Dynalite connects to the endpoint in STREAMER_TEST_DYNAMODB_ENDPOINT and
// creates a fresh table with a unique name (deleted when t ends), so tests
// may share one dynalite process. Without the variable it skips, or fails
// when CI is set.
func Dynalite(t testing.TB) *Endpoint {
	t.Helper()
	url := testenv.Env(t, EnvEndpoint, "scripts/with-dynalite.sh starts dynalite")
	table := "streamer-test-" + strings.ToLower(rand.Text()[:12])
	ep := connect(t, url, table)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := ep.Client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
			t.Logf("dynamotest: deleting table %s: %v", table, err)
		}
	})
	return ep
}

// Connect is an Endpoint on a DynamoDB API at url (another emulator: the
// local gateway's embedded one, say), creating table there unless it
// exists.
func Connect(t testing.TB, url, table string) *Endpoint {
	t.Helper()
	return connect(t, url, table)
}

func connect(t testing.TB, url, table string) *Endpoint {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 100
	tr.MaxIdleConnsPerHost = 100
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := store.NewDynamoClient(ctx, store.ClientConfig{Endpoint: url, HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatalf("dynamotest: client for %s: %v", url, err)
	}
	if err := store.EnsureTable(ctx, client, table); err != nil {
		t.Fatalf("dynamotest: creating table %s at %s: %v", table, url, err)
	}
	return &Endpoint{URL: url, Client: client, Table: table, Store: store.New(client, store.Config{Table: table})}
}
