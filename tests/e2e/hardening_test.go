package e2e_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/internal/freeport"
)

// TestSmokeFailureLeaksNoToken: a smoke run against nothing listening fails
// every dial; its output names the URL it could not reach, never the JWT
// the dial carried (?Authorization=...).
func TestSmokeFailureLeaksNoToken(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	env := append(clitest.CleanEnv(t), "STREAMER_KEY_DIR="+keys, "STREAMER_TIMEOUT=2s")
	if r := run(t, env, "", "token", "keygen", "--dir", keys); r.Code != 0 {
		t.Fatalf("keygen: %s", r)
	}
	closed := freeport.Addr(t)
	for _, args := range [][]string{
		{"smoke", "--endpoint", "http://127.0.0.1:1/local", "--ws-url", "ws://127.0.0.1:1/local"},
		{"smoke", "--endpoint", "http://" + closed + "/local", "--ws-url", "ws://" + closed + "/local", "-o", "json"},
	} {
		r := run(t, env, "", args...)
		all := r.Stdout + r.Stderr
		// Nothing answers: the run could not check a stack (exit 1).
		if r.Code != 1 {
			t.Fatalf("%v: exit %d, want 1\n%s", args, r.Code, r)
		}
		if strings.Contains(all, "eyJ") {
			t.Errorf("%v: the output carries a JWT:\n%s", args, r)
		}
		if !strings.Contains(all, "cannot reach the WebSocket endpoint at "+args[4]) {
			t.Errorf("%v: the failure does not name the WebSocket URL:\n%s", args, r)
		}
	}
}

// TestUsageErrorsBeforeNetwork: malformed arguments exit 2 with a clear
// message and never reach the network. The endpoint is a closed port, so
// any request would instead fail with "cannot reach" and exit 1.
func TestUsageErrorsBeforeNetwork(t *testing.T) {
	closed := freeport.Addr(t)
	env := append(clitest.CleanEnv(t), "STREAMER_ENDPOINT=http://"+closed+"/local", "STREAMER_KEY_DIR="+t.TempDir())
	long := strings.Repeat("a", 129)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"send", "abc", "hi", "-o", "yaml"}, `unknown --output "yaml"`},
		{[]string{"send", "", "hi"}, "connection id is blank"},
		{[]string{"conn", "inspect", ""}, "connection id is blank"},
		{[]string{"conn", "kick", ""}, "connection id is blank"},
		{[]string{"send", long, "hi"}, "connection id is 129 bytes"},
		{[]string{"conn", "inspect", "#stats"}, `starts with "#"`},
		{[]string{"conn", "kick", long}, "longer than any connection id"},
		{[]string{"broadcast", "--ids", "ok,#bad", "hi"}, `"#bad" starts with "#"`},
		{[]string{"completion", "tcsh"}, `unknown shell "tcsh"`},
	} {
		r := run(t, env, "", tc.args...)
		if r.Code != 2 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("%q: exit %d, want 2 and %q\n%s", tc.args, r.Code, tc.want, r)
		}
		if strings.Contains(r.Stderr, "cannot reach") || strings.Contains(r.Stderr, "store:") || strings.Contains(r.Stderr, "connection_id") {
			t.Errorf("%q: a network call or internal text:\n%s", tc.args, r)
		}
	}
}

func TestCompletionAndVersion(t *testing.T) {
	env := clitest.CleanEnv(t)
	r := run(t, env, "", "completion", "bash")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "# bash completion V2 for streamer") {
		t.Errorf("completion bash: exit %d, stdout starts %.80q", r.Code, r.Stdout)
	}
	r = run(t, env, "", "version", "-o", "json")
	var v map[string]string
	if err := json.Unmarshal([]byte(r.Stdout), &v); r.Code != 0 || err != nil || v["version"] == "" {
		t.Errorf("version -o json: %v\n%s", err, r)
	}
}

// TestConnLsWholeTable: `conn ls` with neither --tenant nor --user lists
// every tenant's connections from a real store.
func TestConnLsWholeTable(t *testing.T) {
	s := startLocal(t)
	// The clients stay connected until the test's cleanup.
	s.dial(t, s.mint(t, "--tenant", "all-a", "--user", "ua"), "")
	s.dial(t, s.mint(t, "--tenant", "all-b", "--user", "ub"), "")
	var rows [][]string
	waitFor(t, "both connections in conn ls", func() bool {
		r := run(t, s.Env(), "", "conn", "ls")
		rows = plainRows(r.Stdout)
		return r.Code == 0 && len(rows) == 2
	})
	tenants := map[string]bool{}
	for _, row := range rows {
		tenants[row[2]] = true
	}
	if !tenants["all-a"] || !tenants["all-b"] {
		t.Errorf("rows %q, want one per tenant", rows)
	}
	r := run(t, s.Env(), "", "conn", "ls", "-o", "json", "--limit", "1")
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &got); r.Code != 0 || err != nil || len(got) != 1 {
		t.Errorf("conn ls -o json --limit 1: %v\n%s", err, r)
	}
	if r := run(t, s.Env(), "", "conn", "ls", "--tenant", "a", "--user", "b"); r.Code != 2 {
		t.Errorf("both --tenant and --user: %s", r)
	}
}
