package dashboard

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"
	"github.com/pay-theory/streamer/internal/syncbuf"
	"go.uber.org/goleak"
)

// counting returns snapshots whose active connection count is the fetch
// number, so successive refreshes are visible on screen.
type counting struct {
	mu    sync.Mutex
	calls int
	fail  map[int]error
}

func (c *counting) Name() string { return "counting" }

func (c *counting) Fetch(ctx context.Context, _ time.Duration) (Snapshot, error) {
	c.mu.Lock()
	c.calls++
	n := c.calls
	c.mu.Unlock()
	if err := c.fail[n]; err != nil {
		return Snapshot{}, err
	}
	s := localSnapshot()
	s.ActiveConnections = Some(float64(1000 + n))
	return s, nil
}

func (c *counting) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// screens wraps a Model and keeps every screen it draws. Bubble Tea v2's
// renderer writes only the cells that change, so the output stream holds
// "1001" once and a later count as a cursor move and one digit ("\x1b[D3"):
// the tests wait on the screens the model draws, and the tmux test
// (tests/dashboard) reads a real terminal's screen.
type screens struct {
	*Model
	mu   sync.Mutex
	seen []string
	from int // waitFor searches the screens drawn since the last match
}

func (s *screens) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	_, cmd := s.Model.Update(msg)
	return s, cmd
}

func (s *screens) View() tea.View {
	v := s.Model.View()
	s.mu.Lock()
	s.seen = append(s.seen, v.Content)
	s.mu.Unlock()
	return v
}

func (s *screens) waitFor(t *testing.T, what string) {
	t.Helper()
	waitUntil(t, "a screen with "+strconv.Quote(what), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i := s.from; i < len(s.seen); i++ {
			if strings.Contains(s.seen[i], what) {
				s.from = i
				return true
			}
		}
		return false
	})
}

func TestProgramEndToEnd(t *testing.T) {
	defer goleak.VerifyNone(t, leakOpts()...)
	src := &counting{fail: map[int]error{2: errors.New("endpoint down")}}
	opts := testOptions(src)
	opts.Refresh = 30 * time.Millisecond
	m := &screens{Model: NewModel(opts)}
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(100, 30))

	m.waitFor(t, "Active connections")
	m.waitFor(t, "1001")
	// The failed second fetch shows in the status line, then the tick retries.
	m.waitFor(t, "fetch failed: endpoint down — retrying in 30ms")
	m.waitFor(t, "1003")
	// The first frame reached the terminal whole, on the alternate screen.
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		return bytes.Contains(b, []byte("\x1b[?1049h")) && bytes.Contains(b, []byte("┃ Active connections")) && bytes.Contains(b, []byte("1001"))
	}, teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(5*time.Millisecond))

	tm.Type("?")
	m.waitFor(t, "previous panel")
	before := src.Calls()
	tm.Type("r")
	waitUntil(t, "r to fetch", func() bool { return src.Calls() > before })
	tm.Send(tea.KeyPressMsg{Code: tea.KeyTab})
	tm.Type("q")
	tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
	final := tm.FinalModel(t).(*screens).Model
	if final.focus != 1 || !final.showHelp {
		t.Errorf("final focus %d help %v, want 1 and true", final.focus, final.showHelp)
	}
}

func TestRunQuitsWhenContextEnds(t *testing.T) {
	defer goleak.VerifyNone(t, leakOpts()...)
	pr, pw := io.Pipe()
	defer pw.Close()
	src := &counting{}
	var out syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts := Options{Source: src, Refresh: 20 * time.Millisecond, In: pr, Out: &out,
		Getenv: func(string) string { return "" }, Now: func() time.Time { return fixedNow }}
	go func() { done <- Run(ctx, opts) }()
	waitUntil(t, "two refreshes", func() bool { return src.Calls() >= 2 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx was cancelled")
	}
	pw.Close() // lets bubbletea's input reader go
	s := out.String()
	if !strings.Contains(s, "\x1b[?1049h") || !strings.Contains(s, "\x1b[?1049l") {
		t.Errorf("alt screen not entered and left: %q", s[:min(len(s), 200)])
	}
	if !strings.Contains(s, "Active connections") || !strings.Contains(s, "1001") {
		t.Errorf("dashboard not drawn: %q", s)
	}
}

func TestRunQuitsOnQ(t *testing.T) {
	defer goleak.VerifyNone(t, leakOpts()...)
	pr, pw := io.Pipe()
	defer pw.Close()
	src := &counting{}
	var out syncbuf.Buffer
	done := make(chan error, 1)
	opts := Options{Source: src, In: pr, Out: &out, NoAltScreen: true, Getenv: func(string) string { return "" }}
	go func() { done <- Run(context.Background(), opts) }()
	waitUntil(t, "first fetch", func() bool { return src.Calls() >= 1 })
	if _, err := pw.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after q = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("q did not quit")
	}
	pw.Close()
	if strings.Contains(out.String(), "\x1b[?1049h") {
		t.Error("NoAltScreen still used the alt screen")
	}
}

func TestRunAndOnceNeedASource(t *testing.T) {
	if err := Run(context.Background(), Options{}); !errors.Is(err, ErrNoSource) {
		t.Errorf("Run without source = %v", err)
	}
	if err := Once(context.Background(), Options{}); !errors.Is(err, ErrNoSource) {
		t.Errorf("Once without source = %v", err)
	}
}
