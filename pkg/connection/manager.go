package connection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/sony/gobreaker/v2"

	"github.com/pay-theory/streamer/pkg/store"
)

// Store is the part of the connection store the Manager uses (a subset of
// store.Store; *store.Dynamo implements it).
type Store interface {
	// Get returns store.ErrNotFound when the record is absent.
	Get(ctx context.Context, connectionID string) (store.Connection, error)
	// Existing returns the subset of ids with an unexpired record.
	Existing(ctx context.Context, connectionIDs []string) (map[string]bool, error)
	// Delete removes one record; found is false (err nil) when there was
	// nothing to delete, so the active counter is adjusted exactly once
	// whoever (the Manager or $disconnect) removes the record first.
	Delete(ctx context.Context, connectionID string) (deleted store.Connection, found bool, err error)
	// DeleteMany removes records (stale connections found by a broadcast).
	DeleteMany(ctx context.Context, connectionIDs []string) error
	// AddSent adds messages_sent counts; gone records are skipped.
	AddSent(ctx context.Context, counts map[string]int64) error
	// AddActive adjusts the table-wide active connection counter that
	// $connect increments and $disconnect decrements. The Manager
	// decrements it for the records it removes itself (410 Gone,
	// Disconnect): $disconnect then finds nothing to delete and does not.
	AddActive(ctx context.Context, delta int64) (int64, error)
}

// Sender is what a message router needs; *Manager and
// connectiontest.Recorder implement it.
type Sender interface {
	Send(ctx context.Context, connectionID string, message any) error
	Broadcast(ctx context.Context, connectionIDs []string, message any) (BroadcastResult, error)
	IsActive(ctx context.Context, connectionID string) bool
}

var _ Sender = (*Manager)(nil)

// Status is the fate of one connection in a delivery.
type Status string

// Statuses of an Outcome.
const (
	StatusSent      Status = "sent"
	StatusNotFound  Status = "not_found" // no unexpired record: nothing posted
	StatusStale     Status = "stale"     // 410 Gone: record removed
	StatusSkipped   Status = "skipped"   // unhealthy, cooling down: nothing posted
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled" // ctx cancelled or Shutdown before delivery finished
)

// Outcome is the result for one connection id.
type Outcome struct {
	ConnectionID string
	Status       Status
	// Attempts is the number of HTTP requests made for this id.
	Attempts int
	// Err is nil when sent; otherwise a *SendError.
	Err error
}

// Manager delivers messages to WebSocket connections through the API
// Gateway Management API, with existence checks against the store, retries,
// a circuit breaker, per-connection health and metrics. It is safe for
// concurrent use; create one per endpoint at cold start and Shutdown it.
type Manager struct {
	api     ManagementAPI
	st      Store
	cfg     Config
	log     *slog.Logger
	clock   Clock
	obs     Observer
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	lim     *limiter
	direct  *directPoster // NewManagementClient's fast PostToConnection, when api is one
	health  *health
	m       metrics

	mu         sync.Mutex
	closing    bool
	inflight   int64
	drained    chan struct{}
	closed     chan struct{}
	hardCtx    context.Context
	hardCancel context.CancelCauseFunc

	sentMu    sync.Mutex
	pending   map[string]int64
	flushMu   sync.Mutex
	flushStop chan struct{}
	flushDone chan struct{}

	// grace is how long Shutdown waits, after its deadline and the
	// cancellation, for operations to return before abandoning them.
	grace time.Duration
}

// shutdownGrace bounds how long Shutdown waits past its deadline for
// operations stuck in injected code (a Store, Observer or progress callback)
// that ignores ctx.
const shutdownGrace = time.Second

