package dashboard

import (
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/golden"
)

// The golden files are testdata/<TestName>.golden; regenerate them with
// `go test ./pkg/dashboard -run Golden -update` (the -update flag belongs to
// charmbracelet/x/exp/golden) and review the diff.

func goldenView(t *testing.T, s Snapshot, err error, w, h int) []byte {
	t.Helper()
	results := []fakeResult{{snap: s}}
	if err != nil {
		results = append(results, fakeResult{err: err})
	}
	m := NewModel(testOptions(&fakeSource{results: results}))
	deliver(t, m, tea.WindowSizeMsg{Width: w, Height: h})
	runFetch(t, m, m.Init())
	if err != nil {
		runFetch(t, m, deliver(t, m, keyMsg("r")))
	}
	v := m.View().Content
	checkFits(t, v, w, h)
	return []byte(v)
}

func TestGoldenLocal100x30(t *testing.T) {
	golden.RequireEqual(t, goldenView(t, localSnapshot(), nil, 100, 30))
}

func TestGoldenCloudWatch100x30(t *testing.T) {
	golden.RequireEqual(t, goldenView(t, cloudSnapshot(), nil, 100, 30))
}

func TestGoldenFetchError100x30(t *testing.T) {
	golden.RequireEqual(t, goldenView(t, localSnapshot(), &FetchError{Source: "local", Op: "GET http://127.0.0.1:4510/metrics.json", Err: errConnRefused}, 100, 30))
}

func TestGoldenNarrow40x30(t *testing.T) {
	golden.RequireEqual(t, goldenView(t, cloudSnapshot(), nil, 40, 30))
}

type constErr string

func (e constErr) Error() string { return string(e) }

const errConnRefused = constErr("dial tcp 127.0.0.1:4510: connect: connection refused (is `streamer local` running?)")
