package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/freeport"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/store/dynamotest"
	"github.com/pay-theory/streamer/pkg/store/schema"
	"runtime/debug"
)

func TestResolveConfig(t *testing.T) {
	ucd := func() (string, error) { return "/home/u/.config/streamer/keys", nil }
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	c, err := ResolveConfig(GlobalFlags{}, getenv, ucd)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Endpoint: DefaultEndpoint, WSURL: DefaultWSURL, Table: schema.DefaultTableName, Region: "us-east-1",
		DynamoDBEndpoint: "http://127.0.0.1:4510", KeyDir: "/home/u/.config/streamer/keys", Issuer: DefaultIssuer, Timeout: DefaultTimeout}
	if c != want {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if !c.Local() {
		t.Error("default endpoint should be local")
	}

	env["STREAMER_ENDPOINT"] = "https://abc.execute-api.eu-west-1.amazonaws.com/prod/"
	env["STREAMER_TABLE"] = "env-table"
	env["STREAMER_TIMEOUT"] = "3s"
	c, err = ResolveConfig(GlobalFlags{Table: "flag-table"}, getenv, ucd)
	if err != nil {
		t.Fatal(err)
	}
	if c.Endpoint != "https://abc.execute-api.eu-west-1.amazonaws.com/prod" || c.Local() {
		t.Errorf("endpoint from env: %q local=%v", c.Endpoint, c.Local())
	}
	if c.Table != "flag-table" {
		t.Errorf("flag must win over env: table %q", c.Table)
	}
	if c.Region != "eu-west-1" || c.DynamoDBEndpoint != "" || c.Timeout != 3*time.Second {
		t.Errorf("aws endpoint: region %q dynamodb %q timeout %s", c.Region, c.DynamoDBEndpoint, c.Timeout)
	}

	// A local stack on another port serves DynamoDB on that port.
	c, _ = ResolveConfig(GlobalFlags{Endpoint: "http://localhost:9999/dev"}, func(string) string { return "" }, ucd)
	if c.DynamoDBEndpoint != "http://localhost:9999" {
		t.Errorf("derived dynamodb endpoint %q", c.DynamoDBEndpoint)
	}
	for _, bad := range []GlobalFlags{{Endpoint: "127.0.0.1:4510"}, {WSURL: "http://x/local"}} {
		_, err := ResolveConfig(bad, func(string) string { return "" }, ucd)
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%+v: want a usage error, got %v", bad, err)
		}
	}
}

func TestBadEndpointIsUsageExit(t *testing.T) {
	te := newTestEnv(t)
	if code := te.run("conn", "ls", "--tenant", "t", "--endpoint", "nope"); code != ExitUsage {
		t.Fatalf("exit %d, want 2; stderr %s", code, te.errOut)
	}
	if !strings.Contains(te.errOut.String(), "--endpoint \"nope\"") {
		t.Errorf("stderr: %s", te.errOut)
	}
}

func TestUnknownCommandIsUsage(t *testing.T) {
	te := newTestEnv(t)
	if code := te.run("frobnicate"); code != ExitUsage {
		t.Fatalf("exit %d", code)
	}
}

// ---- token

