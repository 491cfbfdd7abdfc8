package connection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pay-theory/streamer/pkg/store"
)

// BroadcastResult summarises a broadcast. Outcomes has one entry per
// distinct id, in input order (duplicates are delivered once).
type BroadcastResult struct {
	Total, Sent, NotFound, Stale, Skipped, Failed, Cancelled int
	Duration                                                 time.Duration
	Outcomes                                                 []Outcome
}

// Broadcast delivers message to every id; see BroadcastWithProgress.
func (m *Manager) Broadcast(ctx context.Context, connectionIDs []string, message any) (BroadcastResult, error) {
	return m.BroadcastWithProgress(ctx, connectionIDs, message, nil)
}

// BroadcastWithProgress delivers message to every id and reports each id's
// outcome. The message is encoded and size-checked once, before any network
// call. Existence is checked in store batches of 100 ids, the existing ids
// are handed to Config.Workers workers in jobs of up to 25 ids (fewer when
// there are too few ids to keep every worker busy), unhealthy connections
// are skipped (or probed once after their cooldown), and stale records are
// removed in batches of 25 at the end.
//
// progress, when non-nil, is called serially (never concurrently) with the
// number of ids whose outcome is final; keep it fast.
//
// The error is nil when the broadcast ran to the end, even if some ids
// failed (see the result). It is non-nil when the message was rejected
// (ErrInvalidMessage, ErrPayloadTooLarge: nothing sent), when Shutdown was
// already under way (ErrShuttingDown), or when ctx ended or a Shutdown
// deadline passed mid-way: the ids not delivered are then StatusCancelled.
// Broadcast never blocks past ctx's end.
func (m *Manager) BroadcastWithProgress(ctx context.Context, connectionIDs []string, message any, progress func(done, total int)) (BroadcastResult, error) {
	start := time.Now()
	ids := dedupe(connectionIDs)
	res := BroadcastResult{Total: len(ids), Outcomes: make([]Outcome, len(ids))}
	for i, id := range ids {
		res.Outcomes[i].ConnectionID = id
	}
	fail := func(status Status, err error) (BroadcastResult, error) {
		for i := range res.Outcomes {
			res.Outcomes[i].Status = status
			res.Outcomes[i].Err = &SendError{ConnectionID: res.Outcomes[i].ConnectionID, Err: err}
		}
		res.Tally()
		res.Duration = time.Since(start)
		return res, fmt.Errorf("connection: broadcast to %d connections not started: %w", len(ids), err)
	}
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return fail(StatusCancelled, err)
	}
	defer end()
	cid := correlationFor(ctx)
	payload, err := Encode(message)
	if err != nil {
		return fail(StatusFailed, err)
	}

	b := &broadcast{m: m, ctx: ctx, cid: cid, payload: payload, res: &res, probe: make([]bool, len(ids)), progress: progress}
	jobs := make(chan []int, m.cfg.Workers)
	var wg sync.WaitGroup
	for range m.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range jobs {
				for _, i := range batch {
					b.deliver(i)
				}
			}
		}()
	}
	b.produce(ids, jobs)
	close(jobs)
	wg.Wait()

	for i := range res.Outcomes {
		o := &res.Outcomes[i]
		if o.Status == "" {
			o.Status = StatusCancelled
			o.Err = &SendError{ConnectionID: o.ConnectionID, Err: cancelCause(ctx)}
		}
	}
	b.removeStale()
	res.Tally()
	res.Duration = time.Since(start)
	m.m.broadcasts.Add(1)
	m.m.broadcastMsgs.Add(uint64(res.Sent))
	m.m.broadcastNanos.Add(int64(res.Duration))
	if m.obs != nil {
		m.obs.OnBroadcast(res)
	}
	m.log.InfoContext(ctx, "connection broadcast", "correlation_id", cid, "total", res.Total, "sent", res.Sent,
		"not_found", res.NotFound, "stale", res.Stale, "skipped", res.Skipped, "failed", res.Failed,
		"cancelled", res.Cancelled, "duration_ms", ms(res.Duration), "workers", m.cfg.Workers)
	if ctx.Err() != nil {
		return res, fmt.Errorf("connection: broadcast interrupted, %d of %d cancelled: %w", res.Cancelled, res.Total, cancelCause(ctx))
	}
	return res, nil
}

