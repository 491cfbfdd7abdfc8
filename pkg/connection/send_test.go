package connection

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	smithy "github.com/aws/smithy-go"

	"github.com/pay-theory/streamer/pkg/store"
)

// Each failure mode through the real SDK client: the sentinel, the number
// of HTTP requests the server saw (the SDK retryer is off, so requests =
// our attempts), the backoff waits (none after the last attempt), and that
// no SDK type leaks.
func TestSendFailureModes(t *testing.T) {
	cases := []struct {
		name     string
		reply    reply
		want     error
		requests int
		status   int
		code     string
		fixed    bool
	}{
		{"410 gone", gone, ErrConnectionStale, 1, 410, "GoneException", false},
		{"403 forbidden", forbidden, ErrForbidden, 1, 403, "ForbiddenException", false},
		{"413 too large", tooLarge, ErrPayloadTooLarge, 1, 413, "PayloadTooLargeException", false},
		{"400 other client error", errReply(400, "BadRequestException", "Invalid connectionId"), ErrRejected, 1, 400, "BadRequestException", false},
		{"429 throttled, fixed limit", throttled, ErrThrottled, 4, 429, "LimitExceededException", true},
		{"500", internal, ErrServerError, 4, 500, "InternalServerErrorException", false},
		{"502", badGateway, ErrServerError, 4, 502, "UnknownError", false},
		{"connection reset", resetConn, ErrNetwork, 4, 0, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGateway(t)
			g.on("", tc.reply)
			st := newMemStore("abc=")
			clk := newFakeClock(true)
			m := newTestManager(t, g, st, Config{Clock: clk, Breaker: BreakerConfig{Disabled: true}, Limit: LimitConfig{Fixed: tc.fixed}})

			err := m.Send(context.Background(), "abc=", map[string]string{"hello": "world"})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("err %T is not a *SendError", err)
			}
			if se.ConnectionID != "abc=" || se.Attempts != tc.requests || se.StatusCode != tc.status || se.Code != tc.code {
				t.Errorf("SendError = %+v, want id abc= attempts %d status %d code %q", se, tc.requests, tc.status, tc.code)
			}
			if got := g.count("abc="); got != tc.requests {
				t.Errorf("server saw %d requests, want %d", got, tc.requests)
			}
			waits := clk.recorded()
			if len(waits) != tc.requests-1 {
				t.Errorf("backoff waits %v: want %d (none after the last attempt)", waits, tc.requests-1)
			}
			for i, w := range waits {
				nominal := DefaultBaseDelay << i
				if w < nominal*3/4 || w > nominal*5/4 {
					t.Errorf("wait %d = %v, want %v ±25%%", i+1, w, nominal)
				}
			}
			var gone *types.GoneException
			var api smithy.APIError
			if errors.As(err, &gone) || errors.As(err, &api) {
				t.Errorf("SDK error type leaked through %v", err)
			}
			if strings.Contains(err.Error(), "operation error") {
				t.Errorf("SDK error text leaked: %v", err)
			}
			if got := st.has("abc="); got == (tc.want == ErrConnectionStale) {
				t.Errorf("record present = %v after %v", got, tc.want)
			}
			snap := m.Metrics()
			if snap.Sends != 1 || snap.SendErrors != 1 || snap.Attempts != uint64(tc.requests) || snap.ErrorsByType[errorType(tc.want)] != 1 {
				t.Errorf("metrics %+v", snap)
			}
		})
	}
}

// With the adaptive limit (the default) a 429 is not an attempt: the
// limiter cuts its rate and paces the next request (no exponential
// backoff), up to MaxThrottledAttempts 429s.
func TestSendThrottledIsPacedNotRetried(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", throttled)
	st := newMemStore("abc=")
	clk := newFakeClock(true)
	m := newTestManager(t, g, st, Config{Clock: clk, Limit: LimitConfig{MaxThrottledAttempts: 6}})
	err := m.Send(context.Background(), "abc=", "hi")
	var se *SendError
	if !errors.As(err, &se) || !errors.Is(err, ErrThrottled) || se.Attempts != 6 {
		t.Fatalf("err = %v, want ErrThrottled after 6 requests", err)
	}
	if got := g.count("abc="); got != 6 {
		t.Errorf("server saw %d requests, want 6", got)
	}
	waits := clk.recorded()
	if len(waits) != 5 {
		t.Fatalf("waits %v, want 5 pacing waits", waits)
	}
	for i := 1; i < len(waits); i++ {
		// Each 429 answers a request sent after the last cut: the rate
		// drops by 30% each time, so the paced waits grow by 1/0.7.
		if r := float64(waits[i]) / float64(waits[i-1]); r < 1.3 || r > 1.55 {
			t.Errorf("wait %d/%d ratio %.2f, want ~1.43 (rate ×0.7 per 429): %v", i+1, i, r, waits)
		}
	}
	if s := m.Metrics().Limit; s.Throttled != 6 || s.RatePerSecond <= 0 || s.Limit >= DefaultWorkers {
		t.Errorf("limit after 6 429s: %+v, want throttled 6, a rate, the limit cut", s)
	}

	// A 429 then a success: delivered, 2 requests, no backoff.
	g.on("ok=", throttled, reply{})
	st.put("ok=")
	if err := m.Send(context.Background(), "ok=", "hi"); err != nil {
		t.Fatalf("429 then 200: %v", err)
	}
	if got := g.count("ok="); got != 2 {
		t.Errorf("requests = %d, want 2", got)
	}
}