func TestTokenKeygenMintVerify(t *testing.T) {
	te := newTestEnv(t)
	if code := te.run("token", "keygen", "-o", "json"); code != ExitOK {
		t.Fatalf("keygen exit %d: %s", code, te.errOut)
	}
	var paths map[string]string
	if err := json.Unmarshal(te.out.Bytes(), &paths); err != nil {
		t.Fatal(err)
	}
	if paths["private_key"] != filepath.Join(te.keyDir, PrivateKeyFile) {
		t.Errorf("keygen paths %v", paths)
	}
	st, err := os.Stat(paths["private_key"])
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode: %v %v", st, err)
	}

	te.out.Reset()
	te.errOut.Reset()
	if code := te.run("token", "keygen"); code != ExitError {
		t.Fatalf("second keygen exit %d", code)
	}
	if !strings.Contains(te.errOut.String(), "--force") {
		t.Errorf("refusal must mention --force: %s", te.errOut)
	}
	if code := te.run("token", "keygen", "--force"); code != ExitOK {
		t.Fatalf("keygen --force exit %d: %s", code, te.errOut)
	}

	te.out.Reset()
	te.f.Now = time.Now
	if code := te.run("token", "mint", "--user", "alice", "--tenant", "acme", "--perm", "read", "--perm", "write"); code != ExitOK {
		t.Fatalf("mint exit %d: %s", code, te.errOut)
	}
	tok := strings.TrimSpace(te.out.String())
	if strings.Count(tok, ".") != 2 || strings.Contains(te.out.String()[:len(te.out.String())-1], "\n") {
		t.Fatalf("mint must print only the token, got %q", te.out.String())
	}

	te.out.Reset()
	if code := te.run("token", "verify", tok, "-o", "json"); code != ExitOK {
		t.Fatalf("verify exit %d: %s %s", code, te.out, te.errOut)
	}
	var v tokenVerdictJSON
	if err := json.Unmarshal(te.out.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Valid || v.Claims.Subject != "alice" || v.Claims.TenantID != "acme" || strings.Join(v.Claims.Permissions, ",") != "read,write" || v.Claims.Issuer != DefaultIssuer {
		t.Errorf("verdict %+v", v)
	}

	// stdin and plain output
	te.out.Reset()
	te.f.IO.In = strings.NewReader(tok + "\n")
	if code := te.run("token", "verify", "-"); code != ExitOK {
		t.Fatalf("verify - exit %d: %s", code, te.errOut)
	}
	if !strings.Contains(te.out.String(), "valid\ttrue\n") || !strings.Contains(te.out.String(), "sub\talice\n") {
		t.Errorf("plain verify output:\n%s", te.out)
	}

	// expired: exit 1, claims still shown, the reason named
	te.out.Reset()
	te.run("token", "mint", "--expired", "--user", "bob")
	expired := strings.TrimSpace(te.out.String())
	te.out.Reset()
	if code := te.run("token", "verify", expired, "-o", "json"); code != ExitError {
		t.Fatalf("verify expired exit %d", code)
	}
	v = tokenVerdictJSON{}
	_ = json.Unmarshal(te.out.Bytes(), &v)
	if v.Valid || v.Reason != "expired" || v.Claims.Subject != "bob" {
		t.Errorf("expired verdict %+v", v)
	}

	// wrong issuer expected
	te.out.Reset()
	if code := te.run("token", "verify", tok, "--issuer", "someone-else"); code != ExitError {
		t.Fatalf("wrong issuer exit %d", code)
	}
	if !strings.Contains(te.out.String(), "wrong_issuer") {
		t.Errorf("plain output should name the reason:\n%s", te.out)
	}
}

func TestTokenMintMissingKeyHints(t *testing.T) {
	te := newTestEnv(t)
	if code := te.run("token", "mint"); code != ExitError {
		t.Fatalf("exit %d", code)
	}
	msg := te.errOut.String()
	for _, want := range []string{"no signing key at " + filepath.Join(te.keyDir, PrivateKeyFile), "streamer token keygen", "streamer local"} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr lacks %q: %s", want, msg)
		}
	}
	if te.out.Len() != 0 {
		t.Errorf("nothing on stdout on error, got %q", te.out)
	}
	te.errOut.Reset()
	if code := te.run("token", "verify", "a.b.c"); code != ExitError || !strings.Contains(te.errOut.String(), "no public key") {
		t.Errorf("verify without key: exit %d %s", code, te.errOut)
	}
}

func TestTokenMintFlagErrors(t *testing.T) {
	te := newTestEnv(t)
	if code := te.run("token", "mint", "--ttl", "-5m"); code != ExitUsage {
		t.Errorf("negative ttl exit %d", code)
	}
	if code := te.run("token", "mint", "--ttl", "soon"); code != ExitUsage {
		t.Errorf("bad ttl exit %d", code)
	}
	if code := te.run("token", "verify"); code != ExitUsage {
		t.Errorf("verify without token exit %d", code)
	}
}

func TestTokenMintParsing(t *testing.T) {
	te := newTestEnv(t)
	var got *TokenMintOptions
	c := NewCmdTokenMint(te.f, func(o *TokenMintOptions) error { got = o; return nil })
	c.SetArgs([]string{"--user", "u", "--tenant", "t", "--perm", "a", "--perm", "b", "--ttl", "5m", "--expired", "--audience", "x", "--key", "k.pem"})
	if err := c.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got.UserID != "u" || got.TenantID != "t" || strings.Join(got.Permissions, ",") != "a,b" || got.TTL != 5*time.Minute || !got.Expired || got.Audience[0] != "x" || got.KeyFile != "k.pem" {
		t.Errorf("parsed %+v", got)
	}
}

