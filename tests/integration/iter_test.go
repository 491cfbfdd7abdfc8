package integration_test

import (
	"context"
	"iter"
	"testing"

	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/store"
)

// storeIDs lists every connection id of q through the store's streaming
// pagination.
func storeIDs(ctx context.Context, s *localstack.Stack, q store.ListQuery) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for c, err := range store.All(ctx, s.Store, q) {
			if !yield(c.ConnectionID, err) {
				return
			}
		}
	}
}

// tenantIDs lists tenant's connection ids and fails t unless there are
// want of them.
func tenantIDs(t testing.TB, ctx context.Context, s *localstack.Stack, tenant string, want int) []string {
	t.Helper()
	var ids []string
	for id, err := range storeIDs(ctx, s, store.ListQuery{TenantID: tenant}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if len(ids) != want {
		t.Fatalf("tenant %s: the store lists %d connections, want %d", tenant, len(ids), want)
	}
	return ids
}
