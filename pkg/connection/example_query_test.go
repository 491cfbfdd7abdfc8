package connection_test

import (
	"context"
	"fmt"

	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/localstack/localstacktest"
	"github.com/pay-theory/streamer/pkg/store"
)

// From tenant to broadcast in one call: BroadcastQuery lists the tenant's
// records page by page and sends as the pages arrive, to at most as many at
// once as the endpoint sustains. Here on the whole local stack (the real
// $connect stores the records): alice and carol are in acme, bob in globex;
// carol's connection is gone but its $disconnect was lost (as AWS may), so
// her record lingers until the broadcast's 410 removes it.
func ExampleManager_BroadcastQuery() {
	ctx := context.Background()
	s, err := localstacktest.New(ctx, localstack.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close(ctx)
	alice, _ := s.Dial(ctx, "alice", "acme")
	bob, _ := s.Dial(ctx, "bob", "globex")
	carol, _ := s.Dial(ctx, "carol", "acme")
	_ = s.Gateway.SetFaults(localgw.Faults{DropDisconnect: 1})
	_ = carol.Close(websocket.StatusNormalClosure, "bye")
	_ = s.WaitGone(ctx, carol.ID) // the gateway has forgotten carol; her record stays

	api := connection.NewManagementClient(s.ManagementEndpoint, connection.ClientOptions{})
	m, err := connection.New(api, s.Store, connection.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Shutdown(ctx)

	res, err := m.BroadcastQuery(ctx, s.Store, store.ListQuery{TenantID: "acme"}, map[string]string{"news": "for acme"}, connection.BroadcastOptions{})
	fmt.Println("sent", res.Sent, "stale", res.Stale, err)
	_, msg, _ := alice.Read(ctx)
	fmt.Println("alice:", string(msg))
	_ = m.Send(ctx, bob.ID, "just for bob") // had bob got the broadcast, it would come first
	_, msg, _ = bob.Read(ctx)
	fmt.Println("bob:", string(msg))
	_, err = s.Store.Get(ctx, carol.ID)
	fmt.Println("carol's record removed:", err != nil)
	// Output:
	// sent 1 stale 1 <nil>
	// alice: {"news":"for acme"}
	// bob: just for bob
	// carol's record removed: true
}
