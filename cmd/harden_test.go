package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/store"
)

// TestStageInEndpointURLs: the stage an endpoint URL names follows API
// Gateway's rule (contract.CheckStage) where the path is a stage (a local
// gateway, an execute-api URL); a custom domain's path is an API mapping
// and passes.
func TestStageInEndpointURLs(t *testing.T) {
	ucd := func() (string, error) { return "/keys", nil }
	none := func(string) string { return "" }
	for _, fl := range []GlobalFlags{
		{Endpoint: "http://127.0.0.1:4510/local"},
		{Endpoint: "https://abc.execute-api.eu-west-1.amazonaws.com/prod/", WSURL: "wss://abc.execute-api.eu-west-1.amazonaws.com/prod?Authorization=x"},
		{Endpoint: "https://ws.example.com/v1.0/orders", WSURL: "wss://ws.example.com"},
	} {
		if _, err := ResolveConfig(fl, none, ucd); err != nil {
			t.Errorf("%+v: %v", fl, err)
		}
	}
	for _, tc := range []struct {
		fl   GlobalFlags
		want string
	}{
		{GlobalFlags{Endpoint: "http://127.0.0.1:4510/a%0Ab"}, `--endpoint "http://127.0.0.1:4510/a%0Ab": its path must be the API's stage alone, as in ` + DefaultEndpoint + `: invalid stage name "a\nb"`},
		{GlobalFlags{Endpoint: "http://localhost:4510"}, "invalid stage name: it is empty"},
		{GlobalFlags{Endpoint: "https://abc.execute-api.us-east-1.amazonaws.com/prod/x"}, "as in https://abc.execute-api.us-east-1.amazonaws.com/dev: invalid stage name: the path holds more than the stage"},
		{GlobalFlags{WSURL: "ws://127.0.0.1:4510/a%20b"}, `--ws-url "ws://127.0.0.1:4510/a%20b"`},
	} {
		_, err := ResolveConfig(tc.fl, none, ucd)
		var ue *UsageError
		if !errors.As(err, &ue) || !errors.Is(err, contract.ErrInvalidStage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want a usage error with %q", tc.fl, err, tc.want)
		}
	}
}

// TestTimeoutMustBePositive: --timeout 0 is refused (exit 2), not read as
// the 10s default; so is a negative one.
func TestTimeoutMustBePositive(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"conn", "ls", "--timeout", "0"}, "", `invalid argument "0" for "--timeout" flag: want a positive duration like 10s`},
		{[]string{"conn", "ls", "--timeout", "-1s"}, "", `invalid argument "-1s" for "--timeout" flag`},
		{[]string{"conn", "ls", "--timeout", "soon"}, "", "not a duration like 10s"},
		{[]string{"conn", "ls"}, "0", `STREAMER_TIMEOUT="0" is not a positive duration`},
	} {
		te := newTestEnv(t)
		n := countingBuilders(te)
		if tc.env != "" {
			te.env[timeoutEnv] = tc.env
		}
		if code := te.run(tc.args...); code != ExitUsage || !strings.Contains(te.errOut.String(), tc.want) || *n != 0 {
			t.Errorf("%q (env %q): exit %d, %d clients built, stderr %s; want 2 and %q", tc.args, tc.env, code, *n, te.errOut, tc.want)
		}
	}
	te := newTestEnv(t)
	var got time.Duration
	te.f.Build.Store = func(_ context.Context, c Config) (ConnStore, error) { got = c.Timeout; return te.store, nil }
	if code := te.run("conn", "ls", "--timeout", "1500ms"); code != ExitOK || got != 1500*time.Millisecond {
		t.Errorf("--timeout 1500ms: exit %d, timeout %s", code, got)
	}
}

func TestKeygenOutputIsPlainOrJSON(t *testing.T) {
	te := newTestEnv(t)
	if code := te.run("token", "keygen", "--dir", t.TempDir(), "-o", "table"); code != ExitUsage || !strings.Contains(te.errOut.String(), `unknown --output "table": use plain or json`) {
		t.Errorf("keygen -o table: exit %d, %s", code, te.errOut)
	}
	te = newTestEnv(t)
	if code := te.run("token", "keygen", "--dir", t.TempDir(), "-o", "plain"); code != ExitOK || !strings.Contains(te.out.String(), "private_key\t") {
		t.Errorf("keygen -o plain: exit %d, %s%s", code, te.out, te.errOut)
	}
}

