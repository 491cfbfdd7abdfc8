// Package reaper is the scheduled function that removes zombie records:
// the records of connections whose $disconnect API Gateway never delivered
// (it is best-effort), which would otherwise cost every broadcast a 410,
// show in listings and push the ActiveConnections gauge up until their
// 24 h TTL. Each invocation runs connection.Manager.Reconcile over the
// whole table within its remaining time and leaves the cursor in a
// checkpoint (an internal item of the table, store.Checkpoint), so the
// next invocation resumes where it stopped and a table of millions is
// covered over several runs. The Lambda entry point is ./bootstrap.
package reaper

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/store"
)

// Operation is the "operation" log field of the reaper's lines.
const Operation = "reap"

// Reconciler is the part of connection.Manager the reaper uses.
type Reconciler interface {
	Reconcile(ctx context.Context, lister store.Lister, opts connection.ReconcileOptions) (connection.ReconcileResult, error)
}

// Checkpoints keeps the cursor between invocations (*store.Dynamo).
type Checkpoints interface {
	AcquireCheckpoint(ctx context.Context, name, owner string, until time.Time) (store.Checkpoint, error)
	SaveCheckpoint(ctx context.Context, name, owner, cursor string) error
}

// Metrics receives EMF metric sets (*observability.EMF).
type Metrics = observability.Emitter

// ErrMissingDependency is returned by New when a required dependency is nil.
var ErrMissingDependency = errors.New("reaper: missing dependency")

// Deps are the handler's collaborators.
type Deps struct {
	Reconciler  Reconciler   // required (*connection.Manager)
	Lister      store.Lister // required: the table (*store.Dynamo)
	Checkpoints Checkpoints  // required (*store.Dynamo)
	Logger      *slog.Logger // nil => discard
	Metrics     Metrics      // nil => none
	Tracer      trace.Tracer // nil => no spans
	Now         func() time.Time
}

// Defaults of Config.
const (
	// DefaultMargin is kept back from the invocation's deadline to stop
	// the pass, save the checkpoint and write the summary.
	DefaultMargin = 2 * time.Second
	// DefaultMaxDuration bounds a run whose context has no deadline.
	DefaultMaxDuration = 5 * time.Minute
)

// Config tunes the handler. Every zero value means the documented default.
type Config struct {
	// Margin is kept back from the invocation's deadline; 0 =>
	// DefaultMargin. When less than twice the margin remains, a run keeps
	// back half of what remains instead.
	Margin time.Duration
	// MaxDuration bounds a run when ctx has no deadline (a direct call);
	// 0 => DefaultMaxDuration. Under Lambda the deadline is the function's
	// timeout.
	MaxDuration time.Duration
	// PageSize is how many records one listing request reads; 0 =>
	// store.DefaultListPageSize. A page is the unit a run resumes from.
	PageSize int32
	// MinAge is passed to Reconcile: records younger are left for a later
	// run; 0 => connection.DefaultReconcileMinAge.
	MinAge time.Duration
}

// Result is what one invocation did (its response payload; a schedule
// discards it, a manual `aws lambda invoke` prints it).
type Result struct {
	// Skipped: another run holds the checkpoint's lease; nothing was done.
	Skipped bool `json:"skipped"`
	// Resumed: the run started from the cursor a previous run saved.
	Resumed bool `json:"resumed"`
	// Complete: the run reached the end of the table (the next starts a
	// new pass); otherwise the next run resumes from the saved cursor.
	Complete bool `json:"complete"`
	Checked  int  `json:"checked"`
	Live     int  `json:"live"`
	Recent   int  `json:"recent"`
	Removed  int  `json:"removed"`
	// Errors is the ReaperErrors metric of the run: records that could
	// not be checked, plus one when the run stopped on a failure.
	Errors     int     `json:"errors"`
	DurationMS float64 `json:"duration_ms"`
}

