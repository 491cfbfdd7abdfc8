package connection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pay-theory/streamer/pkg/store"
)

// ReconcileOptions tune one Reconcile pass. The zero value checks the
// whole table and removes its zombie records.
type ReconcileOptions struct {
	// Query selects the records: a tenant's, a user's, or (neither) the
	// whole table. Query.Cursor resumes a pass: pass the Cursor a
	// previous, unfinished Reconcile returned.
	Query store.ListQuery
	// DryRun checks every record but removes none (Zombies lists what
	// would go).
	DryRun bool
	// MinAge leaves alone the records connected less than MinAge ago
	// (counted in Recent): API Gateway answers 410 for a connection still
	// in its $connect, whose record the $connect handler has already
	// written, so checking it could delete a live client's record. 0 means
	// DefaultReconcileMinAge; ReconcileEveryRecord (any negative value)
	// checks every record however recent (for tables no $connect is
	// writing to, and tests). A record without a connected_at is checked.
	MinAge time.Duration
	// Progress, when non-nil, is called serially when a page of records
	// is taken up and after each record is checked; keep it fast.
	Progress func(ReconcileProgress)
}

// DefaultReconcileMinAge is ReconcileOptions.MinAge's default: API Gateway
// gives a $connect integration at most 29 s, and the rest is room for the
// clocks of the handler and the reconciler to differ.
const DefaultReconcileMinAge = time.Minute

// ReconcileEveryRecord as ReconcileOptions.MinAge checks records however
// recently they connected.
const ReconcileEveryRecord time.Duration = -1

// ReconcileProgress is how far a pass is: Listed records were taken up,
// of which Recent were left alone (MinAge) and Checked were asked about.
type ReconcileProgress struct {
	Listed, Recent, Checked, Live, Zombies, Errors int
}

// ReconcileResult summarises a Reconcile pass.
type ReconcileResult struct {
	// Checked records were asked about at the gateway; Live answered,
	// Zombies were gone (410), Errors could not be told (5xx, 429 past
	// the retries, timeouts, an open breaker): those are never removed.
	Checked, Live, Errors int
	// Recent records connected less than ReconcileOptions.MinAge ago and
	// were not asked about; a later pass checks them.
	Recent int
	// Zombies are the ids of the records whose connection is gone:
	// removed (Removed of them), or with DryRun, to be removed.
	Zombies []string
	// Removed counts the zombie records deleted (ActiveConnections was
	// decremented by as many).
	Removed int
	// Failures samples the records that could not be checked (at most
	// 20, with why).
	Failures []Outcome
	// Complete is true when the pass reached the end of the query.
	// Otherwise ctx ended, the listing or a removal failed first, and
	// Cursor (given back as Query.Cursor) resumes after the last page
	// whose records, and all before them, were checked and their zombies
	// removed ("" resumes from the start). Pages overlap, so zombies of a
	// later page may be removed (and counted in Removed) already; a
	// resumed pass does not list them again.
	Complete bool
	Cursor   string
	Duration time.Duration
}

// maxReconcileFailures bounds ReconcileResult.Failures.
const maxReconcileFailures = 20

// Reconcile repairs what a lost $disconnect leaves behind. API Gateway
// delivers $disconnect on a best-effort basis, so a record can outlive its
// connection until its TTL: every broadcast then pays a 410 for it,
// listings show a client that is gone and the ActiveConnections gauge
// drifts up. Reconcile walks the records q selects, page by page, and asks
// the gateway about each one (GetConnection, through the Manager's
// concurrency limit, breaker and retry rules, as a broadcast's sends are).
// The records whose connection answered 410 Gone are deleted in batches of
// 25 and ActiveConnections is decremented by the number deleted (exact
// unless a late $disconnect removes one of them in the same moment: see
// BroadcastWithProgress on the same race).
// Everything else is left alone: a live connection, and any answer that
// does not prove the connection gone (5xx, 429, a timeout, an open
// breaker) is counted in Errors, never deleted. Records younger than
// opts.MinAge are not asked about at all: a connection still in its
// $connect answers 410 too.
//
// When ctx ends first the pass stops, returns what it did with a Cursor to
// resume from, and an error matching ctx's. A listing failure does the same
// with the store's error.
func (m *Manager) Reconcile(ctx context.Context, lister store.Lister, opts ReconcileOptions) (ReconcileResult, error) {
	start := time.Now()
	res := ReconcileResult{Cursor: opts.Query.Cursor}
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return res, fmt.Errorf("connection: reconcile not started: %w", err)
	}
	defer end()
	if m.st == nil && !opts.DryRun {
		return res, errors.New("connection: reconcile needs a Store to remove records (or DryRun)")
	}
	if opts.MinAge == 0 {
		opts.MinAge = DefaultReconcileMinAge
	}
	// A check needs a record's id and connected_at (MinAge), nothing more.
	opts.Query.IDsOnly = true
	r := &reconcile{m: m, ctx: ctx, cid: correlationFor(ctx), opts: opts, res: &res}
	// As a broadcast's listing: growing pages, so the checks start after
	// one short query rather than after a page of a thousand.
	err = r.run(&rampPages{Lister: lister})
	res.Duration = time.Since(start)
	m.log.InfoContext(ctx, "connection reconcile", "correlation_id", r.cid, "checked", res.Checked, "recent", res.Recent, "live", res.Live,
		"zombies", len(res.Zombies), "removed", res.Removed, "errors", res.Errors, "dry_run", opts.DryRun,
		"complete", res.Complete, "duration_ms", ms(res.Duration))
	return res, err
}