// ---- conn ls

func idPrefix(tenant string) string {
	if tenant == "acme" {
		return "id"
	}
	return tenant
}

func seedTenant(te *testEnv, tenant string, n int) {
	for i := 0; i < n; i++ {
		te.store.put(conn(fmt.Sprintf("%s-%04d=", idPrefix(tenant), i), fmt.Sprintf("user-%d", i%7), tenant, time.Duration(n-i)*time.Minute))
	}
}

func TestConnLsStreamsPagesPlain(t *testing.T) {
	te := newTestEnv(t)
	seedTenant(te, "acme", 250)
	seedTenant(te, "other", 3)
	if code := te.run("conn", "ls", "--tenant", "acme"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	lines := strings.Split(strings.TrimSpace(te.out.String()), "\n")
	if len(lines) != 250 {
		t.Fatalf("%d lines, want 250", len(lines))
	}
	if te.store.listCalls != 3 {
		t.Errorf("List called %d times, want 3 pages", te.store.listCalls)
	}
	f := strings.Split(lines[0], "\t")
	want := []string{"id-0000=", "user-0", "acme", testNow.Add(-250 * time.Minute).Format(time.RFC3339), testNow.Add(-125 * time.Minute).Format(time.RFC3339), "3", "4"}
	if strings.Join(f, "|") != strings.Join(want, "|") {
		t.Errorf("first row %q, want %q", f, want)
	}
}

func TestConnLsLimitTableJSON(t *testing.T) {
	te := newTestEnv(t)
	seedTenant(te, "acme", 250)
	te.f.IO.OutTTY = true
	if code := te.run("conn", "ls", "--tenant", "acme", "--limit", "150", "--page-size", "100"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	out := te.out.String()
	if strings.Count(out, "id-0") != 150 {
		t.Errorf("table rows: %d, want 150", strings.Count(out, "id-0"))
	}
	for _, want := range []string{"ID", "CONNECTED", "LAST PING", "250m ago", "│"} {
		if !strings.Contains(out, want) && !strings.Contains(out, strings.ReplaceAll(want, "250m", "4h")) {
			t.Errorf("table lacks %q:\n%s", want, out[:min(len(out), 600)])
		}
	}
	if te.store.listCalls != 2 {
		t.Errorf("--limit 150 should stop after 2 pages, made %d calls", te.store.listCalls)
	}

	te.out.Reset()
	if code := te.run("conn", "ls", "--user", "user-1", "-o", "json"); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var rows []map[string]any
	if err := json.Unmarshal(te.out.Bytes(), &rows); err != nil {
		t.Fatalf("json: %v\n%s", err, te.out)
	}
	if len(rows) != 36 {
		t.Errorf("user-1 has %d connections, want 36", len(rows))
	}
	for _, k := range []string{"connection_id", "user_id", "tenant_id", "connected_at", "last_ping", "messages_sent", "messages_received", "metadata", "permissions", "ttl"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("json lacks %q: %v", k, rows[0])
		}
	}

	te.out.Reset()
	if code := te.run("conn", "ls", "--tenant", "nobody", "-o", "json"); code != ExitOK || strings.TrimSpace(te.out.String()) != "[]" {
		t.Errorf("empty json: exit %d %q", code, te.out)
	}
}

func TestConnLsUsage(t *testing.T) {
	te := newTestEnv(t)
	for _, args := range [][]string{{"conn", "ls", "--tenant", "a", "--user", "b"}, {"conn", "ls", "--tenant", "a", "-o", "yaml"}, {"conn", "ls", "--tenant", "a", "--limit", "-1"}} {
		te.errOut.Reset()
		if code := te.run(args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, te.errOut)
		}
	}
}

