package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"
	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/dashboard"
)

// runDashboard runs `streamer <args>` with the dashboard command mounted
// on the real root (whether or not root.go registers it yet), the way Run
// does, and returns the exit code. tweak, when set, adjusts the parsed
// options before the real run function.
func runDashboard(te *testEnv, tweak func(*DashboardOptions), args ...string) int {
	te.f.reset()
	root := NewCmdRoot(te.f)
	if c, _, err := root.Find([]string{"dashboard"}); err == nil && c != root {
		root.RemoveCommand(c)
	}
	root.AddCommand(NewCmdDashboard(te.f, func(o *DashboardOptions) error {
		if tweak != nil {
			tweak(o)
		}
		return dashboardRun(context.Background(), o)
	}))
	root.SetArgs(args)
	err := execute(context.Background(), root)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if cerr := te.f.Close(ctx); cerr != nil && err == nil {
		err = cerr
	}
	return exitCode(te.f.IO.ErrOut, err)
}

// parseDashboard returns the options a command line parses to, without
// running anything.
func parseDashboard(t *testing.T, te *testEnv, args ...string) (*DashboardOptions, int) {
	t.Helper()
	te.f.reset()
	root := NewCmdRoot(te.f)
	if c, _, err := root.Find([]string{"dashboard"}); err == nil && c != root {
		root.RemoveCommand(c)
	}
	var got *DashboardOptions
	root.AddCommand(NewCmdDashboard(te.f, func(o *DashboardOptions) error { got = o; return nil }))
	root.SetArgs(append([]string{"dashboard"}, args...))
	return got, exitCode(te.f.IO.ErrOut, execute(context.Background(), root))
}

func TestDashboardFlagDefaultsAndParsing(t *testing.T) {
	te := newTestEnv(t)
	o, code := parseDashboard(t, te)
	if code != ExitOK || o == nil {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if o.Source != DashboardSourceLocal || o.Env != "dev" || o.Refresh != 5*time.Second || o.Range != time.Hour || o.Once || o.MetricsURL != "" || o.Namespace != "" || o.Output != "" {
		t.Errorf("defaults: %+v", *o)
	}

	o, code = parseDashboard(t, te, "--source", "cloudwatch", "--env", "prod", "--refresh", "2s", "--range", "3h", "--once", "--namespace", "Acme", "-o", "json")
	if code != ExitOK || o == nil {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if o.Source != DashboardSourceCloudWatch || o.Env != "prod" || o.Refresh != 2*time.Second || o.Range != 3*time.Hour || !o.Once || o.Namespace != "Acme" || o.Output != "json" {
		t.Errorf("parsed: %+v", *o)
	}

	o, code = parseDashboard(t, te, "--metrics-url", "http://127.0.0.1:9/metrics.json", "--refresh", "1s")
	if code != ExitOK || o == nil || o.MetricsURL != "http://127.0.0.1:9/metrics.json" || o.Refresh != time.Second {
		t.Fatalf("exit %d, %+v: %s", code, o, te.errOut)
	}
}

func TestDashboardUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--source", "foo"}, `unknown --source "foo"`},
		{[]string{"--refresh", "0"}, "--refresh 0s"},
		{[]string{"--refresh", "500ms"}, "at least 1s"},
		{[]string{"--refresh", "soon"}, "invalid argument"},
		{[]string{"--source", "cloudwatch", "--range", "0"}, "--range 0s"},
		{[]string{"--source", "cloudwatch", "--range", "30s"}, "--range 30s"},
		{[]string{"--source", "cloudwatch", "--range", "20000h"}, "15 months"},
		{[]string{"--source", "cloudwatch", "--env", " "}, "--env must name"},
		{[]string{"--source", "cloudwatch", "--metrics-url", "http://x/metrics.json"}, "--metrics-url applies to --source local"},
		{[]string{"--namespace", "X"}, "--namespace applies to --source cloudwatch"},
		{[]string{"--env", "prod"}, "--env applies to --source cloudwatch"},
		{[]string{"--range", "2h"}, "--range applies to --source cloudwatch"},
		{[]string{"--metrics-url", "127.0.0.1:4510"}, "is not an http(s) URL"},
		{[]string{"--once", "-o", "yaml"}, `unknown --output "yaml": use plain or json`},
		{[]string{"--once", "-o", "table"}, `unknown --output "table"`},
		{[]string{"extra"}, "unknown command"},
	} {
		te := newTestEnv(t)
		o, code := parseDashboard(t, te, tc.args...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want 2 (%s)", tc.args, code, te.errOut)
			continue
		}
		if o != nil {
			t.Errorf("%v: the run function ran", tc.args)
		}
		if !strings.Contains(te.errOut.String(), tc.want) {
			t.Errorf("%v: stderr %q, want %q", tc.args, te.errOut, tc.want)
		}
	}

	// A bad global flag is a usage error too (resolved when the command runs).
	te := newTestEnv(t)
	if code := runDashboard(te, nil, "dashboard", "--once", "--endpoint", "nope"); code != ExitUsage {
		t.Errorf("--endpoint nope: exit %d (%s)", code, te.errOut)
	}
}

