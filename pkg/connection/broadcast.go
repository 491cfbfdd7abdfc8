package connection

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/smithy-go/middleware"

	"github.com/pay-theory/streamer/pkg/store"
)

// BroadcastResult summarises a broadcast.
type BroadcastResult struct {
	Total, Sent, NotFound, Stale, Skipped, Failed, Cancelled int
	Duration                                                 time.Duration
	// Outcomes: for Broadcast and BroadcastWithProgress, one entry per
	// distinct id, in input order (duplicates are delivered once). For
	// BroadcastRecords and BroadcastQuery, only the targets that were not
	// sent, in no particular order: a broadcast to a million connections
	// keeps no per-target state for those that got the message
	// (BroadcastOptions.OnOutcome sees every one).
	Outcomes []Outcome
}

// BroadcastOptions tune one BroadcastRecords or BroadcastQuery call. The
// zero value is valid.
type BroadcastOptions struct {
	// Progress, when non-nil, is called serially (never concurrently) each
	// time a target's outcome is final; keep it fast.
	Progress func(BroadcastProgress)
	// OnOutcome, when non-nil, receives every target's final outcome,
	// serially; keep it fast.
	OnOutcome func(Outcome)
}

// BroadcastProgress is how far a broadcast is: Done targets have a final
// outcome out of Total known so far. For a listing Total grows as pages
// arrive and Listed turns true once the listing has ended; for an id list
// both are known from the start.
type BroadcastProgress struct {
	Done, Total int
	Listed      bool
}

// Broadcast delivers message to every id; see BroadcastWithProgress.
func (m *Manager) Broadcast(ctx context.Context, connectionIDs []string, message any) (BroadcastResult, error) {
	return m.BroadcastWithProgress(ctx, connectionIDs, message, nil)
}

// BroadcastWithProgress delivers message to every id and reports each id's
// outcome. The message is encoded and size-checked once, before any network
// call. Ids are checked against the store in batches of 100, several
// batches at a time, and the existing ones are posted as fast as the
// Manager's concurrency limit allows (see LimitConfig); unhealthy
// connections are skipped (or probed once after their cooldown), and stale
// records are removed in batches of 25.
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
	ids := dedupe(connectionIDs)
	res := BroadcastResult{Total: len(ids), Outcomes: make([]Outcome, len(ids))}
	for i, id := range ids {
		res.Outcomes[i].ConnectionID = id
	}
	var opts BroadcastOptions
	if progress != nil {
		opts.Progress = func(p BroadcastProgress) { progress(p.Done, p.Total) }
	}
	return m.broadcast(ctx, message, &res, opts, func(b *broadcast) {
		chunks := make(chan []target)
		go func() {
			defer close(chunks)
			for lo := 0; lo < len(ids); lo += store.BatchGetLimit {
				hi := min(lo+store.BatchGetLimit, len(ids))
				chunk := make([]target, 0, hi-lo)
				for i := lo; i < hi; i++ {
					chunk = append(chunk, target{idx: i, id: ids[i]})
				}
				select {
				case chunks <- chunk:
				case <-b.ctx.Done():
					return // the rest stays unset: reported as cancelled
				}
			}
		}()
		b.checkChunks(chunks)
	})
}

// BroadcastIDs delivers message to every id ids yields, as they arrive:
// ids are checked against the store in batches of 100 (several at a time)
// and sent as the checks return, so a long list (a file, a pipe) starts
// sending after its first 100 ids and is never held whole. Duplicates are
// delivered once. The result's Outcomes hold only the ids not sent, as
// with BroadcastRecords. An error from ids stops it: the ids read since the
// last full batch of 100 are not sent (they are reported cancelled), the
// batches before it are delivered, and the error is returned.
func (m *Manager) BroadcastIDs(ctx context.Context, ids iter.Seq2[string, error], message any, opts BroadcastOptions) (BroadcastResult, error) {
	var listErr error
	res, err := m.broadcast(ctx, message, &BroadcastResult{}, opts, func(b *broadcast) {
		chunks := make(chan []target)
		go func() {
			defer close(chunks)
			listErr = b.readIDs(ids, chunks)
		}()
		b.checkChunks(chunks)
	})
	if err == nil && listErr != nil {
		err = fmt.Errorf("connection: broadcast stopped after %d targets: reading them failed: %w", res.Total, listErr)
	}
	return res, err
}