func TestSendRetriesThenSucceeds(t *testing.T) {
	g := newFakeGateway(t)
	g.on("abc=", internal, badGateway, reply{})
	st := newMemStore("abc=")
	clk := newFakeClock(true)
	m := newTestManager(t, g, st, Config{Clock: clk})
	if err := m.Send(context.Background(), "abc=", "hi"); err != nil {
		t.Fatal(err)
	}
	if got := g.count("abc="); got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
	if w := clk.recorded(); len(w) != 2 {
		t.Errorf("waits = %v, want 2", w)
	}
	if s := m.Metrics(); s.Retries != 2 || s.Sent != 1 || s.SendErrors != 0 {
		t.Errorf("metrics %+v", s)
	}
}

func TestSendMaxAttemptsOneDisablesRetries(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", internal)
	m := newTestManager(t, g, newMemStore("a"), Config{MaxAttempts: 1})
	if err := m.Send(context.Background(), "a", "x"); !errors.Is(err, ErrServerError) {
		t.Fatal(err)
	}
	if got := g.count("a"); got != 1 {
		t.Errorf("requests = %d", got)
	}
}

func TestCustomRetryPolicy(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", forbidden)
	clk := newFakeClock(true)
	m := newTestManager(t, g, newMemStore("a"), Config{Clock: clk, MaxAttempts: 3, Retry: RetryPolicy{
		ShouldRetry: func(err error) bool { return errors.Is(err, ErrForbidden) },
		Backoff:     func(n int) time.Duration { return time.Duration(n) * time.Second },
	}})
	if err := m.Send(context.Background(), "a", "x"); !errors.Is(err, ErrForbidden) {
		t.Fatal(err)
	}
	if got, w := g.count("a"), clk.recorded(); got != 3 || len(w) != 2 || w[0] != time.Second || w[1] != 2*time.Second {
		t.Errorf("requests %d waits %v", got, w)
	}
}

func TestBackoffBounds(t *testing.T) {
	for n := 1; n <= 10; n++ {
		nominal := min(DefaultBaseDelay<<(n-1), DefaultMaxDelay)
		lo := ExponentialBackoff(DefaultBaseDelay, DefaultMaxDelay, 2, 0.25, 0, n)
		hi := ExponentialBackoff(DefaultBaseDelay, DefaultMaxDelay, 2, 0.25, 0.999999, n)
		mid := ExponentialBackoff(DefaultBaseDelay, DefaultMaxDelay, 2, 0.25, 0.5, n)
		wantHi := min(nominal*5/4, DefaultMaxDelay) // jitter never exceeds the cap
		if lo != nominal*3/4 || hi > wantHi || hi < wantHi-time.Millisecond || mid != nominal {
			t.Errorf("retry %d: lo %v mid %v hi %v, nominal %v", n, lo, mid, hi, nominal)
		}
	}
}

// Many random draws through the configured policy: every wait lies within
// nominal ±jitter and never above MaxDelay, including once the exponential
// has reached the cap (where jitter used to add up to 25% on top).
func TestBackoffRandomDrawsNeverExceedCap(t *testing.T) {
	for _, tc := range []struct {
		name   string
		retry  RetryPolicy
		base   time.Duration
		cap    time.Duration
		jitter float64
	}{
		{"defaults", RetryPolicy{}, DefaultBaseDelay, DefaultMaxDelay, DefaultJitter},
		{"wide jitter, low cap", RetryPolicy{BaseDelay: 50 * time.Millisecond, MaxDelay: 300 * time.Millisecond, Jitter: 0.9},
			50 * time.Millisecond, 300 * time.Millisecond, 0.9},
	} {
		cfg := Config{Retry: tc.retry}.withDefaults()
		var atCap int
		for i := range 100000 {
			n := i%12 + 1
			nominal := min(tc.base<<(n-1), tc.cap)
			floor := time.Duration(float64(nominal) * (1 - tc.jitter))
			d := cfg.Retry.Backoff(n)
			if d > tc.cap || d < floor-time.Microsecond {
				t.Fatalf("%s: retry %d wait %v outside [%v, %v]", tc.name, n, d, floor, tc.cap)
			}
			if d == tc.cap {
				atCap++
			}
		}
		if atCap == 0 {
			t.Errorf("%s: no draw reached the cap; the test does not exercise it", tc.name)
		}
	}
}

