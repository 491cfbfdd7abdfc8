// Package dashboard_test runs the real streamer binary: `streamer dashboard`
// on a real terminal (tmux) and through a pipe, against a real
// `streamer local --simulate` subprocess.
package dashboard_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/internal/freeport"
)

// Bounds of the waits (liveness, not performance: each wait polls and
// ends as soon as its condition holds).
const (
	screenTimeout = 20 * time.Second // the dashboard drawing data
	changeTimeout = 20 * time.Second // the numbers moving
	exitTimeout   = 10 * time.Second // the dashboard exiting after q
	simulated     = 20
)

// bin is the streamer binary TestMain builds.
var bin string

func TestMain(m *testing.M) { os.Exit(clitest.Main(m, &bin)) }

// requireDashboardCommand fails when the binary has no `dashboard` command
// (cmd/root.go must register NewCmdDashboard).
func requireDashboardCommand(t *testing.T) {
	t.Helper()
	out, err := exec.Command(bin, "dashboard", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--source") {
		t.Fatalf("the binary has no `streamer dashboard` (cmd/root.go must add NewCmdDashboard(f, nil)): %v\n%s", err, out)
	}
}

// localStack is a running `streamer local --simulate` subprocess.
type localStack struct {
	base     string // http://127.0.0.1:PORT
	endpoint string // management endpoint with the stage
}

// startLocal runs `streamer local --simulate N` with a throwaway key
// directory until the test ends (see clitest.StartLocal).
func startLocal(t *testing.T, clients int) *localStack {
	t.Helper()
	l := clitest.StartLocal(t, bin, "--key-dir", t.TempDir(), "--simulate", fmt.Sprint(clients))
	return &localStack{base: l.BaseURL, endpoint: l.ManagementEndpoint}
}

// dashboardCLI runs `streamer dashboard args...` with stdout a pipe (not a
// terminal) and returns its output and exit code.
func dashboardCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	r := clitest.Run(t, bin, nil, "", append([]string{"dashboard"}, args...)...)
	return r.Stdout, r.Stderr, r.Code
}

var metricLine = regexp.MustCompile(`(?m)^([a-z_0-9]+): (.*)$`)

func plainMetrics(out string) map[string]string {
	m := map[string]string{}
	for _, g := range metricLine.FindAllStringSubmatch(out, -1) {
		m[g[1]] = g[2]
	}
	return m
}

// panelTitles are what a person sees on the local dashboard.
var panelTitles = []string{"Active connections", "Connections / min", "Auth failures", "Messages sent / min", "Error rate", "Latency", "Circuit breaker"}

