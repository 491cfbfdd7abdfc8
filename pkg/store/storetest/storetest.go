// Package storetest is the conformance suite that every DynamoDB-API
// endpoint the store runs against must pass (minidyn in-process, dynalite in
// CI, DynamoDB Local or AWS when pointed at them).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/dynamotest"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// NewEndpoint returns a fresh endpoint with an empty table for one test;
// dynamotest.Start and dynamotest.Dynalite fit.
type NewEndpoint func(t testing.TB) *dynamotest.Endpoint

// Run runs the conformance suite, each case on its own fresh endpoint.
func Run(t *testing.T, newEndpoint NewEndpoint) {
	cases := []struct {
		name string
		fn   func(t *testing.T, ep *dynamotest.Endpoint)
	}{
		{"RoundTrip", testRoundTrip},
		{"Defaults", testDefaults},
		{"NotFound", testNotFound},
		{"DeleteIdempotent", testDeleteIdempotent},
		{"NoResurrect", testNoResurrect},
		{"ListManyPages", testListManyPages},
		{"Isolation", testIsolation},
		{"ListWholeTable", testListWholeTable},
		{"Expired", testExpired},
		{"NoTTLNeverExpires", testNoTTLNeverExpires},
		{"Storm", testStorm},
		{"UnprocessedRetried", testUnprocessedRetried},
		{"UnprocessedGivesUp", testUnprocessedGivesUp},
		{"AddSentBatching", testAddSent},
		{"AddActive", testAddActive},
		{"ReservedIDs", testReservedIDs},
		{"Checkpoint", testCheckpoint},
		{"ContextCancelled", testContextCancelled},
		{"TableMissing", testTableMissing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newEndpoint(t)) })
	}
}

// base is the instant records are stamped with: millisecond precision (what
// the store keeps) and in the future, so records written with the real
// clock's filter are not yet expired.
var base = time.Date(2031, 5, 6, 7, 8, 9, 123e6, time.UTC)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func conn(id, tenant, user string, at time.Time) store.Connection {
	return store.Connection{ConnectionID: id, TenantID: tenant, UserID: user, ConnectedAt: at, TTL: at.Add(store.DefaultTTL).Unix()}
}

func equal(a, b store.Connection) bool {
	return a.ConnectionID == b.ConnectionID && a.UserID == b.UserID && a.TenantID == b.TenantID &&
		a.Endpoint == b.Endpoint && a.ConnectedAt.Equal(b.ConnectedAt) && a.LastPing.Equal(b.LastPing) &&
		a.Metadata == b.Metadata && slices.Equal(a.Permissions, b.Permissions) &&
		a.MessagesSent == b.MessagesSent && a.MessagesReceived == b.MessagesReceived && a.TTL == b.TTL
}

func mustGet(t *testing.T, s store.Store, id string) store.Connection {
	t.Helper()
	c, err := s.Get(ctxFor(t), id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return c
}

func wantNotFound(t *testing.T, s store.Store, id string) {
	t.Helper()
	if c, err := s.Get(ctxFor(t), id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%q) = %+v, %v; want ErrNotFound", id, c, err)
	}
}

// listAll pages through a listing by hand and fails on a repeated id or on
// connected_at going backwards (tenant and user listings only).
func listAll(t *testing.T, s store.Store, q store.ListQuery) (ids []string, pages, emptyPages int) {
	t.Helper()
	seen := map[string]bool{}
	var last time.Time
	for {
		p, err := s.List(ctxFor(t), q)
		if err != nil {
			t.Fatalf("List(%+v) page %d: %v", q, pages, err)
		}
		pages++
		if len(p.Connections) == 0 && p.Next != "" {
			emptyPages++
		}
		for _, c := range p.Connections {
			if seen[c.ConnectionID] {
				t.Fatalf("List(%+v): %q returned twice", q, c.ConnectionID)
			}
			// A whole-table listing (a Scan) has no order to check.
			if (q.TenantID != "" || q.UserID != "") && c.ConnectedAt.Before(last) {
				t.Fatalf("List(%+v): %q connected_at %v before previous %v: not ordered", q, c.ConnectionID, c.ConnectedAt, last)
			}
			last = c.ConnectedAt
			seen[c.ConnectionID] = true
			ids = append(ids, c.ConnectionID)
		}
		if p.Next == "" {
			return ids, pages, emptyPages
		}
		if pages > 10000 {
			t.Fatalf("List(%+v): more than 10000 pages; cursor not advancing?", q)
		}
		q.Cursor = p.Next
	}
}

func sameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		missing, extra := diff(w, g), diff(g, w)
		t.Fatalf("%s: got %d ids, want %d; missing %d %v; unexpected %d %v", what, len(g), len(w), len(missing), head(missing), len(extra), head(extra))
	}
}

