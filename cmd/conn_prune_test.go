package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/connection/connectiontest"
	"github.com/pay-theory/streamer/pkg/store"
)

func TestConnPruneOptions(t *testing.T) {
	for _, c := range []struct {
		args []string
		want ConnPruneOptions
	}{
		{[]string{}, ConnPruneOptions{MinAge: connection.DefaultReconcileMinAge}},
		{[]string{"--tenant", "acme", "--dry-run", "--concurrency", "50", "--min-age", "0", "--cursor", "abc", "-o", "json"},
			ConnPruneOptions{TenantID: "acme", DryRun: true, Concurrency: 50, Cursor: "abc", Output: "json"}},
		{[]string{"--user", "alice", "--min-age", "5m"}, ConnPruneOptions{UserID: "alice", MinAge: 5 * time.Minute}},
	} {
		te := newTestEnv(t)
		var got *ConnPruneOptions
		cmd := NewCmdConnPrune(te.f, func(o *ConnPruneOptions) error { got = o; return nil })
		cmd.SetArgs(c.args)
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		got.F = nil
		if *got != c.want {
			t.Errorf("%v: options %+v, want %+v", c.args, *got, c.want)
		}
	}
}

func TestConnPruneUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tenant", "a", "--user", "b"}, "at most one of --tenant or --user"},
		{[]string{"--concurrency", "1001"}, "--concurrency 1001 is out of range"},
		{[]string{"--concurrency", "-1"}, "out of range"},
		{[]string{"--min-age", "-1s"}, "--min-age -1s is negative"},
		{[]string{"--cursor", strings.Repeat("c", store.MaxCheckpointCursor+1)}, "--cursor is 4097 bytes"},
		{[]string{"--tenant", " "}, "--tenant is blank"},
		{[]string{"extra"}, "unknown command"},
		{[]string{"-o", "yaml"}, `unknown --output "yaml"`},
	} {
		te := newTestEnv(t)
		if code := te.run(append([]string{"conn", "prune"}, c.args...)...); code != ExitUsage || !strings.Contains(te.errOut.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 saying %q", c.args, code, te.errOut, c.want)
		}
		if te.store.listCalls != 0 || len(te.recorders) != 0 {
			t.Errorf("%v: the store or the management API was used before the usage error", c.args)
		}
	}
}

// pruneEnv is a table of records: live, gone (410), failing (5xx) and
// recent ones.
func pruneEnv(t *testing.T) *testEnv {
	t.Helper()
	te := newTestEnv(t)
	te.store.put(conn("live1=", "alice", "acme", time.Hour))
	te.store.put(conn("gone1=", "alice", "acme", 2*time.Hour))
	te.store.put(conn("gone2=", "bob", "acme", 3*time.Hour))
	te.store.put(conn("down1=", "bob", "acme", 4*time.Hour))
	te.store.put(conn("other=", "carol", "globex", time.Hour))
	fresh := conn("fresh1=", "dave", "acme", 0)
	fresh.ConnectedAt = time.Now() // the Recorder's MinAge runs on the system clock
	te.store.put(fresh)
	te.fail["gone1="] = connection.ErrConnectionStale
	te.fail["gone2="] = connection.ErrConnectionStale
	te.fail["fresh1="] = connection.ErrConnectionStale
	te.fail["down1="] = connection.ErrServerError
	return te
}