// cancelCause is ErrShuttingDown when Shutdown cancelled ctx, else ctx.Err().
func cancelCause(ctx context.Context) error {
	if errors.Is(context.Cause(ctx), ErrShuttingDown) {
		return ErrShuttingDown
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.Canceled
}

// Tally sets the per-status counts from Outcomes (an outcome with no final
// status counts as cancelled).
func (r *BroadcastResult) Tally() {
	r.Sent, r.NotFound, r.Stale, r.Skipped, r.Failed, r.Cancelled = 0, 0, 0, 0, 0, 0
	for _, o := range r.Outcomes {
		switch o.Status {
		case StatusSent:
			r.Sent++
		case StatusNotFound:
			r.NotFound++
		case StatusStale:
			r.Stale++
		case StatusSkipped:
			r.Skipped++
		case StatusFailed:
			r.Failed++
		default:
			r.Cancelled++
		}
	}
}

func dedupe(ids []string) []string {
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out
}

// broadcast is one Broadcast's shared state. Workers write only their own
// Outcomes[i] (no channel or lock on the result path); progress and the
// stale list take a mutex.
type broadcast struct {
	m        *Manager
	ctx      context.Context
	cid      string
	payload  []byte
	res      *BroadcastResult
	probe    []bool
	progress func(done, total int)

	mu    sync.Mutex
	done  int
	stale []string
}

func (b *broadcast) finish(i int, o Outcome) {
	b.res.Outcomes[i] = o
	b.mu.Lock()
	defer b.mu.Unlock()
	if o.Status == StatusStale {
		b.stale = append(b.stale, o.ConnectionID)
	}
	b.done++
	if b.progress != nil {
		b.progress(b.done, b.res.Total)
	}
}

// produce checks existence chunk by chunk and feeds the workers, so sends
// start after the first chunk instead of after the whole list.
func (b *broadcast) produce(ids []string, jobs chan<- []int) {
	m := b.m
	// Jobs hold up to 25 ids (the size of a stale-record batch), fewer when
	// 25 would leave workers idle (100 ids on 10 workers: 10 jobs of 10, not
	// 4 of 25).
	size := min(store.BatchWriteLimit, max(1, (len(ids)+m.cfg.Workers-1)/m.cfg.Workers))
	// settle records the final outcome of ids[i], decided before delivery.
	settle := func(i int, status Status, err error) {
		o := Outcome{ConnectionID: ids[i], Status: status, Err: &SendError{ConnectionID: ids[i], Err: err}}
		m.record(b.ctx, b.cid, "broadcast", o, 0, false)
		b.finish(i, o)
	}
	// send hands a job to the workers; false when the broadcast ended first.
	send := func(batch []int) bool {
		select {
		case jobs <- batch:
			return true
		case <-b.ctx.Done():
			b.releaseProbes(batch)
			return false
		}
	}
	for lo := 0; lo < len(ids); lo += store.BatchGetLimit {
		if b.ctx.Err() != nil {
			return
		}
		hi := min(lo+store.BatchGetLimit, len(ids))
		var exists map[string]bool
		if m.st != nil {
			var err error
			check := make([]string, 0, hi-lo)
			for _, id := range ids[lo:hi] {
				if plausibleID(id) {
					check = append(check, id)
				}
			}
			if len(check) > 0 {
				exists, err = m.st.Existing(b.ctx, check)
			}
			if err != nil {
				if b.ctx.Err() != nil {
					return
				}
				for i := lo; i < hi; i++ {
					settle(i, StatusFailed, fmt.Errorf("%w: %w", ErrStoreUnavailable, err))
				}
				continue
			}
		}
		batch := make([]int, 0, size)
		for i := lo; i < hi; i++ {
			id := ids[i]
			if !plausibleID(id) || (m.st != nil && !exists[id]) {
				settle(i, StatusNotFound, ErrConnectionNotFound)
				continue
			}
			switch m.health.admit(id, m.clock.Now()) {
			case admitSkip:
				settle(i, StatusSkipped, ErrUnhealthy)
				continue
			case admitProbe:
				b.probe[i] = true
			}
			batch = append(batch, i)
			if len(batch) == size {
				if !send(batch) {
					return
				}
				batch = make([]int, 0, size)
			}
		}
		if len(batch) > 0 && !send(batch) {
			return
		}
	}
}

func (b *broadcast) releaseProbes(batch []int) {
	for _, i := range batch {
		if b.probe[i] {
			b.m.health.release(b.res.Outcomes[i].ConnectionID)
		}
	}
}

func (b *broadcast) deliver(i int) {
	id := b.res.Outcomes[i].ConnectionID
	if b.ctx.Err() != nil {
		if b.probe[i] {
			b.m.health.release(id)
		}
		return // reported as cancelled
	}
	attempts := b.m.cfg.MaxAttempts
	if b.probe[i] {
		attempts = 1 // an unhealthy connection gets one request, not a retry storm
	}
	o := b.m.deliverAs(b.ctx, b.cid, "broadcast", id, b.payload, attempts, time.Now())
	if o.Status == StatusCancelled && b.probe[i] {
		b.m.health.release(id)
	}
	b.finish(i, o)
}

// removeStale deletes the 410'd records in batches of 25 while ctx lives,
// and decrements the active connection counter by each batch's size once
// its DeleteMany succeeded. BatchWriteItem does not say which items
// existed; these did at the existence check just before the send, so the
// count is exact unless a $disconnect deleted one of them (and decremented
// the counter itself) in the milliseconds between: that rare race reads
// one low, the opposite of the drift it prevents (every stale record
// removed here would otherwise be counted as active until TTL, since its
// $disconnect, if it ever comes, finds nothing to delete). A failed
// DeleteMany leaves the counter alone.
func (b *broadcast) removeStale() {
	m := b.m
	if m.st == nil || len(b.stale) == 0 {
		return
	}
	for lo := 0; lo < len(b.stale); lo += store.BatchWriteLimit {
		if b.ctx.Err() != nil {
			m.log.InfoContext(b.ctx, "broadcast interrupted before removing all stale records; their TTL will", "correlation_id", b.cid, "remaining", len(b.stale)-lo)
			return
		}
		hi := min(lo+store.BatchWriteLimit, len(b.stale))
		if err := m.st.DeleteMany(b.ctx, b.stale[lo:hi]); err != nil {
			m.log.WarnContext(b.ctx, "could not remove stale connection records; their TTL will", "correlation_id", b.cid, "count", hi-lo, "error", err)
			continue
		}
		m.decActive(b.ctx, b.cid, hi-lo)
	}
}
