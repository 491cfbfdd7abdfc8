package dashboard

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/charmbracelet/x/ansi"

	"github.com/pay-theory/streamer/contract"
)

// fakeCloudWatch answers GetMetricData from canned series by query id (split
// over pages when pages > 1) and DescribeAlarms from canned alarms, and
// records every call.
type fakeCloudWatch struct {
	mu          sync.Mutex
	series      map[string][]point
	pages       int
	metricCalls []*cloudwatch.GetMetricDataInput
	alarmCalls  []*cloudwatch.DescribeAlarmsInput
	alarms      []types.MetricAlarm
	composite   []types.CompositeAlarm
	metricErr   error
	alarmErr    error
}

type point struct {
	at time.Time
	v  float64
}

func (f *fakeCloudWatch) GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metricCalls = append(f.metricCalls, in)
	if f.metricErr != nil {
		return nil, f.metricErr
	}
	pages := max(f.pages, 1)
	page := 0
	if tok := aws.ToString(in.NextToken); tok != "" {
		fmt.Sscanf(tok, "page-%d", &page)
	}
	out := &cloudwatch.GetMetricDataOutput{}
	for _, q := range in.MetricDataQueries {
		r := types.MetricDataResult{Id: q.Id, Label: q.Label, StatusCode: types.StatusCodeComplete}
		for i, p := range f.series[aws.ToString(q.Id)] {
			if i%pages == page { // interleave the points over the pages
				r.Timestamps = append(r.Timestamps, p.at)
				r.Values = append(r.Values, p.v)
			}
		}
		out.MetricDataResults = append(out.MetricDataResults, r)
	}
	if page+1 < pages {
		out.NextToken = aws.String(fmt.Sprintf("page-%d", page+1))
	}
	return out, nil
}

func (f *fakeCloudWatch) DescribeAlarms(ctx context.Context, in *cloudwatch.DescribeAlarmsInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.DescribeAlarmsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alarmCalls = append(f.alarmCalls, in)
	if f.alarmErr != nil {
		return nil, f.alarmErr
	}
	// Two pages: metric alarms, then composite ones.
	if in.NextToken == nil {
		return &cloudwatch.DescribeAlarmsOutput{MetricAlarms: f.alarms, NextToken: aws.String("more")}, nil
	}
	return &cloudwatch.DescribeAlarmsOutput{CompositeAlarms: f.composite}, nil
}

var cwNow = time.Date(2026, 11, 27, 12, 0, 42, 0, time.UTC)

// at returns a timestamp minutes before the end of the query.
func at(minutesAgo int) time.Time {
	return cwNow.Truncate(time.Minute).Add(-time.Duration(minutesAgo) * time.Minute)
}

func cannedCloudWatch() *fakeCloudWatch {
	return &fakeCloudWatch{
		series: map[string][]point{
			// Out of order on purpose: the source sorts by time.
			"active":         {{at(1), 9}, {at(3), 5}, {at(2), 7}},
			"conns":          {{at(3), 2}, {at(2), 3}, {at(1), 4}},
			"connsPerMinute": {{at(3), 2}, {at(2), 3}, {at(1), 4}},
			"authFailures":   {{at(3), 1}, {at(2), 2}, {at(1), 3}},
			"msgs":           {{at(2), 100}, {at(1), 120}},
			"msgsPerMinute":  {{at(2), 100}, {at(1), 120}},
			"errors0":        {{at(2), 1}, {at(1), 2}},
			"errors1":        {{at(1), 0}},
			"errors2":        {{at(1), 1}},
			"throttles0":     {{at(1), 0}},
			"throttles1":     {{at(1), 0}},
			"throttles2":     {{at(2), 4}, {at(1), 1}},
			"invocations0":   {{at(2), 50}, {at(1), 60}},
			"invocations1":   {{at(1), 20}},
			"invocations2":   {{at(1), 200}},
			"coldStarts0":    {{at(2), 2}},
			// coldStarts1 and coldStarts2: nothing emitted.
			"errorRate":  {{at(2), 2}, {at(1), 1.2987012987}},
			"latencyP50": {{at(2), 11}, {at(1), 12.5}},
			"latencyP99": {{at(2), 70}, {at(1), 80}},
		},
		alarms: []types.MetricAlarm{
			{AlarmName: aws.String("streamer-prod-throttles"), StateValue: types.StateValueOk, StateReason: aws.String("fine")},
			{AlarmName: aws.String("streamer-prod-lambda-errors"), StateValue: types.StateValueAlarm, StateReason: aws.String("Threshold Crossed: 1 datapoint [3.0] was greater than 1.0")},
		},
		composite: []types.CompositeAlarm{
			{AlarmName: aws.String("streamer-prod-health"), StateValue: types.StateValueInsufficientData},
		},
	}
}