func TestDashboardAgainstSimulatedLocal(t *testing.T) {
	requireDashboardCommand(t)
	s := startLocal(t, simulated)

	t.Run("once plain snapshot", func(t *testing.T) {
		// stdout is a pipe: plain "name: value" lines even without --once.
		for _, args := range [][]string{{"--once", "--endpoint", s.endpoint}, {"--endpoint", s.endpoint}} {
			out, errOut, code := dashboardCLI(t, args...)
			if code != 0 {
				t.Fatalf("%v: exit %d\nstderr: %s", args, code, errOut)
			}
			m := plainMetrics(out)
			if m["source"] != "local "+s.base+"/metrics.json" {
				t.Errorf("%v: source %q", args, m["source"])
			}
			for _, name := range []string{"active_connections", "connections_per_minute", "authentication_failures",
				"messages_sent_per_minute", "error_rate", "latency_p50", "latency_p99", "breaker_state"} {
				if _, ok := m[name]; !ok {
					t.Errorf("%v: no %s line in:\n%s", args, name, out)
				}
			}
			// The simulated clients are connected: a number, not "n/a".
			if v := m["active_connections"]; v == "" || v == "n/a" || v == "0" {
				t.Errorf("%v: active_connections %q with %d simulated clients", args, v, simulated)
			}
			if strings.ContainsRune(out, '\x1b') {
				t.Errorf("%v: escape sequences in plain output: %q", args, out)
			}
		}
	})

	t.Run("once json snapshot", func(t *testing.T) {
		out, errOut, code := dashboardCLI(t, "--once", "-o", "json", "--endpoint", s.endpoint)
		if code != 0 {
			t.Fatalf("exit %d\nstderr: %s", code, errOut)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("not JSON (%v):\n%s", err, out)
		}
		if m["source"] != "local "+s.base+"/metrics.json" || m["breaker_state"] == "" {
			t.Errorf("source %v, breaker_state %v", m["source"], m["breaker_state"])
		}
		// The simulated clients are connected: a number above 0.
		if n, ok := m["active_connections"].(float64); !ok || n <= 0 {
			t.Errorf("active_connections %#v with %d simulated clients:\n%s", m["active_connections"], simulated, out)
		}
		for _, name := range []string{"connections_per_minute", "authentication_failures", "messages_sent_per_minute", "latency_p50", "latency_p99"} {
			if _, ok := m[name].(float64); !ok {
				t.Errorf("%s = %#v, want a number:\n%s", name, m[name], out)
			}
		}
		// The error rate is null when no @connections call fell between the
		// two polls; the key is there either way.
		if v, ok := m["error_rate"]; !ok {
			t.Error("no error_rate key")
		} else if _, isNum := v.(float64); v != nil && !isNum {
			t.Errorf("error_rate = %#v, want a number or null", v)
		}
		if v, ok := m["lambda_errors"]; !ok || v != nil {
			t.Errorf("lambda_errors = %#v (present %v), want null for the local source", v, ok)
		}
	})

	t.Run("tmux", func(t *testing.T) { dashboardOnTerminal(t, s) })
}