// New returns a Manager. st may be nil: no existence checks, no stale
// cleanup, no messages_sent counts (the CLI's raw mode). The Manager starts
// one goroutine (the messages_sent flusher) that Shutdown stops.
func New(api ManagementAPI, st Store, cfg Config) (*Manager, error) {
	if api == nil {
		return nil, errors.New("connection: New needs a ManagementAPI (use NewManagementClient(endpoint, ClientOptions{}))")
	}
	cfg = cfg.withDefaults()
	m := &Manager{
		api:       api,
		st:        st,
		cfg:       cfg,
		log:       cfg.Logger,
		clock:     cfg.Clock,
		obs:       cfg.Observer,
		lim:       newLimiter(cfg.Limit, cfg.Workers, cfg.Clock),
		health:    newHealth(cfg.Health),
		drained:   make(chan struct{}),
		closed:    make(chan struct{}),
		pending:   make(map[string]int64),
		flushStop: make(chan struct{}),
		flushDone: make(chan struct{}),
		grace:     shutdownGrace,
	}
	m.hardCtx, m.hardCancel = context.WithCancelCause(context.Background())
	if c, ok := api.(*Client); ok {
		m.direct = c.direct
	}
	if !cfg.Breaker.Disabled {
		m.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        "apigateway-management",
			MaxRequests: cfg.Breaker.HalfOpenRequests,
			Timeout:     cfg.Breaker.OpenTimeout,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.ConsecutiveFailures >= cfg.Breaker.ConsecutiveFailures
			},
			IsSuccessful: func(err error) bool { return err == nil || kindOf(err).breaker != breakerFailure },
			IsExcluded:   func(err error) bool { return err != nil && kindOf(err).breaker == breakerExcluded },
			OnStateChange: func(_ string, from, to gobreaker.State) {
				m.log.Warn("circuit breaker state change", "from", from.String(), "to", to.String())
				if m.obs != nil {
					m.obs.OnBreakerChange(from.String(), to.String())
				}
			},
		})
	}
	if st != nil && cfg.FlushInterval > 0 {
		go m.flushLoop()
	} else {
		close(m.flushDone)
	}
	return m, nil
}

// begin registers an operation unless shutting down; the returned ctx is
// also cancelled (cause ErrShuttingDown) when a Shutdown's deadline passes.
func (m *Manager) begin(ctx context.Context) (context.Context, func(), error) {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return nil, nil, ErrShuttingDown
	}
	m.inflight++
	m.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(m.hardCtx, func() { cancel(ErrShuttingDown) })
	return ctx, func() {
		stop()
		cancel(nil)
		m.mu.Lock()
		m.inflight--
		if m.closing && m.inflight == 0 {
			close(m.drained)
		}
		m.mu.Unlock()
	}, nil
}

// Encode returns the wire payload of message, as Send and Broadcast post it:
// []byte, json.RawMessage and string pass through unchanged (they are
// assumed to be the wire bytes already), anything else is JSON. A nil or
// unmarshalable message is ErrInvalidMessage; over MaxMessageBytes,
// ErrPayloadTooLarge. connectiontest.Recorder encodes with it too.
func Encode(message any) ([]byte, error) {
	var b []byte
	switch v := message.(type) {
	case nil:
		return nil, fmt.Errorf("%w: message is nil", ErrInvalidMessage)
	case []byte:
		b = v
	case json.RawMessage:
		b = v
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
		}
	}
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrPayloadTooLarge, len(b))
	}
	return b, nil
}

// Send delivers message to one connection: it checks the store, posts with
// retries, removes the record on 410, and returns nil or a *SendError
// (errors.Is against ErrConnectionNotFound, ErrConnectionStale, ...).
// Send never skips an unhealthy connection (the caller asked for this one);
// its outcome does update the connection's health.
func (m *Manager) Send(ctx context.Context, connectionID string, message any) error {
	start := time.Now()
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return &SendError{ConnectionID: connectionID, Err: err}
	}
	defer end()
	cid := correlationFor(ctx)
	payload, err := Encode(message)
	if err != nil {
		o := Outcome{ConnectionID: connectionID, Status: StatusFailed, Err: &SendError{ConnectionID: connectionID, Err: err}}
		m.record(ctx, cid, "send", o, time.Since(start), false)
		return o.Err
	}
	if o, ok := m.checkExists(ctx, connectionID); !ok {
		m.record(ctx, cid, "send", o, time.Since(start), false)
		return o.Err
	}
	o := m.deliverAs(ctx, cid, "send", connectionID, m.newPayload(payload), m.cfg.MaxAttempts, start, nil)
	if o.Status == StatusStale {
		m.removeStale(ctx, cid, connectionID)
	}
	return o.Err
}

