package dashboard

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakOpts()...)
}

// leakOpts ignores teatest's SIGINT watcher: NewTestModel starts a goroutine
// that waits for an interrupt forever (see ENVIRONMENT.md).
func leakOpts() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/charmbracelet/x/exp/teatest/v2.NewTestModel.func2"),
		goleak.IgnoreTopFunction("os/signal.signal_recv"),
		goleak.IgnoreTopFunction("os/signal.loop"),
	}
}

// fakeSource returns scripted results, one per Fetch; the last repeats.
type fakeSource struct {
	mu      sync.Mutex
	results []fakeResult
	calls   int
	windows []time.Duration
	block   chan struct{} // when set, Fetch waits for it (or ctx)
}

type fakeResult struct {
	snap Snapshot
	err  error
}

func (f *fakeSource) Name() string { return "fake" }

func (f *fakeSource) Fetch(ctx context.Context, window time.Duration) (Snapshot, error) {
	f.mu.Lock()
	i := min(f.calls, len(f.results)-1)
	f.calls++
	f.windows = append(f.windows, window)
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return Snapshot{}, ctx.Err()
		}
	}
	if i < 0 {
		return Snapshot{}, errors.New("fake: no result scripted")
	}
	return f.results[i].snap, f.results[i].err
}

func (f *fakeSource) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

var fixedNow = time.Date(2026, 11, 27, 12, 0, 5, 0, time.UTC)

// testOptions: colours off, a fixed clock.
func testOptions(src Source) Options {
	return Options{
		Source:       src,
		ColorProfile: colorprofile.Ascii,
		Now:          func() time.Time { return fixedNow },
	}
}

func colourOptions(src Source) Options {
	o := testOptions(src)
	o.ColorProfile = colorprofile.ANSI256
	return o
}

// localSnapshot is a full local-source snapshot.
func localSnapshot() Snapshot {
	return Snapshot{
		Time:                   fixedNow,
		CountsLabel:            "since gateway start",
		ActiveConnections:      Some(42),
		ActiveSeries:           []float64{1, 3, 8, 20, 35, 42, 40, 42},
		ConnectionsPerMinute:   Some(12),
		ConnectionsSeries:      []float64{4, 8, 12},
		AuthenticationFailures: Some(3),
		MessagesSentPerMinute:  Some(360),
		MessagesSeries:         []float64{100, 250, 360},
		ErrorRatePercent:       Some(1.25),
		ErrorRateSeries:        []float64{0, 2.5, 1.25},
		LatencyP50:             Some(0.4),
		LatencyP99:             Some(2.75),
		LatencyLabel:           "@connections latency",
		BreakerState:           "closed",
		SendLimit:              Some(37),
		SendInFlight:           Some(12),
		SendRate:               Some(0),
		DisconnectsDropped:     Some(2),
	}
}

func cloudSnapshot() Snapshot {
	s := localSnapshot()
	s.CountsLabel = "last 1h"
	s.LatencyLabel = "duration streamer-prod-default"
	s.BreakerState = ""
	s.SendLimit, s.SendInFlight, s.SendRate = Value{}, Value{}, Value{}
	s.DisconnectsDropped = Value{}
	s.HasLambda = true
	s.LambdaErrors, s.Throttles, s.ColdStarts = Some(4), Some(0), Some(7)
	s.Functions = []FunctionStats{
		{Name: "streamer-prod-connect", Invocations: Some(100), Errors: Some(3), Throttles: Some(0), ColdStarts: Some(4)},
		{Name: "streamer-prod-disconnect", Invocations: Some(90), Errors: Some(1), Throttles: Some(0), ColdStarts: Some(2)},
		{Name: "streamer-prod-default", Invocations: Some(400), Errors: Some(0), Throttles: Some(0), ColdStarts: Some(1)},
	}
	s.Alarms = []Alarm{
		{Name: "streamer-prod-lambda-errors", State: "ALARM", Reason: "Threshold Crossed"},
		{Name: "streamer-prod-throttles", State: "OK"},
		{Name: "streamer-prod-latency", State: "INSUFFICIENT_DATA"},
	}
	return s
}

// run feeds msg to m and then runs the returned command's message back in,
// once (a fetch), returning the model's next command.
func deliver(t *testing.T, m *Model, msg tea.Msg) tea.Cmd {
	t.Helper()
	_, cmd := m.Update(msg)
	return cmd
}

// runFetch runs a fetch command and delivers its result.
func runFetch(t *testing.T, m *Model, cmd tea.Cmd) tea.Cmd {
	t.Helper()
	if cmd == nil {
		t.Fatal("expected a fetch command, got nil")
	}
	msg := cmd()
	if _, ok := msg.(fetchedMsg); !ok {
		t.Fatalf("command produced %T, want fetchedMsg", msg)
	}
	return deliver(t, m, msg)
}

func checkFits(t *testing.T, view string, w, h int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) > h {
		t.Errorf("%dx%d: view has %d lines", w, h, len(lines))
	}
	for i, l := range lines {
		if lw := ansi.StringWidth(l); lw > w {
			t.Errorf("%dx%d: line %d is %d wide: %q", w, h, i, lw, l)
		}
	}
}

// checkValue fails t unless got holds exactly want.
func checkValue(t *testing.T, name string, got Value, want float64) {
	t.Helper()
	if !got.OK || got.V != want {
		t.Errorf("%s = %+v, want %v", name, got, want)
	}
}