// dashboardOnTerminal drives the dashboard on a real terminal as a person
// would: panels appear, the numbers move, q exits 0.
func dashboardOnTerminal(t *testing.T, s *localStack) {
	tmux := clitest.NewTmux(t)

	exitFile := filepath.Join(t.TempDir(), "exit")
	script := fmt.Sprintf("%s dashboard --endpoint %s --refresh 1s; echo $? > %s",
		clitest.ShellQuote(bin), clitest.ShellQuote(s.endpoint), clitest.ShellQuote(exitFile))
	// sh explicitly: the user's $SHELL may not speak POSIX ($? in fish).
	if out, err := tmux.Run("new-session", "-d", "-x", "100", "-y", "30", "-s", "dash", "sh", "-c", script); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	capture := func() string {
		t.Helper()
		out, err := tmux.Run("capture-pane", "-p", "-t", "dash")
		if err != nil {
			if code, ok := readExit(exitFile); ok {
				t.Fatalf("the dashboard exited with %d before the test was done", code)
			}
			t.Fatalf("tmux capture-pane: %v\n%s", err, out)
		}
		return out
	}

	// First screen: every panel, with data. Six numbers means the second
	// poll is in (active, auth failures and latency p50/p99 come with the
	// first; connections and messages per minute need two); the error rate
	// reads "—" whenever no @connections call fell between two polls.
	var first string
	for deadline := time.Now().Add(screenTimeout); ; {
		first = capture()
		if hasAll(first, panelTitles) && strings.Contains(first, "updated") && len(panelNumbers(first)) >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete dashboard within %s:\n%s", screenTimeout, first)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("first capture:\n%s", first)

	// A later screen whose numbers differ: the simulation keeps them moving.
	var second string
	for deadline := time.Now().Add(changeTimeout); ; {
		time.Sleep(2 * time.Second)
		second = capture()
		if a, b := panelNumbers(first), panelNumbers(second); hasAll(second, panelTitles) && !equal(a, b) {
			t.Logf("numbers %v -> %v", a, b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the numbers did not change within %s:\nfirst:\n%s\nlast:\n%s", changeTimeout, first, second)
		}
	}
	t.Logf("second capture:\n%s", second)

	// Keys as a terminal sends them (tmux encodes shift+tab as CSI Z, the
	// arrows as CSI A-D): the thick border follows the focus.
	send := func(key string) {
		t.Helper()
		if out, err := tmux.Run("send-keys", "-t", "dash", key); err != nil {
			t.Fatalf("tmux send-keys %s: %v\n%s", key, err, out)
		}
	}
	waitScreen := func(what string, ok func(string) bool) string {
		t.Helper()
		var screen string
		for deadline := time.Now().Add(screenTimeout); ; {
			if screen = capture(); ok(screen) {
				return screen
			}
			if time.Now().After(deadline) {
				t.Fatalf("no screen with %s within %s:\n%s", what, screenTimeout, screen)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	focused := func(title string) func(string) bool {
		return func(screen string) bool { return strings.Contains(screen, "┃ "+title) }
	}
	for _, step := range []struct{ key, title string }{
		{"Tab", "Connections / min"},
		{"BTab", "Active connections"},
		{"Right", "Connections / min"},
		{"Down", "Error rate"}, // three columns at width 100
		{"Left", "Messages sent / min"},
		{"Up", "Active connections"},
		{"Tab", "Connections / min"},
	} {
		send(step.key)
		waitScreen(step.key+" focusing "+step.title, focused(step.title))
	}
	send("?")
	waitScreen("the full help", func(screen string) bool { return strings.Contains(screen, "previous panel") })

	// A narrower terminal: one column of panels, every line inside it.
	if out, err := tmux.Run("resize-window", "-t", "dash", "-x", "50", "-y", "30"); err != nil {
		t.Fatalf("tmux resize-window: %v\n%s", err, out)
	}
	narrow := waitScreen("one column at width 50", func(screen string) bool {
		boxes := 0
		for _, l := range strings.Split(screen, "\n") {
			if n := strings.Count(l, "╭") + strings.Count(l, "┏"); n > 1 {
				return false
			} else {
				boxes += n
			}
		}
		return boxes > 0 && strings.Contains(screen, "┃ Connections / min")
	})
	t.Logf("narrow capture:\n%s", narrow)

	if out, err := tmux.Run("send-keys", "-t", "dash", "q"); err != nil {
		t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(exitTimeout); ; {
		if code, ok := readExit(exitFile); ok {
			if code != 0 {
				t.Fatalf("the dashboard exited %d after q", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard did not exit within %s of q:\n%s", exitTimeout, capture())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readExit(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
		return 0, false
	}
	var code int
	if _, err := fmt.Sscan(string(b), &code); err != nil {
		return 0, false
	}
	return code, true
}

var number = regexp.MustCompile(`\b\d+(?:\.\d+)?\b`)

// panelNumbers are the numbers inside the panels: the header (the URL's
// port), the status line (the clock) and the digits of titles ("p50") are
// left out, so a change means the data changed.
func panelNumbers(screen string) []string {
	var out []string
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(l, "streamer dashboard") || strings.HasPrefix(l, "updated") || strings.Contains(l, "quit") {
			continue
		}
		out = append(out, number.FindAllString(l, -1)...)
	}
	return out
}

func hasAll(screen string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(screen, w) {
			return false
		}
	}
	return true
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDashboardLocalDown: with nothing listening, --once exits 1 naming
// the URL and what to start.
func TestDashboardLocalDown(t *testing.T) {
	requireDashboardCommand(t)
	addr := freeport.Addr(t)
	out, errOut, code := dashboardCLI(t, "--once", "--endpoint", "http://"+addr+"/local")
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "http://"+addr+"/metrics.json") || !strings.Contains(errOut, "streamer local") {
		t.Errorf("stderr should name the URL and suggest `streamer local`: %s", errOut)
	}
}