type reconcile struct {
	m    *Manager
	ctx  context.Context // the caller's (and Shutdown's)
	cid  string
	opts ReconcileOptions
	// stop ends the pass early when a removal failed: no more checks start.
	stop context.CancelCauseFunc

	mu      sync.Mutex
	res     *ReconcileResult
	listed  int
	pending []pageRecord // confirmed zombies not yet in a removal batch
	pages   []*pageState // pages not yet complete, in listing order
	delErr  error
}

// pageState tracks one listed page until every record on it is checked
// and every zombie on it removed: then (and once the pages before it are
// done too) the pass's cursor moves past it.
type pageState struct {
	next    string // the cursor after this page
	checks  int    // records not yet checked
	zombies int    // zombies found on it and not yet removed
}

func (p *pageState) done() bool { return p.checks == 0 && p.zombies == 0 }

// pageRecord is one record of a page: to ask about, or a zombie to remove.
type pageRecord struct {
	id   string
	page *pageState
}

// pageResult is one page listed ahead of the checks.
type pageResult struct {
	page store.Page
	err  error
}

// run checks the records page after page with no pause between pages:
// the next pages are listed while the checks run, and the checks of one
// page overlap the next one's, so the limit stays full across pages. The
// cursor moves past a page once everything before it and on it is done.
func (r *reconcile) run(lister store.Lister) error {
	ctx, stop := context.WithCancelCause(r.ctx)
	defer stop(nil)
	r.stop = stop
	q := r.opts.Query
	pages := make(chan pageResult, 1)
	lctx, stopListing := context.WithCancel(ctx)
	defer func() {
		stopListing()
		for range pages { // the lister goroutine ends before Reconcile returns
		}
	}()
	go func() {
		defer close(pages)
		for {
			p, err := lister.List(lctx, q)
			select {
			case pages <- pageResult{p, err}:
			case <-lctx.Done():
				return
			}
			if err != nil || p.Next == "" {
				return
			}
			q.Cursor = p.Next
		}
	}()

	in := make(chan pageRecord, store.MaxListPageSize)
	var skipped int
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		dispatch(ctx, r.m.lim, in, nil, func(c pageRecord, tk ticket) { r.check(ctx, c, tk) }, func(pageRecord) { skipped++ })
	}()
	var listErr error
	listedAll := false // every page was listed and fed
	for pr := range pages {
		if pr.err != nil {
			listErr = pr.err
			break
		}
		if !r.feed(ctx, in, pr.page) {
			break
		}
		listedAll = pr.page.Next == ""
	}
	close(in)
	<-checked
	r.flush() // the last zombies, once every check has finished

	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case listedAll && skipped == 0 && len(r.pages) == 0 && r.delErr == nil:
		// Every record checked and every zombie removed: complete, even
		// when ctx ended in the last moment.
	case r.delErr != nil:
		return fmt.Errorf("connection: reconcile stopped: removing zombie records failed: %w", r.delErr)
	case r.ctx.Err() != nil:
		return fmt.Errorf("connection: reconcile interrupted: %w", cancelCause(r.ctx))
	case listErr != nil:
		return fmt.Errorf("connection: reconcile stopped: listing records failed: %w", listErr)
	default:
		return fmt.Errorf("connection: reconcile interrupted: %w", cancelCause(ctx))
	}
	r.res.Complete = true
	return nil
}