// removeStale removes the record of a connection the API answered 410 for;
// a failure is logged, not returned (the record's TTL expires it anyway).
func (m *Manager) removeStale(ctx context.Context, cid, id string) {
	if m.st == nil {
		return
	}
	if _, err := m.remove(ctx, cid, id); err != nil {
		m.log.WarnContext(ctx, "could not remove stale connection record; its TTL will", "correlation_id", cid, "connection_id", id, "error", err)
	}
}

// remove deletes one record and, when it was there, decrements the active
// connection counter ($disconnect will then find nothing and not decrement
// it). A counter failure is logged, never returned: the record is gone.
func (m *Manager) remove(ctx context.Context, cid, id string) (found bool, err error) {
	_, found, err = m.st.Delete(ctx, id)
	if err != nil || !found {
		return found, err
	}
	m.decActive(ctx, cid, 1)
	return true, nil
}

// removeMany deletes records of connections known to be gone (one batch
// of at most 25) and decrements the active counter by as many once the
// delete succeeded. Once started it finishes even if ctx ends meanwhile
// (bounded by the attempt timeout): a delete cut off in flight may still
// have been applied, and then the counter would never learn of it.
func (m *Manager) removeMany(ctx context.Context, cid string, ids []string) error {
	timeout := m.cfg.AttemptTimeout
	if timeout <= 0 {
		timeout = DefaultAttemptTimeout
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := m.st.DeleteMany(ctx, ids); err != nil {
		return err
	}
	m.decActive(ctx, cid, len(ids))
	return nil
}

// decActive subtracts n from the active connection counter, logging failures.
func (m *Manager) decActive(ctx context.Context, cid string, n int) {
	if n <= 0 {
		return
	}
	if _, err := m.st.AddActive(ctx, -int64(n)); err != nil {
		m.log.WarnContext(ctx, "could not decrement the active connection counter; it reads high until corrected",
			"correlation_id", cid, "removed", n, "error", err)
	}
}

// plausibleID rejects ids no store record can have (the store's own key
// rules), so one bad id cannot fail a whole existence batch.
func plausibleID(id string) bool { return store.ValidateConnectionID(id) == nil }

// checkExists looks the record up; ok false means o is final.
func (m *Manager) checkExists(ctx context.Context, id string) (o Outcome, ok bool) {
	o.ConnectionID = id
	if !plausibleID(id) {
		o.Status, o.Err = StatusNotFound, &SendError{ConnectionID: id, Err: fmt.Errorf("%w: malformed connection id", ErrConnectionNotFound)}
		return o, false
	}
	if m.st == nil {
		return o, true
	}
	c, err := m.st.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && c.Expired(m.clock.Now())):
		o.Status, o.Err = StatusNotFound, &SendError{ConnectionID: id, Err: ErrConnectionNotFound}
		return o, false
	case err != nil:
		// Both keep the store's error in the chain (store.ErrUnavailable
		// names the endpoint that did not answer).
		if r := classify(ctx, err); isCancelled(r.kind) {
			o.Err = &SendError{ConnectionID: id, Err: fmt.Errorf("%w while checking the connection store: %w", r.kind, err)}
		} else {
			o.Err = &SendError{ConnectionID: id, Err: fmt.Errorf("%w: %w", ErrStoreUnavailable, err)}
		}
		o.Status = StatusOf(o.Err)
		return o, false
	}
	return o, true
}

// isCancelled reports whether a classified error means the operation was
// cut short (shutdown, ctx cancelled or past its deadline), not failed.
func isCancelled(kind error) bool {
	return kind == ErrShuttingDown || errors.Is(kind, context.Canceled) || errors.Is(kind, context.DeadlineExceeded)
}