// TestStoreFailuresExplained drives the production builders at real
// endpoints that fail: the store's typed errors (store.ErrUnavailable,
// store.ErrTableNotFound), through the Manager for send, become messages
// naming the DynamoDB API, its URL and what to do.
func TestStoreFailuresExplained(t *testing.T) {
	refused := "http://" + freeport.Addr(t)
	silent := "http://" + freeport.Silent(t)
	minidyn := dynamotest.Start(t)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"refused", []string{"conn", "ls", "--tenant", "a", "--dynamodb-endpoint", refused},
			[]string{"cannot reach the DynamoDB API at " + refused, "streamer local"}},
		{"silent until the timeout", []string{"conn", "ls", "--tenant", "a", "--dynamodb-endpoint", silent, "--timeout", "300ms"},
			[]string{"cannot reach the DynamoDB API at " + silent}},
		{"no such table", []string{"conn", "inspect", "abc=", "--dynamodb-endpoint", minidyn.URL, "--table", "nope"},
			[]string{"table nope not found at " + minidyn.URL, "--table / STREAMER_TABLE"}},
		{"send while the store hangs", []string{"send", "abc=", "hi", "--dynamodb-endpoint", silent, "--timeout", "300ms"},
			[]string{"cannot reach the DynamoDB API at " + silent, "while checking the connection store"}},
		{"send to a missing table", []string{"send", "abc=", "hi", "--dynamodb-endpoint", minidyn.URL, "--table", "nope"},
			[]string{"table nope not found at " + minidyn.URL}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			te := newTestEnv(t)
			te.f.Build = RealBuilders()
			if code := te.run(append(c.args, "--endpoint", refused+"/local")...); code != ExitError {
				t.Fatalf("exit %d, want 1: %s", code, te.errOut)
			}
			msg := te.errOut.String()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr lacks %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, "management API") || strings.Contains(msg, "attempt(s)") {
				t.Errorf("the store's failure is blamed on the management API:\n%s", msg)
			}
		})
	}
}

// ---- inspect / kick

