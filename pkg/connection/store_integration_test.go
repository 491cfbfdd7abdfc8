package connection

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/dynamotest"
)

// The Manager against the real DynamoDB store (minidyn in-process, and
// dynalite when `make test` provides it) and a loopback Management API
// through the real SDK client.
func TestManagerWithDynamoStore(t *testing.T) {
	t.Run("minidyn", func(t *testing.T) { testManagerWithStore(t, dynamotest.Start(t)) })
	t.Run("dynalite", func(t *testing.T) { testManagerWithStore(t, dynamotest.Dynalite(t)) })
}

func testManagerWithStore(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := context.Background()
	st := ep.Store
	live := ids("live", 130)
	stale := ids("stale", 30)
	for _, id := range append(slices.Clone(live), stale...) {
		err := st.Save(ctx, store.Connection{ConnectionID: id, UserID: "u1", TenantID: "t1", Endpoint: "http://127.0.0.1/test", ConnectedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
	}
	g := newFakeGateway(t)
	for _, id := range stale {
		g.on(id, gone)
	}
	m := newTestManager(t, g, st, Config{Clock: SystemClock()})

	if err := m.Send(ctx, live[0], map[string]string{"hello": "dynamo"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Send(ctx, "never-connected", "x"); !errors.Is(err, ErrConnectionNotFound) {
		t.Errorf("missing: %v", err)
	}
	if err := m.Send(ctx, stale[0], "x"); !errors.Is(err, ErrConnectionStale) {
		t.Errorf("stale: %v", err)
	}
	if _, err := st.Get(ctx, stale[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stale record after 410: %v", err)
	}
	res, err := m.Broadcast(ctx, append(append(slices.Clone(live), stale...), "never-connected", "#reserved"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 130 || res.Stale != 29 || res.NotFound != 3 || res.Failed != 0 {
		t.Fatalf("broadcast %+v", res)
	}
	for _, id := range stale {
		if _, err := st.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("stale %s still stored: %v", id, err)
		}
	}
	if !m.IsActive(ctx, live[1]) || m.IsActive(ctx, stale[1]) {
		t.Error("IsActive")
	}
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c0, _ := st.Get(ctx, live[0])
	c1, _ := st.Get(ctx, live[1])
	if c0.MessagesSent != 2 || c1.MessagesSent != 1 {
		t.Errorf("messages_sent %d and %d, want 2 and 1", c0.MessagesSent, c1.MessagesSent)
	}
}

// The table-wide active counter ($connect +1, $disconnect -1 when its
// Delete found the record) stays right when the Manager removes records
// itself: a 410 in Send, IsActive or Broadcast, and Disconnect (kick). The
// $disconnect arriving afterwards finds nothing and leaves it alone.
func TestManagerKeepsActiveCounter(t *testing.T) {
	t.Run("minidyn", func(t *testing.T) { testActiveCounter(t, dynamotest.Start(t)) })
	t.Run("dynalite", func(t *testing.T) { testActiveCounter(t, dynamotest.Dynalite(t)) })
}

func testActiveCounter(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := context.Background()
	st := ep.Store
	bstale := ids("bstale", 30) // more than one DeleteMany batch of 25
	all := append([]string{"live=", "stale=", "probe=", "kick="}, bstale...)
	// what $connect does for each
	for _, id := range all {
		if err := st.Save(ctx, store.Connection{ConnectionID: id, UserID: "u1", TenantID: "t1", Endpoint: "http://127.0.0.1/test", ConnectedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.AddActive(ctx, int64(len(all))); err != nil {
		t.Fatal(err)
	}
	g := newFakeGateway(t)
	for _, id := range append([]string{"stale=", "probe="}, bstale...) {
		g.on(id, gone)
	}
	m := newTestManager(t, g, st, Config{Clock: SystemClock()})
	want := int64(len(all))
	check := func(step string) {
		t.Helper()
		if n, err := st.AddActive(ctx, 0); err != nil || n != want {
			t.Fatalf("after %s: active %d (%v), want %d", step, n, err, want)
		}
	}
	// what $disconnect does afterwards: decrement only if its Delete found the record
	lateDisconnect := func(id string) {
		t.Helper()
		if _, found, err := st.Delete(ctx, id); err != nil || found {
			t.Fatalf("$disconnect for %s found its record (%v): the Manager left it", id, err)
		}
	}

	if err := m.Send(ctx, "stale=", "x"); !errors.Is(err, ErrConnectionStale) {
		t.Fatal(err)
	}
	want--
	check("a stale Send")
	lateDisconnect("stale=")

	if m.IsActive(ctx, "probe=") {
		t.Fatal("IsActive on a 410")
	}
	want--
	check("IsActive on a 410")
	lateDisconnect("probe=")

	if err := m.Disconnect(ctx, "kick="); err != nil {
		t.Fatal(err)
	}
	want--
	check("Disconnect")
	lateDisconnect("kick=")
	if err := m.Disconnect(ctx, "kick="); err != nil { // already gone: no second decrement
		t.Fatal(err)
	}
	check("a second Disconnect")

	res, err := m.Broadcast(ctx, append([]string{"live=", "stale=", "never="}, bstale...), "x")
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 1 || res.Stale != len(bstale) || res.NotFound != 2 {
		t.Fatalf("broadcast %+v", res)
	}
	want -= int64(len(bstale))
	check("a broadcast with stale connections")
	for _, id := range bstale {
		lateDisconnect(id)
	}
	if want != 1 {
		t.Fatalf("test arithmetic: %d left, want only live=", want)
	}
}