// metricsServer serves /metrics.json like the local gateway: every poll is
// one minute after the previous one on the gateway's clock, with 30 more
// connects and 120 more messages out, so the rates are exact.
type metricsServer struct {
	*httptest.Server
	mu    sync.Mutex
	polls int
	paths []string
}

func newMetricsServer(t *testing.T) *metricsServer {
	t.Helper()
	ms := &metricsServer{}
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ms.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ms.mu.Lock()
		ms.paths = append(ms.paths, r.URL.Path)
		n := ms.polls
		ms.polls++
		ms.mu.Unlock()
		if r.URL.Path != "/metrics.json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"time":                     start.Add(time.Duration(n) * time.Minute).Format(time.RFC3339Nano),
			"uptime_seconds":           60 * (n + 1),
			"active_connections":       7,
			"connects_total":           10 + 30*n,
			"disconnects_total":        3 + 30*n,
			"connect_rejections_total": 2,
			"auth_failures_total":      2,
			"messages_in_total":        5,
			"messages_out_total":       40 + 120*n,
			"management": map[string]any{
				"requests_total": 100 + 100*n,
				"errors_total":   map[string]int{"GoneException": 1 + 5*n},
				"latency_ms":     map[string]float64{"p50": 0.25, "p90": 0.5, "p99": 1.5},
			},
			"manager": map[string]any{"breaker_state": "closed", "sends_total": 9, "send_errors_total": 0,
				"latency_ms": map[string]float64{"p50": 0.3, "p90": 0.6, "p99": 2}},
		})
	}))
	t.Cleanup(ms.Close)
	return ms
}

func (ms *metricsServer) requested() []string {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]string(nil), ms.paths...)
}

func TestDashboardOnceLocalDerivesMetricsURLFromEndpoint(t *testing.T) {
	ms := newMetricsServer(t)
	te := newTestEnv(t)
	// --endpoint is the management API with its stage; the metrics live at
	// the gateway's root.
	code := runDashboard(te, nil, "dashboard", "--once", "--endpoint", ms.URL+"/local")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	out := te.out.String()
	for _, want := range []string{
		"source: local " + ms.URL + "/metrics.json\n",
		"active_connections: 7\n",
		"connections_per_minute: 30\n", // second poll: +30 connects over one minute
		"authentication_failures: 2\n",
		"messages_sent_per_minute: 120\n",
		"error_rate: 5.00%\n", // +5 errors over +100 requests
		"latency_p50: ",
		"breaker_state: closed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.ContainsRune(out, '\x1b') {
		t.Errorf("plain output has escape sequences: %q", out)
	}
	if got := ms.requested(); len(got) != 2 || got[0] != "/metrics.json" || got[1] != "/metrics.json" {
		t.Errorf("requests %v, want two polls of /metrics.json", got)
	}
}

