package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/localstack/localstacktest"
)

// TestIDsWithDashAndUnderscore: real API Gateway ids use [A-Za-z0-9_-]
// (issue #14). A stack whose gateway hands out only such ids, driven by the
// built binary: list, inspect, send, broadcast by --ids and --ids-from (the
// id-file reader) and kick all take them.
func TestIDsWithDashAndUnderscore(t *testing.T) {
	var n atomic.Int64
	s := localstacktest.Start(t, localstack.Config{Gateway: localgw.Config{
		NewID: func() string { return fmt.Sprintf("e2e-_%010d=", n.Add(1)) },
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := s.Dial(ctx, "dash-user", "dash-tenant")
	if err != nil {
		t.Fatal(err)
	}
	id := c.ID
	if !strings.ContainsAny(id, "-_") || len(id) != 16 {
		t.Fatalf("id %q: want the test's dash-and-underscore id", id)
	}
	env := append(clitest.CleanEnv(t), "STREAMER_ENDPOINT="+s.ManagementEndpoint, "STREAMER_WS_URL="+s.WebSocketURL,
		"STREAMER_KEY_DIR="+s.KeyDir, "STREAMER_TABLE="+s.Table)
	read := func() string {
		t.Helper()
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("client read: %v", err)
		}
		return string(b)
	}

	r := run(t, env, "", "conn", "ls", "--tenant", "dash-tenant")
	if rows := plainRows(r.Stdout); r.Code != 0 || len(rows) != 1 || rows[0][0] != id {
		t.Fatalf("conn ls: %s", r)
	}
	r = run(t, env, "", "conn", "inspect", "-o", "json", "--", id)
	if r.Code != 0 || !strings.Contains(r.Stdout, `"state": "live"`) {
		t.Fatalf("conn inspect %s: %s", id, r)
	}
	if r = run(t, env, "", "send", "--", id, "one"); r.Code != 0 {
		t.Fatalf("send: %s", r)
	}
	if got := read(); got != "one" {
		t.Errorf("after send: %q", got)
	}
	if r = run(t, env, "", "broadcast", "--ids", id, "two"); r.Code != 0 {
		t.Fatalf("broadcast --ids: %s", r)
	}
	if got := read(); got != "two" {
		t.Errorf("after broadcast --ids: %q", got)
	}
	file := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(file, []byte(id+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r = run(t, env, "", "broadcast", "--ids-from", file, "three"); r.Code != 0 {
		t.Fatalf("broadcast --ids-from: %s", r)
	}
	if got := read(); got != "three" {
		t.Errorf("after broadcast --ids-from: %q", got)
	}
	if r = run(t, env, "", "conn", "kick", "--", id); r.Code != 0 {
		t.Fatalf("conn kick: %s", r)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after kick the client read %v, want close 1000", err)
	}
}
