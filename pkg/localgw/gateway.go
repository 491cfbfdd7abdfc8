package localgw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Gateway errors.
var (
	// ErrClosed is returned by Serve and Start after Shutdown.
	ErrClosed = errors.New("localgw: gateway is shut down")
	// ErrAlreadyServing is returned by a second Serve or Start.
	ErrAlreadyServing = errors.New("localgw: gateway is already serving; use one Serve/Start per Gateway")
)

// Gateway emulates an API Gateway WebSocket API, its @connections management
// API and, optionally, a DynamoDB endpoint, all on one HTTP listener.
type Gateway struct {
	cfg       Config
	sel       selector
	started   time.Time
	metrics   *metrics
	deadlines deadlines

	routesMu sync.RWMutex
	routes   map[string]Integration

	mu        sync.Mutex
	conns     map[string]*conn
	closing   bool
	connWG    sync.WaitGroup // one per registered connection, done after its $disconnect
	srv       *http.Server
	serveDone chan struct{} // closed when Start's Serve returns

	// ctx bounds integrations; cancelled when Shutdown's ctx ends early.
	ctx    context.Context
	cancel context.CancelFunc

	// newConns are HTTP connections that have not sent a request yet
	// (closed at Shutdown; see trackConn).
	newConnsMu sync.Mutex
	newConns   map[net.Conn]struct{}

	faults          *faultInjector
	connectLimiter  *tokenBucket // nil: unlimited
	managerReporter atomic.Pointer[func() ManagerMetrics]
	dynamo          http.Handler
	handler         http.Handler
}

// New validates cfg and builds a Gateway. With EmbeddedDynamoDB the table is
// created before New returns.
func New(cfg Config) (*Gateway, error) {
	cfg, sel, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:      cfg,
		sel:      sel,
		started:  time.Now(),
		metrics:  newMetrics(),
		routes:   make(map[string]Integration, len(cfg.Routes)),
		conns:    make(map[string]*conn),
		newConns: make(map[net.Conn]struct{}),
		faults:   newFaultInjector(cfg.Faults, cfg.Now),
	}
	g.deadlines = deadlines{
		now:       g.mono,
		fire:      func(c *conn) { c.terminate(closeGoingAway, reasonGoingAway, true) },
		idleAfter: (*conn).idleDeadline,
	}
	for k, in := range cfg.Routes {
		if in != nil {
			g.routes[k] = in
		}
	}
	if cfg.ConnectRateLimit > 0 {
		g.connectLimiter = newTokenBucket(cfg.ConnectRateLimit, cfg.ConnectBurst, cfg.Now)
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	if cfg.EmbeddedDynamoDB {
		ctx, cancel := context.WithTimeout(g.ctx, 30*time.Second)
		d, err := newEmbeddedDynamo(ctx, cfg.Table, cfg.Logger)
		cancel()
		if err != nil {
			g.cancel()
			return nil, err
		}
		g.dynamo = d
	}
	g.handler = http.HandlerFunc(g.serveHTTP)
	return g, nil
}

// Stage returns the configured stage.
func (g *Gateway) Stage() string { return g.cfg.Stage }

// Table returns the connections table name (created in the embedded
// DynamoDB when Config.EmbeddedDynamoDB is set).
func (g *Gateway) Table() string { return g.cfg.Table }

// RouteSelectionExpression returns the expression that picks a message's
// route (Config's, or DefaultRouteSelectionExpression).
func (g *Gateway) RouteSelectionExpression() string { return g.cfg.RouteSelectionExpression }

// mono is the gateway's monotonic clock: nanoseconds since New.
func (g *Gateway) mono() int64 { return int64(time.Since(g.started)) }

// SetRoute sets (or, with nil, removes) the integration for a route key. It is
// safe while serving; connections pick it up on their next event. Wrap in
// with TwoWay for a route whose response body goes back to the client.
func (g *Gateway) SetRoute(key string, in Integration) {
	g.routesMu.Lock()
	defer g.routesMu.Unlock()
	if in == nil {
		delete(g.routes, key)
		return
	}
	g.routes[key] = in
}

// SetFaults replaces the fault injection settings (failures, latency,
// jitter, throttle, dropped $disconnects) while serving; it takes effect
// with the next request or close. To change one setting, read the current
// ones with Faults first.
func (g *Gateway) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	g.faults.set(f)
	return nil
}

// Faults returns the fault injection settings in effect (including the
// throttle Config.ManagementRateLimit or Config.AWSQuotas set up).
func (g *Gateway) Faults() Faults { return g.faults.get() }

// ConnectionIDs returns the ids of the established connections.
func (g *Gateway) ConnectionIDs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	ids := make([]string, 0, len(g.conns))
	for id := range g.conns {
		ids = append(ids, id)
	}
	return ids
}