// deliverAs posts payload with retries and records the outcome (metrics,
// health, messages_sent, observer, log). It does not touch the store's
// records: callers remove stale ones (one by one or in batches). tk, when
// not nil, is a limiter slot the caller already holds for the first
// request.
func (m *Manager) deliverAs(ctx context.Context, cid, op, id string, p payload, maxAttempts int, start time.Time, tk *ticket) Outcome {
	attempts, r := m.post(ctx, cid, id, p, maxAttempts, tk)
	o := Outcome{ConnectionID: id, Attempts: attempts, Status: StatusOf(r.kind)}
	if r.kind != nil {
		o.Err = &SendError{ConnectionID: id, Attempts: attempts, Err: r.kind, StatusCode: r.status, Code: r.code}
	}
	m.record(ctx, cid, op, o, time.Since(start), true)
	return o
}

// post posts p to id with the retry rules of attempt: directly when the
// client offers it (NewManagementClient's), else through the SDK, signing
// with the payload hash computed once.
func (m *Manager) post(ctx context.Context, cid, id string, p payload, maxAttempts int, tk *ticket) (int, attemptResult) {
	fn := func(actx context.Context) error { return m.direct.postDirect(actx, id, p.data, p.hash) }
	if m.direct == nil {
		in := &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: p.data}
		fn = func(actx context.Context) error {
			_, err := m.api.PostToConnection(actx, in, p.opt)
			return err
		}
	}
	return m.attempt(ctx, cid, "post", id, maxAttempts, tk, fn)
}

// getConnection asks the gateway about id once (GetConnection): directly
// when the client offers it, else through the SDK.
func (m *Manager) getConnection(ctx context.Context, id string) error {
	if m.direct != nil {
		return m.direct.getDirect(ctx, id)
	}
	_, err := m.api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
	return err
}

// attempt is the retry loop around one Management API operation fn on id:
// one iteration is one HTTP request through the limiter and the breaker
// (call); waits are clock timers raced against ctx. It returns the number
// of requests made. With an adaptive limit a 429 is not an attempt: the
// limiter has slowed down and paces the next request, up to
// LimitConfig.MaxThrottledAttempts 429s per operation.
func (m *Manager) attempt(ctx context.Context, cid, op, id string, maxAttempts int, tk *ticket, fn func(context.Context) error) (int, attemptResult) {
	requests, throttled := 0, 0
	for attempt := 1; ; {
		r, called := m.call(ctx, tk, fn)
		tk = nil
		if !called {
			return requests, r
		}
		requests++
		m.m.attempts.Add(1)
		if requests > 1 {
			m.m.retries.Add(1)
		}
		if r.kind == nil {
			return requests, r
		}
		if r.kind == ErrThrottled && !m.cfg.Limit.Fixed {
			if throttled++; throttled < m.cfg.Limit.MaxThrottledAttempts {
				continue
			}
			return requests, r
		}
		retry := attempt < maxAttempts && m.cfg.Retry.ShouldRetry(r.kind)
		if m.log.Enabled(ctx, slog.LevelDebug) {
			m.log.DebugContext(ctx, op+" attempt failed", "correlation_id", cid, "connection_id", id, "attempt", attempt,
				"error_type", errorType(r.kind), "status", r.status, "will_retry", retry)
		}
		if !retry {
			return requests, r
		}
		if !m.sleep(ctx, m.cfg.Retry.Backoff(attempt)) {
			c := classify(ctx, ctx.Err())
			c.status, c.code = r.status, r.code
			return requests, c
		}
		attempt++
	}
}

