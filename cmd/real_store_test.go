package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/dynamotest"
)

// TestConnLsAndKickRealStore runs the production builders against a real
// DynamoDB-API endpoint (minidyn over HTTP): the same client, credentials
// and store code a user's `conn ls` uses.
func TestConnLsAndKickRealStore(t *testing.T) {
	ep := dynamotest.Start(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	for i, id := range []string{"a=", "b=", "c="} {
		c := store.Connection{ConnectionID: id, UserID: "u" + id, TenantID: "acme", Endpoint: "http://127.0.0.1:4510/local",
			ConnectedAt: now.Add(time.Duration(i-3) * time.Minute), LastPing: now, TTL: now.Add(time.Hour).Unix()}
		if err := ep.Store.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	te := newTestEnv(t)
	te.f.Build.Store = RealBuilders().Store
	te.f.Now = time.Now
	args := []string{"--dynamodb-endpoint", ep.URL, "--table", ep.Table, "--timeout", "5s"}

	if code := te.run(append([]string{"conn", "ls", "--tenant", "acme", "--page-size", "2", "-o", "json"}, args...)...); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	var rows []store.Connection
	if err := json.Unmarshal(te.out.Bytes(), &rows); err != nil {
		t.Fatalf("%v\n%s", err, te.out)
	}
	if len(rows) != 3 || rows[0].ConnectionID != "a=" || rows[2].ConnectionID != "c=" || rows[1].UserID != "ub=" {
		t.Fatalf("rows %+v", rows)
	}

	// kick: the (fake) gateway says gone, the real record is removed.
	te.out.Reset()
	if code := te.run(append([]string{"conn", "kick", "b="}, args...)...); code != ExitOK {
		t.Fatalf("kick exit %d: %s", code, te.errOut)
	}
	if _, err := ep.Store.Get(ctx, "b="); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record still there: %v", err)
	}
	te.out.Reset()
	te.run(append([]string{"conn", "ls", "--tenant", "acme"}, args...)...)
	if strings.Count(te.out.String(), "\n") != 2 || strings.Contains(te.out.String(), "b=") {
		t.Errorf("after kick:\n%s", te.out)
	}
}
