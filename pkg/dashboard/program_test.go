package dashboard

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"
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

func TestProgramEndToEnd(t *testing.T) {
	defer goleak.VerifyNone(t, leakOpts()...)
	src := &counting{fail: map[int]error{2: errors.New("endpoint down")}}
	opts := testOptions(src)
	opts.Refresh = 30 * time.Millisecond
	tm := teatest.NewTestModel(t, NewModel(opts), teatest.WithInitialTermSize(100, 30))

	out := tm.Output()
	var seen bytes.Buffer
	waitOutput := func(what string) {
		t.Helper()
		teatest.WaitFor(t, out, func(b []byte) bool {
			seen.Write(b)
			return bytes.Contains(seen.Bytes(), []byte(what))
		}, teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(5*time.Millisecond))
	}
	waitOutput("Active connections")
	waitOutput("1001")
	// The failed second fetch shows in the status line, then the tick retries.
	waitOutput("fetch failed: endpoint down — retrying in 30ms")
	waitOutput("1003")

	tm.Type("?")
	waitOutput("previous panel")
	before := src.Calls()
	tm.Type("r")
	waitUntil(t, "r to fetch", func() bool { return src.Calls() > before })
	tm.Send(tea.KeyMsg{Type: tea.KeyTab})
	tm.Type("q")
	tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
	final := tm.FinalModel(t).(*Model)
	if final.Focus() != 1 || !final.HelpShown() {
		t.Errorf("final focus %d help %v, want 1 and true", final.Focus(), final.HelpShown())
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