// TestDashboardOnceJSON: -o json prints one JSON object with the plain
// output's keys, numbers as numbers and null for no data.
func TestDashboardOnceJSON(t *testing.T) {
	ms := newMetricsServer(t)
	te := newTestEnv(t)
	code := runDashboard(te, nil, "dashboard", "--once", "-o", "json", "--metrics-url", ms.URL+"/metrics.json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	var got map[string]any
	dec := json.NewDecoder(strings.NewReader(te.out.String()))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil || dec.More() {
		t.Fatalf("not one JSON object (%v):\n%s", err, te.out)
	}
	for k, want := range map[string]any{
		"source":                   "local " + ms.URL + "/metrics.json",
		"counts":                   "since gateway start",
		"active_connections":       json.Number("7"),
		"connections_per_minute":   json.Number("30"),
		"authentication_failures":  json.Number("2"),
		"messages_sent_per_minute": json.Number("120"),
		"error_rate":               json.Number("5"),
		"breaker_state":            "closed",
		"lambda_errors":            nil, // the local gateway has no Lambda metrics
		"alarms_in_alarm":          nil,
		"functions":                nil,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %#v (present %v), want %#v", k, v, ok, want)
		}
	}
	if _, ok := got["latency_p50"].(json.Number); !ok {
		t.Errorf("latency_p50 = %#v, want a number", got["latency_p50"])
	}

	// The same keys as the plain snapshot.
	te2 := newTestEnv(t)
	if code := runDashboard(te2, nil, "dashboard", "--once", "--metrics-url", ms.URL+"/metrics.json"); code != ExitOK {
		t.Fatalf("plain: exit %d: %s", code, te2.errOut)
	}
	for _, l := range strings.Split(strings.TrimSpace(te2.out.String()), "\n") {
		name, _, _ := strings.Cut(l, ": ")
		if _, ok := got[name]; !ok {
			t.Errorf("plain key %q is not in the JSON", name)
		}
	}
}

// TestDashboardOutputImpliesOnce: on a terminal, -o prints the snapshot
// instead of starting the live dashboard; no data is null.
func TestDashboardOutputImpliesOnce(t *testing.T) {
	for _, format := range []string{"json", "plain"} {
		te := newTestEnv(t)
		te.f.IO.OutTTY = true
		code := runDashboard(te, func(o *DashboardOptions) {
			o.NewSource = func(context.Context, *DashboardOptions) (dashboard.Source, error) { return &fakeSource{}, nil }
		}, "dashboard", "--output", format)
		if code != ExitOK {
			t.Fatalf("%s: exit %d: %s", format, code, te.errOut)
		}
		out := te.out.String()
		if strings.ContainsRune(out, '\x1b') {
			t.Errorf("%s: a snapshot, not the TUI, was expected: %q", format, out)
		}
		if format == "plain" {
			if !strings.Contains(out, "active_connections: 4321\n") {
				t.Errorf("plain: %s", out)
			}
			continue
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("json: %v\n%s", err, out)
		}
		if got["active_connections"] != 4321.0 || got["breaker_state"] != "half-open" || got["time"] != nil {
			t.Errorf("json: %s", out)
		}
		if v, ok := got["connections_per_minute"]; !ok || v != nil {
			t.Errorf("connections_per_minute = %#v (present %v), want null", v, ok)
		}
	}
}

func TestDashboardNonTTYPrintsPlainWithoutOnce(t *testing.T) {
	ms := newMetricsServer(t)
	te := newTestEnv(t) // stdout is a buffer: not a terminal
	if code := runDashboard(te, nil, "dashboard", "--metrics-url", ms.URL+"/metrics.json"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if !strings.Contains(te.out.String(), "active_connections: 7\n") {
		t.Errorf("output:\n%s", te.out)
	}
}

func TestDashboardOnceLocalDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	te := newTestEnv(t)
	code := runDashboard(te, nil, "dashboard", "--once", "--endpoint", "http://"+addr+"/local")
	if code != ExitError {
		t.Fatalf("exit %d, want 1: %s", code, te.errOut)
	}
	msg := te.errOut.String()
	if !strings.Contains(msg, "http://"+addr+"/metrics.json") || !strings.Contains(msg, "streamer local") {
		t.Errorf("stderr should name the URL and suggest `streamer local`: %s", msg)
	}
	if te.out.Len() != 0 {
		t.Errorf("stdout: %q", te.out)
	}
}

func TestDashboardOnceNotAGateway(t *testing.T) {
	ms := newMetricsServer(t)
	te := newTestEnv(t)
	code := runDashboard(te, nil, "dashboard", "--once", "--metrics-url", ms.URL+"/elsewhere")
	if code != ExitError {
		t.Fatalf("exit %d, want 1: %s", code, te.errOut)
	}
	if msg := te.errOut.String(); !strings.Contains(msg, "HTTP 404") || !strings.Contains(msg, "not with the local gateway's metrics") {
		t.Errorf("stderr: %s", msg)
	}
}

// fakeSource counts fetches and signals the first one.
type fakeSource struct {
	mu      sync.Mutex
	fetches int
	first   chan struct{}
	err     error
}

func (s *fakeSource) Name() string { return "fake" }