func TestSendNotFoundMakesNoRequest(t *testing.T) {
	g := newFakeGateway(t)
	st := newMemStore("expired")
	clk := newFakeClock(true)
	st.now = clk.Now
	st.mu.Lock()
	st.recs["expired"] = store.Connection{ConnectionID: "expired", TTL: clk.Now().Add(-time.Second).Unix()}
	st.mu.Unlock()
	m := newTestManager(t, g, st, Config{Clock: clk})
	for _, id := range []string{"missing", "expired", ""} {
		err := m.Send(context.Background(), id, "x")
		if !errors.Is(err, ErrConnectionNotFound) {
			t.Errorf("%q: err = %v", id, err)
		}
	}
	if n := g.total(""); n != 0 {
		t.Errorf("server saw %d requests", n)
	}
}

func TestSendPayloadLimitBeforeNetwork(t *testing.T) {
	g := newFakeGateway(t)
	st := newMemStore("a")
	m := newTestManager(t, g, st, Config{})
	big := make([]byte, MaxMessageBytes+1)
	err := m.Send(context.Background(), "a", big)
	if !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatal(err)
	}
	var se *SendError
	if !errors.As(err, &se) || se.Attempts != 0 {
		t.Errorf("%#v", err)
	}
	if g.total("") != 0 || st.gets != 0 {
		t.Errorf("requests %d store gets %d: the limit must be checked first", g.total(""), st.gets)
	}
	exact := make([]byte, MaxMessageBytes)
	if err := m.Send(context.Background(), "a", exact); err != nil {
		t.Fatalf("exactly 128 KB: %v", err)
	}
	if _, err := m.Broadcast(context.Background(), []string{"a"}, big); !errors.Is(err, ErrPayloadTooLarge) {
		t.Errorf("broadcast: %v", err)
	}
	if g.total("") != 1 {
		t.Errorf("requests %d", g.total(""))
	}
	if err := m.Send(context.Background(), "a", func() {}); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("func message: %v", err)
	}
}

func TestSendEncodesOnceAndPassesRawBytes(t *testing.T) {
	g := newFakeGateway(t)
	m := newTestManager(t, g, newMemStore("a"), Config{})
	msgs := []struct {
		in   any
		want string
	}{
		{[]byte(`{"raw":1}`), `{"raw":1}`},
		{json.RawMessage(`[1,2]`), `[1,2]`},
		{"plain text", "plain text"},
		{struct {
			A int `json:"a"`
		}{7}, `{"a":7}`},
	}
	for _, c := range msgs {
		if err := m.Send(context.Background(), "a", c.in); err != nil {
			t.Fatal(err)
		}
	}
	reqs := g.all()
	for i, c := range msgs {
		if string(reqs[i].body) != c.want || reqs[i].method != "POST" {
			t.Errorf("%d: %s %q, want POST %q", i, reqs[i].method, reqs[i].body, c.want)
		}
	}
}

// Connection ids such as L0SM9cOFvHcCIhw= must be percent-encoded in the path.
func TestConnectionIDIsURLEncoded(t *testing.T) {
	g := newFakeGateway(t)
	id := "L0SM9cOFvHcCIhw="
	odd := "a+b/c d?"
	m := newTestManager(t, g, newMemStore(id, odd), Config{})
	for _, x := range []string{id, odd} {
		if err := m.Send(context.Background(), x, "x"); err != nil {
			t.Fatal(err)
		}
	}
	reqs := g.all()
	if reqs[0].id != id || !strings.HasSuffix(reqs[0].escapedPath, "/@connections/L0SM9cOFvHcCIhw%3D") {
		t.Errorf("got id %q path %q", reqs[0].id, reqs[0].escapedPath)
	}
	if reqs[1].id != odd || strings.ContainsAny(strings.TrimPrefix(reqs[1].escapedPath, "/test/@connections/"), "+/ ?") {
		t.Errorf("got id %q path %q", reqs[1].id, reqs[1].escapedPath)
	}
}

