package e2e_test

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

	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/examples/chat"
	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/internal/freeport"
	"github.com/pay-theory/streamer/internal/rietest"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// The chat example, built as Lambda runs it, under the Runtime Interface
// Emulator behind `streamer local --routes-file` (sendmessage, two-way, so
// each sender gets its Reply once the broadcast is over): real clients in
// two tenants, a client killed without a close frame whose $disconnect is
// lost, a function that fails, and a $connect replaced by a user's
// function that refuses everybody.
func TestYourOwnRoutes(t *testing.T) {
	rie := rietest.Binary(t)
	// A cold build cache compiles the AWS SDK for linux: minutes on 2 cores.
	buildCtx, cancelBuild := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancelBuild()
	root := filepath.Join("..", "..")
	chatBin := rietest.BuildBootstrap(t, buildCtx, root, "./examples/chat/bootstrap")
	denyBin := rietest.BuildBootstrap(t, buildCtx, root, "./internal/rietest/deny")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The function must know the stack's DynamoDB endpoint before the
	// stack starts (which probes the function): pick the stack's port first.
	addr := freeport.Addr(t)
	fnEnv := []string{
		contract.EnvConnectionsTable + "=" + schema.DefaultTableName,
		contract.EnvEndpointURLDynamoDB + "=http://" + addr,
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_EC2_METADATA_DISABLED=true",
	}
	chatFn := rietest.Start(t, ctx, rie, "chat", chatBin, fnEnv)
	// The same bootstrap without its table: its cold start fails, as a
	// misconfigured function does.
	brokenFn := rietest.Start(t, ctx, rie, "broken", chatBin, []string{"AWS_REGION=us-east-1"})
	routes := filepath.Join(t.TempDir(), "routes.json")
	if err := os.WriteFile(routes, []byte(`{"routes": [{"key": "sendmessage", "target": "`+chatFn.URL+`", "two_way": true}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &stack{clitest.StartLocal(t, bin, "--listen", addr, "--key-dir", filepath.Join(t.TempDir(), "keys"),
		"--routes-file", routes, "--route", "broken="+brokenFn.URL, "--drop-disconnect", "1")}

	join := func(user, tenant string) (*client, string) {
		c := s.dial(t, s.mint(t, "--user", user, "--tenant", tenant), "")
		c.send(`{"action":"whoami"}`)
		var w contract.Whoami
		if err := json.Unmarshal([]byte(c.read()), &w); err != nil || w.ConnectionID == "" {
			t.Fatalf("%s: whoami: %v", user, err)
		}
		return c, w.ConnectionID
	}
	alice, aliceID := join("alice", "acme")
	bob, _ := join("bob", "acme")
	carol, _ := join("carol", "globex")

	alice.send(`{"action":"sendmessage","data":"hello acme"}`)
	if m := chatOf(t, bob.read()); m.From != "alice" || m.ConnectionID != aliceID || string(m.Data) != `"hello acme"` {
		t.Errorf("bob got %+v", m)
	}
	if r := replyOf(t, alice.read()); r != (chat.Reply{Action: "sent", Recipients: 1}) {
		t.Errorf("alice's reply %+v, want 1 recipient: bob, not herself, not globex", r)
	}
	// carol's first frame is her own message: nothing of acme's reached her.
	carol.send(`{"action":"sendmessage","data":"hello globex","include_sender":true}`)
	if m := chatOf(t, carol.read()); m.From != "carol" || string(m.Data) != `"hello globex"` {
		t.Errorf("carol's first frame %+v, want her own message", m)
	}
	if r := replyOf(t, carol.read()); r.Recipients != 1 {
		t.Errorf("carol's reply %+v", r)
	}

	// dave's connection dies without a close frame, and (--drop-disconnect
	// 1) its $disconnect never runs: its record stays until a send meets
	// the 410.
	dave, daveID := join("dave", "acme")
	_ = dave.c.CloseNow()
	waitFor(t, "the gateway to notice dave's connection ending", func() bool { return s.metrics(t).ActiveConnections == 3 })
	if ids := acmeIDs(t, s); !strings.Contains(ids, daveID) {
		t.Fatalf("dave's record is gone before any send (%s): was $disconnect dropped?", ids)
	}
	alice.send(`{"action":"sendmessage","data":"anyone?"}`)
	if m := chatOf(t, bob.read()); string(m.Data) != `"anyone?"` {
		t.Errorf("bob got %+v", m)
	}
	if r := replyOf(t, alice.read()); r != (chat.Reply{Action: "sent", Recipients: 1, Stale: 1}) {
		t.Errorf("alice's reply %+v, want 1 recipient and dave stale", r)
	}
	if ids := acmeIDs(t, s); strings.Contains(ids, daveID) || !strings.Contains(ids, aliceID) || strings.Count(ids, "\n") != 2 {
		t.Errorf("acme's records after the 410: %s; want alice's and bob's, not dave's", ids)
	}

	// A function that fails: the client gets API Gateway's error frame,
	// and streamer local's stderr names the route and the same request id.
	alice.send(`{"action":"broken"}`)
	var frame struct{ Message, ConnectionID, RequestID string }
	if err := json.Unmarshal([]byte(alice.read()), &frame); err != nil || frame.Message != "Internal server error" || frame.ConnectionID != aliceID {
		t.Fatalf("after a failed function alice got %+v (%v), want API Gateway's error frame", frame, err)
	}
	line := fmt.Sprintf(`msg="localgw: route integration failed" route=broken requestId=%q connectionId=%q`, frame.RequestID, aliceID)
	waitFor(t, "stderr to say "+line, func() bool { return strings.Contains(s.Stderr.String(), line) })

	t.Run("$connect replaced by a function that refuses", func(t *testing.T) {
		deny := rietest.Start(t, ctx, rie, "deny", denyBin, nil)
		s := &stack{clitest.StartLocal(t, bin, "--key-dir", filepath.Join(t.TempDir(), "keys"), "--route", "$connect="+deny.URL)}
		_, resp, err := websocket.Dial(ctx, s.WebSocketURL+"?Authorization="+s.mint(t), &websocket.DialOptions{
			HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial: %v %+v, want the function's 403", err, resp)
		}
		if m := s.metrics(t); m.ActiveConnections != 0 {
			t.Errorf("%d connections after a refusal", m.ActiveConnections)
		}
	})

	t.Run("an unreachable function is refused at start-up", func(t *testing.T) {
		gone := "http://" + freeport.Addr(t) + "/2015-03-31/functions/function/invocations"
		r := run(t, clitest.CleanEnv(t), "", "local", "--listen", "127.0.0.1:0", "--route", "sendmessage="+gone)
		if r.Code != 1 || !strings.Contains(r.Stderr, `route "sendmessage": nothing answers at`) || r.Stdout != "" {
			t.Errorf("%s", r)
		}
	})
}

func (c *client) send(msg string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func chatOf(t *testing.T, frame string) chat.Chat {
	t.Helper()
	var m chat.Chat
	if err := json.Unmarshal([]byte(frame), &m); err != nil || m.Action != "message" {
		t.Fatalf("frame %q is not a chat message (%v)", frame, err)
	}
	return m
}

func replyOf(t *testing.T, frame string) chat.Reply {
	t.Helper()
	var r chat.Reply
	if err := json.Unmarshal([]byte(frame), &r); err != nil || r.Action == "" || r.Action == "message" {
		t.Fatalf("frame %q is not the route's reply (%v)", frame, err)
	}
	return r
}

// acmeIDs lists tenant acme's records with the CLI, one id per line.
func acmeIDs(t *testing.T, s *stack) string {
	t.Helper()
	r := run(t, s.Env(), "", "conn", "ls", "--tenant", "acme", "-o", "plain")
	if r.Code != 0 {
		t.Fatalf("conn ls: %s", r)
	}
	var ids []string
	for _, row := range plainRows(r.Stdout) {
		ids = append(ids, row[0])
	}
	return strings.Join(ids, "\n") + "\n"
}