func (s *fakeSource) Fetch(context.Context, time.Duration) (dashboard.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetches++
	if s.fetches == 1 && s.first != nil {
		close(s.first)
	}
	if s.err != nil {
		return dashboard.Snapshot{}, s.err
	}
	return dashboard.Snapshot{ActiveConnections: dashboard.Some(4321), BreakerState: "half-open", CountsLabel: "since gateway start"}, nil
}

func TestDashboardInjectedSourceAndOptions(t *testing.T) {
	te := newTestEnv(t)
	src := &fakeSource{}
	var seen *DashboardOptions
	code := runDashboard(te, func(o *DashboardOptions) {
		o.NewSource = func(_ context.Context, o *DashboardOptions) (dashboard.Source, error) { seen = o; return src, nil }
	}, "dashboard", "--once")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if seen == nil || seen.F != te.f {
		t.Fatalf("NewSource got %+v", seen)
	}
	for _, want := range []string{"source: fake\n", "active_connections: 4321\n", "breaker_state: half-open\n", "connections_per_minute: n/a\n"} {
		if !strings.Contains(te.out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, te.out)
		}
	}

	// A source that cannot be built fails the command (exit 1).
	te = newTestEnv(t)
	code = runDashboard(te, func(o *DashboardOptions) {
		o.NewSource = func(context.Context, *DashboardOptions) (dashboard.Source, error) {
			return nil, errors.New("no source today")
		}
	}, "dashboard", "--once")
	if code != ExitError || !strings.Contains(te.errOut.String(), "no source today") {
		t.Errorf("exit %d: %s", code, te.errOut)
	}
}

// TestDashboardTTYRunsTheTUI: on a terminal the command runs the live
// dashboard on the factory's streams until q.
func TestDashboardTTYRunsTheTUI(t *testing.T) {
	te := newTestEnv(t)
	te.env["NO_COLOR"] = "1"
	te.f.IO.OutTTY = true
	in, keys := io.Pipe()
	defer in.Close()
	te.f.IO.In = in
	src := &fakeSource{first: make(chan struct{})}
	go func() {
		// Quit once the first snapshot is in: the final frame shows it.
		select {
		case <-src.first:
		case <-time.After(10 * time.Second):
		}
		time.Sleep(100 * time.Millisecond)
		_, _ = keys.Write([]byte("q"))
		_ = keys.Close()
	}()
	code := runDashboard(te, func(o *DashboardOptions) {
		o.NewSource = func(context.Context, *DashboardOptions) (dashboard.Source, error) { return src, nil }
	}, "dashboard", "--refresh", "1s")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	out := te.out.String()
	for _, want := range []string{"Active connections", "4321", "Circuit breaker", "half-open", "\x1b[?1049h"} {
		if !strings.Contains(out, want) {
			t.Errorf("screen lacks %q:\n%q", want, out)
		}
	}
	if strings.Contains(out, "active_connections:") {
		t.Error("a terminal got the plain snapshot")
	}
}

// ---- CloudWatch

// fakeCloudWatch answers GetMetricData with one datapoint per custom metric
// query and records the requests.
type fakeCloudWatch struct {
	mu      sync.Mutex
	gets    []*cloudwatch.GetMetricDataInput
	alarms  int
	metrErr error
}

func (f *fakeCloudWatch) GetMetricData(_ context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets = append(f.gets, in)
	if f.metrErr != nil {
		return nil, f.metrErr
	}
	canned := map[string]float64{contract.MetricActiveConnections: 42, contract.MetricAuthenticationFailures: 3}
	out := &cloudwatch.GetMetricDataOutput{}
	for _, q := range in.MetricDataQueries {
		if q.MetricStat == nil {
			continue
		}
		if v, ok := canned[aws.ToString(q.MetricStat.Metric.MetricName)]; ok {
			out.MetricDataResults = append(out.MetricDataResults, cwtypes.MetricDataResult{
				Id: q.Id, Timestamps: []time.Time{aws.ToTime(in.EndTime).Add(-time.Minute)}, Values: []float64{v},
				StatusCode: cwtypes.StatusCodeComplete,
			})
		}
	}
	return out, nil
}

func (f *fakeCloudWatch) DescribeAlarms(_ context.Context, in *cloudwatch.DescribeAlarmsInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.DescribeAlarmsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alarms++
	return &cloudwatch.DescribeAlarmsOutput{MetricAlarms: []cwtypes.MetricAlarm{{
		AlarmName: aws.String(aws.ToString(in.AlarmNamePrefix) + "-auth-failures"), StateValue: cwtypes.StateValueAlarm, StateReason: aws.String("threshold crossed"),
	}}}, nil
}