// Summary line fields (besides the standard ones).
const (
	SummaryMessage = "reaper run"
	KeyChecked     = "checked"
	KeyLive        = "live"
	KeyRecent      = "recent"
	KeyRemoved     = "removed"
	KeyErrors      = "errors"
	KeyComplete    = "complete"
	KeyResumed     = "resumed"
	KeyStopped     = "stopped" // why the run ended early: "deadline" or "failure"
)

// Handler handles one scheduled invocation.
type Handler struct {
	d       Deps
	cfg     Config
	invoked atomic.Bool
}

// New returns a Handler.
func New(d Deps, cfg Config) (*Handler, error) {
	var missing []error
	if d.Reconciler == nil {
		missing = append(missing, errors.New("reaper: Deps.Reconciler is nil"))
	}
	if d.Lister == nil {
		missing = append(missing, errors.New("reaper: Deps.Lister is nil"))
	}
	if d.Checkpoints == nil {
		missing = append(missing, errors.New("reaper: Deps.Checkpoints is nil"))
	}
	if len(missing) > 0 {
		return nil, errors.Join(append([]error{ErrMissingDependency}, missing...)...)
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if cfg.Margin <= 0 {
		cfg.Margin = DefaultMargin
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = DefaultMaxDuration
	}
	return &Handler{d: d, cfg: cfg}, nil
}

// Handle runs one slice of the pass: take the checkpoint's lease, reconcile
// from its cursor until the pass ends or the time is up, save where it
// stopped. It returns an error only when the run failed (the listing, a
// removal or the checkpoint), so Lambda counts it and retries; records that
// could not be checked are never removed and only counted (ReaperErrors).
func (h *Handler) Handle(ctx context.Context, ev events.EventBridgeEvent) (Result, error) {
	ctx, inv := observability.Begin(ctx, observability.BeginOptions{
		Operation: Operation, ColdStart: !h.invoked.Swap(true), Now: h.d.Now,
	})
	ctx, span := observability.StartSpan(ctx, h.d.Tracer, "reaper", "",
		attribute.String("event.source", ev.Source), observability.AttrColdStart.Bool(inv.Fields().ColdStart))
	defer span.End()
	log := h.d.Logger

	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = h.d.Now().Add(h.cfg.MaxDuration)
	}
	margin := h.cfg.Margin
	if remaining := deadline.Sub(h.d.Now()); remaining < 2*margin {
		margin = remaining / 2
	}
	owner := runID(ctx)

	var res Result
	fail := func(msg string, err error) (Result, error) {
		res.Errors++
		res.DurationMS = float64(inv.Elapsed().Microseconds()) / 1000
		log.ErrorContext(ctx, msg, observability.ErrAttr(err))
		span.RecordError(err)
		span.SetStatus(codes.Error, msg)
		h.emit(ctx, res)
		return res, err
	}

	cp, err := h.d.Checkpoints.AcquireCheckpoint(ctx, contract.ReaperCheckpoint, owner, deadline)
	switch {
	case errors.Is(err, store.ErrLeaseHeld):
		// The schedule fired while a longer run still works (or a manual
		// invocation overlaps one): two passes at once would remove the
		// same records twice and decrement the counter twice.
		res.Skipped = true
		log.InfoContext(ctx, "reaper run skipped: another run holds the checkpoint", slog.Bool("skipped", true))
		return res, nil
	case err != nil:
		return fail("reaper run failed: could not take the checkpoint", err)
	}
	res.Resumed = cp.Cursor != ""

	// The Manager's own line carries the invocation's correlation id.
	rctx, cancel := context.WithDeadline(connection.WithCorrelationID(ctx, inv.Fields().CorrelationID), deadline.Add(-margin))
	rr, rerr := h.reconcile(rctx, cp.Cursor)
	timeUp := rctx.Err() != nil && ctx.Err() == nil
	cancel()
	next := rr.Cursor
	if rr.Complete {
		next = "" // the next run starts a new pass
	}
	res.Complete, res.Checked, res.Live, res.Recent, res.Removed, res.Errors = rr.Complete, rr.Checked, rr.Live, rr.Recent, rr.Removed, rr.Errors
	stopped := ""
	switch {
	case rerr == nil:
	case timeUp:
		stopped = "deadline" // the time was up: the next run resumes
		if !rr.Complete && next == cp.Cursor {
			log.WarnContext(ctx, "reaper run made no progress: no page was finished before the deadline; give the function a longer timeout",
				slog.Duration("margin", margin))
		}
	default:
		stopped = "failure"
		res.Errors++
	}

	// Saved with ctx, not rctx: the margin is for this.
	if err := h.d.Checkpoints.SaveCheckpoint(ctx, contract.ReaperCheckpoint, owner, next); err != nil {
		if rerr == nil || stopped == "deadline" {
			rerr = err
		} else {
			rerr = errors.Join(rerr, err)
		}
		if stopped != "failure" {
			res.Errors++
		}
		stopped = "failure"
		log.ErrorContext(ctx, "reaper checkpoint not saved: the next run repeats this one's work", observability.ErrAttr(err))
	}
	res.DurationMS = float64(inv.Elapsed().Microseconds()) / 1000
	attrs := []any{
		slog.Int(KeyChecked, res.Checked), slog.Int(KeyLive, res.Live), slog.Int(KeyRecent, res.Recent),
		slog.Int(KeyRemoved, res.Removed), slog.Int(KeyErrors, res.Errors),
		slog.Bool(KeyComplete, res.Complete), slog.Bool(KeyResumed, res.Resumed),
	}
	for _, f := range rr.Failures {
		log.WarnContext(ctx, "reaper could not check a connection; its record is kept",
			slog.String(observability.KeyConnectionID, f.ConnectionID), slog.String("status", string(f.Status)), observability.ErrAttr(f.Err))
	}
	span.SetAttributes(attribute.Int("reaper.checked", res.Checked), attribute.Int("reaper.removed", res.Removed),
		attribute.Int("reaper.errors", res.Errors), attribute.Bool("reaper.complete", res.Complete))
	h.emit(ctx, res)
	if stopped == "failure" {
		attrs = append(attrs, slog.String(KeyStopped, stopped), observability.ErrAttr(rerr))
		log.ErrorContext(ctx, SummaryMessage, attrs...)
		span.RecordError(rerr)
		span.SetStatus(codes.Error, "reaper run failed")
		return res, rerr
	}
	if stopped != "" {
		attrs = append(attrs, slog.String(KeyStopped, stopped))
	}
	log.InfoContext(ctx, SummaryMessage, attrs...)
	return res, nil
}

