package boot

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/pay-theory/streamer/contract"
)

type fakeHandler struct{ calls int }

func (f *fakeHandler) Handle(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	f.calls++
	return events.APIGatewayProxyResponse{StatusCode: 204}, nil
}

func getenv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// logLines decodes every output line as one JSON object.
func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func TestRunFailedColdStartLogsOneLineAndExits1(t *testing.T) {
	for _, c := range []struct {
		name  string
		env   map[string]string
		build Build
		want  string // in the line
	}{
		{"missing configuration", map[string]string{}, nil, contract.EnvConnectionsTable},
		{"build fails", map[string]string{contract.EnvConnectionsTable: "t"},
			func(context.Context, Env) (Handler, error) {
				return nil, &InvalidError{Variable: contract.EnvJWTIssuer, Reason: "nope"}
			}, contract.EnvJWTIssuer},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs strings.Builder
			started := false
			code := run(contract.FunctionDisconnect, getenv(c.env), &logs, c.build, func(handlerFunc) { started = true })
			if code != 1 || started {
				t.Fatalf("run = %d (started %v), want 1 and not started", code, started)
			}
			lines := logLines(t, logs.String())
			if len(lines) != 1 || lines[0]["level"] != "error" || !strings.Contains(logs.String(), c.want) {
				t.Fatalf("want one error line naming %s, got %s", c.want, logs.String())
			}
		})
	}
}

func TestRunStartsTheBuiltHandler(t *testing.T) {
	var logs strings.Builder
	fh := &fakeHandler{}
	var got Env
	var served handlerFunc
	code := run(contract.FunctionDefault, getenv(map[string]string{contract.EnvConnectionsTable: "conns"}), &logs,
		func(_ context.Context, env Env) (Handler, error) { got = env; return fh, nil },
		func(h handlerFunc) { served = h })
	if code != 0 || served == nil {
		t.Fatalf("run = %d, handler served %v; logs %s", code, served != nil, logs.String())
	}
	if got.Config.Table != "conns" || got.Config.Function != contract.FunctionDefault ||
		got.Logger == nil || got.Tracer == nil || got.Metrics == nil || got.Store() == nil {
		t.Errorf("env = %+v", got)
	}
	if resp, err := served(context.Background(), events.APIGatewayWebsocketProxyRequest{}); err != nil || resp.StatusCode != 204 || fh.calls != 1 {
		t.Errorf("served handler = %d, %v (calls %d)", resp.StatusCode, err, fh.calls)
	}
	if logs.Len() != 0 {
		t.Errorf("a good cold start logs nothing, got %s", logs.String())
	}
	if TracerName(contract.FunctionConnect) != "github.com/pay-theory/streamer/lambda/connect" {
		t.Errorf("TracerName = %s", TracerName(contract.FunctionConnect))
	}
}