func TestConnInspect(t *testing.T) {
	te := newTestEnv(t)
	te.store.put(conn("live=", "u", "t", time.Hour))
	te.store.put(conn("stale=", "u", "t", time.Hour))
	te.mgmt.live["live="] = true
	te.mgmt.live["unrecorded="] = true

	if code := te.run("conn", "inspect", "live=", "-o", "json"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	var res inspectJSON
	if err := json.Unmarshal(te.out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.State != StateLive || res.Record == nil || res.Live == nil || res.Live.SourceIP != "10.0.0.1" || res.Live.UserAgent != "wscat" {
		t.Errorf("live: %+v", res)
	}

	te.out.Reset()
	te.f.IO.OutTTY = true
	if code := te.run("conn", "inspect", "stale="); code != ExitOK {
		t.Fatalf("stale exit %d: %s", code, te.errOut)
	}
	if !strings.Contains(te.out.String(), "stale: the gateway no longer has this connection (410)") {
		t.Errorf("stale table:\n%s", te.out)
	}

	te.out.Reset()
	te.f.IO.OutTTY = false
	te.run("conn", "inspect", "unrecorded=")
	if !strings.Contains(te.out.String(), "state\tunrecorded\n") || !strings.Contains(te.out.String(), "live.source_ip\t10.0.0.1") {
		t.Errorf("unrecorded plain:\n%s", te.out)
	}

	te.errOut.Reset()
	if code := te.run("conn", "inspect", "nope="); code != ExitError {
		t.Fatalf("unknown exit %d", code)
	}
	if !strings.Contains(te.errOut.String(), "unknown connection nope=") {
		t.Errorf("stderr: %s", te.errOut)
	}
}

func TestConnKick(t *testing.T) {
	te := newTestEnv(t)
	te.store.put(conn("k=", "u", "t", time.Hour))
	te.mgmt.live["k="] = true
	if code := te.run("conn", "kick", "k=", "-o", "json"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if got := strings.TrimSpace(te.out.String()); !strings.Contains(got, `"gateway": "disconnected"`) || !strings.Contains(got, `"record": "removed"`) {
		t.Errorf("json: %s", got)
	}
	if te.store.has("k=") || len(te.mgmt.deleted) != 1 {
		t.Errorf("kick must delete at the gateway and the record")
	}

	// record only (gateway already gone): still reported, exit 0
	te.store.put(conn("r=", "u", "t", time.Hour))
	te.out.Reset()
	if code := te.run("conn", "kick", "r="); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if te.out.String() != "gateway\tgone\nrecord\tremoved\n" {
		t.Errorf("plain: %q", te.out)
	}

	// $disconnect removes the record before kick's own delete: still
	// "removed", whoever won.
	te.store.put(conn("d=", "u", "t", time.Hour))
	te.mgmt.live["d="] = true
	te.mgmt.onDelete = func(id string) { _, _, _ = te.store.Delete(context.Background(), id) }
	te.out.Reset()
	if code := te.run("conn", "kick", "d="); code != ExitOK || te.out.String() != "gateway\tdisconnected\nrecord\tremoved\n" {
		t.Errorf("kick racing $disconnect: exit %d %q", code, te.out)
	}
	te.mgmt.onDelete = nil

	te.errOut.Reset()
	if code := te.run("conn", "kick", "r="); code != ExitError || !strings.Contains(te.errOut.String(), "unknown connection r=") {
		t.Errorf("unknown: exit %d %s", code, te.errOut)
	}
}

// ---- send

func TestSend(t *testing.T) {
	te := newTestEnv(t)
	te.store.put(conn("a=", "u", "t", time.Minute))
	if code := te.run("send", "a=", `{"hello":1}`); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if got := te.sentTo("a="); len(got) != 1 || got[0] != `{"hello":1}` {
		t.Errorf("sent %q", got)
	}
	if !strings.Contains(te.errOut.String(), "sent 11 bytes to a=") || te.out.Len() != 0 {
		t.Errorf("messages belong on stderr: out %q err %q", te.out, te.errOut)
	}
	if err := te.msgr.Send(context.Background(), "a=", "late"); !errors.Is(err, connection.ErrShuttingDown) {
		t.Errorf("Run must shut the Manager down: a later send gave %v", err)
	}

	file := filepath.Join(t.TempDir(), "m.json")
	os.WriteFile(file, []byte("from-file"), 0o600)
	te.run("send", "a=", "@"+file)
	te.f.IO.In = strings.NewReader("from-stdin")
	te.run("send", "a=", "-")
	if got := te.sentTo("a="); len(got) != 3 || got[1] != "from-file" || got[2] != "from-stdin" {
		t.Errorf("sent %q", got)
	}
}

func TestSendErrors(t *testing.T) {
	te := newTestEnv(t)
	big := filepath.Join(t.TempDir(), "big")
	os.WriteFile(big, make([]byte, connection.MaxMessageBytes+1), 0o600)
	exact := filepath.Join(t.TempDir(), "exact")
	os.WriteFile(exact, make([]byte, connection.MaxMessageBytes), 0o600)
	te.store.put(conn("a=", "u", "t", time.Minute))
	te.fail["s="] = connection.ErrConnectionStale
	te.fail["gone="] = connection.ErrConnectionNotFound
	te.store.put(conn("s=", "u", "t", time.Minute))

	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"send", "a=", "@" + big}, ExitUsage, "larger than API Gateway's 128 KB message limit"},
		{[]string{"send", "a=", "@/no/such/file"}, ExitUsage, "message file /no/such/file does not exist"},
		{[]string{"send", "gone=", "hi"}, ExitError, "connection gone= not found"},
		{[]string{"send", "s=", "hi"}, ExitError, "is stale: the gateway answered 410"},
		{[]string{"send", "a="}, ExitUsage, "accepts 2 arg"},
		{[]string{"send", "a=", ""}, ExitUsage, "empty"},
	}
	for _, c := range cases {
		te.errOut.Reset()
		calls := len(te.sent())
		if code := te.run(c.args...); code != c.code {
			t.Errorf("%v: exit %d, want %d (%s)", c.args, code, c.code, te.errOut)
		}
		if !strings.Contains(te.errOut.String(), c.msg) {
			t.Errorf("%v: stderr %q lacks %q", c.args, te.errOut, c.msg)
		}
		if c.code == ExitUsage && len(te.sent()) != calls {
			t.Errorf("%v: refused input must not be sent", c.args)
		}
	}
	if code := te.run("send", "a=", "@"+exact); code != ExitOK {
		t.Errorf("exactly 128 KB must be allowed: exit %d %s", code, te.errOut)
	}
}

// ---- broadcast