// reconcile runs the pass from cursor. A cursor the store refuses (a
// corrupted checkpoint, or one from another table) is dropped and the pass
// starts over.
func (h *Handler) reconcile(ctx context.Context, cursor string) (connection.ReconcileResult, error) {
	opts := connection.ReconcileOptions{Query: store.ListQuery{PageSize: h.cfg.PageSize, Cursor: cursor}, MinAge: h.cfg.MinAge}
	rr, err := h.d.Reconciler.Reconcile(ctx, h.d.Lister, opts)
	if cursor != "" && errors.Is(err, store.ErrInvalid) && rr.Checked == 0 {
		h.d.Logger.WarnContext(ctx, "reaper checkpoint cursor refused by the store: starting the pass over", observability.ErrAttr(err))
		opts.Query.Cursor = ""
		rr, err = h.d.Reconciler.Reconcile(ctx, h.d.Lister, opts)
	}
	return rr, err
}

// emit writes the run's metrics, zeros included, so the dashboard shows
// the reaper ran.
func (h *Handler) emit(ctx context.Context, res Result) {
	observability.Emit(ctx, h.d.Metrics, h.d.Logger, []observability.Metric{
		observability.Count(contract.MetricZombieRecordsRemoved, float64(res.Removed)),
		observability.Count(contract.MetricReaperErrors, float64(res.Errors)),
	}, map[string]any{"operation": Operation})
}

// runID names this invocation as the lease's owner: the Lambda request id,
// else a random one.
func runID(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		return lc.AwsRequestID
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "run-" + hex.EncodeToString(b)
}
