package dashboard

import (
	"context"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/pay-theory/streamer/internal/wait"
)

// Defaults for Options' zero values.
const (
	DefaultRefresh = 5 * time.Second
	DefaultWindow  = time.Hour
	DefaultTimeout = 10 * time.Second
	// Size assumed until the terminal reports one (non-terminal output).
	defaultWidth, defaultHeight = 80, 24
)

// Model is the dashboard's bubbletea model. Build it with NewModel; Run wraps
// it in a program.
type Model struct {
	ctx     context.Context
	src     Source
	refresh time.Duration
	window  time.Duration
	timeout time.Duration
	now     func() time.Time

	width, height int
	altScreen     bool // View asks for the alternate screen

	snap     Snapshot
	have     bool      // a snapshot has arrived
	updated  time.Time // when the last good snapshot arrived
	err      error     // the last fetch's error, nil after a success
	fetching bool
	gen      int // generation of the pending refresh tick; older ticks are ignored
	focus    int
	showHelp bool
	fetches  int
	keys     keyMap
	help     help.Model
	st       styles
}

// fetchedMsg carries a finished fetch back into Update.
type fetchedMsg struct {
	snap Snapshot
	err  error
}

// tickMsg asks for the next scheduled fetch; gen matches Model.gen when
// still current.
type tickMsg struct{ gen int }

// NewModel builds a Model from opts (Source required; see Options for the
// defaults of the other fields).
func NewModel(opts Options) *Model {
	opts = opts.withDefaults().withProfile()
	m := &Model{
		ctx:       opts.ctx,
		src:       opts.Source,
		refresh:   opts.Refresh,
		window:    opts.Window,
		timeout:   opts.Timeout,
		now:       opts.Now,
		keys:      defaultKeys(),
		help:      help.New(),
		st:        newStyles(opts.ColorProfile),
		altScreen: !opts.NoAltScreen,
	}
	m.help.Styles = m.st.help
	return m
}

// Init implements tea.Model: fetch at once.
func (m *Model) Init() tea.Cmd { return m.fetch() }

func (m *Model) fetch() tea.Cmd {
	m.fetching = true
	m.fetches++
	ctx, src, window, timeout := m.ctx, m.src, m.window, m.timeout
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		s, err := src.Fetch(ctx, window)
		return fetchedMsg{snap: s, err: err}
	}
}

func (m *Model) schedule() tea.Cmd {
	m.gen++
	gen, ctx, d := m.gen, m.ctx, m.refresh
	// Not tea.Tick: its timer goroutine outlives the program by up to a
	// refresh interval; this one ends with Run's context.
	return func() tea.Msg {
		if wait.Sleep(ctx, d) != nil {
			return nil
		}
		return tickMsg{gen: gen}
	}
}

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.SetWidth(msg.Width)
		return m, nil
	case fetchedMsg:
		m.fetching = false
		if msg.err != nil {
			m.err = msg.err
		} else {
			m.err = nil
			m.snap, m.have = msg.snap, true
			m.updated = m.now()
			// A source may report fewer panels than before.
			m.focus = min(m.focus, m.panelCount()-1)
		}
		return m, m.schedule()
	case tickMsg:
		if msg.gen != m.gen || m.fetching {
			return m, nil
		}
		return m, m.fetch()
	case tea.KeyPressMsg: // not releases: a terminal that reports them would act twice
		return m, m.key(msg)
	}
	return m, nil
}

func (m *Model) key(msg tea.KeyPressMsg) tea.Cmd {
	n := m.panelCount()
	w, _ := m.size()
	cols := columns(w)
	switch {
	case key.Matches(msg, m.keys.Quit):
		return tea.Quit
	case key.Matches(msg, m.keys.Refresh):
		if m.fetching {
			return nil
		}
		m.gen++ // the pending tick is superseded by this fetch's own
		return m.fetch()
	case key.Matches(msg, m.keys.Help):
		m.showHelp = !m.showHelp
		m.help.ShowAll = m.showHelp
	case key.Matches(msg, m.keys.Next), key.Matches(msg, m.keys.Right):
		m.focus = (m.focus + 1) % n
	case key.Matches(msg, m.keys.Prev), key.Matches(msg, m.keys.Left):
		m.focus = (m.focus - 1 + n) % n
	case key.Matches(msg, m.keys.Down):
		if m.focus+cols < n {
			m.focus += cols
		}
	case key.Matches(msg, m.keys.Up):
		if m.focus-cols >= 0 {
			m.focus -= cols
		}
	}
	return nil
}

func (m *Model) size() (int, int) {
	w, h := m.width, m.height
	if w <= 0 {
		w = defaultWidth
	}
	if h <= 0 {
		h = defaultHeight
	}
	return w, h
}

var _ tea.Model = (*Model)(nil)