// BroadcastRecords delivers message to every record records yields, as
// they arrive: the first send starts with the first record, not after the
// last. The records are trusted as read (a listing just returned them), so
// there is no second existence check; records are assumed distinct, as a
// listing yields them. The result's Outcomes hold only the targets not
// sent. When records yields an error the broadcast stops taking targets,
// finishes those it has, and returns the result with that error.
// Otherwise it behaves as BroadcastWithProgress.
func (m *Manager) BroadcastRecords(ctx context.Context, records iter.Seq2[store.Connection, error], message any, opts BroadcastOptions) (BroadcastResult, error) {
	var listErr error
	res, err := m.broadcast(ctx, message, &BroadcastResult{}, opts, func(b *broadcast) { b.readRecords(records, &listErr) })
	if err == nil && listErr != nil {
		err = fmt.Errorf("connection: broadcast stopped after %d targets: listing them failed: %w", res.Total, listErr)
	}
	return res, err
}

// BroadcastQuery delivers message to every connection q lists (a tenant's,
// a user's, or with neither the whole table), page by page as the listing
// goes: BroadcastRecords over store.All(ctx, lister, q). It reads only the
// ids (q.IDsOnly). The first pages are read small and growing
// (firstPageSize, then three times the last) up to q.PageSize, so the first
// sends start after one short query and the next page is there before
// they are answered.
func (m *Manager) BroadcastQuery(ctx context.Context, lister store.Lister, q store.ListQuery, message any, opts BroadcastOptions) (BroadcastResult, error) {
	q.IDsOnly = true
	var pages store.Lister = lister
	if q.Cursor == "" {
		pages = &rampPages{Lister: lister}
	}
	return m.BroadcastRecords(ctx, store.All(ctx, pages, q), message, opts)
}

// firstPageSize bounds the first page a listing pass reads; pageRamp is
// how much larger each next page may be, up to the size asked for. A page
// of 1,000 costs tens of milliseconds to list (a local emulator: far more),
// which with a first page of 1,000 is a wait before the first send, and
// with 100 then 1,000 a gap after the first 100 were answered.
const (
	firstPageSize = 100
	pageRamp      = 3
)

// rampPages lists growing pages: firstPageSize, then pageRamp times the
// last, never more than the query's PageSize.
type rampPages struct {
	store.Lister
	size int32 // the last page's; 0 before the first
}

func (l *rampPages) List(ctx context.Context, q store.ListQuery) (store.Page, error) {
	next := int32(firstPageSize)
	if l.size > 0 {
		next = l.size * pageRamp
	}
	if q.PageSize == 0 || q.PageSize > next {
		q.PageSize = next
	}
	l.size = q.PageSize
	return l.Lister.List(ctx, q)
}

// target is one connection to deliver to; idx is its place in Outcomes
// when the broadcast keeps one outcome per input id.
type target struct {
	idx   int
	id    string
	probe bool // unhealthy, cooldown passed: one attempt
}

// broadcast is one broadcast's shared state: producers (an existence
// checker, a listing reader) feed targets; the dispatcher takes a limiter
// slot per target and hands it to a worker; workers report outcomes
// through finish.
type broadcast struct {
	m       *Manager
	ctx     context.Context
	cid     string
	payload payload
	opts    BroadcastOptions
	indexed bool // res.Outcomes[i] per input id

	targets chan target

	mu     sync.Mutex
	res    *BroadcastResult
	done   int
	listed bool
	stale  []string // 410s waiting for a batch delete
}

