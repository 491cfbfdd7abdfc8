package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/pay-theory/streamer/pkg/store"
)

const testJWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"

func TestRedactText(t *testing.T) {
	for in, want := range map[string]string{
		`Get "http://127.0.0.1:1/local?Authorization=` + testJWT + `": dial tcp: refused`: `Get "http://127.0.0.1:1/local?Authorization=REDACTED": dial tcp: refused`,
		"wss://x/prod?stage=1&token=abc&Authorization=Bearer%20xyz":                       "wss://x/prod?stage=1&token=REDACTED&Authorization=REDACTED",
		"ws://h/p?session=" + strings.Repeat("Ab9_", 10):                                  "ws://h/p?session=REDACTED",
		"header said " + testJWT + " then":                                                "header said REDACTED then",
		"https://me:hunter2@host/path":                                                    "https://me:REDACTED@host/path",
		"ws://127.0.0.1:4510/local?x=1":                                                   "ws://127.0.0.1:4510/local?x=1",
		"http://127.0.0.1:4510/local":                                                     "http://127.0.0.1:4510/local",
	} {
		if got := redactText(in); got != want {
			t.Errorf("redactText(%q)\n got %q\nwant %q", in, got, want)
		}
	}
}

func TestRedactErrKeepsIsAndScrubsURLError(t *testing.T) {
	raw := "ws://127.0.0.1:1/local?Authorization=" + testJWT
	ue := &url.Error{Op: "Get", URL: raw, Err: context.DeadlineExceeded}
	err := redactErr(fmt.Errorf("failed to WebSocket dial: %w", ue))
	if strings.Contains(err.Error(), "eyJ") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("redactErr = %v (Is deadline %v)", err, errors.Is(err, context.DeadlineExceeded))
	}
	var got *url.Error
	if !errors.As(err, &got) || strings.Contains(got.URL, "eyJ") {
		t.Errorf("the wrapped *url.Error still holds the token: %+v", got)
	}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	e := explainNetErr(wsEndpoint, raw, &url.Error{Op: "Get", URL: raw, Err: refused})
	if msg := e.Error(); strings.Contains(msg, "eyJ") || !strings.Contains(msg, "cannot reach the WebSocket endpoint at ws://127.0.0.1:1/local?Authorization=REDACTED") || !strings.Contains(msg, "--ws-url") {
		t.Errorf("explainNetErr: %s", msg)
	}
}

func TestRedactingLogs(t *testing.T) {
	var b strings.Builder
	l := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: redactAttr}))
	l.Warn("dial", "url", "ws://h/p?Authorization="+testJWT, "err", errors.New("Get \"ws://h/p?Authorization="+testJWT+"\""))
	var w strings.Builder
	fmt.Fprintf(redactingWriter{&w}, `{"msg":"connect","query":"Authorization=%s"}`, testJWT)
	for _, s := range []string{b.String(), w.String()} {
		if strings.Contains(s, "eyJ") || !strings.Contains(s, "REDACTED") {
			t.Errorf("log line leaks or is not redacted: %s", s)
		}
	}
}

// TestSmokeDialErrorsRedacted: smoke against nothing listening dials with
// the real dialer; no output path (checklist, JSON, stderr) carries the
// token the failed dials were made with.
func TestSmokeDialErrorsRedacted(t *testing.T) {
	for _, output := range []string{"plain", "json", "table"} {
		te := newTestEnv(t)
		te.env[keyDirEnv] = sharedKeyDir(t)
		te.env["STREAMER_TIMEOUT"] = "2s"
		te.f.Dial = DialWebSocket
		code := te.run("smoke", "--endpoint", "http://127.0.0.1:1/local", "--ws-url", "ws://127.0.0.1:1/local", "-o", output)
		all := te.out.String() + te.errOut.String()
		// Nothing answers: the run could not check a stack (exit 1).
		if code != ExitError {
			t.Fatalf("-o %s: exit %d, want 1\n%s", output, code, all)
		}
		if strings.Contains(all, "eyJ") {
			t.Errorf("-o %s: the output holds a JWT:\n%s", output, all)
		}
		if !strings.Contains(all, "cannot reach the WebSocket endpoint at ws://127.0.0.1:1/local") || !strings.Contains(all, "Authorization=REDACTED") {
			t.Errorf("-o %s: the failure no longer says what it could not reach:\n%s", output, all)
		}
	}
}