func newTestCloudWatch(f *fakeCloudWatch) *CloudWatchSource {
	return NewCloudWatchSource(f, CloudWatchConfig{Environment: "prod", Now: func() time.Time { return cwNow }})
}

func TestCloudWatchOneBatchedRequest(t *testing.T) {
	f := cannedCloudWatch()
	src := newTestCloudWatch(f)
	if _, err := src.Fetch(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if len(f.metricCalls) != 1 {
		t.Fatalf("GetMetricData calls = %d, want exactly 1 (batched)", len(f.metricCalls))
	}
	in := f.metricCalls[0]
	if end := aws.ToTime(in.EndTime); !end.Equal(cwNow.Truncate(time.Minute)) || !aws.ToTime(in.StartTime).Equal(end.Add(-time.Hour)) {
		t.Errorf("range %v..%v, want the hour before %v", aws.ToTime(in.StartTime), end, cwNow.Truncate(time.Minute))
	}
	if in.ScanBy != types.ScanByTimestampAscending {
		t.Errorf("ScanBy = %q", in.ScanBy)
	}
	byID := map[string]types.MetricDataQuery{}
	var ids []string
	for _, q := range in.MetricDataQueries {
		id := aws.ToString(q.Id)
		if _, dup := byID[id]; dup {
			t.Errorf("duplicate query id %q", id)
		}
		byID[id] = q
		ids = append(ids, id)
	}
	sort.Strings(ids)
	wantIDs := []string{"active", "authFailures", "coldStarts0", "coldStarts1", "coldStarts2", "conns", "connsPerMinute",
		"errorRate", "errors0", "errors1", "errors2", "invocations0", "invocations1", "invocations2",
		"latencyP50", "latencyP99", "msgs", "msgsPerMinute", "throttles0", "throttles1", "throttles2"}
	if strings.Join(ids, ",") != strings.Join(wantIDs, ",") {
		t.Errorf("query ids\n got %v\nwant %v", ids, wantIDs)
	}

	// The handlers' EMF metrics: namespace, Environment dimension, names from contract/.
	for id, want := range map[string][2]string{
		"active":       {contract.MetricActiveConnections, "Maximum"},
		"conns":        {contract.MetricConnectionsPerMinute, "Sum"},
		"authFailures": {contract.MetricAuthenticationFailures, "Sum"},
		"msgs":         {contract.MetricMessagesSentPerMinute, "Sum"},
	} {
		ms := byID[id].MetricStat
		if ms == nil {
			t.Errorf("%s: no MetricStat", id)
			continue
		}
		if aws.ToString(ms.Metric.Namespace) != contract.DefaultMetricsNamespace || aws.ToString(ms.Metric.MetricName) != want[0] || aws.ToString(ms.Stat) != want[1] || aws.ToInt32(ms.Period) != 60 {
			t.Errorf("%s: %s/%s %s period %d, want %s/%s %s period 60", id, aws.ToString(ms.Metric.Namespace), aws.ToString(ms.Metric.MetricName),
				aws.ToString(ms.Stat), aws.ToInt32(ms.Period), contract.DefaultMetricsNamespace, want[0], want[1])
		}
		if d := ms.Metric.Dimensions; len(d) != 1 || aws.ToString(d[0].Name) != contract.DimensionEnvironment || aws.ToString(d[0].Value) != "prod" {
			t.Errorf("%s: dimensions %+v, want exactly Environment=prod (as the handlers emit)", id, d)
		}
	}
	// Lambda metrics per function, with the default names.
	for i, fn := range []string{"streamer-prod-connect", "streamer-prod-disconnect", "streamer-prod-default"} {
		for _, m := range [][2]string{{"errors", "Errors"}, {"throttles", "Throttles"}, {"invocations", "Invocations"}} {
			q := byID[fmt.Sprintf("%s%d", m[0], i)]
			ms := q.MetricStat
			if ms == nil || aws.ToString(ms.Metric.Namespace) != "AWS/Lambda" || aws.ToString(ms.Metric.MetricName) != m[1] ||
				aws.ToString(ms.Stat) != "Sum" || len(ms.Metric.Dimensions) != 1 || aws.ToString(ms.Metric.Dimensions[0].Value) != fn {
				t.Errorf("%s%d: %+v, want AWS/Lambda %s Sum for %s", m[0], i, ms, m[1], fn)
			}
		}
		cs := byID[fmt.Sprintf("coldStarts%d", i)].MetricStat
		if aws.ToString(cs.Metric.MetricName) != "InitDuration-"+fn || aws.ToString(cs.Metric.Namespace) != contract.DefaultMetricsNamespace ||
			len(cs.Metric.Dimensions) != 0 || aws.ToString(cs.Stat) != "SampleCount" {
			t.Errorf("coldStarts%d: %+v stat %s, want SampleCount of InitDuration-%s without dimensions", i, cs.Metric, aws.ToString(cs.Stat), fn)
		}
	}
	// Metric math for the rates.
	for id, want := range map[string]string{
		"connsPerMinute": "conns/(PERIOD(conns)/60)",
		"msgsPerMinute":  "msgs/(PERIOD(msgs)/60)",
		"errorRate":      "100*SUM([FILL(errors0,0),FILL(errors1,0),FILL(errors2,0)])/SUM([FILL(invocations0,0),FILL(invocations1,0),FILL(invocations2,0)])",
	} {
		q := byID[id]
		if got := aws.ToString(q.Expression); got != want || q.MetricStat != nil {
			t.Errorf("%s expression = %q, want %q", id, got, want)
		}
	}
	if p := byID["latencyP99"].MetricStat; aws.ToString(p.Stat) != "p99" || aws.ToString(p.Metric.Dimensions[0].Value) != "streamer-prod-default" {
		t.Errorf("latencyP99 = %+v", p)
	}

	if len(f.alarmCalls) != 2 || aws.ToString(f.alarmCalls[0].AlarmNamePrefix) != "streamer-prod" {
		t.Errorf("DescribeAlarms calls %d with prefix %q, want 2 pages with prefix streamer-prod", len(f.alarmCalls), aws.ToString(f.alarmCalls[0].AlarmNamePrefix))
	}
}

func TestCloudWatchNumbersMatchCannedData(t *testing.T) {
	f := cannedCloudWatch()
	s, err := newTestCloudWatch(f).Fetch(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	checkValue(t, "active (latest)", s.ActiveConnections, 9)
	checkValue(t, "connections/min (latest)", s.ConnectionsPerMinute, 4)
	checkValue(t, "auth failures (sum)", s.AuthenticationFailures, 6)
	checkValue(t, "messages/min (latest)", s.MessagesSentPerMinute, 120)
	checkValue(t, "error rate (latest)", s.ErrorRatePercent, 1.2987012987)
	checkValue(t, "p50", s.LatencyP50, 12.5)
	checkValue(t, "p99", s.LatencyP99, 80)
	checkValue(t, "lambda errors", s.LambdaErrors, 4)
	checkValue(t, "throttles", s.Throttles, 5)
	checkValue(t, "cold starts", s.ColdStarts, 2)
	if got := s.ActiveSeries; fmt.Sprint(got) != "[5 7 9]" {
		t.Errorf("active series = %v, want [5 7 9] (oldest first)", got)
	}
	if !s.HasLambda || s.CountsLabel != "last 1h" || s.BreakerState != "" {
		t.Errorf("HasLambda %v, CountsLabel %q, breaker %q", s.HasLambda, s.CountsLabel, s.BreakerState)
	}
	if len(s.Functions) != 3 {
		t.Fatalf("functions = %+v", s.Functions)
	}
	checkValue(t, "connect errors", s.Functions[0].Errors, 3)
	checkValue(t, "connect invocations", s.Functions[0].Invocations, 110)
	checkValue(t, "connect cold starts", s.Functions[0].ColdStarts, 2)
	if s.Functions[1].ColdStarts.OK {
		t.Errorf("no ColdStarts datapoints must read no data, got %+v", s.Functions[1].ColdStarts)
	}
	var names []string
	for _, a := range s.Alarms {
		names = append(names, a.Name+"="+a.State)
	}
	if got := strings.Join(names, " "); got != "streamer-prod-lambda-errors=ALARM streamer-prod-health=INSUFFICIENT_DATA streamer-prod-throttles=OK" {
		t.Errorf("alarms (firing first, then by name) = %s", got)
	}

	// The same numbers on screen, the firing alarm highlighted.
	m := NewModel(colourOptions(&fakeSource{results: []fakeResult{{snap: s}}}))
	deliver(t, m, tea.WindowSizeMsg{Width: 120, Height: 40})
	runFetch(t, m, m.Init())
	v := m.View().Content
	for _, want := range []string{"9", "4", "6", "120", "1.30%", "12.5 ms", "80.0 ms", "Lambda errors (last 1h)", "connect 3", "default 1", "Alarms: 1 in ALARM"} {
		if !strings.Contains(stripANSI(v), want) {
			t.Errorf("view lacks %q:\n%s", want, stripANSI(v))
		}
	}
	if hl := m.st.alarm.Render("!! ALARM streamer-prod-lambda-errors"); !strings.Contains(v, hl) {
		t.Errorf("the ALARM alarm is not highlighted (%q) in\n%q", hl, v)
	}

	// And in the plain rendering.
	var b strings.Builder
	if err := RenderPlain(&b, s, "cloudwatch"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"active_connections: 9\n", "error_rate: 1.30%\n", "lambda_errors: 4\n", "lambda_cold_starts: 2\n",
		"function streamer-prod-disconnect cold_starts: n/a\n", "alarms_in_alarm: 1\n",
		"alarm streamer-prod-lambda-errors: ALARM (Threshold Crossed: 1 datapoint [3.0] was greater than 1.0)\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plain output lacks %q:\n%s", want, b.String())
		}
	}
}

