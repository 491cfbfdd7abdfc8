package connection

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/pkg/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// reply is one scripted answer of the fake gateway.
type reply struct {
	status  int    // 0 => 200 (204 for DELETE)
	errType string // x-amzn-ErrorType
	message string
	delay   time.Duration // wait before answering (cut short when the client goes away)
	reset   bool          // hijack and reset the TCP connection instead of answering
}

func errReply(status int, errType, msg string) reply {
	return reply{status: status, errType: errType, message: msg}
}

var (
	gone       = errReply(410, "GoneException", "")
	forbidden  = errReply(403, "ForbiddenException", "Forbidden")
	tooLarge   = errReply(413, "PayloadTooLargeException", "Message too long")
	throttled  = errReply(429, "LimitExceededException", "Rate exceeded")
	internal   = errReply(500, "InternalServerErrorException", "Internal server error")
	badGateway = reply{status: 502, message: "Internal server error"} // gateway response: no error type header
	resetConn  = reply{reset: true}
)

type request struct {
	method, id, escapedPath string
	body                    []byte
}

// fakeGateway is a loopback server speaking the API Gateway Management API
// (POST/GET/DELETE /{stage}/@connections/{id}) with AWS's error shapes.
type fakeGateway struct {
	t     testing.TB
	srv   *httptest.Server
	stage string

	mu       sync.Mutex
	script   map[string][]reply // per id; the last reply repeats
	def      reply
	requests []request
	perID    map[string]int
	arrived  chan struct{} // one value per request, non-blocking
	// inflight / maxInflight: requests being answered now / at most.
	inflight, maxInflight int
	// admit, when set, is asked first: false answers 429 (a rate limit).
	admit func() bool
	// ok counts 2xx answers per id.
	ok map[string]int
}

func newFakeGateway(t testing.TB) *fakeGateway {
	g := &fakeGateway{t: t, stage: "test", script: map[string][]reply{}, perID: map[string]int{}, ok: map[string]int{}, arrived: make(chan struct{}, 100000)}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGateway) endpoint() string { return g.srv.URL + "/" + g.stage }

// on scripts the replies for id (the last one repeats); id "" sets the default.
func (g *fakeGateway) on(id string, replies ...reply) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if id == "" {
		g.def = replies[0]
		return
	}
	g.script[id] = replies
}

func (g *fakeGateway) count(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.perID[id]
}

func (g *fakeGateway) all() []request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.requests)
}

func (g *fakeGateway) total(method string) int {
	n := 0
	for _, r := range g.all() {
		if method == "" || r.method == method {
			n++
		}
	}
	return n
}

