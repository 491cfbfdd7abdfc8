package e2e_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/internal/syncbuf"
)

// listenProc is a `streamer listen` running in the background.
type listenProc struct {
	t           *testing.T
	cmd         *exec.Cmd
	out, errOut *syncbuf.Buffer
	exited      chan error
}

// startListen runs `streamer listen args...` against s with stdin at EOF
// (listen keeps listening); cleanup kills it if the test left it running.
func (s *stack) startListen(t *testing.T, args ...string) *listenProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"listen"}, args...)...)
	cmd.Env = s.Env()
	p := &listenProc{t: t, cmd: cmd, out: &syncbuf.Buffer{}, errOut: &syncbuf.Buffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-p.exited:
			p.exited <- err
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitStderr waits for s on stderr, failing if listen exits first.
func (p *listenProc) waitStderr(s string) {
	p.t.Helper()
	waitFor(p.t, "listen's stderr to say "+s, func() bool {
		if strings.Contains(p.errOut.String(), s) {
			return true
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			p.t.Fatalf("listen exited (%v) before %q:\nstdout:\n%s\nstderr:\n%s", err, s, p.out, p.errOut)
		default:
		}
		return false
	})
}

// wait returns listen's exit code once it ends by itself.
func (p *listenProc) wait() int {
	p.t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			p.t.Fatal(err)
		}
		return 0
	case <-time.After(clitest.RunTimeout):
		p.t.Fatalf("listen did not end within %s:\nstdout:\n%s\nstderr:\n%s", clitest.RunTimeout, p.out, p.errOut)
		return -1
	}
}

var connectionIDLine = regexp.MustCompile(`connection id (\S+)`)

// ids are the connection ids listen's stderr reported, sorted.
func (p *listenProc) ids() []string {
	var ids []string
	for _, m := range connectionIDLine.FindAllStringSubmatch(p.errOut.String(), -1) {
		ids = append(ids, m[1])
	}
	sort.Strings(ids)
	return ids
}

// tenantIDs lists the tenant's connection ids from the table, sorted.
func (s *stack) tenantIDs(t *testing.T, tenant string) []string {
	t.Helper()
	r := run(t, s.Env(), "", "conn", "ls", "--tenant", tenant)
	if r.Code != 0 {
		t.Fatalf("conn ls: %s", r)
	}
	var ids []string
	for _, row := range plainRows(r.Stdout) {
		ids = append(ids, row[0])
	}
	sort.Strings(ids)
	return ids
}

// TestListenReceivesBroadcast is the README's terminal 2: listen for a
// tenant, broadcast to it from another process, the payload on stdout and
// exit 0. The id listen reports (whoami) is the one the table holds.
func TestListenReceivesBroadcast(t *testing.T) {
	s := startLocal(t)
	p := s.startListen(t, "--tenant", "acme", "--max-messages", "1")
	p.waitStderr("connection id ")
	if ids, table := p.ids(), s.tenantIDs(t, "acme"); len(ids) != 1 || strings.Join(ids, ",") != strings.Join(table, ",") {
		t.Fatalf("listen says connection id %v, the table has %v", ids, table)
	}
	if r := run(t, s.Env(), "", "broadcast", "--tenant", "acme", `{"hello":"acme"}`); r.Code != 0 {
		t.Fatalf("broadcast: %s", r)
	}
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.errOut)
	}
	got := strings.Split(strings.TrimSpace(p.out.String()), "\t")
	if len(got) != 2 || got[1] != `{"hello":"acme"}` {
		t.Fatalf("stdout %q: want RECEIVED_AT<TAB>the payload", p.out)
	}
	if _, err := time.Parse(time.RFC3339, got[0]); err != nil {
		t.Errorf("received at %q: %v", got[0], err)
	}
	if !strings.Contains(p.errOut.String(), "closing with 1000 (--max-messages 1 reached)") {
		t.Errorf("stderr:\n%s", p.errOut)
	}
	// The client closed: $disconnect removed the record.
	waitFor(t, "the record to go", func() bool { return len(s.tenantIDs(t, "acme")) == 0 })
}

// TestListenCount50 holds 50 connections of one tenant; a tenant broadcast
// prints one line per connection, each naming its receiver, and the names
// are the table's ids.
func TestListenCount50(t *testing.T) {
	const n = 50
	s := startLocal(t)
	p := s.startListen(t, "--tenant", "fan", "--count", "50", "--max-messages", "50")
	p.waitStderr("connected 50 of 50")
	waitFor(t, "50 connection ids", func() bool { return len(p.ids()) == n })
	ids := p.ids()
	if table := s.tenantIDs(t, "fan"); strings.Join(ids, ",") != strings.Join(table, ",") {
		t.Fatalf("listen reports %v, the table has %v", ids, table)
	}
	r := run(t, s.Env(), "", "broadcast", "--tenant", "fan", "to the fan-out")
	if r.Code != 0 || kv(r.Stdout)["sent"] != "50" {
		t.Fatalf("broadcast: %s", r)
	}
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.errOut)
	}
	var receivers []string
	for _, row := range plainRows(p.out.String()) {
		if len(row) != 3 || row[2] != "to the fan-out" {
			t.Fatalf("line %q: want RECEIVED_AT, CONNECTION, the payload", row)
		}
		receivers = append(receivers, row[1])
	}
	sort.Strings(receivers)
	if strings.Join(receivers, ",") != strings.Join(ids, ",") {
		t.Fatalf("receivers %v, want each of %v once", receivers, ids)
	}
}

