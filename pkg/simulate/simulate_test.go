package simulate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/simulate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSimulationDrivesTheStack(t *testing.T) {
	ctx := context.Background()
	stack, err := localstack.Start(ctx, localstack.Config{Listen: "127.0.0.1:0", KeyDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := stack.Close(cctx); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	sim, err := simulate.Start(ctx, stack, simulate.Config{
		Clients: 12, Tenants: 2, MessageInterval: 40 * time.Millisecond,
		Lifetime: 300 * time.Millisecond, BroadcastInterval: 60 * time.Millisecond,
		BadTokenRate: 0.2, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Wait (bounded) until every kind of activity has been seen.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := sim.Stats()
		g := stack.Gateway.Metrics()
		if st.Connects > 12 && st.Disconnects > 0 && st.Refused > 0 && st.MessagesSent > 0 &&
			st.MessagesReceived > 0 && st.Broadcasts > 0 && g.Manager != nil && g.Manager.SendsTotal > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("simulation incomplete after 20s: %+v, gateway %+v", st, g)
		}
		time.Sleep(50 * time.Millisecond)
	}
	g := stack.Gateway.Metrics()
	if g.AuthFailuresTotal == 0 || g.MessagesInTotal == 0 || g.MessagesOutTotal == 0 {
		t.Fatalf("gateway did not see the simulation: %+v", g)
	}
	if g.Manager.ConcurrencyLimit < 1 || g.Manager.InFlight < 0 {
		t.Fatalf("the Manager's concurrency limit is not reported: %+v", *g.Manager)
	}
	if g.Manager.BreakerState != "closed" {
		t.Fatalf("breaker state %q", g.Manager.BreakerState)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sim.Stop(sctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if g := stack.Gateway.Metrics(); g.Manager != nil {
		t.Fatal("manager reporter still attached after Stop")
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := simulate.Start(context.Background(), nil, simulate.Config{Clients: 1}); !errors.Is(err, simulate.ErrConfig) {
		t.Fatalf("nil stack: %v", err)
	}
	stack := &localstack.Stack{}
	for _, n := range []int{0, -1, 10001} {
		if _, err := simulate.Start(context.Background(), stack, simulate.Config{Clients: n}); !errors.Is(err, simulate.ErrConfig) {
			t.Fatalf("clients %d: %v", n, err)
		}
	}
}