func TestCloudWatchPaginatesOneBatch(t *testing.T) {
	f := cannedCloudWatch()
	f.pages = 2
	s, err := newTestCloudWatch(f).Fetch(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.metricCalls) != 2 {
		t.Fatalf("calls = %d, want 2 (one batch, two pages)", len(f.metricCalls))
	}
	if aws.ToString(f.metricCalls[1].NextToken) != "page-1" || len(f.metricCalls[1].MetricDataQueries) != len(f.metricCalls[0].MetricDataQueries) {
		t.Errorf("the second page must repeat the same batch with the NextToken")
	}
	if s.AuthenticationFailures.V != 6 || fmt.Sprint(s.ActiveSeries) != "[5 7 9]" || s.ActiveConnections.V != 9 {
		t.Errorf("pages not merged: auth %v, active %v %v", s.AuthenticationFailures, s.ActiveSeries, s.ActiveConnections)
	}
}

func TestCloudWatchErrors(t *testing.T) {
	throttled := errors.New("api error Throttling: Rate exceeded")
	f := cannedCloudWatch()
	f.metricErr = throttled
	_, err := newTestCloudWatch(f).Fetch(context.Background(), time.Hour)
	var fe *FetchError
	if !errors.Is(err, throttled) || !errors.As(err, &fe) || fe.Op != "GetMetricData" {
		t.Fatalf("err = %v, want a GetMetricData FetchError wrapping the SDK error", err)
	}

	// Alarms failing (no permission) still shows the metrics, with a warning.
	f = cannedCloudWatch()
	f.alarmErr = errors.New("AccessDenied: not authorized to perform cloudwatch:DescribeAlarms")
	s, err := newTestCloudWatch(f).Fetch(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if s.ActiveConnections.V != 9 || len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "AccessDenied") {
		t.Errorf("want data plus an alarms warning, got %+v / %v", s.ActiveConnections, s.Warnings)
	}
	m := NewModel(testOptions(&fakeSource{results: []fakeResult{{snap: s}}}))
	deliver(t, m, tea.WindowSizeMsg{Width: 200, Height: 40})
	runFetch(t, m, m.Init())
	if v := m.View().Content; !strings.Contains(v, "warning: alarms unavailable: AccessDenied") {
		t.Errorf("warning not in the status line:\n%s", v)
	}
}

