package cmd

import (
	"context"

	"github.com/pay-theory/streamer/pkg/store"
)

// listIDs is every connection id of q (see listConnections).
func listIDs(ctx context.Context, st ConnStore, cfg Config, q store.ListQuery) ([]string, error) {
	var ids []string
	err := listConnections(ctx, st, cfg, q, 0, func(page []store.Connection) error {
		for _, c := range page {
			ids = append(ids, c.ConnectionID)
		}
		return nil
	})
	return ids, err
}

// listConnections walks every page of q (up to limit connections, 0 = all),
// calling each with one page. Each request is bounded by cfg.Timeout.
func listConnections(ctx context.Context, st ConnStore, cfg Config, q store.ListQuery, limit int, each func([]store.Connection) error) error {
	seen := 0
	for {
		cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		page, err := st.List(cctx, q)
		cancel()
		if err != nil {
			return storeErr(cfg, err)
		}
		conns := page.Connections
		if limit > 0 && seen+len(conns) > limit {
			conns = conns[:limit-seen]
		}
		seen += len(conns)
		if len(conns) > 0 {
			if err := each(conns); err != nil {
				return err
			}
		}
		if page.Next == "" || (limit > 0 && seen >= limit) {
			return nil
		}
		q.Cursor = page.Next
	}
}
