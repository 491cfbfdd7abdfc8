package connection

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/freeport"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/dynamotest"
)

// TestErrorRules pins what the package decides about each sentinel: the
// metrics label, the outcome status, and whether the retry policy, the
// breaker and health count it (the documented rules, written out here
// rather than read from errorKinds).
func TestErrorRules(t *testing.T) {
	const (
		ok   = "success"
		fail = "failure"
		excl = "excluded"
	)
	cases := []struct {
		err       error
		label     string
		status    Status
		retry     bool
		breaker   string
		unhealthy bool
	}{
		{ErrConnectionNotFound, "not_found", StatusNotFound, false, ok, false},
		{ErrConnectionStale, "gone", StatusStale, false, ok, false},
		{ErrCircuitOpen, "circuit_open", StatusFailed, false, ok, false},
		{ErrPayloadTooLarge, "payload_too_large", StatusFailed, false, ok, false},
		{ErrShuttingDown, "shutting_down", StatusCancelled, false, excl, false},
		{ErrThrottled, "throttled", StatusFailed, true, excl, false},
		{ErrForbidden, "forbidden", StatusFailed, false, ok, false},
		{ErrServerError, "server_error", StatusFailed, true, fail, true},
		{ErrNetwork, "network", StatusFailed, true, fail, true},
		{ErrRejected, "rejected", StatusFailed, false, ok, true},
		{ErrInvalidMessage, "invalid_message", StatusFailed, false, ok, false},
		{ErrUnhealthy, "skipped", StatusSkipped, false, ok, false},
		{ErrStoreUnavailable, "store", StatusFailed, false, ok, false},
		{context.Canceled, "cancelled", StatusCancelled, false, excl, false},
		{context.DeadlineExceeded, "cancelled", StatusCancelled, false, excl, false},
		{errors.New("something else"), "other", StatusFailed, false, ok, false},
		// Wrapping two: the earlier row decides (a store failure that also
		// carries a deadline is a store failure).
		{fmt.Errorf("%w: %w", ErrStoreUnavailable, context.DeadlineExceeded), "store", StatusFailed, false, ok, false},
		{&SendError{ConnectionID: "a", Err: ErrServerError}, "server_error", StatusFailed, true, fail, true},
	}
	for _, c := range cases {
		k := kindOf(c.err)
		breaker := ok
		switch {
		case k.breaker == breakerFailure:
			breaker = fail
		case k.breaker == breakerExcluded:
			breaker = excl
		}
		if errorType(c.err) != c.label || StatusOf(c.err) != c.status || DefaultShouldRetry(c.err) != c.retry || breaker != c.breaker || k.unhealthy != c.unhealthy {
			t.Errorf("%v: label %q status %s retry %v breaker %s unhealthy %v; want %q %s %v %s %v",
				c.err, errorType(c.err), StatusOf(c.err), DefaultShouldRetry(c.err), breaker, k.unhealthy,
				c.label, c.status, c.retry, c.breaker, c.unhealthy)
		}
	}
	if errorType(nil) != "" || StatusOf(nil) != StatusSent || DefaultShouldRetry(nil) {
		t.Errorf("nil: label %q status %s retry %v", errorType(nil), StatusOf(nil), DefaultShouldRetry(nil))
	}
}

func TestSendErrorTextCountsOnlyRequestsMade(t *testing.T) {
	before := (&SendError{ConnectionID: "a=", Err: ErrConnectionNotFound}).Error()
	if strings.Contains(before, "attempt(s)") || before != `send to connection "a=": connection: connection not found` {
		t.Errorf("no request made: %q", before)
	}
	after := (&SendError{ConnectionID: "a=", Attempts: 4, Err: ErrServerError, StatusCode: 502}).Error()
	if !strings.Contains(after, "failed after 4 attempt(s)") || !strings.HasSuffix(after, "(HTTP 502)") {
		t.Errorf("after requests: %q", after)
	}
}

// TestStoreErrorsStayInTheChain: the real DynamoDB store's typed errors
// (a missing table, an endpoint that refuses or never answers) reach the
// caller of Send and in each Broadcast outcome, and name the store.
func TestStoreErrorsStayInTheChain(t *testing.T) {
	ctx := context.Background()
	g := newFakeGateway(t)
	open := func(t *testing.T, endpoint string) *store.Dynamo {
		t.Helper()
		client, err := store.NewDynamoClient(ctx, store.ClientConfig{Endpoint: endpoint})
		if err != nil {
			t.Fatal(err)
		}
		return store.New(client, store.Config{})
	}
	both := func(t *testing.T, m *Manager, want error) {
		t.Helper()
		err := m.Send(ctx, "abc=", "x")
		if !errors.Is(err, ErrStoreUnavailable) || !errors.Is(err, want) || strings.Contains(err.Error(), "attempt(s)") {
			t.Errorf("Send = %v; want ErrStoreUnavailable and %v, no attempt count", err, want)
		}
		res, err := m.Broadcast(ctx, []string{"abc=", "def="}, "x")
		if err != nil || res.Failed != 2 {
			t.Fatalf("Broadcast = %+v, %v", res, err)
		}
		for _, o := range res.Outcomes {
			if !errors.Is(o.Err, ErrStoreUnavailable) || !errors.Is(o.Err, want) {
				t.Errorf("outcome %s: %v; want ErrStoreUnavailable and %v", o.ConnectionID, o.Err, want)
			}
		}
	}

	t.Run("table not found", func(t *testing.T) {
		ep := dynamotest.Start(t)
		both(t, newTestManager(t, g, store.New(ep.Client, store.Config{Table: "no-such-table"}), Config{}), store.ErrTableNotFound)
	})

	t.Run("endpoint refuses", func(t *testing.T) {
		ep := "http://" + freeport.Addr(t)
		m := newTestManager(t, g, open(t, ep), Config{})
		both(t, m, store.ErrUnavailable)
		var ue *store.UnavailableError
		if err := m.Send(ctx, "abc=", "x"); !errors.As(err, &ue) || ue.Endpoint != ep {
			t.Errorf("Send = %v; want the endpoint %s named", err, ep)
		}
	})

	t.Run("deadline while the store hangs", func(t *testing.T) {
		ep := "http://" + freeport.Silent(t)
		m := newTestManager(t, g, open(t, ep), Config{})
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		err := m.Send(cctx, "abc=", "x")
		// Cancelled (the caller's deadline), not a store failure; but the
		// store that hung is named, not the management API.
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, store.ErrUnavailable) || errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("Send = %v; want DeadlineExceeded and store.ErrUnavailable", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "while checking the connection store") || !strings.Contains(msg, "cannot reach DynamoDB at "+ep) || strings.Contains(msg, "attempt(s)") {
			t.Errorf("Send error text %q", msg)
		}
		if got := m.Metrics().ErrorsByType; got["cancelled"] != 1 || got["store"] != 0 {
			t.Errorf("errors by type %v; want one cancelled", got)
		}
		if g.total("POST") != 0 {
			t.Errorf("%d posts: nothing may be posted when the store did not answer", g.total("POST"))
		}
	})
}
