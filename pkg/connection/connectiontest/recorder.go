// Package connectiontest provides a test double for code that sends through
// connection.Sender: a Recorder that captures what was sent (in a slice and,
// optionally, on a channel sink) and can be told to fail per id or globally.
// It encodes messages and decides outcomes with the connection package's own
// rules (connection.Encode, connection.StatusOf), so it agrees with a Manager.
package connectiontest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/store"
)

// Sent is one captured delivery.
type Sent struct {
	ConnectionID string
	// Message is the wire payload, encoded as the Manager encodes it
	// ([]byte, json.RawMessage and string unchanged, anything else as JSON).
	Message []byte
	// Broadcast is true when it was part of a Broadcast.
	Broadcast bool
}

// Decode unmarshals the captured JSON payload into v.
func (s Sent) Decode(v any) error { return json.Unmarshal(s.Message, v) }

// Recorder implements connection.Sender in memory. The zero value is ready;
// it is safe for concurrent use.
type Recorder struct {
	// Sink, when non-nil, also receives every successful delivery. A full
	// sink blocks the sender until ctx ends, so read it or buffer it.
	Sink chan Sent

	mu       sync.Mutex
	sent     []Sent
	failID   map[string]error
	failAll  error
	inactive map[string]bool
	shut     bool
}

var _ connection.Sender = (*Recorder)(nil)

// NewRecorder returns a Recorder whose Sink is buffered for buffer messages
// (0 => no sink).
func NewRecorder(buffer int) *Recorder {
	r := &Recorder{}
	if buffer > 0 {
		r.Sink = make(chan Sent, buffer)
	}
	return r
}

// FailID makes deliveries to id fail with err (one of the connection
// sentinels, e.g. connection.ErrConnectionStale); nil clears it.
func (r *Recorder) FailID(id string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failID == nil {
		r.failID = map[string]error{}
	}
	if err == nil {
		delete(r.failID, id)
		return
	}
	r.failID[id] = err
}

// FailAll makes every delivery fail with err (e.g. connection.ErrCircuitOpen); nil clears it.
func (r *Recorder) FailAll(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failAll = err
}

// SetActive sets what IsActive answers for id. Ids default to active unless
// they are set to fail with ErrConnectionNotFound or ErrConnectionStale.
func (r *Recorder) SetActive(id string, active bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inactive == nil {
		r.inactive = map[string]bool{}
	}
	r.inactive[id] = !active
}

// Sent returns every successful delivery so far, in order.
func (r *Recorder) Sent() []Sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Sent(nil), r.sent...)
}

// SentTo returns the successful deliveries to id.
func (r *Recorder) SentTo(id string) []Sent {
	var out []Sent
	for _, s := range r.Sent() {
		if s.ConnectionID == id {
			out = append(out, s)
		}
	}
	return out
}

// Reset forgets deliveries, failure settings and a Shutdown.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent, r.failID, r.failAll, r.inactive, r.shut = nil, nil, nil, nil, false
}

// Shutdown makes later calls fail as a shut-down Manager's do: Send with
// connection.ErrShuttingDown, Broadcast not started, IsActive false.
func (r *Recorder) Shutdown(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shut = true
	return nil
}

func (r *Recorder) deliver(ctx context.Context, id string, payload []byte, broadcast bool) error {
	if err := ctx.Err(); err != nil {
		return &connection.SendError{ConnectionID: id, Err: err}
	}
	r.mu.Lock()
	err := r.failAll
	if e, ok := r.failID[id]; ok {
		err = e
	}
	if r.shut {
		err = &connection.SendError{ConnectionID: id, Err: connection.ErrShuttingDown}
	}
	r.mu.Unlock()
	if err != nil {
		var se *connection.SendError
		if errors.As(err, &se) {
			return err
		}
		return &connection.SendError{ConnectionID: id, Attempts: attempts(err), Err: err}
	}
	s := Sent{ConnectionID: id, Message: payload, Broadcast: broadcast}
	if r.Sink != nil {
		select {
		case r.Sink <- s:
		case <-ctx.Done():
			return &connection.SendError{ConnectionID: id, Attempts: 1, Err: ctx.Err()}
		}
	}
	r.mu.Lock()
	r.sent = append(r.sent, s)
	r.mu.Unlock()
	return nil
}

// attempts is how many requests a Manager would have made for a delivery
// that failed with err: none when the outcome is decided before any request
// (no record, unhealthy, cancelled or shut down).
func attempts(err error) int {
	switch connection.StatusOf(err) {
	case connection.StatusNotFound, connection.StatusSkipped, connection.StatusCancelled:
		return 0
	}
	return 1
}

// Send records message for connectionID or returns the configured failure
// as a *connection.SendError.
func (r *Recorder) Send(ctx context.Context, connectionID string, message any) error {
	payload, err := connection.Encode(message)
	if err != nil {
		return &connection.SendError{ConnectionID: connectionID, Err: err}
	}
	return r.deliver(ctx, connectionID, payload, false)
}

