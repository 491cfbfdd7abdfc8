package dashboard

import (
	"fmt"
	"strings"
	"unicode"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// panel is one box of the grid: a title and its content lines (already
// styled; truncated to the box when drawn).
type panel struct {
	title string
	lines []string
	// spark, when set, adds a sparkline (cut to the box, newest kept) below
	// the lines.
	spark     []float64
	withSpark bool
	alert     bool // the panel reports something wrong (alarm firing, breaker open)
}

const (
	minPanelWidth = 30
	maxColumns    = 3
	maxListLines  = 6 // per-function and alarm lists beyond this are summarised
)

// columns is the grid's column count for a terminal width: 3 wide, 2, 1 narrow.
func columns(width int) int {
	c := width / minPanelWidth
	if c > maxColumns {
		c = maxColumns
	}
	if c < 1 {
		c = 1
	}
	return c
}

// Panels per layout; panelCount must agree with panels (a test checks).
const (
	basePanels   = 7
	lambdaPanels = 4
)

// panelCount is len(m.panels()) without rendering them, for key handling.
func (m *Model) panelCount() int {
	if m.snap.HasLambda {
		return basePanels + lambdaPanels
	}
	return basePanels
}

func (m *Model) panels() []panel {
	s, st := m.snap, m.st
	active := []string{st.value.Render(s.ActiveConnections.Count())}
	if s.DisconnectsDropped.OK {
		// Each dropped $disconnect leaves a record of a gone client.
		active = append(active, m.countStyle(s.DisconnectsDropped).Render(s.DisconnectsDropped.Count())+st.dim.Render(" $disconnect dropped"))
	}
	ps := []panel{
		{title: "Active connections", lines: active, spark: s.ActiveSeries, withSpark: true},
		{title: "Connections / min", lines: []string{st.value.Render(s.ConnectionsPerMinute.Count())}, spark: s.ConnectionsSeries, withSpark: true},
		{title: "Auth failures", lines: []string{m.countStyle(s.AuthenticationFailures).Render(s.AuthenticationFailures.Count()), st.dim.Render(orDash(s.CountsLabel))}},
		{title: "Messages sent / min", lines: []string{st.value.Render(s.MessagesSentPerMinute.Count())}, spark: s.MessagesSeries, withSpark: true},
		{title: "Error rate", lines: []string{m.rateStyle(s.ErrorRatePercent).Render(s.ErrorRatePercent.Percent())}, spark: s.ErrorRateSeries, withSpark: true},
		{title: "Latency p50 / p99", lines: []string{
			st.value.Render(s.LatencyP50.Millis()) + st.dim.Render(" / ") + st.value.Render(s.LatencyP99.Millis()),
			st.dim.Render(orDash(s.LatencyLabel)),
		}},
		m.breakerPanel(),
	}
	if s.HasLambda {
		short := trimCommonPrefix(s.Functions)
		perFn := func(get func(FunctionStats) Value) []string {
			var out []string
			for i, f := range s.Functions {
				out = append(out, st.dim.Render(short[i]+" ")+get(f).Count())
			}
			return limitLines(out, st)
		}
		ps = append(ps,
			panel{title: "Lambda errors (" + s.CountsLabel + ")", lines: append([]string{m.countStyle(s.LambdaErrors).Render(s.LambdaErrors.Count())}, perFn(func(f FunctionStats) Value { return f.Errors })...)},
			panel{title: "Throttles (" + s.CountsLabel + ")", lines: append([]string{m.countStyle(s.Throttles).Render(s.Throttles.Count())}, perFn(func(f FunctionStats) Value { return f.Throttles })...)},
			panel{title: "Cold starts (" + s.CountsLabel + ")", lines: append([]string{st.value.Render(s.ColdStarts.Count())}, perFn(func(f FunctionStats) Value { return f.ColdStarts })...)},
			m.alarmPanel(),
		)
	}
	return ps
}

func (m *Model) breakerPanel() panel {
	st := m.st
	p := panel{title: "Circuit breaker"}
	switch m.snap.BreakerState {
	case "closed":
		p.lines = []string{st.ok.Render("closed")}
	case "open":
		p.lines = []string{st.bad.Render("OPEN")}
		p.alert = true
	case "half-open":
		p.lines = []string{st.warn.Render("half-open")}
	default:
		p.lines = []string{st.value.Render(breakerText(clean(m.snap.BreakerState)))}
	}
	if s := m.snap; s.SendLimit.OK {
		p.lines = append(p.lines, st.dim.Render("send limit "+s.SendLimit.Count()+" · "+s.SendInFlight.Count()+" in flight"))
		if s.SendRate.OK && s.SendRate.V > 0 {
			p.lines = append(p.lines, st.warn.Render(fmt.Sprintf("throttled: %.0f requests/s", s.SendRate.V)))
		}
	}
	return p
}

func (m *Model) alarmPanel() panel {
	st, s := m.st, m.snap
	p := panel{title: "Alarms"}
	if n := s.FiringAlarms(); n > 0 {
		p.title = fmt.Sprintf("Alarms: %d in ALARM", n)
		p.alert = true
	}
	if len(s.Alarms) == 0 {
		p.lines = []string{st.dim.Render("none matching the prefix")}
		return p
	}
	var lines []string
	for _, a := range s.Alarms {
		switch {
		case a.Firing():
			// The "!!" marker keeps an alarm visible without colour.
			lines = append(lines, st.alarm.Render("!! ALARM "+clean(a.Name)))
		case a.State == "OK":
			lines = append(lines, st.good.Render("ok")+" "+clean(a.Name))
		default:
			lines = append(lines, st.warn.Render(strings.ToLower(clean(a.State)))+" "+clean(a.Name))
		}
	}
	p.lines = limitLines(lines, st)
	return p
}

func limitLines(lines []string, st styles) []string {
	if len(lines) <= maxListLines {
		return lines
	}
	more := len(lines) - (maxListLines - 1)
	return append(lines[:maxListLines-1:maxListLines-1], st.dim.Render(fmt.Sprintf("… %d more", more)))
}

func (m *Model) countStyle(v Value) lipgloss.Style {
	if v.OK && v.V > 0 {
		return m.st.warn
	}
	return m.st.value
}

func (m *Model) rateStyle(v Value) lipgloss.Style {
	switch {
	case !v.OK:
		return m.st.value
	case v.V >= 5:
		return m.st.bad
	case v.V > 0:
		return m.st.warn
	}
	return m.st.ok
}

// View implements tea.Model: the screen on the alternate screen
// unless Options.NoAltScreen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.screen())
	v.AltScreen = m.altScreen
	return v
}