// broadcast runs one broadcast: produce feeds b.targets (from its own
// goroutine) and closes it when done; produce must stop soon after ctx ends.
func (m *Manager) broadcast(ctx context.Context, message any, res *BroadcastResult, opts BroadcastOptions, produce func(*broadcast)) (BroadcastResult, error) {
	start := time.Now()
	indexed := res.Outcomes != nil
	fail := func(status Status, err error) (BroadcastResult, error) {
		for i := range res.Outcomes {
			res.Outcomes[i].Status = status
			res.Outcomes[i].Err = &SendError{ConnectionID: res.Outcomes[i].ConnectionID, Err: err}
		}
		res.Tally()
		res.Duration = time.Since(start)
		return *res, fmt.Errorf("connection: broadcast to %d connections not started: %w", res.Total, err)
	}
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return fail(StatusCancelled, err)
	}
	defer end()
	payload, err := Encode(message)
	if err != nil {
		return fail(StatusFailed, err)
	}
	b := &broadcast{
		m: m, ctx: ctx, cid: correlationFor(ctx), payload: m.newPayload(payload),
		opts: opts, indexed: indexed, res: res, listed: indexed,
		targets: make(chan target, 2*store.MaxListPageSize),
	}
	go produce(b)
	b.dispatch()

	if indexed {
		for i := range res.Outcomes {
			if o := &res.Outcomes[i]; o.Status == "" {
				o.Status = StatusCancelled
				o.Err = &SendError{ConnectionID: o.ConnectionID, Err: cancelCause(ctx)}
				res.Cancelled++
			}
		}
	}
	b.removeStale(b.stale)
	res.Duration = time.Since(start)
	m.m.broadcasts.Add(1)
	m.m.broadcastMsgs.Add(uint64(res.Sent))
	m.m.broadcastNanos.Add(int64(res.Duration))
	if m.obs != nil {
		m.obs.OnBroadcast(*res)
	}
	m.log.InfoContext(ctx, "connection broadcast", "correlation_id", b.cid, "total", res.Total, "sent", res.Sent,
		"not_found", res.NotFound, "stale", res.Stale, "skipped", res.Skipped, "failed", res.Failed,
		"cancelled", res.Cancelled, "duration_ms", ms(res.Duration), "limit", m.lim.snapshot().Limit)
	if ctx.Err() != nil {
		return *res, fmt.Errorf("connection: broadcast interrupted, %d of %d cancelled: %w", res.Cancelled, res.Total, cancelCause(ctx))
	}
	return *res, nil
}

// dispatch hands targets to workers through the limiter (see dispatch),
// after the health check; when ctx ends, the targets not yet dispatched are
// cancelled.
func (b *broadcast) dispatch() {
	m := b.m
	dispatch(b.ctx, m.lim, b.targets, func(t *target) bool {
		switch m.health.admit(t.id, m.clock.Now()) {
		case admitSkip:
			b.settle(*t, ErrUnhealthy)
			return false
		case admitProbe:
			t.probe = true
		}
		return true
	}, b.deliver, b.cancel)
}

func (b *broadcast) deliver(t target, tk ticket) {
	m := b.m
	attempts := m.cfg.MaxAttempts
	if t.probe {
		attempts = 1 // an unhealthy connection gets one request, not a retry storm
	}
	o := m.deliverAs(b.ctx, b.cid, "broadcast", t.id, b.payload, attempts, time.Now(), &tk)
	if o.Status == StatusCancelled && t.probe {
		m.health.release(t.id)
	}
	if batch := b.finish(t, o); batch != nil {
		b.removeStale(batch)
	}
}

// settle records a target's outcome decided before delivery.
func (b *broadcast) settle(t target, err error) {
	o := Outcome{ConnectionID: t.id, Status: StatusOf(err), Err: &SendError{ConnectionID: t.id, Err: err}}
	b.m.record(b.ctx, b.cid, "broadcast", o, 0, false)
	b.finish(t, o)
}

// cancel settles a target the broadcast will not reach (ctx ended).
func (b *broadcast) cancel(t target) { b.cancelWith(t, cancelCause(b.ctx)) }

