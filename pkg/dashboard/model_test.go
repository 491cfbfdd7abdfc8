package dashboard

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
)

// keyMsg is the key press a terminal's s decodes to.
func keyMsg(s string) tea.KeyPressMsg {
	switch s {
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "shift+tab":
		return tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	case "left":
		return tea.KeyPressMsg{Code: tea.KeyLeft}
	case "right":
		return tea.KeyPressMsg{Code: tea.KeyRight}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	}
	r := []rune(s)
	return tea.KeyPressMsg{Code: r[0], Text: s}
}

func sized(t *testing.T, src Source, w, h int) *Model {
	t.Helper()
	m := NewModel(testOptions(src))
	deliver(t, m, tea.WindowSizeMsg{Width: w, Height: h})
	return m
}

func TestModelShowsData(t *testing.T) {
	src := &fakeSource{results: []fakeResult{{snap: localSnapshot()}}}
	m := sized(t, src, 100, 30)
	next := runFetch(t, m, m.Init())
	if next == nil {
		t.Fatal("after a fetch the model must schedule the next refresh")
	}
	if src.windows[0] != DefaultWindow {
		t.Errorf("fetch window = %v, want the default %v", src.windows[0], DefaultWindow)
	}
	v := m.View().Content
	checkFits(t, v, 100, 30)
	for _, want := range []string{
		"Active connections", "42", "▁▂▂▄▇███",
		"Connections / min", "12",
		"Auth failures", "3", "since gateway start",
		"Messages sent / min", "360",
		"Error rate", "1.25%",
		"Latency p50 / p99", "0.400 ms / 2.8 ms", "@connections latency",
		"Circuit breaker", "closed",
		"updated 12:00:05 · every 5s · window 1h",
		"q quit", "? help",
	} {
		if !strings.Contains(v, want) {
			t.Errorf("view lacks %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "Lambda errors") || strings.Contains(v, "Alarms") {
		t.Errorf("local snapshot must not show CloudWatch panels:\n%s", v)
	}
	if strings.Contains(v, "\x1b") {
		t.Errorf("colours off, yet the view has escape sequences: %q", v)
	}
}

func TestModelEmptyAndNoDataStates(t *testing.T) {
	src := &fakeSource{results: []fakeResult{{snap: Snapshot{}}}}
	m := sized(t, src, 100, 30)
	cmd := m.Init()
	// Before the first answer: placeholders and "fetching…", no crash.
	v := m.View().Content
	checkFits(t, v, 100, 30)
	if !strings.Contains(v, "fetching…") || !strings.Contains(v, noDataText) {
		t.Errorf("initial view should say fetching and show %q:\n%s", noDataText, v)
	}
	runFetch(t, m, cmd)
	v = m.View().Content
	if got := strings.Count(v, noDataText); got < 8 {
		t.Errorf("an all-no-data snapshot should show %q in every value (found %d):\n%s", noDataText, got, v)
	}
	for _, want := range []string{"no history yet", "n/a", "updated 12:00:05"} {
		if !strings.Contains(v, want) {
			t.Errorf("view lacks %q:\n%s", want, v)
		}
	}
}

func TestModelErrorStateKeepsDataAndRetries(t *testing.T) {
	boom := errors.New("dial tcp 127.0.0.1:4510: connect: connection refused\nsecond line\x1b[31m")
	src := &fakeSource{results: []fakeResult{{snap: localSnapshot()}, {err: boom}, {snap: localSnapshot()}}}
	opts := testOptions(src)
	opts.Refresh = 10 * time.Millisecond // tea.Tick really waits
	m := NewModel(opts)
	deliver(t, m, tea.WindowSizeMsg{Width: 160, Height: 30})
	tick := runFetch(t, m, m.Init())

	// The scheduled tick fires, the fetch fails.
	msg := tick()
	tm, ok := msg.(tickMsg)
	if !ok {
		t.Fatalf("refresh command produced %T, want tickMsg", msg)
	}
	retry := runFetch(t, m, deliver(t, m, tm))
	if !errors.Is(m.err, boom) {
		t.Fatalf("Err() = %v, want the fetch error", m.err)
	}
	if retry == nil {
		t.Fatal("a failed fetch must schedule a retry")
	}
	v := m.View().Content
	checkFits(t, v, 160, 30)
	want := "fetch failed: dial tcp 127.0.0.1:4510: connect: connection refused second line — retrying in 10ms · showing 12:00:05"
	if !strings.Contains(v, want) {
		t.Errorf("status line should read %q:\n%s", want, v)
	}
	if !strings.Contains(v, "42") {
		t.Errorf("the last good data should stay on screen:\n%s", v)
	}

	// The retry succeeds and clears the error.
	runFetch(t, m, deliver(t, m, retry()))
	if m.err != nil || strings.Contains(m.View().Content, "fetch failed") {
		t.Errorf("a successful retry should clear the error, got %v", m.err)
	}
	if src.Calls() != 3 {
		t.Errorf("fetches = %d, want 3", src.Calls())
	}
}

func TestModelLongErrorIsTruncatedToWidth(t *testing.T) {
	long := errors.New(strings.Repeat("throttled by CloudWatch ", 40))
	src := &fakeSource{results: []fakeResult{{err: long}}}
	for _, w := range []int{30, 61, 100, 160} {
		m := sized(t, src, w, 24)
		runFetch(t, m, m.Init())
		v := m.View().Content
		checkFits(t, v, w, 24)
		lines := strings.Split(v, "\n")
		status := ansi.Strip(lines[len(lines)-2])
		if !strings.HasPrefix(status, "fetch failed: throttled") || (w >= 61 && !strings.HasSuffix(status, "… — retrying in 5s")) || (w < 61 && !strings.HasSuffix(status, "…")) {
			t.Errorf("width %d: status line %q should be the truncated error", w, status)
		}
	}
}

func TestModelKeys(t *testing.T) {
	src := &fakeSource{results: []fakeResult{{snap: cloudSnapshot()}}}
	m := sized(t, src, 100, 40)
	runFetch(t, m, m.Init())
	n := len(m.panels())
	if n != 11 {
		t.Fatalf("cloud snapshot: %d panels, want 11", n)
	}

	for _, k := range []string{"q", "ctrl+c"} {
		cmd := deliver(t, m, keyMsg(k))
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s should quit", k)
		}
	}

	// r fetches now; a second r while that fetch runs does nothing.
	before := m.fetches
	cmd := deliver(t, m, keyMsg("r"))
	if cmd == nil || m.fetches != before+1 {
		t.Fatalf("r should start a fetch (fetches %d -> %d)", before, m.fetches)
	}
	if deliver(t, m, keyMsg("r")) != nil || m.fetches != before+1 {
		t.Error("r during a fetch should not start another")
	}
	staleGen := m.gen - 1
	runFetch(t, m, cmd)
	// The tick scheduled before r is stale now and must not fetch.
	if deliver(t, m, tickMsg{gen: staleGen}) != nil {
		t.Error("a superseded tick started a fetch")
	}

	// Focus moves: tab/right forward, shift+tab/left back, wrap around,
	// up/down by a row (3 columns at width 100).
	steps := []struct {
		key  string
		want int
	}{
		{"tab", 1}, {"right", 2}, {"down", 5}, {"left", 4}, {"up", 1}, {"up", 1},
		{"shift+tab", 0}, {"shift+tab", n - 1}, {"tab", 0}, {"down", 3}, {"down", 6}, {"down", 9}, {"down", 9},
	}
	for _, s := range steps {
		deliver(t, m, keyMsg(s.key))
		if m.focus != s.want {
			t.Fatalf("after %s focus = %d, want %d", s.key, m.focus, s.want)
		}
	}
	// The focused panel has the thick border: panel 9 is "Cold starts".
	for _, l := range strings.Split(m.View().Content, "\n") {
		if strings.Contains(l, "Cold starts") && !strings.HasPrefix(l, "┃") {
			t.Errorf("focused panel should have a thick border: %q", l)
		}
		if strings.Contains(l, "Active connections") && !strings.HasPrefix(l, "│") {
			t.Errorf("unfocused panel should have a thin border: %q", l)
		}
	}

	// ? toggles the full help.
	if strings.Contains(m.View().Content, "previous panel") {
		t.Fatal("full help shown before ?")
	}
	deliver(t, m, keyMsg("?"))
	v := m.View().Content
	if !m.showHelp || !strings.Contains(v, "previous panel") || !strings.Contains(v, "refresh now") {
		t.Errorf("? should show the full help:\n%s", v)
	}
	checkFits(t, v, 100, 40)
	deliver(t, m, keyMsg("?"))
	if m.showHelp || strings.Contains(m.View().Content, "previous panel") {
		t.Error("a second ? should hide the full help")
	}
}

func TestModelReflowsOnResize(t *testing.T) {
	src := &fakeSource{results: []fakeResult{{snap: cloudSnapshot()}}}
	m := NewModel(testOptions(src))
	runFetch(t, m, m.Init())
	checkFits(t, m.View().Content, defaultWidth, defaultHeight) // no size yet: 80x24
	cases := []struct{ w, cols int }{{200, 3}, {100, 3}, {90, 3}, {89, 2}, {60, 2}, {59, 1}, {30, 1}}
	for _, c := range cases {
		deliver(t, m, tea.WindowSizeMsg{Width: c.w, Height: 60})
		v := m.View().Content
		checkFits(t, v, c.w, 60)
		first := strings.Split(v, "\n")[1] // top border of the first row
		if got := strings.Count(first, "╭") + strings.Count(first, "┏"); got != c.cols {
			t.Errorf("width %d: %d columns, want %d\n%s", c.w, got, c.cols, v)
		}
	}
	// Every size, including absurd ones, stays inside the terminal.
	for w := 1; w <= 130; w += 7 {
		for h := 1; h <= 45; h += 4 {
			for _, help := range []bool{false, true} {
				deliver(t, m, tea.WindowSizeMsg{Width: w, Height: h})
				if help != m.showHelp {
					deliver(t, m, keyMsg("?"))
				}
				checkFits(t, m.View().Content, w, h)
			}
		}
	}
}

func TestModelScrollsToFocusedPanel(t *testing.T) {
	src := &fakeSource{results: []fakeResult{{snap: cloudSnapshot()}}}
	m := sized(t, src, 100, 16)
	runFetch(t, m, m.Init())
	v := m.View().Content
	checkFits(t, v, 100, 16)
	if !strings.Contains(v, "Active connections") || strings.Contains(v, "Alarms") {
		t.Fatalf("top rows first:\n%s", v)
	}
	if !strings.Contains(v, "[↓5 more]") {
		t.Errorf("hidden panels should be announced:\n%s", v)
	}
	for range 10 {
		deliver(t, m, keyMsg("tab"))
	}
	v = m.View().Content
	checkFits(t, v, 100, 16)
	if !strings.Contains(v, "Alarms: 1 in ALARM") {
		t.Errorf("focusing the last panel should scroll it into view:\n%s", v)
	}
}

func TestModelAlarmsStandOut(t *testing.T) {
	src := &fakeSource{results: []fakeResult{{snap: cloudSnapshot()}}}
	// Without colour the marker carries it.
	m := sized(t, src, 100, 40)
	runFetch(t, m, m.Init())
	if v := m.View().Content; !strings.Contains(v, "!! ALARM streamer-prod-lambd") || !strings.Contains(v, "Alarms: 1 in ALARM") {
		t.Errorf("firing alarm not marked:\n%s", v)
	}
	// With colour: red and bold.
	m = NewModel(colourOptions(src))
	deliver(t, m, tea.WindowSizeMsg{Width: 160, Height: 40})
	runFetch(t, m, m.Init())
	v := m.View().Content
	want := m.st.alarm.Render("!! ALARM streamer-prod-lambda-errors")
	if !strings.Contains(want, "\x1b[") || !strings.Contains(want, "1;") && !strings.Contains(want, ";1") && !strings.Contains(want, "[1m") {
		t.Fatalf("alarm style renders no bold/colour: %q", want)
	}
	if !strings.Contains(want, "31") && !strings.Contains(want, "38;5;1") {
		t.Fatalf("alarm style is not red: %q", want)
	}
	if !strings.Contains(v, want) {
		t.Errorf("firing alarm should be rendered red and bold (%q) in:\n%q", want, v)
	}
	okLine := m.st.alarm.Render("!! ALARM streamer-prod-throttles")
	if strings.Contains(v, okLine) {
		t.Error("an OK alarm must not be highlighted")
	}
}

func TestNoColorIsHonoured(t *testing.T) {
	src := &fakeSource{results: []fakeResult{{snap: cloudSnapshot()}}}
	// Any non-empty NO_COLOR (https://no-color.org), even one
	// strconv.ParseBool does not read as true, over a colour terminal.
	env := map[string]string{"NO_COLOR": "yes please", "TERM": "xterm-256color", "COLORTERM": "truecolor", "CLICOLOR_FORCE": "1"}
	getenv := func(k string) string { return env[k] }
	if got := DetectProfile(os.Stdout, getenv); got != colorprofile.Ascii {
		t.Fatalf("DetectProfile with NO_COLOR = %v, want Ascii", got)
	}
	delete(env, "NO_COLOR")
	if got := DetectProfile(os.Stdout, getenv); got != colorprofile.TrueColor {
		t.Fatalf("DetectProfile with COLORTERM=truecolor, CLICOLOR_FORCE=1 = %v, want TrueColor", got)
	}
	env["NO_COLOR"] = "1"
	opts := Options{Source: src, Out: os.Stdout, Getenv: getenv}
	m := NewModel(opts)
	deliver(t, m, tea.WindowSizeMsg{Width: 100, Height: 40})
	runFetch(t, m, m.Init())
	if v := m.View().Content; strings.Contains(v, "\x1b") {
		t.Errorf("NO_COLOR set, yet escapes in view: %q", v)
	}
}

func TestModelIgnoresUnknownMessages(t *testing.T) {
	m := sized(t, &fakeSource{results: []fakeResult{{snap: localSnapshot()}}}, 80, 24)
	if cmd := deliver(t, m, struct{ x int }{1}); cmd != nil {
		t.Error("unknown message produced a command")
	}
	if cmd := deliver(t, m, tea.MouseClickMsg{}); cmd != nil {
		t.Error("mouse message produced a command")
	}
	// Key releases (terminals with keyboard enhancements report them) do
	// nothing: q's release must not quit, tab's must not move the focus.
	for _, k := range []string{"q", "tab"} {
		if cmd := deliver(t, m, tea.KeyReleaseMsg(keyMsg(k))); cmd != nil || m.focus != 0 {
			t.Errorf("release of %s: command %v, focus %d", k, cmd != nil, m.focus)
		}
	}
	_ = fmt.Sprint(m.View().Content)
}

func TestFetchUsesTimeout(t *testing.T) {
	src := &fakeSource{results: []fakeResult{{snap: localSnapshot()}}, block: make(chan struct{})}
	opts := testOptions(src)
	opts.Timeout = 20 * time.Millisecond
	m := NewModel(opts)
	msg := m.Init()().(fetchedMsg)
	if msg.err == nil {
		t.Fatal("a fetch that never answers must end with the timeout")
	}
	deliver(t, m, msg)
	if !strings.Contains(m.View().Content, "fetch failed: context deadline exceeded") {
		t.Errorf("timeout not shown:\n%s", m.View().Content)
	}
}

func TestFocusClampsWhenPanelsGoAway(t *testing.T) {
	src := &fakeSource{results: []fakeResult{{snap: cloudSnapshot()}, {snap: localSnapshot()}}}
	m := sized(t, src, 100, 30)
	runFetch(t, m, m.Init())
	deliver(t, m, keyMsg("shift+tab")) // the last cloud panel (alarms)
	if m.focus != 10 {
		t.Fatalf("focus = %d", m.focus)
	}
	runFetch(t, m, deliver(t, m, keyMsg("r")))
	if m.focus != 6 {
		t.Errorf("focus = %d after the local snapshot, want the last of 7 panels", m.focus)
	}
	if !strings.Contains(m.View().Content, "┃ Circuit breaker") {
		t.Errorf("the clamped focus should be drawn:\n%s", m.View().Content)
	}
}

func TestPanelCountMatchesPanels(t *testing.T) {
	for name, snap := range map[string]Snapshot{"local": localSnapshot(), "cloud": cloudSnapshot()} {
		m := &Model{snap: snap}
		if got, want := m.panelCount(), len(m.panels()); got != want {
			t.Errorf("%s: panelCount() = %d, len(panels()) = %d", name, got, want)
		}
	}
}