func TestConnPrunePlain(t *testing.T) {
	te := pruneEnv(t)
	delete(te.fail, "down1=")
	if code := te.run("conn", "prune", "--tenant", "acme", "--concurrency", "50"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	want := "checked\t4\nlive\t2\nrecent\t1\nremoved\t2\nerrors\t0\nduration\t"
	if !strings.HasPrefix(te.out.String(), want) || !strings.HasSuffix(te.out.String(), "ms\nremoved\tgone2=\nremoved\tgone1=\n") {
		t.Errorf("stdout %q", te.out)
	}
	if !strings.Contains(te.errOut.String(), "1 record connected less than 1m0s ago was left alone (--min-age)") {
		t.Errorf("stderr %q", te.errOut)
	}
	if te.msgrOpts.MaxInFlight != 50 || te.msgrOpts.Fixed {
		t.Errorf("messenger options %+v, want the limit capped at 50", te.msgrOpts)
	}
	// --min-age 0 checks the recent record too.
	te.out.Reset()
	if code := te.run("conn", "prune", "--tenant", "acme", "--min-age", "0"); code != ExitOK || !strings.Contains(te.out.String(), "removed\t3\n") {
		t.Errorf("--min-age 0: exit %d, stdout %q", code, te.out)
	}
}

func TestConnPruneTableAndFailures(t *testing.T) {
	te := pruneEnv(t)
	te.f.IO.OutTTY, te.f.IO.ErrTTY = true, true
	code := te.run("conn", "prune")
	if code != ExitPartial {
		t.Fatalf("exit %d, want 3 (a record could not be checked): %s", code, te.errOut)
	}
	out, errOut := te.out.String(), te.errOut.String()
	for _, s := range []string{"│ checked  │ 5", "│ removed  │ 2", "│ errors   │ \x1b[31m1\x1b[0m", "REMOVED", "gone1=", "gone2="} {
		if !strings.Contains(out, s) {
			t.Errorf("stdout lacks %q:\n%s", s, out)
		}
	}
	for _, s := range []string{
		"no --tenant or --user: checking every connection in table streamer-connections (a Scan: every item is read)",
		"down1= not checked (kept): failed:",
		"error: partial failure: 1 of 5 records could not be checked and was kept; run prune again later",
	} {
		if !strings.Contains(errOut, s) {
			t.Errorf("stderr lacks %q:\n%s", s, errOut)
		}
	}
}

func TestConnPruneDryRunAndManyZombies(t *testing.T) {
	te := newTestEnv(t)
	for i := range 25 {
		id := fmt.Sprintf("z%02d=", i)
		te.store.put(conn(id, "u", "acme", time.Hour))
		te.fail[id] = connection.ErrConnectionStale
	}
	if code := te.run("conn", "prune", "--dry-run"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if n := strings.Count(te.out.String(), "would_remove\tz"); n != maxListedFailures || !strings.Contains(te.out.String(), "would_remove\t25\n") {
		t.Errorf("stdout lists %d ids:\n%s", n, te.out)
	}
	for _, s := range []string{"... and 5 more (use -o json for all)", "dry run: 25 records would be removed; nothing removed"} {
		if !strings.Contains(te.errOut.String(), s) {
			t.Errorf("stderr lacks %q: %s", s, te.errOut)
		}
	}
	te.out.Reset()
	if code := te.run("conn", "prune", "--dry-run", "-o", "json"); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var j pruneJSON
	if err := json.Unmarshal(te.out.Bytes(), &j); err != nil || len(j.Zombies) != 25 || j.Removed != 0 || !j.DryRun || !j.Complete {
		t.Errorf("json %+v, %v: want all 25 ids, none removed", j, err)
	}
}

func TestConnPruneProgressBar(t *testing.T) {
	te := newTestEnv(t)
	te.f.IO.ErrTTY = true
	for i := range 60 {
		te.store.put(conn(fmt.Sprintf("p%02d=", i), "u", "acme", time.Hour))
	}
	if code := te.run("conn", "prune", "--tenant", "acme"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if !strings.Contains(te.errOut.String(), "\rprune [==============================] 60/60 100%\n") {
		t.Errorf("no finished progress bar on stderr: %q", te.errOut)
	}
	te.errOut.Reset()
	te.f.IO.ErrTTY = false
	te.run("conn", "prune", "--tenant", "acme")
	if strings.Contains(te.errOut.String(), "prune [") {
		t.Errorf("a progress bar without a terminal: %q", te.errOut)
	}
}

func TestConnPruneStoreDown(t *testing.T) {
	te := pruneEnv(t)
	te.store.err = &store.UnavailableError{Endpoint: "http://127.0.0.1:9", Err: errors.New("connection refused")}
	if code := te.run("conn", "prune", "-o", "json"); code != ExitError {
		t.Fatalf("exit %d, want 1", code)
	}
	if te.out.Len() != 0 || !strings.Contains(te.errOut.String(), "cannot reach the DynamoDB API") {
		t.Errorf("stdout %q stderr %q: want no summary, the unreachable store named", te.out, te.errOut)
	}
}

// interruptingMessenger is a Recorder whose Reconcile is interrupted, as
// by Ctrl-C, once n records were checked.
type interruptingMessenger struct {
	*connectiontest.Recorder
	n      int
	cancel context.CancelCauseFunc
}

func (m interruptingMessenger) Reconcile(ctx context.Context, l store.Lister, opts connection.ReconcileOptions) (connection.ReconcileResult, error) {
	progress := opts.Progress
	opts.Progress = func(p connection.ReconcileProgress) {
		progress(p)
		if p.Checked == m.n {
			m.cancel(&SignalError{Signal: syscall.SIGINT})
		}
	}
	return m.Recorder.Reconcile(ctx, l, opts)
}

func TestConnPruneInterrupted(t *testing.T) {
	for _, c := range []struct {
		name, format string
		check        func(t *testing.T, out string)
	}{
		{"plain", "plain", func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "checked\t2\n") {
				t.Errorf("summary so far %q", out)
			}
		}},
		{"json", "json", func(t *testing.T, out string) {
			var j pruneJSON
			if err := json.Unmarshal([]byte(out), &j); err != nil || !j.Interrupted || j.Complete || j.Checked != 2 {
				t.Errorf("json %+v, %v", j, err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			te := pruneEnv(t)
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			te.f.Build.Messenger = func(context.Context, Config, MessengerOptions) (Messenger, error) {
				return interruptingMessenger{Recorder: connectiontest.NewRecorder(0), n: 2, cancel: cancel}, nil
			}
			code := Run(ctx, te.f, []string{"conn", "prune", "--tenant", "acme", "--dry-run", "-o", c.format})
			if code != 130 {
				t.Fatalf("exit %d, want 130: %s", code, te.errOut)
			}
			c.check(t, te.out.String())
			for _, s := range []string{"to resume: streamer conn prune --tenant acme --dry-run\n", "error: interrupted (SIGINT)"} {
				if !strings.Contains(te.errOut.String(), s) {
					t.Errorf("stderr lacks %q: %s", s, te.errOut)
				}
			}
		})
	}
}

func TestResumeCommand(t *testing.T) {
	got := resumeCommand(&ConnPruneOptions{UserID: "o'brien", DryRun: true}, "eyJ2IjoxfQ")
	if want := `streamer conn prune --user 'o'\''brien' --dry-run --cursor eyJ2IjoxfQ`; got != want {
		t.Errorf("resumeCommand = %s, want %s", got, want)
	}
}

func TestGoldenPrune(t *testing.T) {
	te := pruneEnv(t)
	goldenRun(t, te, "conn-prune", ExitPartial, []string{"conn", "prune", "--tenant", "acme"})
}