// cancelWith settles a target that will not be sent, for reason (which
// must match context.Canceled or ErrShuttingDown: status cancelled).
func (b *broadcast) cancelWith(t target, reason error) {
	if t.probe {
		b.m.health.release(t.id)
	}
	b.finish(t, Outcome{ConnectionID: t.id, Status: StatusCancelled, Err: &SendError{ConnectionID: t.id, Err: reason}})
}

// errStreamFailed is why the ids read since the last full batch of a
// failed id stream are not sent.
var errStreamFailed = fmt.Errorf("%w: not sent: the id stream failed before this id's batch was checked", context.Canceled)

// finish records o as t's final outcome, reports progress, and returns a
// batch of stale ids to delete when one is full.
func (b *broadcast) finish(t target, o Outcome) (staleBatch []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.res
	r.Count(o.Status)
	if b.indexed {
		r.Outcomes[t.idx] = o
	} else if o.Status != StatusSent {
		r.Outcomes = append(r.Outcomes, o)
	}
	if o.Status == StatusStale && b.m.st != nil {
		b.stale = append(b.stale, o.ConnectionID)
		if len(b.stale) == store.BatchWriteLimit {
			staleBatch, b.stale = b.stale, nil
		}
	}
	b.done++
	if b.opts.Progress != nil {
		b.opts.Progress(BroadcastProgress{Done: b.done, Total: r.Total, Listed: b.listed})
	}
	if b.opts.OnOutcome != nil {
		b.opts.OnOutcome(o)
	}
	return staleBatch
}

// listingDone marks every target known and reports it, so the last
// progress call says so even when the last outcome came first.
func (b *broadcast) listingDone() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.listed = true
	if b.opts.Progress != nil {
		b.opts.Progress(BroadcastProgress{Done: b.done, Total: b.res.Total, Listed: true})
	}
}

// existenceCheckers is how many store existence checks (BatchGetItem of up
// to 100 ids) run at once for an explicit id list.
const existenceCheckers = 8

// checkChunks is the producer for explicit ids: it checks chunks of up to
// 100 targets against the store, existenceCheckers at a time, settles the
// ones with no record and feeds the others to the dispatcher. It returns
// once chunks is closed and drained (or ctx ended).
func (b *broadcast) checkChunks(chunks <-chan []target) {
	defer close(b.targets)
	n := existenceCheckers
	if b.m.st == nil {
		n = 1 // nothing to wait for: one feeder keeps the input order
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range chunks {
				b.checkChunk(c)
			}
		}()
	}
	wg.Wait()
}

func (b *broadcast) checkChunk(chunk []target) {
	m := b.m
	if b.ctx.Err() != nil {
		b.cancelUnset(chunk)
		return
	}
	var exists map[string]bool
	if m.st != nil {
		check := make([]string, 0, len(chunk))
		for _, t := range chunk {
			if plausibleID(t.id) {
				check = append(check, t.id)
			}
		}
		if len(check) > 0 {
			var err error
			if exists, err = m.st.Existing(b.ctx, check); err != nil {
				if b.ctx.Err() != nil {
					b.cancelUnset(chunk)
					return
				}
				for _, t := range chunk {
					b.settle(t, fmt.Errorf("%w: %w", ErrStoreUnavailable, err))
				}
				return
			}
		}
	}
	for i, t := range chunk {
		if !plausibleID(t.id) || (m.st != nil && !exists[t.id]) {
			b.settle(t, ErrConnectionNotFound)
			continue
		}
		select {
		case b.targets <- t:
		case <-b.ctx.Done():
			b.cancelUnset(chunk[i:])
			return
		}
	}
}

// cancelUnset cancels targets of a stream that were counted but will not
// be delivered; an indexed broadcast reports its unset outcomes at the end.
func (b *broadcast) cancelUnset(ts []target) {
	if b.indexed {
		return
	}
	for _, t := range ts {
		b.cancel(t)
	}
}

