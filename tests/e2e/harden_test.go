package e2e_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/internal/freeport"
)

// interruptRun starts the binary with args, calls ready (which returns
// once the process is blocked where the test wants it, or at once), sends
// sig and returns the result. A signal that lands before the binary has
// installed its handler kills it by the default action; that try is
// repeated with a longer wait (each wait ends as soon as it can; no result
// depends on timing).
func interruptRun(t *testing.T, env []string, stdin func() *os.File, ready func(*exec.Cmd), sig syscall.Signal, args ...string) clitest.Result {
	t.Helper()
	for try := 1; ; try++ {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if stdin != nil {
			cmd.Stdin = stdin()
		}
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		ready(cmd)
		time.Sleep(time.Duration(try) * 100 * time.Millisecond) // see above: retried, never asserted
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatalf("signal: %v", err)
		}
		var err error
		select {
		case err = <-exited:
		case <-time.After(clitest.RunTimeout):
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("streamer %s ignored %v for %s:\n%s", strings.Join(args, " "), sig, clitest.RunTimeout, errOut.String())
		}
		r := clitest.Result{Stdout: out.String(), Stderr: errOut.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && try < 5 {
				continue // killed before its handler was installed
			}
			r.Code = ee.ExitCode()
		}
		return r
	}
}

// TestInterruptedInputEnds: reads of user input that would block for ever
// (a FIFO nobody opens, a FIFO whose writer is silent, a stdin pipe whose
// writer sleeps) end on SIGINT / SIGTERM with exit 130 / 143 and one line.
func TestInterruptedInputEnds(t *testing.T) {
	closed := freeport.Addr(t)
	env := append(clitest.CleanEnv(t), "STREAMER_ENDPOINT=http://"+closed+"/local", "STREAMER_KEY_DIR="+t.TempDir())
	now := func(*exec.Cmd) {}
	// A stdin pipe whose writer never writes nor closes (sleep 30 | ...).
	silentStdin := func(t *testing.T) func() *os.File {
		return func() *os.File {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			return r
		}
	}
	check := func(t *testing.T, r clitest.Result, code int, line string) {
		t.Helper()
		if r.Code != code || r.Stderr != line+"\n" || r.Stdout != "" {
			t.Errorf("exit %d, stderr %q, stdout %q; want %d and %q", r.Code, r.Stderr, r.Stdout, code, line)
		}
	}

	t.Run("send @FIFO, no writer", func(t *testing.T) {
		fifo := clitest.Mkfifo(t)
		r := interruptRun(t, env, nil, now, syscall.SIGTERM, "send", "abc", "@"+fifo)
		check(t, r, 143, "error: interrupted (SIGTERM) while reading the message file "+fifo)
	})
	t.Run("send @FIFO, silent writer", func(t *testing.T) {
		fifo := clitest.Mkfifo(t)
		var w *os.File
		t.Cleanup(func() {
			if w != nil {
				w.Close()
			}
		})
		// Opening the writer end succeeds (non-blocking) once the binary
		// has opened the FIFO for reading: then its read is blocked.
		opened := func(*exec.Cmd) {
			waitFor(t, "the binary to open the FIFO", func() bool {
				f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
				if err == nil {
					w = f
				}
				return err == nil
			})
		}
		r := interruptRun(t, env, nil, opened, syscall.SIGINT, "send", "abc", "@"+fifo)
		check(t, r, 130, "error: interrupted (SIGINT) while reading the message file "+fifo)
	})
	t.Run("send -", func(t *testing.T) {
		r := interruptRun(t, env, silentStdin(t), now, syscall.SIGINT, "send", "abc", "-")
		check(t, r, 130, "error: interrupted (SIGINT) while reading the message from stdin")
	})
	t.Run("token verify -", func(t *testing.T) {
		r := interruptRun(t, env, silentStdin(t), now, syscall.SIGTERM, "token", "verify", "-")
		check(t, r, 143, "error: interrupted (SIGTERM) while reading the token from stdin")
	})
}

