package main

import (
	"strings"
	"testing"

	"github.com/pay-theory/streamer/internal/syncbuf"
)

// A cold start without its table fails with one JSON line naming the
// variable, and exit code 1 (the runtime then reports the failed init).
func TestColdStartWithoutTable(t *testing.T) {
	logs := &syncbuf.Buffer{}
	env := map[string]string{"LOG_LEVEL": "loud"}
	if code := run(func(k string) string { return env[k] }, logs); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"value":"loud"`) ||
		!strings.Contains(lines[1], `"msg":"cold start failed: the function cannot serve requests","error":"CONNECTIONS_TABLE is not set`) {
		t.Errorf("log:\n%s", logs)
	}
}