func TestBroadcastTenantAllSent(t *testing.T) {
	te := newTestEnv(t)
	seedTenant(te, "acme", 120)
	te.store.put(conn("other-1=", "x", "other", time.Minute))
	if code := te.run("broadcast", "--tenant", "acme", "--concurrency", "7", "hello", "-o", "json"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	var s broadcastJSON
	if err := json.Unmarshal(te.out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Total != s.Sent || s.Undelivered == nil {
		t.Errorf("summary %+v", s)
	}
	if te.msgrOpts.MaxInFlight != 7 || te.msgrOpts.Fixed {
		t.Errorf("--concurrency not passed as the adaptive limit's cap: %+v", te.msgrOpts)
	}
	if len(te.sentTo("other-1=")) != 0 {
		t.Error("another tenant received the broadcast")
	}
}

// failingShutdown is a Messenger whose Shutdown (the messages_sent flush
// after the command) fails.
type failingShutdown struct {
	Messenger
	err error
}

func (f failingShutdown) Shutdown(ctx context.Context) error {
	_ = f.Messenger.Shutdown(ctx)
	return f.err
}

// Every send done and reported, the bookkeeping after it failing: exit 0
// with a warning. A failing code would make a script broadcast again.
func TestBroadcastFlushFailureAfterDeliveryIsAWarning(t *testing.T) {
	te := newTestEnv(t)
	seedTenant(te, "acme", 5)
	build := te.f.Build.Messenger
	te.f.Build.Messenger = func(ctx context.Context, c Config, o MessengerOptions) (Messenger, error) {
		m, err := build(ctx, c, o)
		return failingShutdown{m, errors.New("connection: shutdown abandoned the last messages_sent flush, still running 1s after its deadline: context deadline exceeded")}, err
	}
	if code := te.run("broadcast", "--tenant", "acme", "hello", "-o", "json"); code != ExitOK {
		t.Fatalf("exit %d, want 0: %s", code, te.errOut)
	}
	var s broadcastJSON
	if err := json.Unmarshal(te.out.Bytes(), &s); err != nil || s.Sent != 5 {
		t.Fatalf("summary %s (%v)", te.out, err)
	}
	if got := te.errOut.String(); !strings.Contains(got, "warning: the command's sends are done and reported, but recording their messages_sent counts did not finish: ") ||
		!strings.Contains(got, "abandoned the last messages_sent flush") || strings.Contains(got, "error:") {
		t.Errorf("stderr: %s", got)
	}
	// A failed command keeps its own error and code.
	te.out.Reset()
	te.errOut.Reset()
	te.fail["id-0000="] = connection.ErrConnectionStale
	if code := te.run("broadcast", "--tenant", "acme", "hello"); code != ExitPartial {
		t.Fatalf("exit %d, want 3: %s", code, te.errOut)
	}
}

func TestBroadcastPartialExit3(t *testing.T) {
	te := newTestEnv(t)
	te.store.put(conn("a=", "u", "t", time.Minute))
	te.store.put(conn("s=", "u", "t", time.Minute))
	te.fail["s="] = connection.ErrConnectionStale
	te.fail["missing="] = connection.ErrConnectionNotFound
	if code := te.run("broadcast", "--ids", "a=,s=,missing=,a=", "hi"); code != ExitPartial {
		t.Fatalf("exit %d, want 3: %s", code, te.errOut)
	}
	out := te.out.String()
	for _, want := range []string{"total\t3\n", "sent\t1\n", "not_found\t1\n", "stale\t1\n", "failed\t0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(te.errOut.String(), "missing= not_found") || !strings.Contains(te.errOut.String(), "2 of 3 connections did not receive") {
		t.Errorf("stderr: %s", te.errOut)
	}
}

func TestBroadcastDryRunAndIDsFrom(t *testing.T) {
	te := newTestEnv(t)
	file := filepath.Join(t.TempDir(), "ids")
	os.WriteFile(file, []byte("# targets\nb=\tuser\tt\n\na=,c=\nb=\n"), 0o600)
	if code := te.run("broadcast", "--ids-from", file, "--dry-run", "hi"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if te.out.String() != "b=\na=\nc=\n" || len(te.sent()) != 0 {
		t.Errorf("dry run printed %q, sends %d", te.out, len(te.sent()))
	}
	if !strings.Contains(te.errOut.String(), "would send 2 bytes to 3 connections") {
		t.Errorf("stderr %s", te.errOut)
	}
	te.out.Reset()
	te.f.IO.In = strings.NewReader("x=\ny=\n")
	te.run("broadcast", "--ids-from", "-", "--dry-run", "-o", "json", "hi")
	if strings.ReplaceAll(strings.ReplaceAll(te.out.String(), " ", ""), "\n", "") != `{"bytes":2,"targets":["x=","y="]}` {
		t.Errorf("json dry run %s", te.out)
	}
}

func TestBroadcastUsage(t *testing.T) {
	te := newTestEnv(t)
	cases := [][]string{
		{"broadcast", "hi"},
		{"broadcast", "--tenant", "a", "--ids", "x", "hi"},
		{"broadcast", "--ids-from", "-", "-"},
		{"broadcast", "--ids-from", "/no/such", "hi"},
		{"broadcast", "--tenant", "a", "--concurrency", "-2", "hi"},
	}
	for _, args := range cases {
		te.errOut.Reset()
		if code := te.run(args...); code != ExitUsage {
			t.Errorf("%v: exit %d (%s)", args, code, te.errOut)
		}
	}
}

func TestBroadcastProgressOnTTYOnly(t *testing.T) {
	te := newTestEnv(t)
	seedTenant(te, "acme", progressThreshold)
	te.f.IO.ErrTTY = true
	te.run("broadcast", "--tenant", "acme", "hi")
	if !strings.Contains(te.errOut.String(), "\rbroadcast [") || !strings.Contains(te.errOut.String(), fmt.Sprintf("%d/%d 100%%\n", progressThreshold, progressThreshold)) {
		t.Errorf("no progress bar on a TTY: %q", te.errOut)
	}
	te.errOut.Reset()
	te.f.IO.ErrTTY = false
	te.run("broadcast", "--tenant", "acme", "hi")
	if strings.Contains(te.errOut.String(), "\r") {
		t.Errorf("progress bar drawn on a non-TTY: %q", te.errOut)
	}
}

func TestProgressBarThrottlesAndCompletes(t *testing.T) {
	var buf strings.Builder
	now := testNow
	b := newProgressBar(&buf, func() time.Time { return now }, "x")
	for i := 1; i <= 1000; i++ {
		b.Update(i, 1000)
	}
	b.Update(3, 1000) // late, out-of-order callback must not move it back
	b.Done()
	if n := strings.Count(buf.String(), "\r"); n != 3 { // first, final on update, final on Done
		t.Errorf("%d redraws without the clock moving, want 3: %q", n, buf.String())
	}
	if !strings.HasSuffix(buf.String(), "1000/1000 100%\n") {
		t.Errorf("final line %q", buf.String())
	}
}

// ---- colour

func TestColourOnlyOnTTYWithoutNoColor(t *testing.T) {
	run := func(tty bool, noColor string) string {
		te := newTestEnv(t)
		te.store.put(conn("a=", "u", "t", time.Minute))
		te.fail["b="] = connection.ErrConnectionNotFound
		te.f.IO.OutTTY, te.f.IO.ErrTTY = tty, tty
		te.env["NO_COLOR"] = noColor
		te.run("broadcast", "--ids", "a=,b=", "hi")
		return te.out.String() + te.errOut.String()
	}
	if out := run(true, ""); !strings.Contains(out, "\x1b[") {
		t.Errorf("TTY without NO_COLOR should colour: %q", out)
	}
	if out := run(true, "1"); strings.Contains(out, "\x1b[") {
		t.Errorf("NO_COLOR must disable colour: %q", out)
	}
	if out := run(false, ""); strings.Contains(out, "\x1b[") {
		t.Errorf("non-TTY must not colour: %q", out)
	}
}

func TestFormatAge(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0s ago", 59 * time.Second: "59s ago", 5 * time.Minute: "5m ago", 3 * time.Hour: "3h ago", 72 * time.Hour: "3d ago", -time.Hour: "0s ago"} {
		if got := formatAge(testNow, testNow.Add(-d)); got != want {
			t.Errorf("%s: %q want %q", d, got, want)
		}
	}
	if formatAge(testNow, time.Time{}) != "-" {
		t.Error("zero time")
	}
}

// ---- smoke

func TestSmokeAllPass(t *testing.T) {
	te := newTestEnv(t)
	newFakeWorld(t, te)
	if code := te.run("smoke", "--timeout", "2s"); code != ExitOK {
		t.Fatalf("exit %d:\n%s\n%s", code, te.out, te.errOut)
	}
	lines := strings.Split(strings.TrimSpace(te.out.String()), "\n")
	if len(lines) != 12 {
		t.Fatalf("%d steps:\n%s", len(lines), te.out)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "pass\t") {
			t.Errorf("step not passed: %s", l)
		}
	}
	if !strings.Contains(te.errOut.String(), "PASS: 12/12") {
		t.Errorf("stderr %s", te.errOut)
	}
}

func TestSmokeFailuresExit3(t *testing.T) {
	te := newTestEnv(t)
	w := newFakeWorld(t, te)
	w.acceptExpired = true
	w.keepRecord = true
	if code := te.run("smoke", "-o", "json", "--timeout", "300ms"); code != ExitPartial {
		t.Fatalf("exit %d, want 3:\n%s\n%s", code, te.out, te.errOut)
	}
	var res struct {
		Passed bool
		Steps  []StepResult
	}
	if err := json.Unmarshal(te.out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, s := range res.Steps {
		status[s.Name] = s.Status
	}
	want := map[string]string{"expired token refused": StepFail, "record removed": StepFail,
		"send after disconnect is not found": StepSkip, "badly signed token refused": StepPass, "send received": StepPass}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("%s: %s, want %s", k, status[k], v)
		}
	}
	if res.Passed {
		t.Error("passed must be false")
	}
}

