package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/dynamotest"
)

func TestSmokeMinidyn(t *testing.T) {
	ep := dynamotest.Start(t)
	ctx := context.Background()
	s := ep.Store
	now := time.Now()
	c := store.Connection{ConnectionID: "c1", UserID: "u1", TenantID: "t1", Endpoint: "https://x/local", ConnectedAt: now,
		Metadata: store.Metadata{UserAgent: "ua", IPAddress: "1.2.3.4"}, Permissions: []string{"read", "write"}}
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", got)
	if err := s.Touch(ctx, "c1", now.Add(time.Second), 3); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSent(ctx, map[string]int64{"c1": 2, "gone": 5}); err != nil {
		t.Fatal(err)
	}
	p, err := s.List(ctx, store.ListQuery{TenantID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", p)
	ex, err := s.Existing(ctx, []string{"c1", "gone"})
	t.Logf("%v %v", ex, err)
	n, err := s.AddActive(ctx, 2)
	t.Logf("active %d %v", n, err)
	n, err = s.AddActive(ctx, -1)
	t.Logf("active %d %v", n, err)
	d, found, err := s.Delete(ctx, "c1")
	t.Logf("%+v %v %v", d, found, err)
	if err := s.Touch(ctx, "c1", now, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	_, found, err = s.Delete(ctx, "c1")
	t.Logf("%v %v", found, err)
	if err := s.DeleteMany(ctx, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
}

func TestSmokeDynalite(t *testing.T) {
	ep := dynamotest.Dynalite(t)
	ctx := context.Background()
	c := store.Connection{ConnectionID: "c1", UserID: "u1", TenantID: "t1"}
	if err := ep.Store.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	p, err := ep.Store.List(ctx, store.ListQuery{UserID: "u1"})
	if err != nil || len(p.Connections) != 1 {
		t.Fatal(p, err)
	}
	if n, err := ep.Store.AddActive(ctx, 1); err != nil || n != 1 {
		t.Fatal(n, err)
	}
}
