package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

func valid() Connection {
	return Connection{ConnectionID: "c", UserID: "u", TenantID: "t"}
}

func TestValidate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name  string
		mut   func(*Connection)
		field string // "" means valid
	}{
		{"minimal", func(*Connection) {}, ""},
		{"at limits", func(c *Connection) {
			c.ConnectionID, c.UserID, c.TenantID = long(MaxIDLength), long(MaxIDLength), long(MaxIDLength)
			c.Endpoint = long(MaxEndpointLength)
			c.Metadata = Metadata{UserAgent: long(MaxUserAgentLength), IPAddress: long(MaxIPAddressLength)}
			c.Permissions = make([]string, MaxPermissions)
			for i := range c.Permissions {
				c.Permissions[i] = long(MaxPermissionLength)
			}
		}, ""},
		{"no connection id", func(c *Connection) { c.ConnectionID = "" }, "connection_id"},
		{"long connection id", func(c *Connection) { c.ConnectionID = long(MaxIDLength + 1) }, "connection_id"},
		{"reserved connection id", func(c *Connection) { c.ConnectionID = "#stats" }, "connection_id"},
		{"bad utf8 id", func(c *Connection) { c.ConnectionID = "\xff" }, "connection_id"},
		{"no user", func(c *Connection) { c.UserID = "" }, "user_id"},
		{"long user", func(c *Connection) { c.UserID = long(MaxIDLength + 1) }, "user_id"},
		{"no tenant", func(c *Connection) { c.TenantID = "" }, "tenant_id"},
		{"long endpoint", func(c *Connection) { c.Endpoint = long(MaxEndpointLength + 1) }, "endpoint"},
		{"long user agent", func(c *Connection) { c.Metadata.UserAgent = long(MaxUserAgentLength + 1) }, "metadata.user_agent"},
		{"long ip", func(c *Connection) { c.Metadata.IPAddress = long(MaxIPAddressLength + 1) }, "metadata.ip_address"},
		{"too many permissions", func(c *Connection) { c.Permissions = make([]string, MaxPermissions+1) }, "permissions"},
		{"empty permission", func(c *Connection) { c.Permissions = []string{"a", ""} }, "permissions"},
		{"long permission", func(c *Connection) { c.Permissions = []string{long(MaxPermissionLength + 1)} }, "permissions"},
		{"negative sent", func(c *Connection) { c.MessagesSent = -1 }, "messages_sent"},
		{"negative received", func(c *Connection) { c.MessagesReceived = -1 }, "messages_received"},
		{"negative ttl", func(c *Connection) { c.TTL = -1 }, "ttl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mut(&c)
			err := Validate(c)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v; want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &ve) || ve.Field != tc.field {
				t.Fatalf("Validate = %v; want a ValidationError on %s matching ErrInvalid", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("message %q does not name the field", err)
			}
		})
	}
	// The message carries the limit so the caller knows what to fix.
	c := valid()
	c.Metadata.UserAgent = long(600)
	if err := Validate(c); !strings.Contains(err.Error(), "600") || !strings.Contains(err.Error(), "512") {
		t.Fatalf("message %q should give the size and the limit", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 678_900_000, time.UTC)
	c := Connection{ConnectionID: "c", UserID: "u", TenantID: "t", Endpoint: "https://e/s", ConnectedAt: at,
		LastPing: at.Add(time.Second), Metadata: Metadata{UserAgent: "ua", IPAddress: "ip"},
		Permissions: []string{"b", "a"}, MessagesSent: 1, MessagesReceived: 2, TTL: 3}
	item := MarshalItem(c)
	if n := item[schema.AttrConnectedAt].(*types.AttributeValueMemberN).Value; n != "1893553445678" {
		t.Fatalf("connected_at = %s; want epoch milliseconds", n)
	}
	got, err := UnmarshalItem(item)
	if err != nil {
		t.Fatal(err)
	}
	c.ConnectedAt, c.LastPing = at.Truncate(time.Millisecond), at.Add(time.Second).Truncate(time.Millisecond)
	if got.ConnectedAt != c.ConnectedAt || got.LastPing != c.LastPing || got.Permissions[0] != "b" || got.TTL != 3 || got.Metadata != c.Metadata {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
	}
	// Optional attributes are left out rather than stored empty.
	minimal := MarshalItem(valid())
	for _, a := range []string{schema.AttrEndpoint, schema.AttrLastPing, schema.AttrMetadata, schema.AttrPermissions} {
		if _, ok := minimal[a]; ok {
			t.Errorf("empty %s was stored", a)
		}
	}
	item[schema.AttrTTL] = &types.AttributeValueMemberN{Value: "1.5"}
	if _, err := UnmarshalItem(item); err == nil || !strings.Contains(err.Error(), "ttl") {
		t.Fatalf("UnmarshalItem with a fractional ttl = %v; want an error naming ttl", err)
	}
}

