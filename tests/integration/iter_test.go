package integration_test

import (
	"context"
	"iter"

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