// countingBuilders makes every builder fail the test's expectations
// visibly: it counts calls, so a refused command can prove it built no
// client (and so made no network call).
func countingBuilders(te *testEnv) *int {
	n := new(int)
	b := te.f.Build
	te.f.Build = Builders{
		Store: func(ctx context.Context, c Config) (ConnStore, error) { *n++; return b.Store(ctx, c) },
		Management: func(ctx context.Context, c Config) (ManagementAPI, error) {
			*n++
			return b.Management(ctx, c)
		},
		Messenger: func(ctx context.Context, c Config, o MessengerOptions) (Messenger, error) {
			*n++
			return b.Messenger(ctx, c, o)
		},
	}
	return n
}

func TestBadArgumentsRefusedBeforeIO(t *testing.T) {
	long := strings.Repeat("x", store.MaxIDLength+1)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"send", "abc", "hi", "-o", "yaml"}, `unknown --output "yaml": use table, json or plain`},
		{[]string{"send", "abc", "@/no/such/file", "-o", "yaml"}, `unknown --output "yaml"`},
		{[]string{"send", "", "hi"}, "connection id is blank: give a connection id"},
		{[]string{"send", "  ", "hi"}, "connection id is blank"},
		{[]string{"send", long, "hi"}, "connection id is 129 bytes, longer than any connection id (at most 128"},
		{[]string{"send", "#stats", "hi"}, `connection id "#stats" starts with "#"`},
		{[]string{"send", "a\tb", "hi"}, "control character"},
		{[]string{"conn", "inspect", ""}, "connection id is blank"},
		{[]string{"conn", "inspect", long}, "longer than any connection id"},
		{[]string{"conn", "inspect", "#stats"}, `starts with "#"`},
		{[]string{"conn", "inspect", "abc", "-o", "yaml"}, `unknown --output "yaml"`},
		{[]string{"conn", "kick", ""}, "connection id is blank"},
		{[]string{"conn", "kick", "#x"}, `starts with "#"`},
		{[]string{"conn", "kick", "abc", "-o", "xml"}, `unknown --output "xml"`},
		{[]string{"conn", "ls", "--tenant", long}, "--tenant is 129 bytes"},
		{[]string{"conn", "ls", "--user", " "}, "--user is blank"},
		{[]string{"conn", "ls", "-o", "yaml"}, `unknown --output "yaml"`},
		{[]string{"broadcast", "--ids", "a,#b", "hi"}, `--ids entry 2 "#b" starts with "#"`},
		{[]string{"broadcast", "--ids", "a," + long, "hi"}, "--ids entry 2 is 129 bytes"},
		{[]string{"broadcast", "--tenant", long, "hi"}, "--tenant is 129 bytes"},
		{[]string{"broadcast", "--tenant", "t", "hi", "-o", "yaml"}, `unknown --output "yaml"`},
	}
	for _, c := range cases {
		te := newTestEnv(t)
		built := countingBuilders(te)
		code := te.run(c.args...)
		msg := te.errOut.String()
		if code != ExitUsage || !strings.Contains(msg, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, msg, c.want)
		}
		if *built != 0 || len(te.sent()) != 0 || te.store.listCalls != 0 {
			t.Errorf("%q: refused input reached a client (%d built, %d sends, %d lists)", c.args, *built, len(te.sent()), te.store.listCalls)
		}
		if strings.Contains(msg, "store:") || strings.Contains(msg, "connection_id") {
			t.Errorf("%q: internal text reached the user: %s", c.args, msg)
		}
	}
}