// feed queues one page's records for checking (records younger than
// MinAge are counted, not checked); false means the pass is stopping.
func (r *reconcile) feed(ctx context.Context, in chan<- pageRecord, p store.Page) bool {
	now := r.m.clock.Now()
	ps := &pageState{next: p.Next}
	var todo []string
	for _, c := range p.Connections {
		if r.opts.MinAge > 0 && !c.ConnectedAt.IsZero() && now.Sub(c.ConnectedAt) < r.opts.MinAge {
			continue
		}
		todo = append(todo, c.ConnectionID)
	}
	ps.checks = len(todo)
	r.mu.Lock()
	r.listed += len(p.Connections)
	r.res.Recent += len(p.Connections) - len(todo)
	r.pages = append(r.pages, ps)
	r.advance()
	r.progress()
	r.mu.Unlock()
	for _, id := range todo {
		select {
		case in <- pageRecord{id, ps}:
		case <-ctx.Done():
			return false
		}
	}
	return ctx.Err() == nil
}

// advance moves the cursor past the leading pages that are done; r.mu is
// held.
func (r *reconcile) advance() {
	for len(r.pages) > 0 && r.pages[0].done() {
		r.res.Cursor = r.pages[0].next
		r.pages = r.pages[1:]
	}
}

// check asks the gateway about one connection.
func (r *reconcile) check(ctx context.Context, c pageRecord, tk ticket) {
	m := r.m
	id := c.id
	requests, ar := m.attempt(ctx, r.cid, "get", id, m.cfg.MaxAttempts, &tk, func(actx context.Context) error { return m.getConnection(actx, id) })
	if isCancelled(ar.kind) {
		return // not checked: the cursor stays before this page
	}
	var batch []pageRecord
	r.mu.Lock()
	res := r.res
	res.Checked++
	switch {
	case ar.kind == nil:
		res.Live++
	case ar.kind == ErrConnectionStale:
		res.Zombies = append(res.Zombies, id)
		if !r.opts.DryRun {
			c.page.zombies++
			if r.pending = append(r.pending, c); len(r.pending) == store.BatchWriteLimit {
				batch, r.pending = r.pending, nil
			}
		}
	default:
		res.Errors++
		if len(res.Failures) < maxReconcileFailures {
			res.Failures = append(res.Failures, Outcome{ConnectionID: id, Status: StatusOf(ar.kind), Attempts: requests,
				Err: &SendError{ConnectionID: id, Attempts: requests, Err: ar.kind, StatusCode: ar.status, Code: ar.code, Op: "get"}})
		}
	}
	c.page.checks--
	if c.page.checks == 0 && c.page.zombies > 0 && batch == nil {
		// The page waits only for its zombies' removal: remove what is
		// pending now rather than wait for a batch of 25.
		batch, r.pending = r.pending, nil
	}
	r.advance()
	r.progress()
	r.mu.Unlock()
	r.remove(batch)
}

// progress reports how far the pass is; r.mu is held.
func (r *reconcile) progress() {
	if r.opts.Progress == nil {
		return
	}
	res := r.res
	r.opts.Progress(ReconcileProgress{Listed: r.listed, Recent: res.Recent, Checked: res.Checked, Live: res.Live,
		Zombies: len(res.Zombies), Errors: res.Errors})
}

// flush removes the zombies still pending.
func (r *reconcile) flush() {
	r.mu.Lock()
	batch := r.pending
	r.pending = nil
	r.mu.Unlock()
	r.remove(batch)
}

// remove deletes one batch of zombie records and decrements the active
// counter by its size once the delete succeeded; then their pages may be
// done. A batch once started is finished even if the pass's context ends
// meanwhile (bounded by the attempt timeout): a delete cut off in flight
// may still have been applied, and then neither Removed nor the counter
// would know of it. A failed removal stops the pass.
func (r *reconcile) remove(batch []pageRecord) {
	if len(batch) == 0 {
		return
	}
	r.mu.Lock()
	failed := r.delErr != nil
	r.mu.Unlock()
	if failed || r.ctx.Err() != nil {
		return
	}
	ids := make([]string, len(batch))
	for i, z := range batch {
		ids[i] = z.id
	}
	err := r.m.removeMany(r.ctx, r.cid, ids)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.delErr = errors.Join(r.delErr, err)
		r.stop(err)
		return
	}
	r.res.Removed += len(ids)
	for _, z := range batch {
		z.page.zombies--
	}
	r.advance()
}
