package e2e_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/pay-theory/streamer/internal/clitest"
)

// TestOperatorFlow is the operator's walk-through against a running
// `streamer local`: mint, connect, list, send, broadcast (tenant-scoped),
// inspect, kick.
func TestOperatorFlow(t *testing.T) {
	s := startLocal(t)
	env := s.Env()

	alice := s.dial(t, s.mint(t, "--user", "alice", "--tenant", "acme", "--perm", "read"), "e2e-alice/1.0")
	bob := s.dial(t, s.mint(t, "--user", "bob", "--tenant", "globex"), "")

	// conn ls, plain (stdout is not a terminal): one tab-separated row per
	// connection, no header.
	r := run(t, env, "", "conn", "ls", "--tenant", "acme")
	rows := plainRows(r.Stdout)
	if r.Code != 0 || len(rows) != 1 || len(rows[0]) != 7 || rows[0][1] != "alice" || rows[0][2] != "acme" {
		t.Fatalf("conn ls --tenant acme: %s", r)
	}
	aliceID := rows[0][0]

	// conn ls -o json
	r = run(t, env, "", "conn", "ls", "--tenant", "acme", "-o", "json")
	var conns []struct {
		ConnectionID string   `json:"connection_id"`
		UserID       string   `json:"user_id"`
		TenantID     string   `json:"tenant_id"`
		Permissions  []string `json:"permissions"`
		Endpoint     string   `json:"endpoint"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &conns); err != nil || r.Code != 0 {
		t.Fatalf("conn ls -o json: %v\n%s", err, r)
	}
	if len(conns) != 1 || conns[0].ConnectionID != aliceID || conns[0].UserID != "alice" || conns[0].TenantID != "acme" ||
		len(conns[0].Permissions) != 1 || conns[0].Permissions[0] != "read" {
		t.Fatalf("conn ls -o json: %+v", conns)
	}
	r = run(t, env, "", "conn", "ls", "--user", "bob")
	rows = plainRows(r.Stdout)
	if r.Code != 0 || len(rows) != 1 || rows[0][2] != "globex" {
		t.Fatalf("conn ls --user bob: %s", r)
	}
	bobID := rows[0][0]

	// send
	r = run(t, env, "", "send", "--", aliceID, `{"hello":"alice"}`)
	if r.Code != 0 || !strings.Contains(r.Stderr, "sent 17 bytes to "+aliceID) {
		t.Fatalf("send: %s", r)
	}
	if got := alice.read(); got != `{"hello":"alice"}` {
		t.Fatalf("alice received %q", got)
	}

	// send from stdin, JSON output
	r = run(t, env, "from stdin", "send", "-o", "json", "--", aliceID, "-")
	var sent struct {
		ConnectionID string `json:"connection_id"`
		Status       string `json:"status"`
		Bytes        int    `json:"bytes"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &sent); err != nil || r.Code != 0 || sent.Status != "sent" || sent.Bytes != 10 {
		t.Fatalf("send - -o json: %v %s", err, r)
	}
	if got := alice.read(); got != "from stdin" {
		t.Fatalf("alice received %q", got)
	}

	// broadcast --tenant reaches acme's client and not globex's.
	r = run(t, env, "", "broadcast", "--tenant", "acme", "to-acme")
	sum := kv(r.Stdout)
	if r.Code != 0 || sum["total"] != "1" || sum["sent"] != "1" || sum["not_found"] != "0" {
		t.Fatalf("broadcast --tenant acme: %s", r)
	}
	if got := alice.read(); got != "to-acme" {
		t.Fatalf("alice received %q", got)
	}
	// Messages to one connection arrive in order, so if bob's next message
	// is this marker, the broadcast never reached him.
	if r := run(t, env, "", "send", "--", bobID, "marker"); r.Code != 0 {
		t.Fatalf("send bob: %s", r)
	}
	if got := bob.read(); got != "marker" {
		t.Fatalf("bob (tenant globex) received %q: the acme broadcast leaked", got)
	}

	// broadcast -o json
	r = run(t, env, "", "broadcast", "--tenant", "globex", "-o", "json", "to-globex")
	var bj struct {
		Total, Sent int
		Undelivered []any
	}
	if err := json.Unmarshal([]byte(r.Stdout), &bj); err != nil || r.Code != 0 || bj.Total != 1 || bj.Sent != 1 || bj.Undelivered == nil {
		t.Fatalf("broadcast -o json: %v %s", err, r)
	}
	if got := bob.read(); got != "to-globex" {
		t.Fatalf("bob received %q", got)
	}

	// conn inspect: the stored record and the gateway's live view.
	r = run(t, env, "", "conn", "inspect", "-o", "json", "--", aliceID)
	var in struct {
		ConnectionID string `json:"connection_id"`
		State        string `json:"state"`
		Record       *struct {
			UserID       string `json:"user_id"`
			MessagesSent int64  `json:"messages_sent"`
		} `json:"record"`
		Live *struct {
			ConnectedAt  *string `json:"connected_at"`
			LastActiveAt *string `json:"last_active_at"`
			SourceIP     string  `json:"source_ip"`
			UserAgent    string  `json:"user_agent"`
		} `json:"live"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &in); err != nil || r.Code != 0 {
		t.Fatalf("conn inspect: %v %s", err, r)
	}
	if in.State != "live" || in.Record == nil || in.Record.UserID != "alice" || in.Live == nil ||
		in.Live.ConnectedAt == nil || in.Live.LastActiveAt == nil || in.Live.SourceIP != "127.0.0.1" || in.Live.UserAgent != "e2e-alice/1.0" {
		t.Fatalf("conn inspect: %s", r.Stdout)
	}
	r = run(t, env, "", "conn", "inspect", "--", aliceID)
	if f := kv(r.Stdout); r.Code != 0 || f["state"] != "live" || f["live.source_ip"] != "127.0.0.1" || f["tenant_id"] != "acme" {
		t.Fatalf("conn inspect plain: %s", r)
	}

	// conn kick: the client sees its socket close; the record is gone.
	r = run(t, env, "", "conn", "kick", "--", aliceID)
	if f := kv(r.Stdout); r.Code != 0 || f["gateway"] != "disconnected" || f["record"] != "removed" {
		t.Fatalf("conn kick: %s", r)
	}
	err := alice.readErr()
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("alice after kick: %v, want a close frame", err)
	}
	if r := run(t, env, "", "conn", "ls", "--tenant", "acme"); r.Code != 0 || r.Stdout != "" {
		t.Fatalf("conn ls after kick: %s", r)
	}
	if r := run(t, env, "", "conn", "inspect", "--", aliceID); r.Code != 1 || !strings.Contains(r.Stderr, "unknown connection "+aliceID) {
		t.Fatalf("inspect after kick: %s", r)
	}

	// smoke against this running stack, with its key (STREAMER_KEY_DIR).
	r = run(t, env, "", "smoke")
	if r.Code != 0 || strings.Count(r.Stdout, "pass\t") != 12 || !strings.Contains(r.Stderr, "PASS: 12/12") {
		t.Fatalf("smoke: %s", r)
	}
}

// TestSmokeLocal is the README's main-job command: one process, the whole
// product, every step passing.
func TestSmokeLocal(t *testing.T) {
	r := run(t, clitest.CleanEnv(t), "", "smoke", "--local")
	if r.Code != 0 || strings.Count(r.Stdout, "pass\t") != 12 || !strings.Contains(r.Stderr, "PASS: 12/12") {
		t.Fatalf("smoke --local: %s", r)
	}
	r = run(t, clitest.CleanEnv(t), "", "smoke", "--local", "-o", "json")
	var res struct {
		Passed bool `json:"passed"`
		Steps  []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || r.Code != 0 || !res.Passed || len(res.Steps) != 12 {
		t.Fatalf("smoke --local -o json: %v %s", err, r)
	}
}
