package integration_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/localstack"
)

// TestConnectionLifecycle is the product's promise end to end: a minted
// token connects a real WebSocket client through the gateway and the real
// $connect handler, the record lands in DynamoDB (read back through the
// DynamoDB API), Manager.Send reaches the client, closing runs $disconnect
// which removes the record, and a later Send is ErrConnectionNotFound.
func TestConnectionLifecycle(t *testing.T) {
	s := startStack(t, localstack.Config{})
	lifecycle(t, s)
}

func lifecycle(t *testing.T, s *localstack.Stack) {
	t.Helper()
	m := newManager(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// (1) mint a valid JWT
	tok := mint(t, s, "user-1", "tenant-a")

	// (2) connect; the record exists
	c := mustDial(t, s, tok)
	id := connectionIDOf(t, s, "user-1", "tenant-a")
	rec, err := s.Store.Get(ctx, id)
	if err != nil {
		t.Fatalf("record after connect: %v", err)
	}
	if rec.UserID != "user-1" || rec.TenantID != "tenant-a" || len(rec.Permissions) != 1 || rec.Permissions[0] != "read" {
		t.Fatalf("record fields: %+v", rec)
	}
	if want := "/" + s.Stage; len(rec.Endpoint) < len(want) || rec.Endpoint[len(rec.Endpoint)-len(want):] != want {
		t.Fatalf("endpoint %q does not end with the stage", rec.Endpoint)
	}
	if rec.TTL <= time.Now().Add(23*time.Hour).Unix() {
		t.Fatalf("ttl %d is not ~24h ahead", rec.TTL)
	}
	if !m.IsActive(ctx, id) {
		t.Fatal("IsActive false for a live connection")
	}

	// (3) Send reaches the client
	if err := m.Send(ctx, id, map[string]string{"hello": "world"}); err != nil {
		t.Fatalf("send: %v", err)
	}
	if got := readText(t, c, 5*time.Second); got != `{"hello":"world"}` {
		t.Fatalf("client got %q", got)
	}

	// (4) close => $disconnect => the record is gone
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	waitGone(t, s.Store, id)

	// (5) Send again => not found, and no network call needed
	err = m.Send(ctx, id, "again")
	if !errors.Is(err, connection.ErrConnectionNotFound) {
		t.Fatalf("send after disconnect: want ErrConnectionNotFound, got %v", err)
	}
	var se *connection.SendError
	if !errors.As(err, &se) || se.ConnectionID != id {
		t.Fatalf("want *SendError for %s, got %#v", id, err)
	}
	if m.IsActive(ctx, id) {
		t.Fatal("IsActive true after disconnect")
	}
}

func TestConnectRefusedWith401(t *testing.T) {
	s := startStack(t, localstack.Config{})
	other, err := auth.GenerateKeyPair(2048)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := s.Mint(auth.MintOptions{UserID: "u", TenantID: "t", Expired: true})
	if err != nil {
		t.Fatal(err)
	}
	badlySigned, err := auth.Mint(other, auth.MintOptions{UserID: "u", TenantID: "t", Issuer: s.Issuer})
	if err != nil {
		t.Fatal(err)
	}
	wrongIssuer, err := auth.Mint(s.PrivateKey, auth.MintOptions{UserID: "u", TenantID: "t", Issuer: "someone-else"})
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"expired":      expired,
		"badly signed": badlySigned,
		"wrong issuer": wrongIssuer,
		"missing":      "",
		"garbage":      "not.a.jwt",
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := dial(ctx, s.WebSocketURL, tok)
			if err == nil {
				_ = c.CloseNow()
				t.Fatal("upgrade accepted")
			}
			if resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("want 401, got %v (%v)", resp, err)
			}
		})
	}
	// Nothing was stored for any of them.
	snap := s.Gateway.Metrics()
	if snap.AuthFailuresTotal != 5 || snap.ActiveConnections != 0 {
		t.Fatalf("gateway metrics: auth failures %d, active %d", snap.AuthFailuresTotal, snap.ActiveConnections)
	}
	_ = (*rsa.PrivateKey)(nil)
}

// TestTenantBroadcast: a broadcast to one tenant's connections reaches every
// client of that tenant and none of another's.
func TestTenantBroadcast(t *testing.T) {
	s := startStack(t, localstack.Config{})
	m := newManager(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const perTenant = 5
	var a, b []*websocket.Conn
	for i := 0; i < perTenant; i++ {
		a = append(a, mustDial(t, s, mint(t, s, "ua-"+string(rune('0'+i)), "tenant-a")))
		b = append(b, mustDial(t, s, mint(t, s, "ub-"+string(rune('0'+i)), "tenant-b")))
	}
	ids := tenantIDs(t, ctx, s, "tenant-a", perTenant)
	res, err := m.Broadcast(ctx, ids, map[string]string{"to": "tenant-a"})
	if err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	if res.Sent != perTenant || res.Failed+res.NotFound+res.Stale+res.Skipped+res.Cancelled != 0 {
		t.Fatalf("broadcast result: %+v", res)
	}
	for i, c := range a {
		if got := readText(t, c, 5*time.Second); got != `{"to":"tenant-a"}` {
			t.Fatalf("tenant-a client %d got %q", i, got)
		}
	}
	for _, c := range b {
		expectNothing(t, c, 150*time.Millisecond)
	}
}
