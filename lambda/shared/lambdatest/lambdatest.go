// Package lambdatest helps the handler tests: it loads recorded API Gateway
// WebSocket events from testdata and parses what the handlers wrote (JSON
// log lines, EMF documents) so tests assert on fields, not on text.
package lambdatest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/pay-theory/streamer/internal/syncbuf"
)

// Event reads testdata/<name>, replaces each "{{KEY}}" of repl, and decodes
// it as a WebSocket proxy request.
func Event(t testing.TB, path string, repl map[string]string) events.APIGatewayWebsocketProxyRequest {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read event %s: %v", path, err)
	}
	for k, v := range repl {
		raw = bytes.ReplaceAll(raw, []byte("{{"+k+"}}"), []byte(v))
	}
	var req events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatalf("decode event %s: %v", path, err)
	}
	return req
}

// Buffer is a concurrency-safe bytes.Buffer to capture output.
type Buffer = syncbuf.Buffer

// Lines decodes every line of s as a JSON object; a line that is not one
// fails the test (every line a handler writes must be JSON).
func Lines(t testing.TB, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("output line is not a JSON object: %v\n%s", err, line)
		}
		out = append(out, m)
	}
	return out
}

// Find returns the lines whose msg is msg.
func Find(lines []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// EMFDoc is a decoded Embedded Metric Format document.
type EMFDoc struct {
	Raw        map[string]any
	Timestamp  int64
	Namespace  string
	Dimensions [][]string
	Units      map[string]string // metric name -> unit
}

// Value returns the value of metric name.
func (d EMFDoc) Value(name string) (float64, bool) {
	v, ok := d.Raw[name].(float64)
	return v, ok
}

// EMF decodes every line of s as an EMF document (exactly one metric
// directive each), failing on anything else.
func EMF(t testing.TB, s string) []EMFDoc {
	t.Helper()
	var out []EMFDoc
	for _, l := range Lines(t, s) {
		b, _ := json.Marshal(l["_aws"])
		var meta struct {
			Timestamp         int64 `json:"Timestamp"`
			CloudWatchMetrics []struct {
				Namespace  string     `json:"Namespace"`
				Dimensions [][]string `json:"Dimensions"`
				Metrics    []struct {
					Name string `json:"Name"`
					Unit string `json:"Unit"`
				} `json:"Metrics"`
			} `json:"CloudWatchMetrics"`
		}
		if err := json.Unmarshal(b, &meta); err != nil || len(meta.CloudWatchMetrics) != 1 || meta.Timestamp == 0 {
			t.Fatalf("not an EMF document with one metric directive (err %v): %v", err, l)
		}
		d := EMFDoc{Raw: l, Timestamp: meta.Timestamp, Namespace: meta.CloudWatchMetrics[0].Namespace,
			Dimensions: meta.CloudWatchMetrics[0].Dimensions, Units: map[string]string{}}
		for _, m := range meta.CloudWatchMetrics[0].Metrics {
			d.Units[m.Name] = m.Unit
			if _, ok := l[m.Name].(float64); !ok {
				t.Fatalf("EMF metric %s has no numeric value in %v", m.Name, l)
			}
		}
		for _, set := range d.Dimensions {
			for _, dim := range set {
				if _, ok := l[dim].(string); !ok {
					t.Fatalf("EMF dimension %s has no string value in %v", dim, l)
				}
			}
		}
		out = append(out, d)
	}
	return out
}

// CommonLogFields are the fields every handler log line must carry.
func CommonLogFields() []string {
	return []string{"timestamp", "level", "msg", "function", "cold_start", "correlation_id",
		"operation", "user_id", "tenant_id", "connection_id", "duration_ms"}
}

// CheckCommon fails unless every line has CommonLogFields.
func CheckCommon(t testing.TB, lines []map[string]any) {
	t.Helper()
	for _, l := range lines {
		for _, k := range CommonLogFields() {
			if _, ok := l[k]; !ok {
				t.Errorf("log line lacks %q: %v", k, l)
			}
		}
	}
}