// TestClientTextEscapedOnTerminal: a user id with an ANSI escape (minted,
// then connected) and a User-Agent with a C1 CSI (U+009B) and a bidi
// override (U+202E) print escaped in conn ls and conn inspect, table and
// plain; JSON keeps the text as it is (encoding/json escapes it).
func TestClientTextEscapedOnTerminal(t *testing.T) {
	s := startLocal(t)
	user := "u\x1b[31mred"
	agent := "ua\u009b2J\u202eevil"
	s.dial(t, s.mint(t, "--user", user, "--tenant", "esc"), agent)
	var id string
	waitFor(t, "the connection in conn ls", func() bool {
		r := run(t, s.Env(), "", "conn", "ls", "--tenant", "esc", "-o", "json")
		var rows []struct {
			ConnectionID string `json:"connection_id"`
			UserID       string `json:"user_id"`
		}
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &rows) != nil || len(rows) != 1 {
			return false
		}
		if rows[0].UserID != user {
			t.Fatalf("JSON user_id %q, want the raw %q", rows[0].UserID, user)
		}
		id = rows[0].ConnectionID
		return true
	})
	raw := []string{"\x1b", "\u009b", "\u202e"}
	for _, args := range [][]string{
		{"conn", "ls", "--tenant", "esc"},
		{"conn", "ls", "--tenant", "esc", "-o", "table"},
		{"conn", "inspect", "--", id},
		{"conn", "inspect", "-o", "table", "--", id},
	} {
		r := run(t, s.Env(), "", args...)
		if r.Code != 0 {
			t.Fatalf("%q: %s", args, r)
		}
		for _, c := range raw {
			if strings.Contains(r.Stdout, c) {
				t.Errorf("%q prints %q raw:\n%s", args, c, r.Stdout)
			}
		}
		if !strings.Contains(r.Stdout, `u\x1b[31mred`) {
			t.Errorf("%q does not show the user id's escape visibly:\n%s", args, r.Stdout)
		}
		if args[1] == "inspect" && !strings.Contains(r.Stdout, `ua\u009b2J\u202eevil`) {
			t.Errorf("%q does not show the user agent escaped:\n%s", args, r.Stdout)
		}
	}
}

// TestHardenedUsage: values that used to be taken silently are refused
// with exit 2 before any network call.
func TestHardenedUsage(t *testing.T) {
	closed := freeport.Addr(t)
	env := append(clitest.CleanEnv(t), "STREAMER_ENDPOINT=http://"+closed+"/local", "STREAMER_KEY_DIR="+t.TempDir())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"local", "--listen", "127.0.0.1:0", "--stage", "a\nb"}, `--stage: invalid stage name "a\nb": use 1 to 128 letters, digits, - and _`},
		{[]string{"conn", "ls", "--endpoint", "http://" + closed + "/a%0Ab"}, `its path must be the API's stage alone`},
		{[]string{"smoke", "--ws-url", "ws://" + closed + "/lo cal"}, `invalid stage name "lo cal"`},
		{[]string{"conn", "ls", "--timeout", "0"}, `invalid argument "0" for "--timeout" flag: want a positive duration`},
		{[]string{"token", "keygen", "--dir", t.TempDir(), "-o", "table"}, `unknown --output "table": use plain or json`},
		{[]string{"token", "mint", "--user", ""}, "--user is blank"},
		{[]string{"token", "mint", "--tenant", " "}, "--tenant is blank"},
		{[]string{"send", "ab\u202ecd", "hi"}, `holds a control character`},
		{[]string{"conn", "list"}, `unknown command "list" for "streamer conn"; did you mean ls?`},
	} {
		r := run(t, env, "", tc.args...)
		if r.Code != 2 || !strings.Contains(r.Stderr, tc.want) || r.Stdout != "" {
			t.Errorf("%q: exit %d, want 2 and %q\n%s", tc.args, r.Code, tc.want, r)
		}
		if strings.Contains(r.Stderr, "cannot reach") {
			t.Errorf("%q: reached for the network:\n%s", tc.args, r)
		}
	}
}

// TestConnLsJSONFailurePrintsNothing: a listing that fails prints nothing
// on stdout with -o json (it printed "[]", which reads as "no
// connections"); the error is on stderr, exit 1.
func TestConnLsJSONFailurePrintsNothing(t *testing.T) {
	closed := freeport.Addr(t)
	env := append(clitest.CleanEnv(t), "STREAMER_ENDPOINT=http://"+closed+"/local")
	r := run(t, env, "", "conn", "ls", "-o", "json")
	if r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, "cannot reach the DynamoDB API at http://"+closed) {
		t.Errorf("conn ls -o json against nothing: %s", r)
	}
}