func TestIDsFromFileValidated(t *testing.T) {
	te := newTestEnv(t)
	te.f.IO.In = strings.NewReader("ok=\n#comment\n" + strings.Repeat("y", 200) + "\n")
	if code := te.run("broadcast", "--ids-from", "-", "hi"); code != ExitUsage || !strings.Contains(te.errOut.String(), "the id on line 3 is 200 bytes") {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if len(te.sent()) != 0 {
		t.Error("nothing may be sent when an id is malformed")
	}
}

// TestStoreValidationReworded: were the store to refuse an argument, the
// user reads what is wrong in CLI words, never the store's own text.
func TestStoreValidationReworded(t *testing.T) {
	te := newTestEnv(t)
	te.store.err = fmt.Errorf("wrapped: %w", &store.ValidationError{Field: "connection_id", Reason: "is required"})
	code := te.run("conn", "inspect", "abc")
	msg := te.errOut.String()
	if code != ExitUsage || !strings.Contains(msg, "error: connection id is required") || strings.Contains(msg, "store:") || strings.Contains(msg, "connection_id") {
		t.Fatalf("exit %d, stderr %q", code, msg)
	}
}

func TestUserTextDropsPackagePrefixes(t *testing.T) {
	for in, want := range map[string]string{
		"store: invalid input: tenant_id is required":                         "invalid input: tenant_id is required",
		"send to a=: connection: network error talking to the management API": "send to a=: network error talking to the management API",
		"unknown connection abc: no record":                                   "unknown connection abc: no record",
		"invalid (auth: token expired)":                                       "invalid (token expired)",
	} {
		if got := userText(in); got != want {
			t.Errorf("userText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCompletion(t *testing.T) {
	te := newTestEnv(t)
	if code := te.run("completion", "bash"); code != ExitOK {
		t.Fatalf("completion bash: exit %d %s", code, te.errOut)
	}
	if out := te.out.String(); out == "" || !strings.HasPrefix(out, "# bash completion V2 for streamer") || !strings.Contains(out, "__start_streamer") {
		t.Errorf("completion bash printed %.200q", out)
	}
	for _, sh := range []string{"zsh", "fish", "powershell"} {
		te.out.Reset()
		if code := te.run("completion", sh); code != ExitOK || te.out.Len() == 0 {
			t.Errorf("completion %s: exit %d, %d bytes", sh, code, te.out.Len())
		}
	}
	te.out.Reset()
	te.errOut.Reset()
	if code := te.run("completion", "tcsh"); code != ExitUsage || !strings.Contains(te.errOut.String(), `unknown shell "tcsh": use bash, fish, powershell, zsh`) || te.out.Len() != 0 {
		t.Errorf("unknown shell: exit %d, stdout %d bytes, stderr %q", code, te.out.Len(), te.errOut)
	}
}

func TestVersion(t *testing.T) {
	te := newTestEnv(t)
	if code := te.run("version", "-o", "json"); code != ExitOK {
		t.Fatalf("exit %d %s", code, te.errOut)
	}
	var v map[string]string
	if err := json.Unmarshal(te.out.Bytes(), &v); err != nil || v["version"] == "" || v["go"] == "" || v["platform"] == "" {
		t.Fatalf("version -o json = %q (%v)", te.out, err)
	}
	te.out.Reset()
	if code := te.run("version"); code != ExitOK || !strings.HasPrefix(te.out.String(), "streamer "+v["version"]+" (") {
		t.Errorf("version: exit %d %q", code, te.out)
	}
	if code := te.run("version", "-o", "yaml"); code != ExitUsage {
		t.Errorf("version -o yaml: exit %d", code)
	}
}

func TestConnLsWholeTable(t *testing.T) {
	te := newTestEnv(t)
	seedTenant(te, "acme", 130)
	seedTenant(te, "other", 3)
	if code := te.run("conn", "ls"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	rows := strings.Split(strings.TrimSpace(te.out.String()), "\n")
	if len(rows) != 133 || te.store.listCalls != 2 {
		t.Fatalf("%d rows in %d pages, want 133 in 2", len(rows), te.store.listCalls)
	}
	if te.errOut.Len() != 0 {
		t.Errorf("not a terminal: nothing on stderr, got %q", te.errOut)
	}

	// On a terminal it says it is scanning the whole table; --limit applies.
	te.out.Reset()
	te.f.IO.OutTTY = true
	if code := te.run("conn", "ls", "--limit", "5", "-o", "json"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	var got []store.Connection
	if err := json.Unmarshal(te.out.Bytes(), &got); err != nil || len(got) != 5 {
		t.Fatalf("json: %d records, %v\n%s", len(got), err, te.out)
	}
	if !strings.Contains(te.errOut.String(), "scanning the whole table streamer-connections") {
		t.Errorf("stderr: %q", te.errOut)
	}

	empty := newTestEnv(t)
	empty.f.IO.ErrTTY = true
	if code := empty.run("conn", "ls"); code != ExitOK || !strings.Contains(empty.errOut.String(), "no connections in table streamer-connections") {
		t.Errorf("empty table: exit %d %q", code, empty.errOut)
	}
}