// readIDs reads a stream of ids into chunks of up to 100 distinct ones,
// counting each in Total; it returns the stream's error, if any.
func (b *broadcast) readIDs(ids iter.Seq2[string, error], chunks chan<- []target) error {
	seen := make(map[string]struct{})
	var chunk []target
	send := func() bool {
		if len(chunk) == 0 {
			return true
		}
		select {
		case chunks <- chunk:
			chunk = nil
			return true
		case <-b.ctx.Done():
			b.cancelUnset(chunk)
			return false
		}
	}
	for id, err := range ids {
		if err != nil {
			// The ids read since the last full batch are not sent: a
			// stream that failed (a bad line, a read error) may be
			// wrong from there on.
			for _, t := range chunk {
				b.cancelWith(t, errStreamFailed)
			}
			if b.ctx.Err() != nil {
				return nil
			}
			return err
		}
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		b.mu.Lock()
		b.res.Total++
		b.mu.Unlock()
		if chunk = append(chunk, target{id: id}); len(chunk) == store.BatchGetLimit && !send() {
			return nil
		}
	}
	if send() {
		b.listingDone()
	}
	return nil
}

// readRecords is the producer for a listing: each record becomes a target
// as it arrives. The listing's error, if any, goes to *listErr before the
// targets close (so the broadcast sees it once dispatching ends).
func (b *broadcast) readRecords(records iter.Seq2[store.Connection, error], listErr *error) {
	defer close(b.targets)
	for c, err := range records {
		if err != nil {
			if b.ctx.Err() == nil {
				*listErr = err
			}
			return
		}
		b.mu.Lock()
		b.res.Total++
		b.mu.Unlock()
		select {
		case b.targets <- target{id: c.ConnectionID}:
		case <-b.ctx.Done():
			b.cancel(target{id: c.ConnectionID})
			return
		}
	}
	b.listingDone()
}

// payload is a message ready to post: its bytes and their SHA-256 (hex),
// computed once for every target of a broadcast instead of per request.
type payload struct {
	data []byte
	hash string
	opt  func(*apigatewaymanagementapi.Options) // the hash, for the SDK path
}

func (m *Manager) newPayload(data []byte) payload {
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	if m.direct != nil {
		return payload{data: data, hash: hash} // the direct path signs with hash itself
	}
	mw := middleware.FinalizeMiddlewareFunc("streamerPayloadHash", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		return next.HandleFinalize(v4.SetPayloadHash(ctx, hash), in)
	})
	add := func(s *middleware.Stack) error {
		return s.Finalize.Insert(mw, (*v4.ComputePayloadSHA256)(nil).ID(), middleware.Before)
	}
	return payload{data: data, hash: hash, opt: func(o *apigatewaymanagementapi.Options) { o.APIOptions = append(o.APIOptions, add) }}
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
		r.Count(o.Status)
	}
}

// Count adds one outcome of status s to the per-status counts (a status
// that is not final counts as cancelled).
func (r *BroadcastResult) Count(s Status) {
	switch s {
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

// removeStale deletes 410'd records (at most one batch of 25) while ctx
// lives, and decrements the active connection counter by the batch's size
// once its DeleteMany succeeded. BatchWriteItem does not say which items
// existed; these did when the broadcast read or checked them, so the count
// is exact unless a $disconnect deleted one of them (and decremented the
// counter itself) in the milliseconds between: that rare race reads one
// low, the opposite of the drift it prevents (every stale record removed
// here would otherwise be counted as active until TTL, since its
// $disconnect, if it ever comes, finds nothing to delete). A failed
// DeleteMany leaves the counter alone.
func (b *broadcast) removeStale(ids []string) {
	m := b.m
	if m.st == nil || len(ids) == 0 {
		return
	}
	if b.ctx.Err() != nil {
		m.log.InfoContext(b.ctx, "broadcast interrupted before removing stale records; their TTL will", "correlation_id", b.cid, "remaining", len(ids))
		return
	}
	if err := m.removeMany(b.ctx, b.cid, ids); err != nil {
		m.log.WarnContext(b.ctx, "could not remove stale connection records; their TTL will", "correlation_id", b.cid, "count", len(ids), "error", err)
	}
}
