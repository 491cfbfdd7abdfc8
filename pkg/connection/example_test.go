package connection_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/store"
)

// exampleGateway is a minimal stand-in for API Gateway's @connections API:
// it prints each POST and answers 410 Gone for ids starting with "gone".
func exampleGateway() *httptest.Server {
	var mu sync.Mutex
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/prod/@connections/")
		if strings.HasPrefix(id, "gone") {
			w.Header().Set("x-amzn-ErrorType", "GoneException")
			w.WriteHeader(http.StatusGone)
			_, _ = io.WriteString(w, `{"message":null}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if !strings.HasPrefix(id, "quiet") {
			mu.Lock()
			fmt.Printf("%s %s <- %s\n", r.Method, r.URL.EscapedPath(), body)
			mu.Unlock()
		}
	}))
}

// exampleStore is an in-memory stand-in for *store.Dynamo.
type exampleStore struct {
	mu        sync.Mutex
	ids       map[string]bool
	printSent bool // print each AddSent batch
}

func newExampleStore(ids ...string) *exampleStore {
	s := &exampleStore{ids: map[string]bool{}}
	for _, id := range ids {
		s.ids[id] = true
	}
	return s
}

func (s *exampleStore) Get(_ context.Context, id string) (store.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ids[id] {
		return store.Connection{}, store.ErrNotFound
	}
	return store.Connection{ConnectionID: id}, nil
}

func (s *exampleStore) Existing(_ context.Context, ids []string) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for _, id := range ids {
		if s.ids[id] {
			out[id] = true
		}
	}
	return out, nil
}

func (s *exampleStore) DeleteMany(_ context.Context, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.ids, id)
	}
	return nil
}

func (s *exampleStore) Delete(_ context.Context, id string) (store.Connection, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	found := s.ids[id]
	delete(s.ids, id)
	return store.Connection{ConnectionID: id}, found, nil
}

func (s *exampleStore) AddActive(context.Context, int64) (int64, error) { return 0, nil }

func (s *exampleStore) AddSent(_ context.Context, counts map[string]int64) error {
	if s.printSent {
		for _, id := range slices.Sorted(maps.Keys(counts)) {
			fmt.Printf("store: messages_sent[%s] += %d\n", id, counts[id])
		}
	}
	return nil
}

func Example_send() {
	gw := exampleGateway()
	defer gw.Close()
	// In a Lambda: connection.NewManagementClient("https://"+domain+"/"+stage, connection.ClientOptions{})
	api := connection.NewManagementClient(gw.URL+"/prod", connection.ClientOptions{})
	defer connection.CloseIdleConnections(api)
	st := newExampleStore("L0SM9cOFvHcCIhw=", "gone1")
	m, err := connection.New(api, st, connection.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer m.Shutdown(context.Background())

	ctx := connection.WithCorrelationID(context.Background(), "req-123")
	err = m.Send(ctx, "L0SM9cOFvHcCIhw=", map[string]any{"type": "greeting", "text": "hello"})
	fmt.Println("sent:", err == nil)

	err = m.Send(ctx, "gone1", "bye")
	fmt.Println("stale:", errors.Is(err, connection.ErrConnectionStale), "record kept:", st.ids["gone1"])

	err = m.Send(ctx, "never-connected", "x")
	var se *connection.SendError
	fmt.Println("not found:", errors.Is(err, connection.ErrConnectionNotFound), errors.As(err, &se) && se.Attempts == 0)
	// Output:
	// POST /prod/@connections/L0SM9cOFvHcCIhw%3D <- {"text":"hello","type":"greeting"}
	// sent: true
	// stale: true record kept: false
	// not found: true true
}

func Example_broadcast() {
	gw := exampleGateway()
	defer gw.Close()
	api := connection.NewManagementClient(gw.URL+"/prod", connection.ClientOptions{})
	defer connection.CloseIdleConnections(api)
	var ids []string
	for i := range 50 {
		ids = append(ids, fmt.Sprintf("quiet%02d", i))
	}
	ids = append(ids, "gone1", "gone2")
	st := newExampleStore(ids...)
	m, _ := connection.New(api, st, connection.Config{Workers: 10, Logger: slog.New(slog.DiscardHandler)})
	defer m.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := m.BroadcastWithProgress(ctx, append(ids, "left-already"), []byte(`{"type":"tick"}`),
		func(done, total int) {
			if done == total {
				fmt.Println("progress:", done, "/", total)
			}
		})
	fmt.Println(err, res.Total, "sent", res.Sent, "stale", res.Stale, "not found", res.NotFound)
	for _, o := range res.Outcomes {
		if o.Status != connection.StatusSent {
			fmt.Println(o.ConnectionID, o.Status)
		}
	}
	fmt.Println("breaker:", m.Metrics().BreakerState)
	// Output:
	// progress: 53 / 53
	// <nil> 53 sent 50 stale 2 not found 1
	// gone1 stale
	// gone2 stale
	// left-already not_found
	// breaker: closed
}

// In a Lambda, the environment is frozen between invocations (a background
// flusher does not run) and may be reclaimed without Shutdown ever being
// called, so counts left in memory are lost. Turn the periodic flush off and
// flush before the handler returns.
func ExampleManager_Flush() {
	gw := exampleGateway()
	defer gw.Close()
	st := newExampleStore("L0SM9cOFvHcCIhw=", "R1tOM2gfTHcCJFw=")
	st.printSent = true

	// Cold start (main): one Manager for the life of the execution environment.
	api := connection.NewManagementClient(gw.URL+"/prod", connection.ClientOptions{})
	defer connection.CloseIdleConnections(api)
	m, err := connection.New(api, st, connection.Config{
		FlushInterval: -1, // no background flusher: it would be frozen between invocations
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}

	// The handler, called once per invocation.
	handler := func(ctx context.Context, ids []string) error {
		for _, id := range ids {
			if err := m.Send(ctx, id, []byte(`{"type":"tick"}`)); err != nil {
				return err
			}
		}
		// Write this invocation's messages_sent counts (one batched store
		// call) before returning; the environment may never run again.
		return m.Flush(ctx)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := handler(ctx, []string{"L0SM9cOFvHcCIhw="}); err != nil {
		fmt.Println("error:", err)
	}
	if err := handler(ctx, []string{"L0SM9cOFvHcCIhw=", "R1tOM2gfTHcCJFw="}); err != nil {
		fmt.Println("error:", err)
	}
	fmt.Println("pending after flush:", m.Metrics().PendingSentCounts)
	// Output:
	// POST /prod/@connections/L0SM9cOFvHcCIhw%3D <- {"type":"tick"}
	// store: messages_sent[L0SM9cOFvHcCIhw=] += 1
	// POST /prod/@connections/L0SM9cOFvHcCIhw%3D <- {"type":"tick"}
	// POST /prod/@connections/R1tOM2gfTHcCJFw%3D <- {"type":"tick"}
	// store: messages_sent[L0SM9cOFvHcCIhw=] += 1
	// store: messages_sent[R1tOM2gfTHcCJFw=] += 1
	// pending after flush: 0
}

func Example_errors() {
	// How a caller branches on delivery errors.
	handle := func(err error) string {
		var se *connection.SendError
		switch {
		case err == nil:
			return "delivered"
		case errors.Is(err, connection.ErrConnectionStale), errors.Is(err, connection.ErrConnectionNotFound):
			return "client gone: drop it"
		case errors.Is(err, connection.ErrPayloadTooLarge):
			return "split the message"
		case errors.Is(err, connection.ErrCircuitOpen), errors.Is(err, connection.ErrThrottled):
			return "back off and retry later"
		case errors.As(err, &se):
			return fmt.Sprintf("failed after %d attempts", se.Attempts)
		}
		return "unexpected"
	}
	fmt.Println(handle(nil))
	fmt.Println(handle(&connection.SendError{ConnectionID: "a", Attempts: 1, Err: connection.ErrConnectionStale}))
	fmt.Println(handle(&connection.SendError{ConnectionID: "a", Attempts: 4, Err: connection.ErrThrottled}))
	fmt.Println(handle(&connection.SendError{ConnectionID: "a", Attempts: 4, Err: connection.ErrServerError}))
	// Output:
	// delivered
	// client gone: drop it
	// back off and retry later
	// failed after 4 attempts
}

func Example_observer() {
	gw := exampleGateway()
	defer gw.Close()
	api := connection.NewManagementClient(gw.URL+"/prod", connection.ClientOptions{})
	defer connection.CloseIdleConnections(api)
	var mu sync.Mutex
	counts := map[connection.Status]int{}
	obs := connection.ObserverFuncs{
		// e.g. emit an EMF metric per outcome
		Send: func(o connection.Outcome, _ time.Duration) {
			mu.Lock()
			counts[o.Status]++
			mu.Unlock()
		},
	}
	m, _ := connection.New(api, newExampleStore("quiet1", "quiet2", "gone1"), connection.Config{Observer: obs, Logger: slog.New(slog.DiscardHandler)})
	_, _ = m.Broadcast(context.Background(), []string{"quiet1", "quiet2", "gone1", "nobody"}, "x")
	_ = m.Shutdown(context.Background())
	snap := m.Metrics()
	fmt.Println(counts[connection.StatusSent], counts[connection.StatusStale], counts[connection.StatusNotFound])
	fmt.Println(snap.Sent, snap.ErrorsByType["gone"], snap.Latency.Count)
	// Output:
	// 2 1 1
	// 2 1 3
}