// TestSmokeSemantics: no stack is exit 1 (could not check), with the steps
// after connect skipped; a table that does not exist fails record stored
// at once, says so once, exit 1; an --ws-url that already carries a valid
// token still has each step send exactly its own.
func TestSmokeSemantics(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	env := append(clitest.CleanEnv(t), "STREAMER_KEY_DIR="+keys)
	if r := run(t, env, "", "token", "keygen", "--dir", keys); r.Code != 0 {
		t.Fatalf("keygen: %s", r)
	}
	closed := freeport.Addr(t)
	r := run(t, env, "", "smoke", "--endpoint", "http://"+closed+"/local", "--ws-url", "ws://"+closed+"/local", "-o", "json")
	var res struct {
		Steps []struct{ Name, Status, Error string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); r.Code != 1 || err != nil {
		t.Fatalf("smoke with no stack: exit %d (want 1), %v\n%s", r.Code, err, r)
	}
	for _, st := range res.Steps {
		want := "skip"
		switch st.Name {
		case "mint token":
			want = "pass"
		case "connect":
			want = "fail"
		}
		if st.Status != want {
			t.Errorf("no stack: %s is %s (%s), want %s", st.Name, st.Status, st.Error, want)
		}
	}
	if strings.Count(r.Stderr, "cannot reach") != 1 {
		t.Errorf("no stack: stderr should say it once:\n%s", r.Stderr)
	}

	s := startLocal(t)
	r = run(t, s.Env(), "", "smoke", "--table", "nope")
	if r.Code != 1 || !strings.Contains(r.Stdout, "record stored") || strings.Contains(r.Stdout+r.Stderr, "gave up") ||
		strings.Count(r.Stdout, "table nope not found") != 1 || strings.Count(r.Stderr, "table nope not found at "+s.DynamoDBEndpoint) != 1 {
		t.Errorf("smoke --table nope: want exit 1, record stored failing at once, said once per stream:\n%s", r)
	}

	// The gateway and the table answer, the management API does not: the
	// run could not check sending (exit 1), and says which service.
	r = run(t, s.Env(), "", "smoke", "--endpoint", "http://"+closed+"/local", "--dynamodb-endpoint", s.DynamoDBEndpoint)
	if r.Code != 1 || !strings.Contains(r.Stderr, "smoke could not check the stack: cannot reach the management API at http://"+closed+"/local") {
		t.Errorf("smoke with the management API down: want exit 1 naming it:\n%s", r)
	}

	// A valid token already in --ws-url: "missing token refused" must not
	// send it (it connected, and the step failed), nor any step send two.
	ws := s.WebSocketURL + "?Authorization=" + url.QueryEscape(s.mint(t))
	if r := run(t, s.Env(), "", "smoke", "--ws-url", ws); r.Code != 0 || strings.Contains(r.Stdout+r.Stderr, "eyJ") {
		t.Errorf("smoke with a token in --ws-url: %s", r)
	}
}

// TestKeyPermissionWarningsAndPublicKeyBound: a key pair others can read or
// replace still works, with ssh's warnings on stderr (stdout keeps only
// the token); a public key path that is /dev/zero fails at once.
func TestKeyPermissionWarningsAndPublicKeyBound(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	env := append(clitest.CleanEnv(t), "STREAMER_KEY_DIR="+keys)
	if r := run(t, env, "", "token", "keygen"); r.Code != 0 {
		t.Fatalf("keygen: %s", r)
	}
	if err := os.Chmod(keys, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(keys, "jwt-private.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, env, "", "token", "mint")
	if r.Code != 0 || strings.Count(strings.TrimSpace(r.Stdout), ".") != 2 ||
		strings.Count(r.Stderr, "warning: key directory "+keys+" is writable") != 1 ||
		strings.Count(r.Stderr, "warning: private key "+filepath.Join(keys, "jwt-private.pem")+" is readable") != 1 {
		t.Errorf("mint with a key others can read: %s", r)
	}
	r = run(t, env, "", "token", "verify", strings.TrimSpace(r.Stdout), "--public-key", "/dev/zero")
	if r.Code != 1 || !strings.Contains(r.Stderr, "a character device") {
		t.Errorf("verify --public-key /dev/zero: %s", r)
	}
}
