package integration_test

import (
	"context"
	"iter"

	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/store"
)

// storeAll lists every connection id of a tenant through the store's
// streaming pagination.
func storeAll(ctx context.Context, s *localstack.Stack, tenant string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for c, err := range store.All(ctx, s.Store, store.ListQuery{TenantID: tenant}) {
			if !yield(c.ConnectionID, err) {
				return
			}
		}
	}
}

// storeAllByUser lists every connection id of a user.
func storeAllByUser(ctx context.Context, s *localstack.Stack, user string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for c, err := range store.All(ctx, s.Store, store.ListQuery{UserID: user}) {
			if !yield(c.ConnectionID, err) {
				return
			}
		}
	}
}