// Broadcast records message for every distinct id; see BroadcastWithProgress.
func (r *Recorder) Broadcast(ctx context.Context, connectionIDs []string, message any) (connection.BroadcastResult, error) {
	return r.BroadcastWithProgress(ctx, connectionIDs, message, nil)
}

// BroadcastWithProgress records message for every distinct id and reports
// outcomes the way the Manager does (not_found, stale, skipped, failed and
// cancelled from the configured failures, through connection.StatusOf).
// progress, when non-nil, is called after each id with (done, total).
func (r *Recorder) BroadcastWithProgress(ctx context.Context, connectionIDs []string, message any, progress func(done, total int)) (connection.BroadcastResult, error) {
	start := time.Now()
	payload, err := connection.Encode(message)
	if err != nil {
		return connection.BroadcastResult{Total: len(connectionIDs)}, fmt.Errorf("connectiontest: broadcast not started: %w", err)
	}
	var ids []string
	seen := map[string]bool{}
	for _, id := range connectionIDs {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	shut := r.isShut()
	res := connection.BroadcastResult{Total: len(ids)}
	for i, id := range ids {
		res.Outcomes = append(res.Outcomes, r.outcome(ctx, id, payload, shut))
		if progress != nil && !shut {
			progress(i+1, len(ids))
		}
	}
	res.Tally()
	res.Duration = time.Since(start)
	if shut {
		return res, fmt.Errorf("connectiontest: broadcast to %d connections not started: %w", len(ids), connection.ErrShuttingDown)
	}
	return res, ctx.Err()
}

// BroadcastRecords records message for every record, as the Manager's
// BroadcastRecords reports it: the result's Outcomes hold only the targets
// not sent; opts.Progress and opts.OnOutcome are called after each one. A
// listing error stops it and is returned (wrapped) with the result so far.
func (r *Recorder) BroadcastRecords(ctx context.Context, records iter.Seq2[store.Connection, error], message any, opts connection.BroadcastOptions) (connection.BroadcastResult, error) {
	start := time.Now()
	payload, err := connection.Encode(message)
	if err != nil {
		return connection.BroadcastResult{}, fmt.Errorf("connectiontest: broadcast not started: %w", err)
	}
	if r.isShut() {
		return connection.BroadcastResult{}, fmt.Errorf("connectiontest: broadcast not started: %w", connection.ErrShuttingDown)
	}
	var res connection.BroadcastResult
	var listErr error
	for c, err := range records {
		if err != nil {
			listErr = err
			break
		}
		res.Total++
		o := r.outcome(ctx, c.ConnectionID, payload, false)
		res.Count(o.Status)
		if o.Status != connection.StatusSent {
			res.Outcomes = append(res.Outcomes, o)
		}
		if opts.OnOutcome != nil {
			opts.OnOutcome(o)
		}
		if opts.Progress != nil {
			opts.Progress(connection.BroadcastProgress{Done: res.Total, Total: res.Total})
		}
	}
	res.Duration = time.Since(start)
	if listErr != nil {
		return res, fmt.Errorf("connectiontest: broadcast stopped after %d targets: listing them failed: %w", res.Total, listErr)
	}
	if opts.Progress != nil {
		opts.Progress(connection.BroadcastProgress{Done: res.Total, Total: res.Total, Listed: true})
	}
	return res, ctx.Err()
}

// BroadcastIDs delivers to the distinct ids of a stream as the Manager
// does: in batches of 100 (store.BatchGetLimit), so when the stream fails
// the ids read since the last full batch are reported cancelled, not sent.
func (r *Recorder) BroadcastIDs(ctx context.Context, ids iter.Seq2[string, error], message any, opts connection.BroadcastOptions) (connection.BroadcastResult, error) {
	seen := map[string]bool{}
	var pending []string
	var streamErr error
	res, err := r.BroadcastRecords(ctx, func(yield func(store.Connection, error) bool) {
		flush := func() bool {
			for _, id := range pending {
				if !yield(store.Connection{ConnectionID: id}, nil) {
					return false
				}
			}
			pending = nil
			return true
		}
		for id, err := range ids {
			if err != nil {
				streamErr = err
				return
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			if pending = append(pending, id); len(pending) == store.BatchGetLimit && !flush() {
				return
			}
		}
		flush()
	}, message, opts)
	if streamErr == nil {
		return res, err
	}
	for _, id := range pending {
		res.Total++
		res.Count(connection.StatusCancelled)
		res.Outcomes = append(res.Outcomes, connection.Outcome{ConnectionID: id, Status: connection.StatusCancelled,
			Err: &connection.SendError{ConnectionID: id, Err: context.Canceled}})
	}
	return res, fmt.Errorf("connectiontest: broadcast stopped after %d targets: reading them failed: %w", res.Total, streamErr)
}

// BroadcastQuery is BroadcastRecords over store.All(ctx, lister, q).
func (r *Recorder) BroadcastQuery(ctx context.Context, lister store.Lister, q store.ListQuery, message any, opts connection.BroadcastOptions) (connection.BroadcastResult, error) {
	return r.BroadcastRecords(ctx, store.All(ctx, lister, q), message, opts)
}

func (r *Recorder) isShut() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.shut
}

// outcome delivers to one id (or not, when shut) and reports it as a
// Manager would.
func (r *Recorder) outcome(ctx context.Context, id string, payload []byte, shut bool) connection.Outcome {
	var err error
	if shut {
		err = &connection.SendError{ConnectionID: id, Err: connection.ErrShuttingDown}
	} else {
		err = r.deliver(ctx, id, payload, true)
	}
	o := connection.Outcome{ConnectionID: id, Status: connection.StatusOf(err), Attempts: 1, Err: err}
	var se *connection.SendError
	if errors.As(err, &se) {
		o.Attempts = se.Attempts
	}
	return o
}

// IsActive reports what SetActive / FailID configured (default true).
func (r *Recorder) IsActive(ctx context.Context, connectionID string) bool {
	if ctx.Err() != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shut || r.inactive[connectionID] {
		return false
	}
	err := r.failID[connectionID]
	return !errors.Is(err, connection.ErrConnectionNotFound) && !errors.Is(err, connection.ErrConnectionStale)
}

// Reconcile walks lister's pages as the Manager's Reconcile does and
// answers for each record from what the Recorder was told: an id set
// inactive (SetActive false) or failing with ErrConnectionStale or
// ErrConnectionNotFound is a zombie; one failing with any other error (or
// everything, after FailAll) could not be checked and is kept; any other is
// live. Records younger than opts.MinAge (by the system clock) are left
// alone as Recent. The Recorder has no store, so it deletes nothing: the
// zombies count as Removed (unless DryRun), as a Manager whose deletes
// succeeded would report them. When ctx ends it stops, with the cursor
// after the last whole page to resume from; a listing error stops it too.
func (r *Recorder) Reconcile(ctx context.Context, lister store.Lister, opts connection.ReconcileOptions) (connection.ReconcileResult, error) {
	start := time.Now()
	res := connection.ReconcileResult{Cursor: opts.Query.Cursor}
	if r.isShut() {
		return res, fmt.Errorf("connectiontest: reconcile not started: %w", connection.ErrShuttingDown)
	}
	minAge := opts.MinAge
	if minAge == 0 {
		minAge = connection.DefaultReconcileMinAge
	}
	var listed int
	progress := func() {
		if opts.Progress != nil {
			opts.Progress(connection.ReconcileProgress{Listed: listed, Recent: res.Recent, Checked: res.Checked,
				Live: res.Live, Zombies: len(res.Zombies), Errors: res.Errors})
		}
	}
	q := opts.Query
	for {
		if err := ctx.Err(); err != nil {
			res.Duration = time.Since(start)
			return res, fmt.Errorf("connectiontest: reconcile interrupted: %w", err)
		}
		page, err := lister.List(ctx, q)
		if err != nil {
			res.Duration = time.Since(start)
			return res, fmt.Errorf("connectiontest: reconcile stopped: listing records failed: %w", err)
		}
		listed += len(page.Connections)
		progress()
		for _, c := range page.Connections {
			if err := ctx.Err(); err != nil {
				res.Duration = time.Since(start)
				return res, fmt.Errorf("connectiontest: reconcile interrupted: %w", err)
			}
			if minAge > 0 && !c.ConnectedAt.IsZero() && time.Since(c.ConnectedAt) < minAge {
				res.Recent++
				continue
			}
			r.mu.Lock()
			err := r.failAll
			if e, ok := r.failID[c.ConnectionID]; ok {
				err = e
			}
			gone := r.inactive[c.ConnectionID]
			r.mu.Unlock()
			res.Checked++
			switch {
			case gone || errors.Is(err, connection.ErrConnectionStale) || errors.Is(err, connection.ErrConnectionNotFound):
				res.Zombies = append(res.Zombies, c.ConnectionID)
				if !opts.DryRun {
					res.Removed++
				}
			case err != nil:
				res.Errors++
				if len(res.Failures) < 20 {
					res.Failures = append(res.Failures, connection.Outcome{ConnectionID: c.ConnectionID, Status: connection.StatusOf(err),
						Attempts: attempts(err), Err: &connection.SendError{ConnectionID: c.ConnectionID, Err: err, Op: "get"}})
				}
			default:
				res.Live++
			}
			progress()
		}
		res.Cursor = page.Next
		if page.Next == "" {
			res.Complete = true
			res.Duration = time.Since(start)
			return res, nil
		}
		q.Cursor = page.Next
	}
}