// screen draws the dashboard. Every line fits the width and the whole view
// fits the height: rows that do not fit scroll with the focus.
func (m *Model) screen() string {
	w, h := m.size()
	if w < 20 || h < 6 {
		return ansi.Truncate("streamer dashboard: terminal too small", w, "…")
	}
	ps := m.panels()

	status := m.statusLine(w)
	var helpLines []string
	for _, l := range strings.Split(m.help.View(m.keys), "\n") {
		helpLines = append(helpLines, ansi.Truncate(l, w, "…"))
	}
	avail := h - 2 - len(helpLines)
	if avail < 3 { // too short for help: keep the data
		helpLines, avail = nil, h-2
	}
	body, above, below := m.grid(ps, w, avail)
	// Hidden panels are announced before the source name so truncation
	// never hides the hint.
	title := "streamer dashboard"
	var more []string
	if above > 0 {
		more = append(more, fmt.Sprintf("↑%d", above))
	}
	if below > 0 {
		more = append(more, fmt.Sprintf("↓%d", below))
	}
	if len(more) > 0 {
		title += " [" + strings.Join(more, " ") + " more]"
	}
	header := m.st.header.Render(ansi.Truncate(title+" · "+clean(m.src.Name()), w, "…"))
	for len(body) < avail {
		body = append(body, "")
	}
	out := append([]string{header}, body...)
	out = append(out, status)
	out = append(out, helpLines...)
	return strings.Join(out, "\n")
}