func TestDashboardOnceCloudWatch(t *testing.T) {
	te := newTestEnv(t)
	cw := &fakeCloudWatch{}
	var gotCfg Config
	code := runDashboard(te, func(o *DashboardOptions) {
		o.CloudWatch = func(_ context.Context, cfg Config) (dashboard.CloudWatchAPI, error) { gotCfg = cfg; return cw, nil }
	}, "dashboard", "--once", "--source", "cloudwatch", "--env", "prod", "--namespace", "Acme", "--range", "3h", "--profile", "ops", "--region", "eu-west-1")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if gotCfg.Profile != "ops" || gotCfg.Region != "eu-west-1" || gotCfg.Local() {
		t.Errorf("AWS config from %+v: want profile ops, region eu-west-1, not the local stack's", gotCfg)
	}
	if len(cw.gets) != 1 || cw.alarms != 1 {
		t.Fatalf("GetMetricData %d, DescribeAlarms %d: want one batched request each", len(cw.gets), cw.alarms)
	}
	in := cw.gets[0]
	if d := aws.ToTime(in.EndTime).Sub(aws.ToTime(in.StartTime)); d != 3*time.Hour {
		t.Errorf("queried %s, want --range 3h", d)
	}
	var custom int
	for _, q := range in.MetricDataQueries {
		if q.MetricStat == nil || aws.ToString(q.MetricStat.Metric.Namespace) != "Acme" || len(q.MetricStat.Metric.Dimensions) == 0 {
			continue
		}
		custom++
		if d := q.MetricStat.Metric.Dimensions[0]; aws.ToString(d.Name) != contract.DimensionEnvironment || aws.ToString(d.Value) != "prod" {
			t.Errorf("dimension %s=%s, want %s=prod", aws.ToString(d.Name), aws.ToString(d.Value), contract.DimensionEnvironment)
		}
	}
	if custom == 0 {
		t.Error("no query reads the handlers' metrics in namespace Acme")
	}
	out := te.out.String()
	for _, want := range []string{"source: cloudwatch", "counts: last 3h\n", "active_connections: 42\n", "authentication_failures: 3\n",
		"function streamer-prod-", "alarms_in_alarm: 1\n", "alarm streamer-prod-auth-failures: ALARM (threshold crossed)\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestDashboardCloudWatchAccessDeniedHint(t *testing.T) {
	te := newTestEnv(t)
	cw := &fakeCloudWatch{metrErr: &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to perform cloudwatch:GetMetricData"}}
	code := runDashboard(te, func(o *DashboardOptions) {
		o.CloudWatch = func(context.Context, Config) (dashboard.CloudWatchAPI, error) { return cw, nil }
	}, "dashboard", "--once", "--source", "cloudwatch", "--region", "us-east-1")
	if code != ExitError {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if msg := te.errOut.String(); !strings.Contains(msg, "cloudwatch:GetMetricData and cloudwatch:DescribeAlarms") {
		t.Errorf("stderr: %s", msg)
	}
}

// isolateAWS points the SDK's default chain at nothing: no environment
// credentials, no shared files, no instance or container metadata.
func isolateAWS(t *testing.T) {
	t.Helper()
	missing := t.TempDir() + "/missing"
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "",
		"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_CONFIG_FILE": missing, "AWS_SHARED_CREDENTIALS_FILE": missing,
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
	} {
		t.Setenv(k, v)
	}
}

func TestDashboardCloudWatchNoCredentials(t *testing.T) {
	isolateAWS(t)
	te := newTestEnv(t)
	code := runDashboard(te, nil, "dashboard", "--once", "--source", "cloudwatch", "--region", "us-east-1")
	if code != ExitError {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	msg := te.errOut.String()
	for _, want := range []string{"no AWS credentials for CloudWatch", "--profile", "--source local"} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr lacks %q: %s", want, msg)
		}
	}
}

func TestDashboardCloudWatchNoRegion(t *testing.T) {
	isolateAWS(t)
	te := newTestEnv(t)
	// The default --endpoint is the local stack, whose us-east-1 default
	// must not leak into the CloudWatch region.
	code := runDashboard(te, nil, "dashboard", "--once", "--source", "cloudwatch")
	if code != ExitError {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	if msg := te.errOut.String(); !strings.Contains(msg, "no AWS region for CloudWatch: pass --region or set AWS_REGION") {
		t.Errorf("stderr: %s", msg)
	}
}
