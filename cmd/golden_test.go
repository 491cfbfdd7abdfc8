package cmd

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/connection"
)

// Every command's -o json output is part of the CLI's contract: these
// golden files pin its field names, order and shape. Values that change
// from run to run (durations, ports, temporary directories, the Go
// version) are replaced by placeholders first. Rewrite them with
// `go test ./cmd -run Golden -update` after a deliberate change.

var updateGolden = flag.Bool("update", false, "rewrite cmd/testdata/*.golden")

var durationMS = regexp.MustCompile(`"duration_ms": [0-9.]+`)

// golden compares got, after replacing each old value of repl (pairs of
// old, new) and every duration, with testdata/name.golden.
func golden(t *testing.T, name, got string, repl ...string) {
	t.Helper()
	got = durationMS.ReplaceAllString(strings.NewReplacer(repl...).Replace(got), `"duration_ms": 0`)
	if !json.Valid([]byte(got)) {
		t.Fatalf("%s: not one JSON document:\n%s", name, got)
	}
	path := filepath.Join("testdata", name+".golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

// goldenRun runs args with -o json and compares stdout with name's golden
// file.
func goldenRun(t *testing.T, te *testEnv, name string, code int, args []string, repl ...string) {
	t.Helper()
	te.out.Reset()
	if got := te.run(append(args, "-o", "json")...); got != code {
		t.Fatalf("%s: exit %d, want %d: %s", name, got, code, te.errOut)
	}
	golden(t, name, te.out.String(), repl...)
}

func TestGoldenJSON(t *testing.T) {
	t.Run("version", func(t *testing.T) {
		te := newTestEnv(t)
		te.run("version")
		v := strings.Fields(te.out.String())[1] // "streamer VERSION (go..., os/arch)"
		goldenRun(t, te, "version", ExitOK, []string{"version"},
			`"`+runtime.Version()+`"`, `"GO"`, `"`+runtime.GOOS+"/"+runtime.GOARCH+`"`, `"PLATFORM"`, `"`+v+`"`, `"VERSION"`)
	})

	t.Run("token", func(t *testing.T) {
		te := newTestEnv(t)
		te.env[keyDirEnv] = sharedKeyDir(t)
		key, err := auth.LoadPrivateKeyFile(filepath.Join(sharedKeyDir(t), PrivateKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		// Minted at testNow for an hour: expired by the real clock.
		tok, err := auth.Mint(key, auth.MintOptions{UserID: "alice", TenantID: "acme", Permissions: []string{"read"},
			Issuer: DefaultIssuer, Audience: []string{"app"}, TTL: time.Hour, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		claims, _ := decodeUnverified(tok)
		goldenRun(t, te, "token-verify", ExitError, []string{"token", "verify", tok}, claims.ID, "JTI")

		dir := filepath.Join(t.TempDir(), "keys")
		goldenRun(t, te, "token-keygen", ExitOK, []string{"token", "keygen", "--dir", dir}, dir, "KEYDIR")
	})

	t.Run("conn", func(t *testing.T) {
		te := newTestEnv(t)
		c := conn("L0SM9cOFvHcCIhw=", "alice", "acme", time.Hour)
		c.Permissions = []string{"read", "write"}
		te.store.put(c)
		te.store.put(conn("stale=", "bob", "acme", 2*time.Hour))
		te.mgmt.live["L0SM9cOFvHcCIhw="] = true
		goldenRun(t, te, "conn-ls", ExitOK, []string{"conn", "ls", "--tenant", "acme"})
		goldenRun(t, te, "conn-inspect", ExitOK, []string{"conn", "inspect", "L0SM9cOFvHcCIhw="})
		goldenRun(t, te, "conn-kick", ExitOK, []string{"conn", "kick", "stale="})
	})

	t.Run("send and broadcast", func(t *testing.T) {
		te := newTestEnv(t)
		te.store.put(conn("a=", "u", "acme", time.Minute))
		te.fail["gone="] = connection.ErrConnectionStale
		te.fail["missing="] = connection.ErrConnectionNotFound
		goldenRun(t, te, "send", ExitOK, []string{"send", "a=", `{"hello":1}`})
		goldenRun(t, te, "broadcast", ExitPartial, []string{"broadcast", "--ids", "a=,gone=,missing=", "hi"})
		goldenRun(t, te, "broadcast-dry-run", ExitOK, []string{"broadcast", "--tenant", "acme", "--dry-run", "hi"})
	})

	t.Run("smoke", func(t *testing.T) {
		te := newTestEnv(t)
		newFakeWorld(t, te)
		te.out.Reset()
		if code := te.run("smoke", "--timeout", "2s", "-o", "json"); code != ExitOK {
			t.Fatalf("exit %d: %s", code, te.errOut)
		}
		var res smokeJSON
		if err := json.Unmarshal(te.out.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		user, _, _ := strings.Cut(strings.TrimPrefix(res.Steps[0].Detail, "user "), ",")
		nonce := strings.TrimPrefix(user, "smoke-user-")
		golden(t, "smoke", te.out.String(), nonce, "NONCE")
	})

	t.Run("local", func(t *testing.T) {
		te := newTestEnv(t)
		keyDir := filepath.Join(t.TempDir(), "keys")
		te.env[keyDirEnv] = keyDir
		stack, out, errOut, stop := runLocal(t, te, "--listen", "127.0.0.1:0", "-o", "json")
		host := strings.TrimPrefix(stack.BaseURL, "http://")
		if code := stop(); code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		golden(t, "local", out.String(), host, "HOST:PORT", keyDir, "KEYDIR")
	})

	t.Run("dashboard", func(t *testing.T) {
		ms := newMetricsServer(t)
		te := newTestEnv(t)
		if code := runDashboard(te, nil, "dashboard", "--once", "-o", "json", "--metrics-url", ms.URL+"/metrics.json"); code != ExitOK {
			t.Fatalf("exit %d: %s", code, te.errOut)
		}
		golden(t, "dashboard", te.out.String(), ms.URL, "http://HOST:PORT")
	})
}