// grid lays the panels out in rows and returns at most avail lines, starting
// at a row that keeps the focused panel visible, and how many panels are
// hidden above and below.
func (m *Model) grid(ps []panel, w, avail int) (lines []string, above, below int) {
	cols := columns(w)
	var rows [][]string
	for start := 0; start < len(ps); start += cols {
		end := min(start+cols, len(ps))
		rows = append(rows, m.row(ps[start:end], start, w, cols))
	}
	focusRow := min(m.focus, len(ps)-1) / cols
	first, used := focusRow, len(rows[focusRow])
	for first > 0 && used+len(rows[first-1]) <= avail {
		first--
		used += len(rows[first])
	}
	var out []string
	shown := 0
	for _, r := range rows[first:] {
		if len(out)+len(r) > avail {
			if len(out) == 0 { // even the focused row is too tall: clip it
				out = append(out, r[:avail]...)
				shown++
			}
			break
		}
		out = append(out, r...)
		shown++
	}
	above = first * cols
	below = max(len(ps)-(first+shown)*cols, 0)
	return out, above, below
}

func (m *Model) row(ps []panel, offset, w, cols int) []string {
	height := 0
	for _, p := range ps {
		height = max(height, 1+len(p.lines)+btoi(p.withSpark))
	}
	boxes := make([]string, len(ps))
	for i, p := range ps {
		pw := w / cols
		if i < w%cols {
			pw++
		}
		inner := max(pw-4, 1) // two border columns, two padding columns
		style := m.st.panel
		if offset+i == m.focus {
			style = m.st.focused
		}
		if p.alert {
			style = m.st.alertBorder(style)
		}
		title := m.st.title.Render(ansi.Truncate(p.title, inner, "…"))
		if p.alert {
			title = m.st.alarm.Render(ansi.Truncate(p.title, inner, "…"))
		}
		lines := []string{title}
		for _, l := range p.lines {
			lines = append(lines, ansi.Truncate(l, inner, "…"))
		}
		if p.withSpark {
			if len(p.spark) == 0 {
				lines = append(lines, m.st.dim.Render(ansi.Truncate("no history yet", inner, "…")))
			} else {
				lines = append(lines, m.st.spark.Render(Sparkline(p.spark, inner)))
			}
		}
		// lipgloss v2 sizes include the border.
		boxes[i] = style.Width(pw).Height(height + 2).Render(strings.Join(lines, "\n"))
	}
	return strings.Split(lipgloss.JoinHorizontal(lipgloss.Top, boxes...), "\n")
}

func (m *Model) statusLine(w int) string {
	every := shortDuration(m.refresh)
	var text string
	style := m.st.status
	switch {
	case m.err != nil:
		// The error is cut, not the "retrying" promise after it.
		prefix, suffix := "fetch failed: ", " — retrying in "+every
		if m.have {
			suffix += " · showing " + m.updated.Format("15:04:05")
		}
		room := w - ansi.StringWidth(prefix) - ansi.StringWidth(suffix)
		if room < 10 {
			room = w
		}
		text = prefix + ansi.Truncate(clean(m.err.Error()), room, "…") + suffix
		style = m.st.statusErr
	case !m.have:
		text = "fetching…"
	default:
		text = "updated " + m.updated.Format("15:04:05") + " · every " + every + " · window " + shortDuration(m.window)
		if m.fetching {
			text += " · refreshing…"
		}
		if len(m.snap.Warnings) > 0 {
			style = m.st.warn
			text += " · warning: " + clean(strings.Join(m.snap.Warnings, "; "))
		}
	}
	return style.Render(ansi.Truncate(text, w, "…"))
}

// clean makes text from outside (errors, alarm names) safe for one terminal
// line: control characters, escape sequences included, become spaces.
func clean(s string) string {
	s = ansi.Strip(s)
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

func orDash(s string) string {
	if s == "" {
		return noDataText
	}
	return s
}

// trimCommonPrefix shortens function names to what tells them apart
// ("streamer-dev-connect", "streamer-dev-default" -> "connect", "default").
func trimCommonPrefix(fs []FunctionStats) []string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = clean(f.Name)
	}
	if len(names) < 2 {
		return names
	}
	prefix := names[0]
	for _, n := range names[1:] {
		for !strings.HasPrefix(n, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	// Cut at a separator so "stream-a"/"stream-b" keep whole words.
	if i := strings.LastIndexAny(prefix, "-_/."); i >= 0 {
		prefix = prefix[:i+1]
	} else {
		prefix = ""
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.TrimPrefix(n, prefix)
		if out[i] == "" {
			out[i] = n
		}
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
