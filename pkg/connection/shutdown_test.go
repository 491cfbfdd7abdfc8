package connection

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/pkg/store"
)

// stuckStore is a Store whose Get and AddSent, once armed, block until
// released, ignoring ctx: injected code Shutdown cannot cancel.
type stuckStore struct {
	*memStore
	blockGet, blockAdd atomic.Bool
	entered            chan string
	release            chan struct{}
}

func newStuckStore(ids ...string) *stuckStore {
	return &stuckStore{memStore: newMemStore(ids...), entered: make(chan string, 10), release: make(chan struct{})}
}

func (s *stuckStore) Get(ctx context.Context, id string) (store.Connection, error) {
	if s.blockGet.Load() {
		s.entered <- "get"
		<-s.release
	}
	return s.memStore.Get(ctx, id)
}

func (s *stuckStore) AddSent(ctx context.Context, counts map[string]int64) error {
	if s.blockAdd.Load() {
		s.entered <- "add"
		<-s.release
	}
	return s.memStore.AddSent(ctx, counts)
}

func (s *stuckStore) waitEntered(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-s.entered:
		if got != want {
			t.Fatalf("blocked in %s, want %s", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing blocked in %s", want)
	}
}

// shutdownBound is a failure guard against a hang, not a performance
// assertion: Shutdown should return about 1 s after its 50 ms deadline.
const shutdownBound = 5 * time.Second

func shutdownWithin(t *testing.T, m *Manager) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- m.Shutdown(ctx) }()
	select {
	case err := <-errc:
		if d := time.Since(start); d > shutdownBound {
			t.Errorf("Shutdown took %v", d)
		}
		return err
	case <-time.After(shutdownBound):
		t.Fatalf("Shutdown still running %v after a 50 ms deadline", shutdownBound)
		return nil
	}
}

// Shutdown returns shortly after its deadline even when an operation is
// stuck in a Store that ignores ctx, and says how many it abandoned; the
// abandoned goroutine ends once the store returns.
func TestShutdownAbandonsOperationsIgnoringCtx(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) }) // runs last, after the Manager and server are closed
	g := newFakeGateway(t)
	st := newStuckStore("a")
	m := newTestManager(t, g, st, Config{})
	st.blockGet.Store(true)
	sendErr := make(chan error, 1)
	go func() { sendErr <- m.Send(context.Background(), "a", "x") }()
	st.waitEntered(t, "get")

	err := shutdownWithin(t, m)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "cancelled 1 in-flight") || !strings.Contains(err.Error(), "abandoned 1 ") {
		t.Errorf("Shutdown = %v", err)
	}
	close(st.release) // the store finally returns: the abandoned Send ends
	select {
	case err := <-sendErr:
		if !errors.Is(err, ErrShuttingDown) {
			t.Errorf("abandoned Send = %v, want ErrShuttingDown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("released Send never returned")
	}
	if g.total("POST") != 0 {
		t.Error("the abandoned Send posted after Shutdown")
	}
}

// The flushes are bounded too: a periodic flush or the last flush stuck in
// AddSent is abandoned shortly after the deadline.
func TestShutdownAbandonsStuckFlush(t *testing.T) {
	for _, periodic := range []bool{false, true} {
		name := map[bool]string{false: "last flush", true: "periodic flush"}[periodic]
		t.Run(name, func(t *testing.T) {
			t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
			g := newFakeGateway(t)
			st := newStuckStore("a")
			clk := newFakeClock(false)
			cfg := Config{Clock: clk}
			if periodic {
				cfg.FlushInterval = time.Minute
			}
			m := newTestManager(t, g, st, cfg)
			m.grace = 200 * time.Millisecond // keep the test short; the default is exercised above
			if err := m.Send(context.Background(), "a", "x"); err != nil {
				t.Fatal(err)
			}
			st.blockAdd.Store(true)
			if periodic {
				clk.waitTimer(t)
				clk.Advance(time.Minute)
				st.waitEntered(t, "add")
			}
			err := shutdownWithin(t, m)
			want := "abandoned the last messages_sent flush"
			if periodic {
				want = "abandoned the periodic messages_sent flush"
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Shutdown = %v, want %q", err, want)
			}
			close(st.release)
		})
	}
}
