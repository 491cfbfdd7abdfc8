package rie

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/internal/rietest"
	"github.com/pay-theory/streamer/lambda/reaper"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/localstack/localstacktest"
	"github.com/pay-theory/streamer/pkg/store"
)

// Reaper timing: every GetConnection takes reaperLatency at the gateway,
// and a run has reaperTimeout less the reaper's margin (2 s). The Manager
// keeps at most connection.DefaultMaxInFlight (256) requests in flight,
// so 3,000 records need at least 3,000 / 256 × 250 ms = 2.9 s of
// GetConnection, and a cold Manager's limit starts at 10: more than one
// run has, whatever the machine's speed (pages overlap, so the page count
// alone no longer bounds a run), while the first run still finishes its
// first pages (100 records by its fourth round trip, 1 s).
const (
	reaperZombies = 2990
	reaperLive    = 10
	reaperLatency = 250 * time.Millisecond
	reaperTimeout = "4" // AWS_LAMBDA_FUNCTION_TIMEOUT, seconds
)

// testReaper runs the built reaper bootstrap under the emulator against a
// local stack (its management API and DynamoDB endpoint) holding live
// clients and zombie records: with a short function timeout one invocation
// cannot finish, so it saves its cursor, and the next ones resume from it
// until every zombie is gone and every live record kept.
func testReaper(t *testing.T, ctx context.Context, rie, bin string) {
	s := localstacktest.Start(t, localstack.Config{})
	defer http.DefaultClient.CloseIdleConnections()

	// Live clients: their records must survive every run.
	for i := range reaperLive {
		if _, err := s.Dial(ctx, fmt.Sprintf("live-%d", i), "rie"); err != nil {
			t.Fatal(err)
		}
	}
	// Zombies: records no connection of the gateway has, older than the
	// reaper's minimum age, counted in ActiveConnections as a lost
	// $disconnect leaves them.
	old := time.Now().Add(-10 * time.Minute)
	zombies := make([]store.Connection, reaperZombies)
	for i := range zombies {
		zombies[i] = store.Connection{ConnectionID: fmt.Sprintf("Zombie%05dRieX=", i), UserID: fmt.Sprintf("gone-%d", i), TenantID: "rie", ConnectedAt: old}
	}
	if err := s.Store.SaveMany(ctx, zombies); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.AddActive(ctx, reaperZombies); err != nil {
		t.Fatal(err)
	}
	if err := s.Gateway.SetFaults(localgw.Faults{Latency: reaperLatency}); err != nil {
		t.Fatal(err)
	}

	f := rietest.Start(t, ctx, rie, contract.FunctionReaper, bin, append([]string{
		contract.EnvConnectionsTable + "=" + s.Table,
		contract.EnvManagementEndpoint + "=" + s.ManagementEndpoint,
		contract.EnvEnvironment + "=rie",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + reaperTimeout,
	}, rietest.LocalAWSEnv(s.DynamoDBEndpoint)...))
	ev := scheduledEvent(t)
	var runs []reaper.Result
	removed := 0
	for len(runs) == 0 || !runs[len(runs)-1].Complete {
		if len(runs) == 20 {
			t.Fatalf("no complete pass in 20 runs: %+v", runs)
		}
		_, raw := f.Invoke(t, ctx, ev)
		var res reaper.Result
		if err := json.Unmarshal(raw, &res); err != nil || res.Skipped || res.Errors != 0 {
			t.Fatalf("run %d answered %s (%v): want a run that checked records without errors", len(runs)+1, raw, err)
		}
		if res.Resumed != (len(runs) > 0) || res.Removed == 0 && !res.Complete {
			t.Fatalf("run %d %+v: every run but the first resumes, and each makes progress", len(runs)+1, res)
		}
		runs = append(runs, res)
		removed += res.Removed
	}
	t.Logf("runs: %+v", runs)
	if len(runs) < 2 {
		t.Fatalf("one run checked %d records at %v each within %s s: the test no longer proves resumption", reaperZombies+reaperLive, reaperLatency, reaperTimeout)
	}
	if removed != reaperZombies {
		t.Errorf("removed %d records in all, want the %d zombies", removed, reaperZombies)
	}
	left, err := s.Store.List(ctx, store.ListQuery{TenantID: "rie", PageSize: store.MaxListPageSize})
	if err != nil || len(left.Connections) != reaperLive || left.Next != "" {
		t.Fatalf("records left: %d (%v), want the %d live ones", len(left.Connections), err, reaperLive)
	}
	for _, c := range left.Connections {
		if !strings.HasPrefix(c.UserID, "live-") {
			t.Errorf("record %s of %s survived", c.ConnectionID, c.UserID)
		}
	}
	if n, err := s.Store.AddActive(ctx, 0); err != nil || n != reaperLive {
		t.Errorf("ActiveConnections %d (%v), want %d", n, err, reaperLive)
	}

	// A new pass starts over, and finds nothing more to remove: the live
	// clients' records (connected seconds ago: left alone as recent).
	_, raw := f.Invoke(t, ctx, ev)
	var again reaper.Result
	if err := json.Unmarshal(raw, &again); err != nil || again.Resumed || again.Removed != 0 || again.Live+again.Recent != reaperLive {
		t.Fatalf("run after the pass: %s (%v)", raw, err)
	}

	log := f.Log.String()
	logInit(t, contract.FunctionReaper, log)
	checkLogs(t, contract.FunctionReaper, log)
	for _, want := range []string{`"msg":"reaper run"`, `"stopped":"deadline"`, `"ZombieRecordsRemoved":`, `"operation":"reap"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the reaper's log lacks %s:\n%s", want, log)
		}
	}
}

func scheduledEvent(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "lambda", "reaper", "testdata", "scheduled.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}
