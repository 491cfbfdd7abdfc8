package e2e_test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/internal/freeport"
)

// TestErrorCases: bad input gets a clear message and the documented exit
// code (1 error, 2 usage, 3 partial failure).
func TestErrorCases(t *testing.T) {
	s := startLocal(t)
	env := s.Env()
	c := s.dial(t, s.mint(t, "--tenant", "errs"), "")
	r := run(t, env, "", "conn", "ls", "--tenant", "errs")
	rows := plainRows(r.Stdout)
	if r.Code != 0 || len(rows) != 1 {
		t.Fatalf("conn ls: %s", r)
	}
	live := rows[0][0]
	const unknown = "Tm9TdWNoSWQxMjM=" // well-formed (AWS-shaped) but unknown: 410, not 400

	expect := func(name string, r clitest.Result, code int, wants ...string) {
		t.Helper()
		if r.Code != code {
			t.Errorf("%s: exit %d, want %d\n%s", name, r.Code, code, r)
			return
		}
		for _, w := range wants {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%s: stderr lacks %q\n%s", name, w, r)
			}
		}
	}

	t.Run("unknown connection id", func(t *testing.T) {
		expect("send", run(t, env, "", "send", unknown, "hi"), 1, "connection "+unknown+" not found", "streamer conn ls")
		expect("inspect", run(t, env, "", "conn", "inspect", unknown), 1, "unknown connection "+unknown)
		expect("kick", run(t, env, "", "conn", "kick", unknown), 1, "unknown connection "+unknown)
	})

	t.Run("message over 128 KB refused before sending", func(t *testing.T) {
		big := filepath.Join(t.TempDir(), "big.json")
		if err := os.WriteFile(big, []byte(strings.Repeat("x", 128*1024+1)), 0o600); err != nil {
			t.Fatal(err)
		}
		before := s.metrics(t)
		expect("send @big", run(t, env, "", "send", live, "@"+big), 2, "larger than API Gateway's 128 KB message limit", "nothing was sent")
		expect("broadcast @big", run(t, env, "", "broadcast", "--tenant", "errs", "@"+big), 2, "128 KB")
		expect("send - big", run(t, env, strings.Repeat("y", 128*1024+1), "send", live, "-"), 2, "stdin is larger")
		if after := s.metrics(t); after.Management.RequestsTotal != before.Management.RequestsTotal {
			t.Errorf("management requests went from %d to %d: an oversized message reached the gateway",
				before.Management.RequestsTotal, after.Management.RequestsTotal)
		}
		// Exactly 128 KB is allowed and arrives.
		ok := filepath.Join(t.TempDir(), "ok.json")
		if err := os.WriteFile(ok, []byte(strings.Repeat("z", 128*1024)), 0o600); err != nil {
			t.Fatal(err)
		}
		c.c.SetReadLimit(256 << 10)
		if r := run(t, env, "", "send", live, "@"+ok); r.Code != 0 {
			t.Fatalf("send 128 KB: %s", r)
		}
		if got := c.read(); len(got) != 128*1024 {
			t.Errorf("received %d bytes", len(got))
		}
	})

	t.Run("message file missing", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope.json")
		expect("send @missing", run(t, env, "", "send", live, "@"+missing), 2, "message file "+missing+" does not exist")
	})

	t.Run("no key", func(t *testing.T) {
		empty := t.TempDir()
		e := append(append([]string(nil), env...), "STREAMER_KEY_DIR="+empty)
		expect("mint", run(t, e, "", "token", "mint"), 1,
			"no signing key at "+filepath.Join(empty, "jwt-private.pem"), "streamer token keygen", "streamer local")
		expect("verify", run(t, e, "", "token", "verify", "a.b.c"), 1, "no public key", "streamer token keygen")
	})

	t.Run("unreachable endpoint", func(t *testing.T) {
		// A listener that accepts and never answers: only the timeout ends
		// the call. clitest.RunTimeout bounds the whole run.
		hole := freeport.Silent(t)
		e := append(clitest.CleanEnv(t), "STREAMER_ENDPOINT=http://"+hole+"/local", "STREAMER_KEY_DIR="+s.KeyDir, "STREAMER_TIMEOUT=1s")
		expect("conn ls", run(t, e, "", "conn", "ls", "--tenant", "t"), 1, "cannot reach the DynamoDB API at http://"+hole, "streamer local")
		// The Manager reads the record first: a send that times out there
		// names DynamoDB, not the management API it never reached.
		r := run(t, e, "", "send", live, "hi")
		expect("send", r, 1, "cannot reach the DynamoDB API at http://"+hole, "while checking the connection store")
		if strings.Contains(r.Stderr, "management API") || strings.Contains(r.Stderr, "attempt(s)") {
			t.Errorf("send blames the management API or counts attempts it never made:\n%s", r)
		}
		expect("inspect", run(t, e, "", "conn", "inspect", live), 1, "http://"+hole)
		// Nothing listening at all: refused at once, still named.
		closed := freeport.Addr(t)
		e = append(clitest.CleanEnv(t), "STREAMER_ENDPOINT=http://"+closed+"/local")
		expect("broadcast", run(t, e, "", "broadcast", "--tenant", "t", "hi"), 1, "cannot reach the DynamoDB API at http://"+closed)
		expect("kick", run(t, e, "", "conn", "kick", live), 1, "cannot reach the DynamoDB API at http://"+closed)
		// The store answers, the management API does not.
		e = append(e, "AWS_ENDPOINT_URL_DYNAMODB="+s.DynamoDBEndpoint)
		expect("kick", run(t, e, "", "conn", "kick", live), 1, "cannot reach the management API at http://"+closed+"/local")
		expect("inspect", run(t, e, "", "conn", "inspect", live), 1, "cannot reach the management API at http://"+closed+"/local")
		expect("send", run(t, e, "", "send", live, "hi"), 1, "cannot reach the management API at http://"+closed+"/local", "failed after 4 attempt(s)")
	})

	t.Run("bad flags", func(t *testing.T) {
		expect("unknown flag", run(t, env, "", "conn", "ls", "--bogus"), 2, "unknown flag: --bogus", "--help")
		expect("no target", run(t, env, "", "broadcast", "hi"), 2, "give exactly one target")
		expect("bad ttl", run(t, env, "", "token", "mint", "--ttl", "soon"), 2, "invalid argument")
		expect("bad endpoint", run(t, env, "", "conn", "ls", "--tenant", "t", "--endpoint", "nope"), 2, `--endpoint "nope"`)
		expect("unknown command", run(t, env, "", "frobnicate"), 2, "unknown command")
		expect("local --listen", run(t, env, "", "local", "--listen", "nonsense"), 2, `--listen "nonsense"`)
	})

	t.Run("broadcast partial failure", func(t *testing.T) {
		r := run(t, env, "", "broadcast", "--ids", live+","+unknown, "partial")
		sum := kv(r.Stdout)
		if r.Code != 3 || sum["total"] != "2" || sum["sent"] != "1" || sum["not_found"] != "1" {
			t.Fatalf("broadcast --ids live,unknown: %s", r)
		}
		if !strings.Contains(r.Stderr, unknown+" not_found: no record") || !strings.Contains(r.Stderr, "1 of 2 connections did not receive the message") {
			t.Errorf("stderr:\n%s", r.Stderr)
		}
		if got := c.read(); got != "partial" {
			t.Errorf("live target received %q", got)
		}
		// Nothing was posted to a target without a record: its entry says
		// why, without counting attempts.
		r = run(t, env, "", "broadcast", "--ids", unknown, "none", "-o", "json")
		var js struct {
			Undelivered []struct{ ConnectionID, Status, Error string }
		}
		if err := json.Unmarshal([]byte(r.Stdout), &js); r.Code != 3 || err != nil || len(js.Undelivered) != 1 {
			t.Fatalf("broadcast -o json: %v\n%s", err, r)
		}
		if u := js.Undelivered[0]; u.Status != "not_found" || !strings.Contains(u.Error, "connection not found") || strings.Contains(u.Error, "attempt") {
			t.Errorf("not-found entry %+v", u)
		}
	})

	t.Run("local on a taken port", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addr := l.Addr().String()
		r := run(t, clitest.CleanEnv(t), "", "local", "--listen", addr, "--key-dir", t.TempDir())
		expect("local", r, 1, "cannot listen on "+addr, "address already in use", "--listen")
		if r.Stdout != "" {
			t.Errorf("stdout must stay empty when the stack did not start: %q", r.Stdout)
		}
	})
}