// TestListenPing: a line on stdin is sent; the $default handler's pong is
// printed.
func TestListenPing(t *testing.T) {
	s := startLocal(t)
	r := run(t, s.Env(), `{"action":"ping"}`+"\n", "listen", "--max-messages", "1")
	if r.Code != 0 {
		t.Fatalf("listen: %s", r)
	}
	f := strings.Split(strings.TrimSpace(r.Stdout), "\t")
	var pong struct{ Action, Timestamp string }
	if len(f) != 2 || json.Unmarshal([]byte(f[1]), &pong) != nil || pong.Action != "pong" || pong.Timestamp == "" {
		t.Fatalf("stdout %q: want the pong", r.Stdout)
	}
}

// TestListenExpiredToken: the upgrade is refused with 401 and listen says
// why: exit 1, the status and the hint, never the token.
func TestListenExpiredToken(t *testing.T) {
	s := startLocal(t)
	tok := s.mint(t, "--expired")
	r := run(t, s.Env(), "", "listen", "--token", tok)
	if r.Code != 1 || !strings.Contains(r.Stderr, "with HTTP 401 Unauthorized") || !strings.Contains(r.Stderr, "hint: the token expired ") {
		t.Fatalf("listen with an expired token: %s", r)
	}
	if strings.Contains(r.Stdout+r.Stderr, tok) || strings.Contains(r.Stdout+r.Stderr, "eyJ") {
		t.Fatalf("the token reached the output: %s", r)
	}
	// The same through stdin.
	r = run(t, s.Env(), tok+"\n", "listen", "--token", "-")
	if r.Code != 1 || !strings.Contains(r.Stderr, "hint: the token expired ") {
		t.Fatalf("listen --token - with an expired token: %s", r)
	}
}

// TestListenJSON: -o json prints one object per message, data the JSON
// value when the payload is JSON, else a string; connection the id.
func TestListenJSON(t *testing.T) {
	s := startLocal(t)
	p := s.startListen(t, "--tenant", "js", "-o", "json", "--max-messages", "2")
	p.waitStderr("connection id ")
	for _, msg := range []string{`{"n":1,"tags":["a","b"]}`, "just text"} {
		if r := run(t, s.Env(), "", "broadcast", "--tenant", "js", msg); r.Code != 0 {
			t.Fatalf("broadcast: %s", r)
		}
	}
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.errOut)
	}
	lines := strings.Split(strings.TrimSpace(p.out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout:\n%s", p.out)
	}
	type message struct {
		ReceivedAt string          `json:"received_at"`
		Connection string          `json:"connection"`
		Bytes      int             `json:"bytes"`
		Data       json.RawMessage `json:"data"`
	}
	var m [2]message
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &m[i]); err != nil {
			t.Fatalf("line %d: %v\n%s", i+1, err, l)
		}
		if _, err := time.Parse(time.RFC3339Nano, m[i].ReceivedAt); err != nil || m[i].Connection != p.ids()[0] {
			t.Errorf("line %d: %+v; want a time and connection %s", i+1, m[i], p.ids()[0])
		}
	}
	var obj struct {
		N    int
		Tags []string
	}
	if err := json.Unmarshal(m[0].Data, &obj); err != nil || obj.N != 1 || len(obj.Tags) != 2 || m[0].Bytes != 24 {
		t.Errorf("a JSON payload: data %s (%v), bytes %d", m[0].Data, err, m[0].Bytes)
	}
	var str string
	if err := json.Unmarshal(m[1].Data, &str); err != nil || str != "just text" || m[1].Bytes != 9 {
		t.Errorf("a text payload: data %s (%v), bytes %d", m[1].Data, err, m[1].Bytes)
	}
}

// TestListenKicked: `conn kick` from another process closes the connection
// at the gateway; listen prints the close code and reason and ends.
func TestListenKicked(t *testing.T) {
	s := startLocal(t)
	p := s.startListen(t, "--tenant", "k", "--user", "kicked")
	p.waitStderr("connection id ")
	if r := run(t, s.Env(), "", "conn", "kick", "--", p.ids()[0]); r.Code != 0 {
		t.Fatalf("conn kick: %s", r)
	}
	if code := p.wait(); code != 0 || !strings.Contains(p.errOut.String(), "closed by the server: 1000 Connection Closed Normally") {
		t.Fatalf("exit %d, want 0 with the close code:\n%s", code, p.errOut)
	}
}

// TestListenInterrupted: SIGINT (Ctrl-C) closes with 1000 and exits 0; the
// gateway ran $disconnect, so the record is gone.
func TestListenInterrupted(t *testing.T) {
	s := startLocal(t)
	p := s.startListen(t, "--tenant", "sig")
	p.waitStderr("connection id ")
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(); code != 0 || !strings.Contains(p.errOut.String(), "closing with 1000 (interrupted by SIGINT)") {
		t.Fatalf("exit %d after SIGINT:\n%s", code, p.errOut)
	}
	waitFor(t, "the record to go", func() bool { return len(s.tenantIDs(t, "sig")) == 0 })

	// SIGTERM too.
	p = s.startListen(t, "--tenant", "sig")
	p.waitStderr("connection id ")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(); code != 0 || !strings.Contains(p.errOut.String(), "closing with 1000 (interrupted by SIGTERM)") {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, p.errOut)
	}
}