// call makes one Management API request: it takes a limiter slot (tk when
// the caller already holds one), passes the breaker, bounds the request by
// AttemptTimeout, classifies its error and reports the answer to the
// breaker and the limiter. called false means no request was made: the
// breaker refused it (r is ErrCircuitOpen) or ctx ended while waiting for
// a slot.
func (m *Manager) call(ctx context.Context, tk *ticket, fn func(context.Context) error) (r attemptResult, called bool) {
	var t ticket
	if tk != nil {
		t = *tk
	} else {
		var err error
		if t, err = m.lim.acquire(ctx); err != nil {
			return classify(ctx, err), false
		}
	}
	if err := ctx.Err(); err != nil {
		m.lim.release(t, signalNone, 0)
		return classify(ctx, err), false
	}
	var done func(error)
	if m.breaker != nil {
		var err error
		if done, err = m.breaker.Allow(); err != nil {
			m.lim.release(t, signalNone, 0)
			return attemptResult{kind: ErrCircuitOpen}, false
		}
	}
	actx, cancel := ctx, context.CancelFunc(func() {})
	if m.cfg.AttemptTimeout > 0 {
		actx, cancel = context.WithTimeout(ctx, m.cfg.AttemptTimeout)
	}
	err := fn(actx)
	cancel()
	r = classify(ctx, err)
	m.lim.release(t, limitSignal(r.kind), m.clock.Now().Sub(t.start))
	if done != nil {
		done(r.kind)
	}
	return r, true
}

// sleep waits d on the clock; false when ctx ended first.
func (m *Manager) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := m.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}

// record updates metrics, health and messages_sent, notifies the observer
// and logs one line for the outcome. delivered says whether the delivery
// step ran (vs. failing validation / existence / health). The log record
// carries ctx, so ctx-aware handlers (request ids, trace ids) see it.
func (m *Manager) record(ctx context.Context, cid, op string, o Outcome, latency time.Duration, delivered bool) {
	if delivered {
		m.m.sends.Add(1)
		m.m.latency.Record(latency)
	}
	switch o.Status {
	case StatusSent:
		m.m.sent.Add(1)
		m.health.success(o.ConnectionID)
		if m.st != nil {
			m.sentMu.Lock()
			m.pending[o.ConnectionID]++
			m.sentMu.Unlock()
		}
	case StatusStale, StatusNotFound:
		m.health.forget(o.ConnectionID)
	}
	if o.Err != nil {
		if delivered {
			m.m.sendErrors.Add(1)
		}
		m.m.countError(errorType(o.Err))
		if kindOf(o.Err).unhealthy && m.health.failure(o.ConnectionID, m.clock.Now()) {
			m.log.WarnContext(ctx, "connection marked unhealthy; broadcasts skip it until its cooldown passes",
				"correlation_id", cid, "connection_id", o.ConnectionID, "failures", m.cfg.Health.FailureThreshold, "cooldown", m.cfg.Health.Cooldown)
		}
	}
	if m.obs != nil {
		m.obs.OnSend(o, latency)
	}
	level := slog.LevelDebug
	switch o.Status {
	case StatusFailed:
		level = slog.LevelWarn
	case StatusStale, StatusNotFound, StatusCancelled:
		level = slog.LevelInfo
	}
	if op == "broadcast" && level < slog.LevelWarn {
		level = slog.LevelDebug // a broadcast logs one summary line instead
	}
	if !m.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("correlation_id", cid), slog.String("op", op), slog.String("connection_id", o.ConnectionID),
		slog.Int("attempt", o.Attempts), slog.Float64("duration_ms", ms(latency)), slog.String("outcome", string(o.Status)),
	}
	if o.Err != nil {
		attrs = append(attrs, slog.String("error", o.Err.Error()))
	}
	m.log.LogAttrs(ctx, level, "connection "+op, attrs...)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// IsActive reports whether the connection has an unexpired record and the
// Management API's GetConnection answers for it. It never posts anything
// the client could see. A 410 removes the stale record. Any error (store,
// network, breaker open, shutdown) reads as false.
func (m *Manager) IsActive(ctx context.Context, connectionID string) bool {
	start := time.Now()
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return false
	}
	defer end()
	cid := correlationFor(ctx)
	if _, ok := m.checkExists(ctx, connectionID); !ok {
		return false
	}
	r, called := m.call(ctx, nil, func(actx context.Context) error { return m.getConnection(actx, connectionID) })
	if !called {
		return false
	}
	if r.kind == ErrConnectionStale {
		m.removeStale(ctx, cid, connectionID)
	}
	m.log.DebugContext(ctx, "connection is_active", "correlation_id", cid, "connection_id", connectionID,
		"duration_ms", ms(time.Since(start)), "active", r.kind == nil, "error_type", errorType(r.kind))
	return r.kind == nil
}