func TestSmokeLocalHook(t *testing.T) {
	te := newTestEnv(t)
	newFakeWorld(t, te)
	stack := &fakeStack{cfg: Config{Endpoint: "http://127.0.0.1:5555/local", WSURL: "ws://127.0.0.1:5555/local", Table: "t",
		Region: "us-east-1", KeyDir: sharedKeyDir(t), Issuer: DefaultIssuer, Timeout: 2 * time.Second}}
	var dialed string
	dial := te.f.Dial
	te.f.Dial = func(ctx context.Context, u string, h http.Header) (WSConn, int, error) {
		dialed = u
		return dial(ctx, u, h)
	}
	te.f.StartLocal = func(context.Context) (LocalStack, error) { return stack, nil }
	te.env[keyDirEnv] = t.TempDir() // the stack's key dir must be used, not this one
	te.out.Reset()
	if code := te.run("smoke", "--local"); code != ExitOK {
		t.Fatalf("exit %d:\n%s\n%s", code, te.out, te.errOut)
	}
	if !stack.closed || !strings.HasPrefix(dialed, "ws://127.0.0.1:5555/local") {
		t.Errorf("stack closed %v, dialed %q", stack.closed, dialed)
	}
}

type fakeStack struct {
	cfg    Config
	closed bool
}

func (s *fakeStack) Config() Config                  { return s.cfg }
func (s *fakeStack) Close(ctx context.Context) error { s.closed = true; return nil }

// TestSmokeStepsNeedEarlierSteps: the checklist as built passes the check,
// and a step that needs a later or unknown step is refused rather than
// skipped on every run.
func TestSmokeStepsNeedEarlierSteps(t *testing.T) {
	if err := checkSteps((&smoke{}).steps()); err != nil {
		t.Fatalf("the smoke checklist: %v", err)
	}
	noop := func(context.Context) (string, error) { return "", nil }
	for _, steps := range [][]smokeStep{
		{{name: stepConnect, needs: []string{stepMint}, run: noop}, {name: stepMint, run: noop}},
		{{name: stepMint, run: noop}, {name: stepConnect, needs: []string{"mint tokn"}, run: noop}},
	} {
		if err := checkSteps(steps); err == nil {
			t.Errorf("%+v: accepted", steps)
		}
	}
}

func TestTuneGCLeavesGOGCToTheUser(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != cliGCPercent {
		t.Errorf("GC percent %d after tuneGC; want %d", got, cliGCPercent)
	}
	tuneGC(func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: tuneGC changed the GC percent to %d", got)
	}
}
