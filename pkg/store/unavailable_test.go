package store_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/freeport"
	"github.com/pay-theory/streamer/pkg/store"
)

// TestUnavailableNamesTheEndpoint drives the real SDK client at endpoints
// that do not answer: refused at once, and accepting but silent until the
// caller's deadline. Both are ErrUnavailable naming the endpoint; a
// cancellation is not.
func TestUnavailableNamesTheEndpoint(t *testing.T) {
	open := func(t *testing.T, endpoint string) *store.Dynamo {
		t.Helper()
		client, err := store.NewDynamoClient(context.Background(), store.ClientConfig{Endpoint: endpoint})
		if err != nil {
			t.Fatal(err)
		}
		return store.New(client, store.Config{})
	}
	check := func(t *testing.T, err error, endpoint string, cause error) {
		t.Helper()
		var ue *store.UnavailableError
		if !errors.Is(err, store.ErrUnavailable) || !errors.As(err, &ue) {
			t.Fatalf("err = %v; want ErrUnavailable", err)
		}
		if ue.Endpoint != endpoint || !strings.Contains(err.Error(), "cannot reach DynamoDB at "+endpoint) {
			t.Errorf("endpoint %q, text %q; want %s named", ue.Endpoint, err, endpoint)
		}
		if !errors.Is(err, cause) {
			t.Errorf("err = %v; the cause %v must stay in the chain", err, cause)
		}
	}

	t.Run("refused", func(t *testing.T) {
		ep := "http://" + freeport.Addr(t)
		_, err := open(t, ep).Get(context.Background(), "abc=")
		check(t, err, ep, syscall.ECONNREFUSED)
	})

	t.Run("no answer before the deadline", func(t *testing.T) {
		ep := "http://" + freeport.Silent(t)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := open(t, ep).List(ctx, store.ListQuery{TenantID: "t"})
		check(t, err, ep, context.DeadlineExceeded)
	})

	t.Run("cancelled is the caller's, not unavailable", func(t *testing.T) {
		ep := "http://" + freeport.Silent(t)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := open(t, ep).Get(ctx, "abc=")
		if !errors.Is(err, context.Canceled) || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("err = %v; want context.Canceled and not ErrUnavailable", err)
		}
	})
}
