package localstack_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/localstack/localstacktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The stack's routes are two-way exactly where the deployment gives a
// route response: a ping to $default gets its pong back.
func TestRoutesFollowTheContract(t *testing.T) {
	s := localstacktest.Start(t, localstack.Config{})
	for _, key := range []string{localgw.RouteConnect, localgw.RouteDisconnect, localgw.RouteDefault} {
		in := s.Gateway.Route(key)
		if in == nil || localgw.IsTwoWay(in) != contract.IsTwoWayRoute(key) {
			t.Errorf("route %s: set %v, two-way %v; want two-way %v", key, in != nil, localgw.IsTwoWay(in), contract.IsTwoWayRoute(key))
		}
	}
	ctx := testCtx(t)
	c, err := s.Dial(ctx, "u1", "t1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"action":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || !strings.Contains(string(msg), `"pong"`) {
		t.Errorf("ping answered %q %v, want the $default handler's pong", msg, err)
	}
}

func TestDialTellsTheConnectionID(t *testing.T) {
	s := localstacktest.Start(t, localstack.Config{})
	ctx := testCtx(t)
	a, err := s.Dial(ctx, "alice", "acme")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Dial(ctx, "bob", "acme")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID {
		t.Fatalf("two clients, one id %q", a.ID)
	}
	for _, c := range []*localstacktest.Client{a, b} {
		rec, err := s.Store.Get(ctx, c.ID)
		if err != nil || rec.UserID != c.UserID || rec.TenantID != "acme" {
			t.Errorf("record of %s: %+v %v", c.ID, rec, err)
		}
	}
	if !strings.HasPrefix(s.BaseURL, "http://127.0.0.1:") || strings.HasSuffix(s.BaseURL, ":4510") {
		t.Errorf("base URL %s, want a free loopback port", s.BaseURL)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Dial(ctx, "late", "acme"); err == nil {
		t.Error("Dial after Close succeeded")
	}
}

// Close returns once the last $disconnect ran, with no wait for anybody's
// idle keep-alive connections (it used to stall 5.5 s in about one run in
// six, waiting for a spare connection of the stack's own DynamoDB client).
// The bound is a hang detector, not a timing target.
func TestCloseWithClientsConnectedIsPrompt(t *testing.T) {
	closeWith := func(t *testing.T, clients int, hang time.Duration) time.Duration {
		s, err := localstacktest.New(context.Background(), localstack.Config{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := testCtx(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var lastClose time.Time
		for range clients {
			c, err := s.Dial(ctx, "u", "t")
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() { // a reader answers the gateway's close frame
				defer wg.Done()
				for {
					if _, _, err := c.Read(ctx); err != nil {
						mu.Lock()
						if now := time.Now(); now.After(lastClose) {
							lastClose = now
						}
						mu.Unlock()
						return
					}
				}
			}()
		}
		start := time.Now()
		err = s.Stack.Close(ctx) // the stack itself, clients still connected
		end := time.Now()
		took := end.Sub(start)
		wg.Wait()
		t.Logf("%d clients: Close %v, of which after the last client saw its close frame %v", clients, took, end.Sub(lastClose))
		if err != nil {
			t.Fatal(err)
		}
		if took > hang {
			t.Errorf("Close with %d clients took %v: something waits (over %v)", clients, took, hang)
		}
		_ = s.Close(ctx)
		return took
	}
	var worst time.Duration
	for range 10 {
		worst = max(worst, closeWith(t, 3, 3*time.Second))
	}
	t.Logf("Close with 3 clients: slowest of 10 runs %v", worst)
	// 300 $disconnect writes to one in-memory table: about 0.4 s without
	// the race detector, several seconds with it on a loaded machine.
	t.Logf("Close with 300 clients: %v", closeWith(t, 300, 20*time.Second))
}