// Disconnect closes the client's connection (DeleteConnection) and removes
// its record, decrementing the active connection counter when the record
// was still there (the $disconnect that follows finds nothing and leaves
// the counter alone). A connection that is already gone is not an error.
func (m *Manager) Disconnect(ctx context.Context, connectionID string) error {
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return &SendError{ConnectionID: connectionID, Err: err}
	}
	defer end()
	cid := correlationFor(ctx)
	// Through the limiter (the endpoint's capacity is shared), not the
	// breaker: an explicit disconnect is worth a request even then.
	tk, err := m.lim.acquire(ctx)
	if err != nil {
		return &SendError{ConnectionID: connectionID, Err: classify(ctx, err).kind}
	}
	_, err = m.api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(connectionID)})
	r := classify(ctx, err)
	m.lim.release(tk, limitSignal(r.kind), m.clock.Now().Sub(tk.start))
	if r.kind != nil && r.kind != ErrConnectionStale {
		m.log.WarnContext(ctx, "connection disconnect failed", "correlation_id", cid, "connection_id", connectionID, "error_type", errorType(r.kind))
		return &SendError{ConnectionID: connectionID, Attempts: 1, Err: r.kind, StatusCode: r.status, Code: r.code}
	}
	m.health.forget(connectionID)
	if m.st != nil {
		if _, err := m.remove(ctx, cid, connectionID); err != nil {
			return fmt.Errorf("connection: %s disconnected but its record was not removed: %w", connectionID, err)
		}
	}
	m.log.InfoContext(ctx, "connection disconnected", "correlation_id", cid, "connection_id", connectionID)
	return nil
}

// Metrics returns a snapshot of the counters; cheap enough to call per request.
func (m *Manager) Metrics() MetricsSnapshot {
	s := MetricsSnapshot{
		BreakerState:         "disabled",
		Sends:                m.m.sends.Load(),
		Sent:                 m.m.sent.Load(),
		SendErrors:           m.m.sendErrors.Load(),
		ErrorsByType:         m.m.errorsByType(),
		Attempts:             m.m.attempts.Load(),
		Retries:              m.m.retries.Load(),
		Latency:              latencySnapshot(m.m.latency.Snapshot()),
		Broadcasts:           m.m.broadcasts.Load(),
		BroadcastMessages:    m.m.broadcastMsgs.Load(),
		UnhealthyConnections: m.health.unhealthy(),
		Limit:                m.lim.snapshot(),
	}
	if m.breaker != nil {
		s.BreakerState = m.breaker.State().String()
	}
	if ns := m.m.broadcastNanos.Load(); ns > 0 {
		s.BroadcastThroughput = float64(s.BroadcastMessages) / (float64(ns) / 1e9)
	}
	m.mu.Lock()
	s.InFlight = m.inflight
	m.mu.Unlock()
	m.sentMu.Lock()
	s.PendingSentCounts = len(m.pending)
	m.sentMu.Unlock()
	return s
}

// Flush writes the accumulated messages_sent counts to the store in one
// AddSent call. On failure the counts are kept for the next flush. In a
// Lambda (FlushInterval -1) call it before the handler returns.
func (m *Manager) Flush(ctx context.Context) error {
	if m.st == nil {
		return nil
	}
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	m.sentMu.Lock()
	batch := m.pending
	if len(batch) == 0 {
		m.sentMu.Unlock()
		return nil
	}
	m.pending = make(map[string]int64, len(batch))
	m.sentMu.Unlock()
	if err := m.st.AddSent(ctx, batch); err != nil {
		if errors.Is(err, store.ErrInvalid) {
			// Retrying cannot fix a rejected batch; drop it rather than
			// fail every later flush.
			return fmt.Errorf("connection: store rejected messages_sent counts for %d connections (dropped): %w", len(batch), err)
		}
		m.sentMu.Lock()
		for id, n := range batch {
			m.pending[id] += n
		}
		m.sentMu.Unlock()
		return fmt.Errorf("connection: flushing messages_sent for %d connections failed (kept for the next flush): %w", len(batch), err)
	}
	m.log.DebugContext(ctx, "messages_sent flushed", "connections", len(batch))
	return nil
}