func TestCloudWatchConfig(t *testing.T) {
	src := NewCloudWatchSource(&fakeCloudWatch{}, CloudWatchConfig{})
	c := src.Config()
	if c.Environment != "dev" || c.Namespace != contract.DefaultMetricsNamespace || c.AlarmPrefix != "streamer-dev" ||
		strings.Join(c.Functions, ",") != "streamer-dev-connect,streamer-dev-disconnect,streamer-dev-default" ||
		c.LatencyFunction != "streamer-dev-default" || c.InitDurationMetricPrefix != "InitDuration-" {
		t.Errorf("defaults: %+v", c)
	}
	custom := NewCloudWatchSource(&fakeCloudWatch{}, CloudWatchConfig{Environment: "qa", Namespace: "Acme/WS", Functions: []string{"a", "b"}})
	qs := custom.Queries(time.Hour)
	if len(qs) != 6+2*4+1+2 {
		t.Errorf("%d queries for 2 functions", len(qs))
	}
	if got := aws.ToString(qs[0].MetricStat.Metric.Namespace); got != "Acme/WS" {
		t.Errorf("namespace = %q", got)
	}
	// A week at one point per minute would be 10080 points per series: the
	// period grows, and the per-minute expressions scale by PERIOD.
	for _, q := range custom.Queries(7 * 24 * time.Hour) {
		if q.MetricStat != nil && aws.ToInt32(q.MetricStat.Period) != 420 {
			t.Fatalf("7d period = %d, want 420", aws.ToInt32(q.MetricStat.Period))
		}
	}
	// Too many functions for one request is an error, not several requests.
	many := make([]string, 130)
	for i := range many {
		many[i] = fmt.Sprintf("fn%d", i)
	}
	f := &fakeCloudWatch{}
	_, err := NewCloudWatchSource(f, CloudWatchConfig{Functions: many}).Fetch(context.Background(), time.Hour)
	if err == nil || !strings.Contains(err.Error(), "limit of 500") || len(f.metricCalls) != 0 {
		t.Errorf("err = %v, calls %d", err, len(f.metricCalls))
	}
}

func stripANSI(s string) string { return ansi.Strip(s) }