// TestTokenMintRefusesEmptyClaims: a token $connect would refuse, or whose
// record the store would refuse, is not minted (exit 2).
func TestTokenMintRefusesEmptyClaims(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--user", ""}, "--user is blank: $connect refuses a token without it"},
		{[]string{"--tenant", "  "}, "--tenant is blank"},
		{[]string{"--user", strings.Repeat("u", store.MaxIDLength+1)}, "--user is 129 bytes"},
		{[]string{"--tenant", "\xff"}, "--tenant is not valid UTF-8"},
		{[]string{"--perm", "read", "--perm", ""}, "--perm 2 is blank"},
		{[]string{"--perm", strings.Repeat("p", store.MaxPermissionLength+1)}, "--perm 1 is 129 bytes"},
		{[]string{"--audience", ""}, "--audience 1 is blank"},
	} {
		te := newTestEnv(t)
		te.env[keyDirEnv] = sharedKeyDir(t)
		args := append([]string{"token", "mint"}, tc.args...)
		if code := te.run(args...); code != ExitUsage || te.out.Len() != 0 || !strings.Contains(te.errOut.String(), tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %s; want 2, no token and %q", args, code, te.out, te.errOut, tc.want)
		}
	}
	// A user id with an escape is a valid (if hostile) id: minted, and
	// escaped wherever it is printed (TestClientTextEscaped).
	te := newTestEnv(t)
	te.env[keyDirEnv] = sharedKeyDir(t)
	if code := te.run("token", "mint", "--user", "u\x1b[31mred"); code != ExitOK {
		t.Errorf("mint --user with an escape: exit %d, %s", code, te.errOut)
	}
}

// failingStore fails its List after ok calls.
type failingStore struct {
	ConnStore
	ok, calls int
	err       error
}

func (s *failingStore) List(ctx context.Context, q store.ListQuery) (store.Page, error) {
	if s.calls++; s.calls > s.ok {
		return store.Page{}, s.err
	}
	return s.ConnStore.List(ctx, q)
}

// TestConnLsJSONFailureIsNoResult: a failed listing never reads as a
// result: nothing on stdout when the first page failed (it printed "[]"),
// an unterminated array when a later page did; the error on stderr, exit 1.
func TestConnLsJSONFailureIsNoResult(t *testing.T) {
	boom := &store.UnavailableError{Endpoint: "http://127.0.0.1:1", Err: errors.New("connection refused")}
	for _, ok := range []int{0, 1} {
		te := newTestEnv(t)
		seedTenant(te, "acme", 5)
		te.f.Build.Store = func(context.Context, Config) (ConnStore, error) {
			return &failingStore{ConnStore: te.store, ok: ok, err: boom}, nil
		}
		code := te.run("conn", "ls", "--tenant", "acme", "--page-size", "2", "-o", "json")
		if code != ExitError || !strings.Contains(te.errOut.String(), "cannot reach the DynamoDB API") {
			t.Errorf("fail after %d pages: exit %d, stderr %s", ok, code, te.errOut)
		}
		var v any
		switch {
		case ok == 0 && te.out.Len() != 0:
			t.Errorf("the first page failed: stdout %q, want nothing", te.out)
		case ok > 0 && json.Unmarshal(te.out.Bytes(), &v) == nil:
			t.Errorf("a later page failed: stdout %q parses as a complete result", te.out)
		}
	}
}

// hostile is text a client controls (its token's claims, its headers),
// with an ANSI escape, a C1 CSI (U+009B), a bidi override (U+202E) and a
// newline.
const hostile = "u\x1b[31mred\u009b2J\u202eevil\nline"

