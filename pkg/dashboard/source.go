package dashboard

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Source produces snapshots. Fetch must honour ctx and must be safe to call
// again after an error: the dashboard keeps retrying.
type Source interface {
	// Fetch reads the metrics over the last window (sources that cannot
	// query a window, like the local gateway, document what they do).
	Fetch(ctx context.Context, window time.Duration) (Snapshot, error)
	// Name describes the source for the status line, e.g. "local http://…".
	Name() string
}

// ErrBadResponse means the metrics endpoint answered, but not with usable
// metrics (a non-200 status or malformed JSON).
var ErrBadResponse = errors.New("bad metrics response")

// FetchError is a failed fetch: which source and what it was doing.
type FetchError struct {
	Source string
	Op     string
	Err    error
}

func (e *FetchError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.Source, e.Op, e.Err)
}

func (e *FetchError) Unwrap() error { return e.Err }