// waitRequests blocks until n requests arrived (or fails the test after 10 s).
func (g *fakeGateway) waitRequests(n int) {
	g.t.Helper()
	deadline := time.After(10 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-g.arrived:
		case <-deadline:
			g.t.Fatalf("fake gateway: waited for %d requests, got %d", n, i)
		}
	}
}

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	prefix := "/" + g.stage + "/@connections/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		w.Header().Set("x-amzn-ErrorType", "NotFoundException")
		w.WriteHeader(404)
		_, _ = io.WriteString(w, `{"message":"Not Found"}`)
		return
	}
	id := strings.TrimPrefix(r.URL.Path, prefix)
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.requests = append(g.requests, request{method: r.Method, id: id, escapedPath: r.URL.EscapedPath(), body: body})
	g.perID[id]++
	rep := g.def
	if s, ok := g.script[id]; ok && len(s) > 0 {
		rep = s[0]
		if len(s) > 1 {
			g.script[id] = s[1:]
		}
	}
	if g.admit != nil && !g.admit() {
		rep = throttled
	}
	g.inflight++
	g.maxInflight = max(g.maxInflight, g.inflight)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inflight--
		if rep.status < 400 && !rep.reset {
			g.ok[id]++
		}
		g.mu.Unlock()
	}()
	select {
	case g.arrived <- struct{}{}:
	default:
	}
	if rep.delay > 0 {
		t := time.NewTimer(rep.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if rep.reset {
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic("no hijacker")
		}
		c, _, err := hj.Hijack()
		if err == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST instead of FIN
			}
			_ = c.Close()
		}
		return
	}
	if rep.status >= 400 {
		if rep.errType != "" {
			w.Header().Set("x-amzn-ErrorType", rep.errType)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("x-amzn-RequestId", "req-fake")
		w.WriteHeader(rep.status)
		if rep.message == "" {
			_, _ = io.WriteString(w, `{"message":null}`)
		} else {
			_ = json.NewEncoder(w).Encode(map[string]string{"message": rep.message})
		}
		return
	}
	switch r.Method {
	case http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"connectedAt":"2026-01-02T03:04:05.000Z","identity":{"sourceIp":"127.0.0.1","userAgent":"test"},"lastActiveAt":"2026-01-02T03:04:06.000Z"}`)
	case http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// memStore is an in-memory Store that records its calls.
type memStore struct {
	mu       sync.Mutex
	now      func() time.Time
	recs     map[string]store.Connection
	existing [][]string
	deletes  [][]string
	added    []map[string]int64
	gets     int
	active   int64 // the table-wide counter (AddActive)
	failAct  error
	failAdd  error
	failExst error
	addedCh  chan map[string]int64
}

func newMemStore(ids ...string) *memStore {
	s := &memStore{now: time.Now, recs: map[string]store.Connection{}, addedCh: make(chan map[string]int64, 100)}
	for _, id := range ids {
		s.put(id)
	}
	return s
}

func (s *memStore) put(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[id] = store.Connection{ConnectionID: id, TTL: s.now().Add(store.DefaultTTL).Unix()}
}

func (s *memStore) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.recs[id]
	return ok
}

func (s *memStore) Get(_ context.Context, id string) (store.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	c, ok := s.recs[id]
	if !ok {
		return store.Connection{}, store.ErrNotFound
	}
	return c, nil
}

func (s *memStore) Existing(ctx context.Context, ids []string) (map[string]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.existing = append(s.existing, slices.Clone(ids))
	if s.failExst != nil {
		return nil, s.failExst
	}
	out := map[string]bool{}
	for _, id := range ids {
		if c, ok := s.recs[id]; ok && !c.Expired(s.now()) {
			out[id] = true
		}
	}
	return out, nil
}

func (s *memStore) Delete(_ context.Context, id string) (store.Connection, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deletes = append(s.deletes, []string{id})
	c, ok := s.recs[id]
	delete(s.recs, id)
	return c, ok, nil
}

func (s *memStore) AddActive(_ context.Context, delta int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAct != nil {
		return 0, s.failAct
	}
	s.active += delta
	return s.active, nil
}

func (s *memStore) DeleteMany(_ context.Context, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deletes = append(s.deletes, slices.Clone(ids))
	for _, id := range ids {
		delete(s.recs, id)
	}
	return nil
}

func (s *memStore) AddSent(_ context.Context, counts map[string]int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAdd != nil {
		return s.failAdd
	}
	cp := make(map[string]int64, len(counts))
	for k, v := range counts {
		cp[k] = v
		if c, ok := s.recs[k]; ok {
			c.MessagesSent += v
			s.recs[k] = c
		}
	}
	s.added = append(s.added, cp)
	select {
	case s.addedCh <- cp:
	default:
	}
	return nil
}

// fakeClock: with auto set, timers fire at once (advancing time) and every
// requested duration is recorded; otherwise they fire on Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	auto   bool
	waits  []time.Duration
	timers []*fakeTimer
	newT   chan time.Duration
}

type fakeTimer struct {
	clock    *fakeClock
	c        chan time.Time
	deadline time.Time
	stopped  bool // under clock.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func newFakeClock(auto bool) *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), auto: auto, newT: make(chan time.Duration, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, c: make(chan time.Time, 1), deadline: c.now.Add(d)}
	c.waits = append(c.waits, d)
	if c.auto {
		c.now = c.now.Add(d)
		t.c <- c.now
	} else {
		c.timers = append(c.timers, t)
	}
	select {
	case c.newT <- d:
	default:
	}
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.stopped && !t.deadline.After(c.now) {
			t.c <- c.now
			t.stopped = true
			continue
		}
		kept = append(kept, t)
	}
	c.timers = kept
}

func (c *fakeClock) recorded() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.waits)
}

// waitTimer blocks until someone asks the clock for a timer.
func (c *fakeClock) waitTimer(t testing.TB) time.Duration {
	t.Helper()
	select {
	case d := <-c.newT:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("nobody asked the fake clock for a timer")
		return 0
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newTestManager wires a Manager to g through the real SDK client.
func newTestManager(t testing.TB, g *fakeGateway, st Store, cfg Config) *Manager {
	t.Helper()
	api := NewManagementClient(g.endpoint(), ClientOptions{})
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = newFakeClock(true)
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = -1
	}
	m, err := New(api, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
		CloseIdleConnections(api)
	})
	return m
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d=", prefix, i)
	}
	return out
}