// TestClientTextEscaped: client- and token-supplied text reaches the
// terminal escaped (visibly, as %q writes it) in table and plain output of
// conn ls, conn inspect, conn kick and token verify.
func TestClientTextEscaped(t *testing.T) {
	raw := []string{"\x1b", "\u009b", "\u202e"}
	check := func(t *testing.T, args []string, out string) {
		t.Helper()
		for _, r := range raw {
			if strings.Contains(out, r) {
				t.Errorf("%q prints %q raw:\n%s", args, r, out)
			}
		}
		if !strings.Contains(out, `\x1b[31mred\u009b2J\u202eevil\nline`) {
			t.Errorf("%q lacks the escaped text:\n%s", args, out)
		}
	}
	for _, format := range []string{"table", "plain"} {
		te := newTestEnv(t)
		c := conn("esc=", hostile, hostile, time.Minute)
		c.Metadata.UserAgent = hostile
		c.Permissions = []string{hostile}
		te.store.put(c)
		te.mgmt.live["esc="] = true
		for _, args := range [][]string{
			{"conn", "ls", "--tenant", hostile, "-o", format},
			{"conn", "inspect", "esc=", "-o", format},
			{"conn", "kick", "esc=", "-o", format},
		} {
			if args[1] == "kick" {
				te.store.put(c) // inspect does not remove it; kick's output names the id only
				check := func(out string) {
					for _, r := range raw {
						if strings.Contains(out, r) {
							t.Errorf("%q prints %q raw:\n%s", args, r, out)
						}
					}
				}
				te.out.Reset()
				if code := te.run(args...); code != ExitOK {
					t.Fatalf("%q: exit %d: %s", args, code, te.errOut)
				}
				check(te.out.String())
				continue
			}
			te.out.Reset()
			if code := te.run(args...); code != ExitOK {
				t.Fatalf("%q: exit %d: %s", args, code, te.errOut)
			}
			check(t, args, te.out.String())
		}
		// A token minted with hostile claims, verified by token verify.
		key, err := auth.LoadPrivateKeyFile(sharedKeyDir(t) + "/" + PrivateKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := auth.Mint(key, auth.MintOptions{UserID: hostile, TenantID: hostile, Issuer: DefaultIssuer, Permissions: []string{hostile}})
		if err != nil {
			t.Fatal(err)
		}
		te.env[keyDirEnv] = sharedKeyDir(t)
		te.out.Reset()
		args := []string{"token", "verify", tok, "-o", format}
		if code := te.run(args...); code != ExitOK {
			t.Fatalf("token verify: exit %d: %s", code, te.errOut)
		}
		check(t, args, te.out.String())
	}
}

// TestSmokeReplacesAuthorizationInWSURL: an --ws-url that already carries
// ?Authorization= gets the step's token instead (one parameter, not two),
// and none at all for "missing token refused"; other parameters stay.
func TestSmokeReplacesAuthorizationInWSURL(t *testing.T) {
	te := newTestEnv(t)
	newFakeWorld(t, te)
	dial := te.f.Dial
	var dialed []string
	te.f.Dial = func(ctx context.Context, u string, h http.Header) (WSConn, int, error) {
		dialed = append(dialed, u)
		return dial(ctx, u, h)
	}
	if code := te.run("smoke", "--timeout", "2s", "--ws-url", "ws://127.0.0.1:4510/local?Authorization=stale&region=x"); code != ExitOK {
		t.Fatalf("exit %d:\n%s\n%s", code, te.out, te.errOut)
	}
	if len(dialed) != 4 {
		t.Fatalf("dialed %d times, want 4 (connect and three refusals): %q", len(dialed), dialed)
	}
	for i, raw := range dialed {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		auths := q["Authorization"]
		wantAuths := 1
		if i == 3 { // missing token refused
			wantAuths = 0
		}
		if len(auths) != wantAuths || q.Get("region") != "x" || slicesContains(auths, "stale") {
			t.Errorf("dial %d: %s: want %d Authorization (never the stale one) and region=x", i, raw, wantAuths)
		}
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestSmokeUnreachableStackExit1: with nothing listening, smoke exits 1
// (the run could not check a stack), not 3; the steps that depend on
// connect, the three refusals included, are skipped rather than failing
// with the same error again; the error is said once on stderr.
func TestSmokeUnreachableStackExit1(t *testing.T) {
	te := newTestEnv(t)
	te.env[keyDirEnv] = sharedKeyDir(t)
	te.f.Dial = func(context.Context, string, http.Header) (WSConn, int, error) {
		return nil, 0, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	code := te.run("smoke", "-o", "json")
	if code != ExitError {
		t.Fatalf("exit %d, want 1:\n%s\n%s", code, te.out, te.errOut)
	}
	var res smokeJSON
	if err := json.Unmarshal(te.out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Steps {
		want := StepSkip
		switch s.Name {
		case stepMint:
			want = StepPass
		case stepConnect:
			want = StepFail
		}
		if s.Status != want {
			t.Errorf("%s: %s (%s), want %s", s.Name, s.Status, s.Error, want)
		}
	}
	msg := te.errOut.String()
	if strings.Count(msg, "cannot reach the WebSocket endpoint") != 1 || !strings.HasPrefix(msg, "error: smoke could not check the stack: cannot reach the WebSocket endpoint at "+DefaultWSURL) {
		t.Errorf("stderr: %s", msg)
	}
}

// TestSmokeMissingTableAtOnce: a table that does not exist is known from
// the first answer: record stored fails on it without polling for the
// timeout, says so once, and smoke exits 1.
func TestSmokeMissingTableAtOnce(t *testing.T) {
	te := newTestEnv(t)
	newFakeWorld(t, te)
	te.store.err = fmt.Errorf("%w: table \"nope\" does not exist at this endpoint; create it first", store.ErrTableNotFound)
	code := te.run("smoke", "--table", "nope", "-o", "json")
	if code != ExitError {
		t.Fatalf("exit %d, want 1:\n%s\n%s", code, te.out, te.errOut)
	}
	if te.store.listCalls != 1 {
		t.Errorf("the store was listed %d times, want once (no polling after it said the table is missing)", te.store.listCalls)
	}
	var res smokeJSON
	if err := json.Unmarshal(te.out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	var stored StepResult
	for _, s := range res.Steps {
		if s.Name == stepRecordStored {
			stored = s
		}
	}
	want := "table nope not found at " + DefaultEndpoint[:len("http://127.0.0.1:4510")] + "\nhint: pass --table / STREAMER_TABLE with the deployed table's name"
	if stored.Status != StepFail || stored.Error != want {
		t.Errorf("record stored: %s %q, want fail %q", stored.Status, stored.Error, want)
	}
	if msg := te.errOut.String(); strings.Count(msg, "not found") != 1 || strings.Contains(msg, "gave up") || strings.Contains(msg, "create it first") {
		t.Errorf("stderr says it more than once, or in the store's words:\n%s", msg)
	}
}

// TestUnknownSubcommandIsUsage: a typo under a group (`conn list`) is a
// usage error with a suggestion, not the group's help and exit 0; the
// group alone still prints its help.
func TestUnknownSubcommandIsUsage(t *testing.T) {
	for args, want := range map[string]string{
		"conn list":     `unknown command "list" for "streamer conn"; did you mean ls?`,
		"token mnt":     `unknown command "mnt" for "streamer token"; did you mean mint?`,
		"token frobble": `unknown command "frobble" for "streamer token"`,
	} {
		te := newTestEnv(t)
		if code := te.run(strings.Fields(args)...); code != ExitUsage || !strings.Contains(te.errOut.String(), want) {
			t.Errorf("%s: exit %d, stderr %s; want 2 and %q", args, code, te.errOut, want)
		}
	}
	te := newTestEnv(t)
	if code := te.run("conn"); code != ExitOK || !strings.Contains(te.out.String(), "Available Commands:") {
		t.Errorf("conn: exit %d, stdout %s", code, te.out)
	}
}

// TestKeyPermissionWarnings: a key directory others can write to and a
// private key others can read are warned about on stderr, once each, as
// ssh does; the key still loads and stdout keeps only the token.
func TestKeyPermissionWarnings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	priv, _, err := auth.WriteKeyPair(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(priv, 0o644); err != nil {
		t.Fatal(err)
	}
	te := newTestEnv(t)
	te.env[keyDirEnv] = dir
	if code := te.run("token", "mint"); code != ExitOK || strings.Count(te.out.String(), ".") != 2 {
		t.Fatalf("mint: exit %d, stdout %q, stderr %s", code, te.out, te.errOut)
	}
	for _, want := range []string{
		"warning: key directory " + dir + " is writable by its group and all other users (mode 0777): they can replace the key in it; run: chmod go-w " + dir + "\n",
		"warning: private key " + priv + " is readable by its group and all other users (mode 0644): they can mint tokens with it; run: chmod 600 " + priv + "\n",
	} {
		if n := strings.Count(te.errOut.String(), want); n != 1 {
			t.Errorf("stderr has %d of %q:\n%s", n, want, te.errOut)
		}
	}
	// Once per command line, however often the key is loaded.
	te.errOut.Reset()
	for range 2 {
		if _, err := te.f.SigningKey(""); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(te.errOut.String(), "warning:"); n != 0 {
		t.Errorf("the same command line warned again:\n%s", te.errOut)
	}
	// token verify reads the public key from the same directory: anyone
	// who can write there can swap it.
	te = newTestEnv(t)
	te.env[keyDirEnv] = dir
	te.run("token", "verify", "a.b.c")
	if !strings.Contains(te.errOut.String(), "warning: key directory "+dir+" is writable") {
		t.Errorf("verify: stderr %s", te.errOut)
	}
	// A private key of the owner's only, in a private directory: silence.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(priv, 0o600); err != nil {
		t.Fatal(err)
	}
	te = newTestEnv(t)
	te.env[keyDirEnv] = dir
	if code := te.run("token", "mint"); code != ExitOK || te.errOut.Len() != 0 {
		t.Errorf("mint with private keys: exit %d, stderr %q", code, te.errOut)
	}
}

// TestPublicKeyFileBounded: token verify reads its public key through the
// same bound as the private key: a device or FIFO fails at once (it read
// /dev/zero until the runtime ran out of memory).
func TestPublicKeyFileBounded(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, PublicKeyFile)); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"token", "verify", "a.b.c", "--public-key", "/dev/zero"},
		{"token", "verify", "a.b.c", "--key-dir", dir},
	} {
		te := newTestEnv(t)
		code, _ := await(t, func() (int, error) { return te.run(args...), nil })
		if code != ExitError || !strings.Contains(te.errOut.String(), "a character device") {
			t.Errorf("%q: exit %d, stderr %s", args, code, te.errOut)
		}
	}
}

// TestIDThatStartsWithADash: one id in 64 starts with "-" and reads as
// flags; the usage error says to put it after "--", and that works.
func TestIDThatStartsWithADash(t *testing.T) {
	const id = "-QrQlda4YyxJ0B0="
	for _, tc := range []struct {
		args []string
		path string
	}{
		{[]string{"conn", "kick", id}, "streamer conn kick"},
		{[]string{"conn", "inspect", id}, "streamer conn inspect"},
		{[]string{"send", id, "hi"}, "streamer send"},
	} {
		te := newTestEnv(t)
		n := countingBuilders(te)
		want := id + ` looks like a connection id: an id that starts with "-" goes after "--" (flags before it), as in: ` + tc.path + " -- " + id
		if code := te.run(tc.args...); code != ExitUsage || !strings.Contains(te.errOut.String(), want) || *n != 0 {
			t.Errorf("%q: exit %d, stderr %s; want 2 and %q", tc.args, code, te.errOut, want)
		}
	}
	// Not every unknown flag is an id.
	te := newTestEnv(t)
	if code := te.run("conn", "ls", "-Q"); code != ExitUsage || strings.Contains(te.errOut.String(), "connection id") {
		t.Errorf("conn ls -Q: exit %d, stderr %s; want 2 without the id hint", code, te.errOut)
	}
	te = newTestEnv(t)
	te.store.put(store.Connection{ConnectionID: id, UserID: "u", TenantID: "t"})
	if code := te.run("send", "--", id, "hi"); code != 0 || len(te.sentTo(id)) != 1 {
		t.Errorf("send -- %s hi: exit %d, sent %v, stderr %s", id, code, te.sentTo(id), te.errOut)
	}
}