func diff(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

func head(s []string) []string { return s[:min(len(s), 5)] }

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

func testRoundTrip(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	want := store.Connection{
		ConnectionID:     "L0SM9cOFvHcCIhw=",
		UserID:           "user-ü-1",
		TenantID:         "tenant-1",
		Endpoint:         "https://abc.execute-api.us-east-1.amazonaws.com/prod",
		ConnectedAt:      base,
		LastPing:         base.Add(1500 * time.Millisecond),
		Metadata:         store.Metadata{UserAgent: "Mozilla/5.0 (X11) \"quoted\"", IPAddress: "2001:db8::1"},
		Permissions:      []string{"read", "write", "read"}, // order and duplicates kept
		MessagesSent:     7,
		MessagesReceived: 9,
		TTL:              base.Add(time.Hour).Unix(),
	}
	if err := ep.Store.Save(ctx, want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if got := mustGet(t, ep.Store, want.ConnectionID); !equal(got, want) {
		t.Fatalf("Get after Save:\n got %+v\nwant %+v", got, want)
	}
	// Overwrite with minimal fields: nothing of the old record survives.
	minimal := conn(want.ConnectionID, "tenant-2", "user-2", base.Add(time.Second))
	if err := ep.Store.Save(ctx, minimal); err != nil {
		t.Fatalf("Save minimal: %v", err)
	}
	if got := mustGet(t, ep.Store, want.ConnectionID); !equal(got, minimal) {
		t.Fatalf("Get after overwrite:\n got %+v\nwant %+v", got, minimal)
	}
	// The listing returns the same record.
	p, err := ep.Store.List(ctx, store.ListQuery{TenantID: "tenant-2"})
	if err != nil || len(p.Connections) != 1 || !equal(p.Connections[0], minimal) {
		t.Fatalf("List = %+v, %v; want exactly %+v", p, err, minimal)
	}
}

func testDefaults(t *testing.T, ep *dynamotest.Endpoint) {
	now := base.Add(3 * time.Minute)
	s := store.New(ep.Client, store.Config{Table: ep.Table, Now: func() time.Time { return now }})
	if err := s.Save(ctxFor(t), store.Connection{ConnectionID: "d1", TenantID: "t", UserID: "u"}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got := mustGet(t, s, "d1")
	if !got.ConnectedAt.Equal(now) || got.TTL != now.Add(24*time.Hour).Unix() {
		t.Fatalf("defaults: connected_at %v ttl %d; want %v and %d", got.ConnectedAt, got.TTL, now, now.Add(24*time.Hour).Unix())
	}
	if err := s.Touch(ctxFor(t), "d1", time.Time{}, 0); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	if got := mustGet(t, s, "d1"); !got.LastPing.Equal(now) {
		t.Fatalf("Touch with zero time: last_ping %v, want the clock's %v", got.LastPing, now)
	}
}

func testNotFound(t *testing.T, ep *dynamotest.Endpoint) {
	wantNotFound(t, ep.Store, "missing")
	if err := ep.Store.Touch(ctxFor(t), "missing", base, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Touch(missing) = %v; want ErrNotFound", err)
	}
	wantNotFound(t, ep.Store, "missing")
}

func testDeleteIdempotent(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	c := conn("del-1", "t", "u", base)
	c.Permissions = []string{"p"}
	c.MessagesSent = 4
	if err := ep.Store.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, found, err := ep.Store.Delete(ctx, c.ConnectionID)
	if err != nil || !found || !equal(got, c) {
		t.Fatalf("first Delete = %+v, %v, %v; want the record, true, nil", got, found, err)
	}
	for range 2 {
		got, found, err = ep.Store.Delete(ctx, c.ConnectionID)
		if err != nil || found || got.ConnectionID != "" {
			t.Fatalf("repeat Delete = %+v, %v, %v; want zero, false, nil", got, found, err)
		}
	}
	wantNotFound(t, ep.Store, c.ConnectionID)
	// DeleteMany of present and absent ids, with a duplicate.
	if err := ep.Store.Save(ctx, conn("del-2", "t", "u", base)); err != nil {
		t.Fatal(err)
	}
	if err := ep.Store.DeleteMany(ctx, []string{"del-2", "del-1", "never", "del-2"}); err != nil {
		t.Fatalf("DeleteMany: %v", err)
	}
	wantNotFound(t, ep.Store, "del-2")
}

func testNoResurrect(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	if err := ep.Store.Save(ctx, conn("nr", "t-nr", "u-nr", base)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ep.Store.Delete(ctx, "nr"); err != nil {
		t.Fatal(err)
	}
	if err := ep.Store.Touch(ctx, "nr", base.Add(time.Second), 3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Touch after Delete = %v; want ErrNotFound", err)
	}
	if err := ep.Store.AddSent(ctx, map[string]int64{"nr": 5}); err != nil {
		t.Fatalf("AddSent after Delete = %v; want nil (skipped)", err)
	}
	wantNotFound(t, ep.Store, "nr")
	if ex, err := ep.Store.Existing(ctx, []string{"nr"}); err != nil || ex["nr"] {
		t.Fatalf("Existing after Delete = %v, %v", ex, err)
	}
	got, _, _ := listAll(t, ep.Store, store.ListQuery{TenantID: "t-nr"})
	if len(got) != 0 {
		t.Fatalf("listing after Delete+Touch holds %v", got)
	}
}

func testListManyPages(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	const live, expired, other = 2600, 250, 40
	now := base
	s := store.New(ep.Client, store.Config{Table: ep.Table, Now: func() time.Time { return now }})
	var conns []store.Connection
	// Expired records are the oldest, so the first pages hold nothing live:
	// the listing must still go on past them.
	for i, id := range ids("exp", expired) {
		c := conn(id, "big", fmt.Sprintf("u%d", i%7), base.Add(-time.Hour).Add(time.Duration(i)*time.Millisecond))
		c.TTL = now.Add(-time.Second).Unix()
		conns = append(conns, c)
	}
	liveIDs := ids("live", live)
	for i, id := range liveIDs {
		// Several records share one connected_at: order ties must not lose any.
		conns = append(conns, conn(id, "big", fmt.Sprintf("u%d", i%7), base.Add(time.Duration(i/3)*time.Millisecond)))
	}
	for _, id := range ids("other", other) {
		conns = append(conns, conn(id, "small", "u-small", base))
	}
	if err := s.SaveMany(ctx, conns); err != nil {
		t.Fatalf("SaveMany(%d): %v", len(conns), err)
	}
	got, pages, empty := listAll(t, s, store.ListQuery{TenantID: "big", PageSize: 100})
	sameSet(t, "tenant listing, page size 100", got, liveIDs)
	if pages < live/100 {
		t.Fatalf("listing took %d pages for %d records at page size 100", pages, live+expired)
	}
	if empty == 0 {
		t.Fatalf("no empty page with a cursor although the first %d records are expired: expired records not filtered by the query?", expired)
	}
	t.Logf("%d live + %d expired records: %d pages, %d empty", live, expired, pages, empty)

	// The streaming helper at the maximum page size yields the same set.
	var streamed []string
	for c, err := range store.All(ctx, s, store.ListQuery{TenantID: "big", PageSize: 5000}) {
		if err != nil {
			t.Fatalf("All: %v", err)
		}
		streamed = append(streamed, c.ConnectionID)
	}
	sameSet(t, "All, page size capped at max", streamed, liveIDs)

	// Stopping early stops paging.
	n := 0
	for range store.All(ctx, s, store.ListQuery{TenantID: "big", PageSize: 10}) {
		if n++; n == 15 {
			break
		}
	}
	if n != 15 {
		t.Fatalf("All stopped after %d records; want 15", n)
	}
}

func testIsolation(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	layout := map[string][2]string{ // id => tenant, user
		"a1": {"A", "u1"}, "a2": {"A", "u1"}, "a3": {"A", "u2"},
		"b1": {"B", "u1"}, "b2": {"B", "u3"},
		"ab": {"AB", "u12"}, // prefixes of other ids must not match
	}
	for id, tu := range layout {
		if err := ep.Store.Save(ctx, conn(id, tu[0], tu[1], base)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		q    store.ListQuery
		want []string
	}{
		{store.ListQuery{TenantID: "A"}, []string{"a1", "a2", "a3"}},
		{store.ListQuery{TenantID: "B"}, []string{"b1", "b2"}},
		{store.ListQuery{TenantID: "C"}, nil},
		{store.ListQuery{UserID: "u1"}, []string{"a1", "a2", "b1"}},
		{store.ListQuery{UserID: "u2"}, []string{"a3"}},
		{store.ListQuery{UserID: "u1", TenantID: "A"}, []string{"a1", "a2"}},
		{store.ListQuery{UserID: "u1", TenantID: "B", PageSize: 1}, []string{"b1"}},
	} {
		got, _, _ := listAll(t, ep.Store, tc.q)
		sameSet(t, fmt.Sprintf("List(%+v)", tc.q), got, tc.want)
		tc.q.IDsOnly = true
		got, _, _ = listAll(t, ep.Store, tc.q)
		sameSet(t, fmt.Sprintf("List(%+v)", tc.q), got, tc.want)
	}
	// IDsOnly reads the id, connected_at and the ttl, nothing else.
	p0, err := ep.Store.List(ctx, store.ListQuery{TenantID: "B", IDsOnly: true})
	if err != nil || len(p0.Connections) != 2 {
		t.Fatalf("List(B, IDsOnly) = %+v, %v", p0, err)
	}
	for _, c := range p0.Connections {
		if c.ConnectionID == "" || c.TTL == 0 || c.ConnectedAt.IsZero() || c.UserID != "" || c.TenantID != "" || c.Endpoint != "" || len(c.Permissions) != 0 {
			t.Errorf("IDsOnly record %+v: want only connection_id, connected_at and ttl", c)
		}
	}
	// A cursor from one listing is refused by another.
	p, err := ep.Store.List(ctx, store.ListQuery{TenantID: "A", PageSize: 1})
	if err != nil || p.Next == "" {
		t.Fatalf("List(A, 1) = %+v, %v; want one record and a cursor", p, err)
	}
	if _, err := ep.Store.List(ctx, store.ListQuery{TenantID: "B", Cursor: p.Next}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("List(B) with A's cursor = %v; want ErrInvalid", err)
	}
}

// testListWholeTable: List with neither TenantID nor UserID pages through
// every unexpired connection of every tenant (a Scan), with the filter the
// index listings use, never the internal counter item, and cursors that only
// a whole-table listing accepts.
func testListWholeTable(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	now := base
	s := store.New(ep.Client, store.Config{Table: ep.Table, Now: func() time.Time { return now }})
	if _, err := s.AddActive(ctx, 7); err != nil { // the counter item shares the table
		t.Fatal(err)
	}
	var conns []store.Connection
	var want []string
	for i, id := range ids("all", 230) {
		c := conn(id, fmt.Sprintf("t%d", i%3), fmt.Sprintf("u%d", i%11), base.Add(time.Duration(i)*time.Millisecond))
		conns = append(conns, c)
		want = append(want, id)
	}
	for _, id := range ids("gone", 60) {
		c := conn(id, "t0", "u0", base.Add(-time.Hour))
		c.TTL = now.Add(-time.Second).Unix()
		conns = append(conns, c)
	}
	if err := s.SaveMany(ctx, conns); err != nil {
		t.Fatalf("SaveMany(%d): %v", len(conns), err)
	}
	// Written by another tool: no ttl attribute, never expires.
	raw := store.MarshalItem(conn("raw-no-ttl", "t9", "u9", base))
	delete(raw, schema.AttrTTL)
	if _, err := ep.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(ep.Table), Item: raw}); err != nil {
		t.Fatalf("raw PutItem: %v", err)
	}
	want = append(want, "raw-no-ttl")

	got, pages, _ := listAll(t, s, store.ListQuery{PageSize: 25})
	sameSet(t, "whole-table listing, page size 25", got, want)
	if pages < len(want)/25 {
		t.Fatalf("whole-table listing took %d pages for %d records at page size 25", pages, len(want))
	}
	var streamed []string
	for c, err := range store.All(ctx, s, store.ListQuery{PageSize: 5000}) {
		if err != nil {
			t.Fatalf("All(whole table): %v", err)
		}
		streamed = append(streamed, c.ConnectionID)
	}
	sameSet(t, "All(whole table), page size capped at max", streamed, want)

	// Cursors do not cross between a whole-table and a tenant listing.
	p, err := s.List(ctx, store.ListQuery{PageSize: 1})
	if err != nil || p.Next == "" {
		t.Fatalf("List(whole table, 1) = %+v, %v; want a cursor", p, err)
	}
	if _, err := s.List(ctx, store.ListQuery{TenantID: "t0", Cursor: p.Next}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("List(t0) with a whole-table cursor = %v; want ErrInvalid", err)
	}
	tp, err := s.List(ctx, store.ListQuery{TenantID: "t0", PageSize: 1})
	if err != nil || tp.Next == "" {
		t.Fatalf("List(t0, 1) = %+v, %v; want a cursor", tp, err)
	}
	if _, err := s.List(ctx, store.ListQuery{Cursor: tp.Next}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("List(whole table) with a tenant cursor = %v; want ErrInvalid", err)
	}

	// A day later everything the store wrote has expired; the raw record stays.
	now = now.Add(store.DefaultTTL + time.Hour)
	got, _, _ = listAll(t, s, store.ListQuery{})
	sameSet(t, "whole-table listing a day later", got, []string{"raw-no-ttl"})
}

func testExpired(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	now := base
	s := store.New(ep.Client, store.Config{Table: ep.Table, Now: func() time.Time { return now }})
	fresh, old, edge := conn("fresh", "t", "u", base), conn("old", "t", "u", base), conn("edge", "t", "u", base)
	old.TTL = now.Add(-time.Minute).Unix()
	edge.TTL = now.Unix() // expires at this very second: gone
	for _, c := range []store.Connection{fresh, old, edge} {
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, _, _ := listAll(t, s, store.ListQuery{TenantID: "t"})
	sameSet(t, "tenant listing", got, []string{"fresh"})
	got, _, _ = listAll(t, s, store.ListQuery{UserID: "u"})
	sameSet(t, "user listing", got, []string{"fresh"})
	got, _, _ = listAll(t, s, store.ListQuery{TenantID: "t", IDsOnly: true})
	sameSet(t, "tenant listing, ids only", got, []string{"fresh"})
	ex, err := s.Existing(ctx, []string{"fresh", "old", "edge", "none"})
	if err != nil || len(ex) != 1 || !ex["fresh"] {
		t.Fatalf("Existing = %v, %v; want only fresh", ex, err)
	}
	wantNotFound(t, s, "old")
	// Time moves on: the fresh one expires too.
	now = now.Add(store.DefaultTTL + time.Second)
	got, _, _ = listAll(t, s, store.ListQuery{TenantID: "t"})
	sameSet(t, "tenant listing a day later", got, nil)
}

// testNoTTLNeverExpires writes records raw through the SDK, one without a
// ttl attribute and one with ttl 0 (another tool's writes, or a table
// without TTL), next to an expired one: Get, Existing and List must agree
// that only the expired one is gone.
func testNoTTLNeverExpires(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	s := store.New(ep.Client, store.Config{Table: ep.Table, Now: func() time.Time { return base }})
	put := func(c store.Connection, withTTL bool) {
		t.Helper()
		item := store.MarshalItem(c)
		if !withTTL {
			delete(item, schema.AttrTTL)
		}
		if _, err := ep.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(ep.Table), Item: item}); err != nil {
			t.Fatalf("raw PutItem %s: %v", c.ConnectionID, err)
		}
	}
	noTTL, zero, old := conn("no-ttl", "nt", "nu", base), conn("zero-ttl", "nt", "nu", base.Add(time.Second)), conn("old", "nt", "nu", base.Add(2*time.Second))
	zero.TTL = 0
	old.TTL = base.Add(-time.Minute).Unix()
	put(noTTL, false)
	put(zero, true)
	put(old, true)

	for _, id := range []string{"no-ttl", "zero-ttl"} {
		if c := mustGet(t, s, id); c.TTL != 0 {
			t.Errorf("Get(%s).TTL = %d, want 0", id, c.TTL)
		}
	}
	wantNotFound(t, s, "old")
	ex, err := s.Existing(ctx, []string{"no-ttl", "zero-ttl", "old"})
	if err != nil || len(ex) != 2 || !ex["no-ttl"] || !ex["zero-ttl"] {
		t.Fatalf("Existing = %v, %v; want no-ttl and zero-ttl", ex, err)
	}
	for _, q := range []store.ListQuery{{TenantID: "nt"}, {UserID: "nu"}, {UserID: "nu", TenantID: "nt"}, {TenantID: "nt", PageSize: 1},
		{TenantID: "nt", IDsOnly: true}, {UserID: "nu", TenantID: "nt", IDsOnly: true}, {TenantID: "nt", PageSize: 1, IDsOnly: true}} {
		got, _, _ := listAll(t, s, q)
		sameSet(t, fmt.Sprintf("List(%+v)", q), got, []string{"no-ttl", "zero-ttl"})
	}
}

// testStorm runs hundreds of goroutines saving, touching, counting and
// deleting at once, then checks the final state exactly.
func testStorm(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	s := ep.Store
	const keepN, goneN, neverN = 100, 100, 50
	const touchers, touches, sends = 2, 3, 3
	keep, gone, never := ids("keep", keepN), ids("gone", goneN), ids("never", neverN)
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	start := make(chan struct{})
	// pause backs off a toucher waiting for its record's save to land;
	// growing waits keep hundreds of pollers from swamping the endpoint.
	pause := func(n int) bool {
		tm := time.NewTimer(time.Duration(min(1<<n, 50)) * time.Millisecond)
		defer tm.Stop()
		select {
		case <-tm.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for i, id := range keep {
		wg.Go(func() { // saver, then counts sends
			<-start
			if err := s.Save(ctx, conn(id, "storm", fmt.Sprintf("su%d", i%10), base)); err != nil {
				fail(fmt.Errorf("save %s: %w", id, err))
				return
			}
			for range sends {
				if err := s.AddSent(ctx, map[string]int64{id: 1}); err != nil {
					fail(fmt.Errorf("add sent %s: %w", id, err))
				}
			}
		})
		for k := range touchers { // touchers: ErrNotFound until the save lands
			wg.Go(func() {
				<-start
				for done, misses := 0, 0; done < touches; {
					err := s.Touch(ctx, id, base.Add(time.Duration(k*touches+done+1)*time.Millisecond), 1)
					switch {
					case err == nil:
						done++
					case errors.Is(err, store.ErrNotFound):
						if misses++; !pause(misses) {
							fail(ctx.Err())
							return
						}
					default:
						fail(fmt.Errorf("touch %s: %w", id, err))
						return
					}
				}
			})
		}
	}
	for _, id := range gone {
		wg.Go(func() { // saver then deleter
			<-start
			if err := s.Save(ctx, conn(id, "storm", "gone-user", base)); err != nil {
				fail(fmt.Errorf("save %s: %w", id, err))
				return
			}
			if _, found, err := s.Delete(ctx, id); err != nil || !found {
				fail(fmt.Errorf("delete %s: found=%v err=%v", id, found, err))
			}
		})
		for range touchers { // activity racing the delete
			wg.Go(func() {
				<-start
				for range touches {
					if err := s.Touch(ctx, id, base, 1); err != nil && !errors.Is(err, store.ErrNotFound) {
						fail(fmt.Errorf("touch %s: %w", id, err))
					}
					if err := s.AddSent(ctx, map[string]int64{id: 1}); err != nil {
						fail(fmt.Errorf("add sent %s: %w", id, err))
					}
				}
			})
		}
	}
	for _, id := range never {
		wg.Go(func() {
			<-start
			if err := s.Touch(ctx, id, base, 1); !errors.Is(err, store.ErrNotFound) {
				fail(fmt.Errorf("touch never-saved %s = %v; want ErrNotFound", id, err))
			}
		})
	}
	close(start)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}

	for _, id := range keep {
		c := mustGet(t, s, id)
		if c.MessagesReceived != touchers*touches || c.MessagesSent != sends {
			t.Fatalf("%s: received %d sent %d; want %d and %d (an update was lost)", id, c.MessagesReceived, c.MessagesSent, touchers*touches, sends)
		}
		if !c.LastPing.After(base) || c.LastPing.After(base.Add(touchers*touches*time.Millisecond)) {
			t.Fatalf("%s: last_ping %v is not one of the touch times", id, c.LastPing)
		}
	}
	for _, id := range append(slices.Clone(gone), never...) {
		wantNotFound(t, s, id)
	}
	got, _, _ := listAll(t, s, store.ListQuery{TenantID: "storm", PageSize: 1000})
	sameSet(t, "storm tenant listing", got, keep)
	got, _, _ = listAll(t, s, store.ListQuery{UserID: "gone-user"})
	sameSet(t, "deleted user's listing", got, nil)
	ex, err := s.Existing(ctx, append(append(slices.Clone(keep), gone...), never...))
	if err != nil {
		t.Fatal(err)
	}
	var present []string
	for id := range ex {
		present = append(present, id)
	}
	sameSet(t, "Existing after storm", present, keep)
}

func testUnprocessedRetried(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	fc := &FaultClient{DynamoAPI: ep.Client, WriteFaults: 3, GetFaults: 3}
	s := store.New(fc, store.Config{Table: ep.Table, Workers: 1, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond})
	all := ids("u", 130)
	conns := make([]store.Connection, len(all))
	for i, id := range all {
		conns[i] = conn(id, "unp", "u", base)
	}
	if err := s.SaveMany(ctx, conns); err != nil {
		t.Fatalf("SaveMany with unprocessed items: %v", err)
	}
	writes, _ := fc.Calls()
	if writes <= 130/25+1 {
		t.Fatalf("SaveMany made %d BatchWriteItem calls; the 3 faulted ones were not retried", writes)
	}
	got, _, _ := listAll(t, ep.Store, store.ListQuery{TenantID: "unp", PageSize: 1000})
	sameSet(t, "records after SaveMany with unprocessed items", got, all)

	ex, err := s.Existing(ctx, append(slices.Clone(all), ids("absent", 90)...))
	if err != nil {
		t.Fatalf("Existing with unprocessed keys: %v", err)
	}
	var present []string
	for id := range ex {
		present = append(present, id)
	}
	sameSet(t, "Existing with unprocessed keys", present, all)
	_, gets := fc.Calls()
	if gets <= 220/100+1 {
		t.Fatalf("Existing made %d BatchGetItem calls; the faulted ones were not retried", gets)
	}
	if fc.maxKeysPerGet > store.BatchGetLimit || fc.maxItemsPerPut > store.BatchWriteLimit {
		t.Fatalf("batch sizes %d keys / %d items exceed the limits %d / %d", fc.maxKeysPerGet, fc.maxItemsPerPut, store.BatchGetLimit, store.BatchWriteLimit)
	}

	fc2 := &FaultClient{DynamoAPI: ep.Client, WriteFaults: 4}
	s2 := store.New(fc2, store.Config{Table: ep.Table, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond})
	if err := s2.DeleteMany(ctx, all); err != nil {
		t.Fatalf("DeleteMany with unprocessed items: %v", err)
	}
	got, _, _ = listAll(t, ep.Store, store.ListQuery{TenantID: "unp"})
	sameSet(t, "records after DeleteMany", got, nil)
}

func testUnprocessedGivesUp(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	fc := &FaultClient{DynamoAPI: ep.Client, WriteFaults: -1, GetFaults: -1}
	s := store.New(fc, store.Config{Table: ep.Table, BatchAttempts: 3, RetryBase: time.Millisecond, RetryMax: 2 * time.Millisecond})
	err := s.DeleteMany(ctx, ids("x", 60))
	var ue *store.UnprocessedError
	if !errors.Is(err, store.ErrUnprocessed) || !errors.As(err, &ue) || ue.Remaining != 60 || ue.Attempts != 3 {
		t.Fatalf("DeleteMany never processed = %v; want an UnprocessedError with 60 remaining after 3 attempts", err)
	}
	if writes, _ := fc.Calls(); writes != 3*3 {
		t.Fatalf("made %d BatchWriteItem calls; want 3 chunks x 3 attempts", writes)
	}
	if _, err := s.Existing(ctx, ids("x", 150)); !errors.As(err, &ue) || ue.Remaining != 150 {
		t.Fatalf("Existing never processed = %v; want an UnprocessedError with 150 remaining", err)
	}
	// A cancelled context ends the backoff at once.
	slow := store.New(fc, store.Config{Table: ep.Table, RetryBase: time.Hour, RetryMax: time.Hour})
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := slow.DeleteMany(cctx, ids("x", 3)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DeleteMany with an hour of backoff and a 50ms deadline = %v; want DeadlineExceeded", err)
	}
}

func testAddSent(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	fc := &FaultClient{DynamoAPI: ep.Client}
	s := store.New(fc, store.Config{Table: ep.Table, UpdateWorkers: 4})
	present := ids("as", 120)
	conns := make([]store.Connection, len(present))
	for i, id := range present {
		conns[i] = conn(id, "as", "u", base)
		conns[i].MessagesSent = int64(i % 3)
	}
	if err := s.SaveMany(ctx, conns); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for i, id := range present {
		counts[id] = int64(i + 1)
	}
	for _, id := range ids("vanished", 30) {
		counts[id] = 5
	}
	counts["as-zero"] = 0 // nothing to add: no request
	if err := s.AddSent(ctx, counts); err != nil {
		t.Fatalf("AddSent: %v", err)
	}
	if got := fc.updates.Load(); got != 150 {
		t.Fatalf("AddSent made %d UpdateItem calls; want one per id with a count (150)", got)
	}
	if m := fc.maxInFlight.Load(); m > 4 {
		t.Fatalf("AddSent had %d requests in flight; UpdateWorkers is 4", m)
	}
	for i, id := range present {
		if c := mustGet(t, s, id); c.MessagesSent != int64(i%3+i+1) {
			t.Fatalf("%s: messages_sent %d, want %d", id, c.MessagesSent, i%3+i+1)
		}
	}
	for _, id := range ids("vanished", 30) {
		wantNotFound(t, s, id)
	}
	if err := s.AddSent(ctx, map[string]int64{"as-00001": -1}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("AddSent negative = %v; want ErrInvalid", err)
	}
}

func testAddActive(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	var wg sync.WaitGroup
	errc := make(chan error, 140)
	for i := range 140 {
		wg.Go(func() {
			d := int64(1)
			if i%7 == 0 {
				d = -1
			}
			if _, err := ep.Store.AddActive(ctx, d); err != nil {
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("AddActive: %v", err)
	}
	n, err := ep.Store.AddActive(ctx, 0)
	if want := int64(120 - 20); err != nil || n != want {
		t.Fatalf("AddActive(0) = %d, %v; want %d", n, err, want)
	}
	// The counter item never shows up as a connection.
	if _, err := ep.Store.Get(ctx, "#stats"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Get(#stats) = %v; want ErrInvalid", err)
	}
}

func testReservedIDs(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	if _, err := ep.Store.AddActive(ctx, 5); err != nil {
		t.Fatal(err)
	}
	bad := conn("#stats", "t", "u", base)
	if err := ep.Store.Save(ctx, bad); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Save(#stats) = %v; want ErrInvalid", err)
	}
	if _, _, err := ep.Store.Delete(ctx, "#stats"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Delete(#stats) = %v; want ErrInvalid", err)
	}
	if err := ep.Store.DeleteMany(ctx, []string{"ok", "#stats"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("DeleteMany(#stats) = %v; want ErrInvalid", err)
	}
	if err := ep.Store.AddSent(ctx, map[string]int64{"#stats": 1}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("AddSent(#stats) = %v; want ErrInvalid", err)
	}
	if n, err := ep.Store.AddActive(ctx, 0); err != nil || n != 5 {
		t.Fatalf("counter after rejected writes = %d, %v; want 5", n, err)
	}
}

func testContextCancelled(t *testing.T, ep *dynamotest.Endpoint) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := ep.Store
	checks := map[string]error{}
	checks["Save"] = s.Save(ctx, conn("cc", "t", "u", base))
	_, checks["Get"] = s.Get(ctx, "cc")
	_, _, checks["Delete"] = s.Delete(ctx, "cc")
	checks["Touch"] = s.Touch(ctx, "cc", base, 1)
	checks["AddSent"] = s.AddSent(ctx, map[string]int64{"cc": 1})
	_, checks["List"] = s.List(ctx, store.ListQuery{TenantID: "t"})
	_, checks["Existing"] = s.Existing(ctx, []string{"cc"})
	checks["DeleteMany"] = s.DeleteMany(ctx, []string{"cc"})
	_, checks["AddActive"] = s.AddActive(ctx, 1)
	for op, err := range checks {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v; want context.Canceled", op, err)
		}
	}
	for _, err := range store.All(ctx, s, store.ListQuery{TenantID: "t"}) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("All with a cancelled context yielded %v", err)
		}
	}
}

func testTableMissing(t *testing.T, ep *dynamotest.Endpoint) {
	s := store.New(ep.Client, store.Config{Table: "no-such-table"})
	err := s.Save(ctxFor(t), conn("x", "t", "u", base))
	if !errors.Is(err, store.ErrTableNotFound) {
		t.Fatalf("Save to a missing table = %v; want ErrTableNotFound", err)
	}
	t.Logf("missing table error reads: %v", err)
}

// testCheckpoint: a job's checkpoint (cursor and lease) on an internal item.
func testCheckpoint(t *testing.T, ep *dynamotest.Endpoint) {
	ctx := ctxFor(t)
	s := ep.Store
	if err := s.Save(ctx, conn("cp-live", "t", "u", base)); err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(time.Minute)
	cp, err := s.AcquireCheckpoint(ctx, "reaper", "run-1", soon)
	if err != nil || cp.Cursor != "" || cp.Owner != "run-1" || cp.LeaseUntil.UnixMilli() != soon.UnixMilli() || cp.UpdatedAt.IsZero() {
		t.Fatalf("first AcquireCheckpoint = %+v, %v; want run-1's lease and no cursor", cp, err)
	}
	if _, err := s.AcquireCheckpoint(ctx, "reaper", "run-2", soon); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("AcquireCheckpoint while run-1 holds the lease = %v; want ErrLeaseHeld", err)
	}
	// Another job's checkpoint is its own.
	if cp, err := s.AcquireCheckpoint(ctx, "other-job", "run-2", soon); err != nil || cp.Owner != "run-2" {
		t.Fatalf("another checkpoint = %+v, %v", cp, err)
	}
	// The holder extends its lease.
	later := soon.Add(time.Minute)
	if cp, err := s.AcquireCheckpoint(ctx, "reaper", "run-1", later); err != nil || cp.LeaseUntil.UnixMilli() != later.UnixMilli() {
		t.Fatalf("run-1 extends its lease = %+v, %v", cp, err)
	}
	if err := s.SaveCheckpoint(ctx, "reaper", "run-2", "not-mine"); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("SaveCheckpoint by a run without the lease = %v; want ErrLeaseHeld", err)
	}
	if err := s.SaveCheckpoint(ctx, "reaper", "run-1", "cursor-1"); err != nil {
		t.Fatalf("SaveCheckpoint: %v", err)
	}
	// Released: the next run takes it and resumes from the saved cursor.
	cp, err = s.AcquireCheckpoint(ctx, "reaper", "run-2", soon)
	if err != nil || cp.Cursor != "cursor-1" || cp.Owner != "run-2" {
		t.Fatalf("AcquireCheckpoint after the release = %+v, %v; want run-2 resuming at cursor-1", cp, err)
	}
	// run-2 dies holding the lease; once it has expired (a clock past it)
	// run-3 takes over, and run-2's late save is refused.
	after := store.New(ep.Client, store.Config{Table: ep.Table, Now: func() time.Time { return soon.Add(time.Second) }})
	cp, err = after.AcquireCheckpoint(ctx, "reaper", "run-3", soon.Add(time.Hour))
	if err != nil || cp.Cursor != "cursor-1" || cp.Owner != "run-3" {
		t.Fatalf("AcquireCheckpoint after the lease expired = %+v, %v; want run-3 resuming at cursor-1", cp, err)
	}
	if err := s.SaveCheckpoint(ctx, "reaper", "run-2", "stale"); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("late SaveCheckpoint by run-2 = %v; want ErrLeaseHeld", err)
	}
	// A finished pass saves no cursor: the next run starts over.
	if err := after.SaveCheckpoint(ctx, "reaper", "run-3", ""); err != nil {
		t.Fatal(err)
	}
	if cp, err := s.AcquireCheckpoint(ctx, "reaper", "run-4", soon); err != nil || cp.Cursor != "" {
		t.Fatalf("AcquireCheckpoint after a finished pass = %+v, %v; want no cursor", cp, err)
	}

	// The checkpoint items are not connections.
	ids, _, _ := listAll(t, s, store.ListQuery{})
	sameSet(t, "whole-table listing beside checkpoints", ids, []string{"cp-live"})
	if _, err := s.Get(ctx, schema.CheckpointKey("reaper")); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Get(%s) = %v; want ErrInvalid", schema.CheckpointKey("reaper"), err)
	}
	for _, bad := range []struct {
		name, owner string
		until       time.Time
	}{{"", "o", soon}, {"Reaper", "o", soon}, {"a/b", "o", soon}, {"reaper", "", soon}, {"reaper", "o", time.Now().Add(-time.Second)}} {
		if _, err := s.AcquireCheckpoint(ctx, bad.name, bad.owner, bad.until); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AcquireCheckpoint(%q, %q, %v) = %v; want ErrInvalid", bad.name, bad.owner, bad.until, err)
		}
	}
	if err := s.SaveCheckpoint(ctx, "reaper", "run-4", strings.Repeat("c", store.MaxCheckpointCursor+1)); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("SaveCheckpoint with an oversized cursor = %v; want ErrInvalid", err)
	}
}
