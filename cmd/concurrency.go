package cmd

import (
	"fmt"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/spf13/cobra"
)

// MaxConcurrency is the most requests in flight --concurrency allows: at
// 100 ms per request that is API Gateway's default account limit (10,000
// requests/s); beyond it a process only queues.
const MaxConcurrency = 1000

// addConcurrencyFlag registers --concurrency (broadcast, conn prune): the
// cap of the Manager's adaptive limit, 0 for its default.
func addConcurrencyFlag(c *cobra.Command, n *int) {
	c.Flags().IntVar(n, "concurrency", 0, fmt.Sprintf("most requests in flight, 1-%d (default %d; the limit adapts below it)", MaxConcurrency, connection.DefaultMaxInFlight))
}

// checkConcurrency refuses a --concurrency outside 1..MaxConcurrency (0:
// unset).
func checkConcurrency(n int) error {
	if n < 0 || n > MaxConcurrency {
		return &UsageError{Err: fmt.Errorf("--concurrency %d is out of range: give 1 to %d requests in flight (0 or unset: up to %d, adaptive)", n, MaxConcurrency, connection.DefaultMaxInFlight)}
	}
	return nil
}

// concurrencyOptions turns --concurrency into the Manager's limit:
// adaptive up to it, or with fixed, held at it.
func concurrencyOptions(concurrency int, fixed bool) MessengerOptions {
	mo := MessengerOptions{MaxInFlight: concurrency, Fixed: fixed}
	if fixed {
		mo.Workers = concurrency
	}
	return mo
}