func TestCursor(t *testing.T) {
	key := map[string]types.AttributeValue{
		schema.AttrConnectionID: &types.AttributeValueMemberS{Value: "c/+=1"},
		schema.AttrTenantID:     &types.AttributeValueMemberS{Value: "t"},
		schema.AttrConnectedAt:  &types.AttributeValueMemberN{Value: "1893553445678"},
	}
	s, err := encodeCursor(schema.IndexTenant, "t", key)
	if err != nil || s == "" || strings.ContainsAny(s, "+/=") {
		t.Fatalf("encodeCursor = %q, %v; want URL-safe text", s, err)
	}
	back, err := decodeCursor(s, schema.IndexTenant, "t")
	if err != nil || len(back) != 3 || back[schema.AttrConnectionID].(*types.AttributeValueMemberS).Value != "c/+=1" ||
		back[schema.AttrConnectedAt].(*types.AttributeValueMemberN).Value != "1893553445678" {
		t.Fatalf("decodeCursor = %v, %v", back, err)
	}
	if s, err := encodeCursor(schema.IndexTenant, "t", nil); s != "" || err != nil {
		t.Fatalf("no LastEvaluatedKey => %q, %v; want the end of the listing", s, err)
	}
	if k, err := decodeCursor("", schema.IndexTenant, "t"); k != nil || err != nil {
		t.Fatalf("empty cursor = %v, %v; want the start", k, err)
	}
	bad := map[string]string{
		"garbage":      "!!not base64!!",
		"not json":     "bm90IGpzb24",
		"empty key":    mustEncode(t, `{"v":1,"i":"tenant-index","h":"t"}`),
		"old version":  mustEncode(t, `{"v":9,"i":"tenant-index","h":"t","s":{"a":"b"}}`),
		"bad number":   mustEncode(t, `{"v":1,"i":"tenant-index","h":"t","n":{"connected_at":"1e3"}}`),
		"other tenant": mustEncodeKey(t, schema.IndexTenant, "other", key),
		"other index":  mustEncodeKey(t, schema.IndexUser, "t", key),
	}
	for name, c := range bad {
		if _, err := decodeCursor(c, schema.IndexTenant, "t"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: decodeCursor = %v; want ErrInvalid", name, err)
		}
	}
}

func mustEncode(t *testing.T, js string) string {
	t.Helper()
	return strings.TrimRight(b64(js), "=")
}

func mustEncodeKey(t *testing.T, index, hash string, key map[string]types.AttributeValue) string {
	t.Helper()
	s, err := encodeCursor(index, hash, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestListArguments needs no endpoint: bad queries fail before any request.
func TestListArguments(t *testing.T) {
	d := New(nil, Config{})
	for name, q := range map[string]ListQuery{
		"negative size":           {TenantID: "t", PageSize: -1},
		"long tenant":             {TenantID: strings.Repeat("x", MaxIDLength+1)},
		"bad cursor":              {TenantID: "t", Cursor: "x"},
		"whole table, bad size":   {PageSize: -1},
		"whole table, bad cursor": {Cursor: "x"},
		"whole table, tenant cursor": {Cursor: mustEncodeKey(t, schema.IndexTenant, "t",
			map[string]types.AttributeValue{"connection_id": &types.AttributeValueMemberS{Value: "c"}})},
		"tenant, whole-table cursor": {TenantID: "t", Cursor: mustEncodeKey(t, scanListing, "",
			map[string]types.AttributeValue{"connection_id": &types.AttributeValueMemberS{Value: "c"}})},
		// New(nil, ...) has no client at all, so none that can Scan.
		"whole table, no Scan": {},
	} {
		if _, err := d.List(context.Background(), q); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: List = %v; want ErrInvalid", name, err)
		}
	}
}

func TestBackoffHonoursContext(t *testing.T) {
	d := New(nil, Config{RetryBase: time.Hour, RetryMax: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.backoff(ctx, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("backoff = %v; want context.Canceled", err)
	}
	d = New(nil, Config{RetryBase: time.Microsecond, RetryMax: 2 * time.Microsecond})
	if err := d.backoff(context.Background(), 60); err != nil { // shift overflow is capped
		t.Fatalf("backoff = %v", err)
	}
}

func TestParallelStopsOnError(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	err := parallel(context.Background(), 1000, 1, func(ctx context.Context, i int) error {
		calls++
		if i == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls > 5 {
		t.Fatalf("parallel = %v after %d calls; want boom, stopping soon after", err, calls)
	}
}

func b64(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }

func TestClientEndpointNamesWhereRequestsGo(t *testing.T) {
	for _, tc := range []struct {
		client DynamoAPI
		want   string
	}{
		{dynamodb.New(dynamodb.Options{Region: "eu-west-1"}), "https://dynamodb.eu-west-1.amazonaws.com"},
		{dynamodb.New(dynamodb.Options{Region: "us-east-1"}, EndpointOptions("http://127.0.0.1:4510/")), "http://127.0.0.1:4510"},
		{nil, "DynamoDB"},
	} {
		if got := clientEndpoint(tc.client); got != tc.want {
			t.Errorf("clientEndpoint = %q, want %q", got, tc.want)
		}
	}
}

// gatedUpdates is a DynamoAPI whose UpdateItem calls wait at a gate,
// counting how many wait at once.
type gatedUpdates struct {
	DynamoAPI
	gate     chan struct{}
	inFlight atomic.Int64
	most     atomic.Int64
}

func (g *gatedUpdates) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
	}
	select {
	case <-g.gate:
		return &dynamodb.UpdateItemOutput{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// AddSent writes one item per connection, so its default concurrency is
// UpdateWorkers' 32, not the batch calls' 8: a broadcast's counts must not
// take seconds to record over a long round trip.
func TestAddSentDefaultConcurrency(t *testing.T) {
	g := &gatedUpdates{gate: make(chan struct{})}
	d := New(g, Config{Table: "t"})
	counts := map[string]int64{}
	for i := range 100 {
		counts[fmt.Sprintf("c%03d", i)] = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.AddSent(ctx, counts) }()
	for g.inFlight.Load() < 32 {
		if ctx.Err() != nil {
			t.Fatalf("AddSent reached %d UpdateItem calls in flight; want the default 32", g.inFlight.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := g.most.Load(); m != 32 {
		t.Fatalf("at most %d UpdateItem calls in flight; want exactly the default 32", m)
	}
}