// Handler returns the gateway's HTTP handler, for serving it on a server of
// your own (for example httptest.NewServer). Call Shutdown to close its
// WebSocket connections: a server's own Close does not see hijacked ones.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Serve serves the gateway on l until Shutdown, then returns ErrClosed.
func (g *Gateway) Serve(l net.Listener) error {
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		if l != nil {
			_ = l.Close()
		}
		return ErrClosed
	}
	if g.srv != nil {
		g.mu.Unlock()
		return ErrAlreadyServing
	}
	g.srv = &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slogErrorLog(g.cfg.Logger),
		ConnState:         g.trackConn,
	}
	g.srv.RegisterOnShutdown(g.closeNewConns)
	srv := g.srv
	g.mu.Unlock()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return ErrClosed
	}
	return err
}

// Start listens on addr (e.g. "127.0.0.1:4510", or ":0" for any free port),
// serves in the background and returns the base URL, e.g.
// "http://127.0.0.1:4510". The WebSocket URL is ws://HOST:PORT/{stage}, the
// management endpoint BASE/{stage}, the DynamoDB endpoint BASE.
func (g *Gateway) Start(addr string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("localgw: listen on %s: %w (is the port already in use? choose another address)", addr, err)
	}
	g.mu.Lock()
	if g.serveDone != nil || g.srv != nil {
		g.mu.Unlock()
		_ = l.Close()
		return "", ErrAlreadyServing
	}
	done := make(chan struct{})
	g.serveDone = done
	g.mu.Unlock()
	go func() {
		defer close(done)
		if err := g.Serve(l); err != nil && !errors.Is(err, ErrClosed) {
			g.cfg.Logger.Error("localgw: serve failed", "err", err)
		}
	}()
	return "http://" + l.Addr().String(), nil
}

// trackConn remembers the HTTP connections that have not sent a request.
// http.Server.Shutdown closes idle keep-alive connections at once but waits
// up to 5 s for one that never sent a request (it may be about to). An AWS
// SDK client opens such a spare connection when concurrent requests (the
// $disconnect writes of a closing swarm) race for its pool, which stalled
// every shutdown by 5 s; closeNewConns closes them instead.
func (g *Gateway) trackConn(nc net.Conn, state http.ConnState) {
	g.newConnsMu.Lock()
	defer g.newConnsMu.Unlock()
	if state != http.StateNew {
		delete(g.newConns, nc)
		return
	}
	if g.newConns == nil { // Shutdown already swept: nothing new is served
		_ = nc.Close()
		return
	}
	g.newConns[nc] = struct{}{}
}

// closeNewConns runs when the server's Shutdown has closed its listeners:
// no request can be served any more, so a connection that sent none is
// closed rather than waited for.
func (g *Gateway) closeNewConns() {
	g.newConnsMu.Lock()
	defer g.newConnsMu.Unlock()
	for nc := range g.newConns {
		_ = nc.Close()
	}
	g.newConns = nil
}

// Shutdown closes every WebSocket connection with 1001 "Going away", runs
// their $disconnect integrations, then stops the HTTP server (if Serve or
// Start runs it). It waits for all of that until ctx is done; then it cancels
// the integrations' contexts, drops the remaining sockets and returns
// ctx.Err(). An in-process handler that ignores its ctx may outlive it.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closing = true
	conns := make([]*conn, 0, len(g.conns))
	for _, c := range g.conns {
		conns = append(conns, c)
	}
	srv := g.srv
	serveDone := g.serveDone
	g.mu.Unlock()

	for _, c := range conns {
		c.terminate(closeGoingAway, reasonGoingAway, true)
	}
	done := make(chan struct{})
	go func() { g.connWG.Wait(); close(done) }()

	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		g.cancel()
		for _, c := range conns {
			c.forceClose()
		}
		// Not waiting for done: a handler ignoring its ctx must not hang us.
	}
	if srv != nil {
		if e := srv.Shutdown(ctx); e != nil && err == nil {
			err = e
		}
		if err != nil {
			_ = srv.Close()
		}
	}
	if serveDone != nil {
		select {
		case <-serveDone:
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
		}
	}
	g.deadlines.stop()
	g.cancel()
	return err
}

func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != "" {
		if g.dynamo == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{
				"message": "this gateway has no embedded DynamoDB endpoint; start it with EmbeddedDynamoDB (streamer local does)",
			})
			return
		}
		g.dynamo.ServeHTTP(w, r)
		return
	}
	path := r.URL.EscapedPath()
	switch path {
	case "/health":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
		return
	case "/metrics":
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		writePrometheus(w, g.Metrics())
		return
	case "/metrics.json":
		writeJSON(w, http.StatusOK, g.Metrics())
		return
	}
	stagePrefix := "/" + g.cfg.Stage
	if path == stagePrefix || path == stagePrefix+"/" {
		g.serveWebSocket(w, r)
		return
	}
	if rest, ok := strings.CutPrefix(path, stagePrefix+"/@connections/"); ok && rest != "" && !strings.Contains(rest, "/") {
		g.serveManagement(w, r, rest)
		return
	}
	writeJSON(w, http.StatusNotFound, map[string]string{
		"message": fmt.Sprintf("no route for %s %s", r.Method, path),
		"hint": fmt.Sprintf("WebSocket: ws://%s/%s; management: http://%s/%s/@connections/{connectionId}; also /health, /metrics, /metrics.json",
			r.Host, g.cfg.Stage, r.Host, g.cfg.Stage),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"Internal server error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