func (m *Manager) flushLoop() {
	defer close(m.flushDone)
	for {
		t := m.clock.NewTimer(m.cfg.FlushInterval)
		select {
		case <-m.flushStop:
			t.Stop()
			return
		case <-t.C():
		}
		ctx, cancel := context.WithTimeout(m.hardCtx, 10*time.Second)
		if err := m.Flush(ctx); err != nil {
			m.log.Warn("periodic messages_sent flush failed", "error", err)
		}
		cancel()
	}
}

// Shutdown stops accepting work (new calls fail with ErrShuttingDown), waits
// for in-flight operations until ctx is done, then cancels them (a
// broadcast reports the rest as cancelled), stops the flusher and flushes
// messages_sent one last time. When ctx was already done, that last flush
// gets 2 s of its own so counts are not lost. No goroutine outlives it.
// Calling it again waits for the first call to finish.
//
// Shutdown never hangs past its deadline because of injected code that
// ignores cancellation (a Store, Observer or progress callback): operations
// still running 1 s after ctx's deadline (and the cancellation) are
// abandoned, and the returned error says how many. Their goroutines end
// whenever that code returns.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		select {
		case <-m.closed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.closing = true
	if m.inflight == 0 {
		close(m.drained)
	}
	m.mu.Unlock()
	defer close(m.closed)

	var errs []error
	select {
	case <-m.drained:
	case <-ctx.Done():
		m.mu.Lock()
		n := m.inflight
		m.mu.Unlock()
		m.hardCancel(ErrShuttingDown)
		if !m.waitGrace(m.drained) {
			m.mu.Lock()
			left := m.inflight
			m.mu.Unlock()
			errs = append(errs, fmt.Errorf("connection: shutdown deadline passed; cancelled %d in-flight operation(s), abandoned %d still running %v later (injected code ignoring ctx): %w", n, left, m.grace, ctx.Err()))
		} else {
			errs = append(errs, fmt.Errorf("connection: shutdown deadline passed; cancelled %d in-flight operation(s): %w", n, ctx.Err()))
		}
	}
	close(m.flushStop)
	flusherDone := true
	select {
	case <-m.flushDone:
	case <-ctx.Done():
		m.hardCancel(ErrShuttingDown)
		flusherDone = m.waitGrace(m.flushDone)
	}
	m.hardCancel(ErrShuttingDown)
	if !flusherDone {
		// The stuck flush holds flushMu: a last Flush would wait for it.
		m.sentMu.Lock()
		n := len(m.pending)
		m.sentMu.Unlock()
		errs = append(errs, fmt.Errorf("connection: shutdown abandoned the periodic messages_sent flush, still running %v after the deadline; counts for %d more connection(s) not written: %w", m.grace, n, ctx.Err()))
	} else if err := m.finalFlush(ctx); err != nil {
		errs = append(errs, err)
	}
	m.log.InfoContext(ctx, "connection manager shut down", "sends", m.m.sends.Load(), "sent", m.m.sent.Load())
	return errors.Join(errs...)
}

// waitGrace waits up to m.grace for done (real time: an injected clock may
// be a fake nobody advances); false means abandoned.
func (m *Manager) waitGrace(done <-chan struct{}) bool {
	t := time.NewTimer(m.grace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// finalFlush is Shutdown's last Flush: with 2 s of its own when ctx is
// already done, and abandoned m.grace after its ctx ends.
func (m *Manager) finalFlush(ctx context.Context) error {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
	}
	var err error
	done := make(chan struct{})
	go func() { err = m.Flush(ctx); close(done) }()
	select {
	case <-done:
		return err
	case <-ctx.Done():
	}
	if m.waitGrace(done) {
		return err
	}
	return fmt.Errorf("connection: shutdown abandoned the last messages_sent flush, still running %v after its deadline: %w", m.grace, ctx.Err())
}
