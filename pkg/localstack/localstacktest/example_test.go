package localstacktest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/localstack/localstacktest"
	"github.com/pay-theory/streamer/pkg/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A broadcast to one tenant, on the whole stack: the real $connect stores
// both clients' records, the store lists one tenant's, the Manager posts
// through @connections, and only that tenant's client receives it. (In a
// test, localstacktest.Start(t, localstack.Config{}) does New's job and
// closes the stack when the test ends.)
func Example() {
	ctx := context.Background()
	s, err := localstacktest.New(ctx, localstack.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close(ctx)

	alice, err := s.Dial(ctx, "alice", "acme")
	if err != nil {
		fmt.Println(err)
		return
	}
	bob, err := s.Dial(ctx, "bob", "globex")
	if err != nil {
		fmt.Println(err)
		return
	}

	api := connection.NewManagementClient(s.ManagementEndpoint, connection.ClientOptions{})
	m, err := connection.New(api, s.Store, connection.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Shutdown(ctx)

	res, err := m.BroadcastQuery(ctx, s.Store, store.ListQuery{TenantID: "acme"}, map[string]string{"news": "for acme"}, connection.BroadcastOptions{})
	fmt.Println("sent:", res.Sent, err)

	_, msg, _ := alice.Read(ctx)
	fmt.Println("alice:", string(msg))
	// Messages to one connection arrive in order, so if the broadcast had
	// reached bob, it would come before this one.
	_ = m.Send(ctx, bob.ID, "just for bob")
	_, msg, _ = bob.Read(ctx)
	fmt.Println("bob:", string(msg))
	// Output:
	// sent: 1 <nil>
	// alice: {"news":"for acme"}
	// bob: just for bob
}

// WaitGone returns once the gateway has forgotten a closed client, and
// not for one still open.
func TestWaitGone(t *testing.T) {
	ctx := context.Background()
	s := localstacktest.Start(t, localstack.Config{})
	open, err := s.Dial(ctx, "u1", "t")
	if err != nil {
		t.Fatal(err)
	}
	closing, err := s.Dial(ctx, "u2", "t")
	if err != nil {
		t.Fatal(err)
	}
	_ = closing.Close(websocket.StatusNormalClosure, "bye")
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.WaitGone(wctx, closing.ID); err != nil {
		t.Fatal(err)
	}
	if ids := s.Gateway.ConnectionIDs(); len(ids) != 1 || ids[0] != open.ID {
		t.Fatalf("gateway knows %v, want only %s", ids, open.ID)
	}
	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if err := s.WaitGone(short, open.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitGone on an open connection: %v, want the deadline", err)
	}
}
