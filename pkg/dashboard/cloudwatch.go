package dashboard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/pay-theory/streamer/contract"
)

// CloudWatchAPI is the part of *cloudwatch.Client the dashboard uses.
type CloudWatchAPI interface {
	GetMetricData(ctx context.Context, params *cloudwatch.GetMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
	DescribeAlarms(ctx context.Context, params *cloudwatch.DescribeAlarmsInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.DescribeAlarmsOutput, error)
}

// Metric and dimension names the CloudWatch source reads beyond contract/
// (see the package doc on cold starts).
const (
	// DefaultInitDurationMetricPrefix + <function name> is the metric the
	// deployment's log metric filter writes for every cold start
	// (deployment/pulumi/stack.InitDurationMetricName): its SampleCount is
	// the number of cold starts.
	DefaultInitDurationMetricPrefix = contract.InitDurationMetricPrefix
	// MaxQueriesPerRequest is GetMetricData's limit on queries in one request.
	MaxQueriesPerRequest = 500
)

// CloudWatchConfig configures a CloudWatchSource; every zero value has a
// default.
type CloudWatchConfig struct {
	// Environment is the Environment dimension value ("" => "dev").
	Environment string
	// Namespace of the handlers' EMF metrics ("" => contract.DefaultMetricsNamespace).
	Namespace string
	// FunctionPrefix prefixes contract.Functions() to form the Lambda function
	// names ("" => "streamer-<env>-").
	FunctionPrefix string
	// Functions are the full Lambda function names (nil => FunctionPrefix +
	// each of contract.Functions() a route invokes: the request path; the
	// scheduled reaper's runs are on the stack's CloudWatch dashboard).
	Functions []string
	// LatencyFunction is the function whose Duration p50/p99 fills the
	// latency panel ("" => FunctionPrefix + contract.FunctionDefault).
	LatencyFunction string
	// AlarmPrefix selects the alarms shown ("" => "streamer-<env>").
	AlarmPrefix string
	// InitDurationMetricPrefix prefixes a function name to form its
	// cold-start metric in Namespace ("" => DefaultInitDurationMetricPrefix).
	InitDurationMetricPrefix string
	// Period of the datapoints (0 => 60 s, raised so a long window stays
	// under 1440 points per series; always a multiple of 60 s).
	Period time.Duration
	// Now is the clock (nil => time.Now).
	Now func() time.Time
}

// CloudWatchSource reads the stack's metrics and alarms from CloudWatch.
type CloudWatchSource struct {
	client CloudWatchAPI
	cfg    CloudWatchConfig
}

// NewCloudWatchSource returns a Source over client (a *cloudwatch.Client in
// production) with cfg's defaults filled in.
func NewCloudWatchSource(client CloudWatchAPI, cfg CloudWatchConfig) *CloudWatchSource {
	if cfg.Environment == "" {
		cfg.Environment = "dev"
	}
	if cfg.Namespace == "" {
		cfg.Namespace = contract.DefaultMetricsNamespace
	}
	if cfg.FunctionPrefix == "" {
		cfg.FunctionPrefix = contract.NamePrefix(cfg.Environment) + "-"
	}
	if cfg.Functions == nil {
		for _, f := range contract.Functions() {
			if contract.RouteOf(f) != "" {
				cfg.Functions = append(cfg.Functions, cfg.FunctionPrefix+f)
			}
		}
	}
	if cfg.LatencyFunction == "" {
		cfg.LatencyFunction = cfg.FunctionPrefix + contract.FunctionDefault
	}
	if cfg.AlarmPrefix == "" {
		cfg.AlarmPrefix = contract.NamePrefix(cfg.Environment)
	}
	if cfg.InitDurationMetricPrefix == "" {
		cfg.InitDurationMetricPrefix = DefaultInitDurationMetricPrefix
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &CloudWatchSource{client: client, cfg: cfg}
}

// Config returns the configuration with defaults applied.
func (c *CloudWatchSource) Config() CloudWatchConfig { return c.cfg }

// Name implements Source.
func (c *CloudWatchSource) Name() string {
	return fmt.Sprintf("cloudwatch %s env=%s", c.cfg.Namespace, c.cfg.Environment)
}

// Query ids. They must start with a lower-case letter; per-function ids end
// in the function's index in Config.Functions.
const (
	idActive      = "active"
	idConns       = "conns"
	idAuthFail    = "authFailures"
	idMsgs        = "msgs"
	idConnsPerMin = "connsPerMinute"
	idMsgsPerMin  = "msgsPerMinute"
	idErrorRate   = "errorRate"
	idP50         = "latencyP50"
	idP99         = "latencyP99"
	idErrPrefix   = "errors"
	idThrPrefix   = "throttles"
	idInvPrefix   = "invocations"
	idColdPrefix  = "coldStarts"
)

func (c *CloudWatchSource) period(window time.Duration) time.Duration {
	p := c.cfg.Period
	if p <= 0 {
		p = time.Minute
	}
	if minP := window / 1440; p < minP {
		p = minP
	}
	// CloudWatch periods for regular metrics are multiples of 60 s.
	return ((p + time.Minute - 1) / time.Minute) * time.Minute
}

// Queries returns the GetMetricData queries for one fetch, in request order.
func (c *CloudWatchSource) Queries(window time.Duration) []types.MetricDataQuery {
	period := int32(c.period(window) / time.Second)
	env := []types.Dimension{{Name: aws.String(contract.DimensionEnvironment), Value: aws.String(c.cfg.Environment)}}
	custom := func(id, name, stat string) types.MetricDataQuery {
		return types.MetricDataQuery{
			Id: aws.String(id), Label: aws.String(name),
			MetricStat: &types.MetricStat{
				Metric: &types.Metric{Namespace: aws.String(c.cfg.Namespace), MetricName: aws.String(name), Dimensions: env},
				Period: aws.Int32(period), Stat: aws.String(stat),
			},
		}
	}
	lambdaQ := func(id, fn, name, stat string) types.MetricDataQuery {
		return types.MetricDataQuery{
			Id: aws.String(id), Label: aws.String(fn + " " + name),
			MetricStat: &types.MetricStat{
				Metric: &types.Metric{Namespace: aws.String("AWS/Lambda"), MetricName: aws.String(name),
					Dimensions: []types.Dimension{{Name: aws.String("FunctionName"), Value: aws.String(fn)}}},
				Period: aws.Int32(period), Stat: aws.String(stat),
			},
		}
	}
	expr := func(id, label, e string) types.MetricDataQuery {
		return types.MetricDataQuery{Id: aws.String(id), Label: aws.String(label), Expression: aws.String(e)}
	}

	q := []types.MetricDataQuery{
		// A gauge emitted on every change: the peak of each period.
		custom(idActive, contract.MetricActiveConnections, "Maximum"),
		custom(idConns, contract.MetricConnectionsPerMinute, "Sum"),
		custom(idAuthFail, contract.MetricAuthenticationFailures, "Sum"),
		custom(idMsgs, contract.MetricMessagesSentPerMinute, "Sum"),
		// Sums per period scaled to per minute (identity at a 60 s period).
		expr(idConnsPerMin, "connections per minute", idConns+"/(PERIOD("+idConns+")/60)"),
		expr(idMsgsPerMin, "messages sent per minute", idMsgs+"/(PERIOD("+idMsgs+")/60)"),
	}
	var errs, invs []string
	for i, fn := range c.cfg.Functions {
		n := strconv.Itoa(i)
		q = append(q,
			lambdaQ(idErrPrefix+n, fn, "Errors", "Sum"),
			lambdaQ(idThrPrefix+n, fn, "Throttles", "Sum"),
			lambdaQ(idInvPrefix+n, fn, "Invocations", "Sum"),
			// No dimensions: a metric filter cannot add a constant one,
			// so the function is in the metric name.
			types.MetricDataQuery{
				Id: aws.String(idColdPrefix + n), Label: aws.String(fn + " cold starts"),
				MetricStat: &types.MetricStat{
					Metric: &types.Metric{Namespace: aws.String(c.cfg.Namespace), MetricName: aws.String(c.cfg.InitDurationMetricPrefix + fn)},
					Period: aws.Int32(period), Stat: aws.String("SampleCount"),
				},
			},
		)
		errs = append(errs, "FILL("+idErrPrefix+n+",0)")
		invs = append(invs, "FILL("+idInvPrefix+n+",0)")
	}
	if len(c.cfg.Functions) > 0 {
		// Periods without invocations divide by zero and yield no datapoint.
		q = append(q, expr(idErrorRate, "Lambda error rate %",
			"100*SUM(["+strings.Join(errs, ",")+"])/SUM(["+strings.Join(invs, ",")+"])"))
	}
	q = append(q, lambdaQ(idP50, c.cfg.LatencyFunction, "Duration", "p50"), lambdaQ(idP99, c.cfg.LatencyFunction, "Duration", "p99"))
	return q
}

type series struct {
	ts []time.Time
	vs []float64
}

// sorted returns the finite values oldest first.
func (s *series) sorted() []float64 {
	idx := make([]int, len(s.vs))
	for i := range idx {
		idx[i] = i
	}
	if len(s.ts) == len(s.vs) {
		sort.SliceStable(idx, func(a, b int) bool { return s.ts[idx[a]].Before(s.ts[idx[b]]) })
	}
	out := make([]float64, 0, len(idx))
	for _, i := range idx {
		if v := s.vs[i]; !math.IsNaN(v) && !math.IsInf(v, 0) {
			out = append(out, v)
		}
	}
	return out
}

func last(vs []float64) Value {
	if len(vs) == 0 {
		return Value{}
	}
	return Some(vs[len(vs)-1])
}

func total(vs []float64) Value {
	if len(vs) == 0 {
		return Value{}
	}
	t := 0.0
	for _, v := range vs {
		t += v
	}
	return Some(t)
}

func addValues(a, b Value) Value {
	switch {
	case !a.OK:
		return b
	case !b.OK:
		return a
	}
	return Some(a.V + b.V)
}

// Fetch implements Source: one GetMetricData request (more pages only if
// CloudWatch returns a NextToken) and DescribeAlarms.
func (c *CloudWatchSource) Fetch(ctx context.Context, window time.Duration) (Snapshot, error) {
	if window <= 0 {
		window = time.Hour
	}
	end := c.cfg.Now().Truncate(time.Minute)
	start := end.Add(-window)
	queries := c.Queries(window)
	if len(queries) > MaxQueriesPerRequest {
		return Snapshot{}, &FetchError{Source: "cloudwatch", Op: "GetMetricData",
			Err: fmt.Errorf("%d queries exceed the limit of %d per request: configure fewer functions", len(queries), MaxQueriesPerRequest)}
	}
	in := &cloudwatch.GetMetricDataInput{
		MetricDataQueries: queries,
		StartTime:         aws.Time(start),
		EndTime:           aws.Time(end),
		ScanBy:            types.ScanByTimestampAscending,
	}
	res := map[string]*series{}
	var warnings []string
	for page := 0; ; page++ {
		out, err := c.client.GetMetricData(ctx, in)
		if err != nil {
			return Snapshot{}, &FetchError{Source: "cloudwatch", Op: "GetMetricData", Err: err}
		}
		for _, r := range out.MetricDataResults {
			id := aws.ToString(r.Id)
			s := res[id]
			if s == nil {
				s = &series{}
				res[id] = s
			}
			s.ts = append(s.ts, r.Timestamps...)
			s.vs = append(s.vs, r.Values...)
			for _, m := range r.Messages {
				warnings = append(warnings, id+": "+aws.ToString(m.Value))
			}
		}
		for _, m := range out.Messages {
			warnings = append(warnings, aws.ToString(m.Value))
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		if page > 1000 {
			return Snapshot{}, &FetchError{Source: "cloudwatch", Op: "GetMetricData", Err: errors.New("more than 1000 pages: narrow --range")}
		}
		next := *in
		next.NextToken = out.NextToken
		in = &next
	}
	get := func(id string) []float64 {
		if s := res[id]; s != nil {
			return s.sorted()
		}
		return nil
	}

	snap := Snapshot{
		Time: end, Window: window, CountsLabel: "last " + shortDuration(window),
		HasLambda: true, LatencyLabel: "duration " + c.cfg.LatencyFunction,
	}
	snap.ActiveSeries = get(idActive)
	snap.ActiveConnections = last(snap.ActiveSeries)
	snap.ConnectionsSeries = get(idConnsPerMin)
	snap.ConnectionsPerMinute = last(snap.ConnectionsSeries)
	snap.MessagesSeries = get(idMsgsPerMin)
	snap.MessagesSentPerMinute = last(snap.MessagesSeries)
	snap.AuthenticationFailures = total(get(idAuthFail))
	snap.ErrorRateSeries = get(idErrorRate)
	snap.ErrorRatePercent = last(snap.ErrorRateSeries)
	snap.LatencyP50 = last(get(idP50))
	snap.LatencyP99 = last(get(idP99))
	for i, fn := range c.cfg.Functions {
		n := strconv.Itoa(i)
		fs := FunctionStats{
			Name:        fn,
			Invocations: total(get(idInvPrefix + n)),
			Errors:      total(get(idErrPrefix + n)),
			Throttles:   total(get(idThrPrefix + n)),
			ColdStarts:  total(get(idColdPrefix + n)),
		}
		snap.Functions = append(snap.Functions, fs)
		snap.LambdaErrors = addValues(snap.LambdaErrors, fs.Errors)
		snap.Throttles = addValues(snap.Throttles, fs.Throttles)
		snap.ColdStarts = addValues(snap.ColdStarts, fs.ColdStarts)
	}

	alarms, err := c.alarms(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return Snapshot{}, &FetchError{Source: "cloudwatch", Op: "DescribeAlarms", Err: err}
		}
		// Metrics without alarms are still worth showing (the role may lack
		// cloudwatch:DescribeAlarms).
		warnings = append(warnings, "alarms unavailable: "+err.Error())
	}
	snap.Alarms = alarms
	snap.Warnings = warnings
	return snap, nil
}

func (c *CloudWatchSource) alarms(ctx context.Context) ([]Alarm, error) {
	in := &cloudwatch.DescribeAlarmsInput{
		AlarmNamePrefix: aws.String(c.cfg.AlarmPrefix),
		AlarmTypes:      []types.AlarmType{types.AlarmTypeMetricAlarm, types.AlarmTypeCompositeAlarm},
		MaxRecords:      aws.Int32(100),
	}
	var out []Alarm
	for page := 0; page < 100; page++ {
		res, err := c.client.DescribeAlarms(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, a := range res.MetricAlarms {
			out = append(out, Alarm{Name: aws.ToString(a.AlarmName), State: string(a.StateValue), Reason: aws.ToString(a.StateReason), Updated: aws.ToTime(a.StateUpdatedTimestamp)})
		}
		for _, a := range res.CompositeAlarms {
			out = append(out, Alarm{Name: aws.ToString(a.AlarmName), State: string(a.StateValue), Reason: aws.ToString(a.StateReason), Updated: aws.ToTime(a.StateUpdatedTimestamp)})
		}
		if aws.ToString(res.NextToken) == "" {
			break
		}
		next := *in
		next.NextToken = res.NextToken
		in = &next
	}
	// Firing alarms first, then by name, so the worst news is on top.
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Firing() != out[j].Firing() {
			return out[i].Firing()
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// shortDuration renders 1h0m0s as 1h, 90m as 1h30m.
func shortDuration(d time.Duration) string {
	if d < time.Minute && d%time.Second != 0 {
		return d.String() // 10ms, 1.5s
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// The SDK client satisfies the consumer interface (checked at compile time).
var _ CloudWatchAPI = (*cloudwatch.Client)(nil)