// A slow endpoint: the caller's deadline wins, the error is the context's,
// and a request cut by the caller is not retried.
func TestSendSlowResponseCallerTimeout(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", reply{delay: time.Minute})
	m := newTestManager(t, g, newMemStore("a"), Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := m.Send(ctx, "a", "x")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if g.count("a") != 1 {
		t.Errorf("requests %d", g.count("a"))
	}
	if s := m.Metrics(); s.ErrorsByType["cancelled"] != 1 {
		t.Errorf("errors %v", s.ErrorsByType)
	}
}

// A slow endpoint with a per-attempt timeout: each attempt times out and is
// retried as a network error.
func TestSendSlowResponseAttemptTimeout(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", reply{delay: time.Minute})
	m := newTestManager(t, g, newMemStore("a"), Config{AttemptTimeout: 100 * time.Millisecond, Breaker: BreakerConfig{Disabled: true}})
	err := m.Send(context.Background(), "a", "x")
	var se *SendError
	if !errors.Is(err, ErrNetwork) || !errors.As(err, &se) || se.Attempts != 4 {
		t.Fatalf("err = %v, want ErrNetwork after 4 attempts", err)
	}
	// On a loaded machine an attempt can time out before the server has
	// counted its request; every one it saw was cut short.
	if n := g.count("a"); n < 1 || n > 4 {
		t.Errorf("server saw %d requests, want 1 to 4", n)
	}
}

// Cancelling during a backoff wait returns at once with the context error.
func TestSendCancelDuringBackoff(t *testing.T) {
	g := newFakeGateway(t)
	g.on("", internal)
	clk := newFakeClock(false) // timers never fire by themselves
	m := newTestManager(t, g, newMemStore("a"), Config{Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.Send(ctx, "a", "x") }()
	if d := clk.waitTimer(t); d < 75*time.Millisecond || d > 125*time.Millisecond {
		t.Errorf("first backoff %v", d)
	}
	cancel()
	select {
	case err := <-errc:
		var se *SendError
		if !errors.Is(err, context.Canceled) || !errors.As(err, &se) || se.Attempts != 1 || se.StatusCode != 500 {
			t.Fatalf("err = %#v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send did not return after cancel")
	}
	if g.count("a") != 1 {
		t.Errorf("requests %d", g.count("a"))
	}
}

func TestIsActiveNeverPosts(t *testing.T) {
	g := newFakeGateway(t)
	clk := newFakeClock(true)
	st := newMemStore("live", "gone=", "expired")
	st.now = clk.Now
	st.mu.Lock()
	st.recs["expired"] = store.Connection{ConnectionID: "expired", TTL: clk.Now().Add(-time.Minute).Unix()}
	st.mu.Unlock()
	g.on("gone=", gone)
	m := newTestManager(t, g, st, Config{Clock: clk})
	ctx := context.Background()
	if !m.IsActive(ctx, "live") {
		t.Error("live: false")
	}
	if m.IsActive(ctx, "gone=") {
		t.Error("gone: true")
	}
	if st.has("gone=") {
		t.Error("gone record not removed")
	}
	if m.IsActive(ctx, "missing") || m.IsActive(ctx, "expired") {
		t.Error("missing/expired: true")
	}
	if g.total("POST") != 0 || g.total("GET") != 2 {
		t.Errorf("requests: %d POST, %d GET; want 0 and 2", g.total("POST"), g.total("GET"))
	}
}

func TestDisconnect(t *testing.T) {
	g := newFakeGateway(t)
	g.on("already=", gone)
	st := newMemStore("a", "already=")
	m := newTestManager(t, g, st, Config{})
	for _, id := range []string{"a", "already="} {
		if err := m.Disconnect(context.Background(), id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if st.has(id) {
			t.Errorf("%s still stored", id)
		}
	}
	if g.total("DELETE") != 2 {
		t.Errorf("deletes %d", g.total("DELETE"))
	}
}

// The Manager decrements the active counter for records it removes (410,
// Disconnect); a failing counter is logged and never fails the call.
func TestRemovedRecordsDecrementActiveCounter(t *testing.T) {
	g := newFakeGateway(t)
	g.on("gone=", gone)
	st := newMemStore("a", "b", "gone=")
	st.active = 3
	m := newTestManager(t, g, st, Config{})
	ctx := context.Background()
	if err := m.Send(ctx, "gone=", "x"); !errors.Is(err, ErrConnectionStale) {
		t.Fatal(err)
	}
	if err := m.Disconnect(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := m.Disconnect(ctx, "a"); err != nil { // nothing left to remove
		t.Fatal(err)
	}
	if st.active != 1 {
		t.Errorf("active %d, want 1", st.active)
	}
	st.mu.Lock()
	st.failAct = errors.New("counter throttled")
	st.mu.Unlock()
	st.put("gone=")
	if err := m.Send(ctx, "gone=", "x"); !errors.Is(err, ErrConnectionStale) || strings.Contains(err.Error(), "counter") {
		t.Errorf("stale send with a failing counter: %v", err)
	}
	if err := m.Disconnect(ctx, "b"); err != nil {
		t.Errorf("Disconnect with a failing counter: %v", err)
	}
	if st.has("gone=") || st.has("b") {
		t.Error("records not removed")
	}
}
