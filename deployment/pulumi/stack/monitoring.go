package stack

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/sns"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// Alarm severities: each has its own SNS topic.
const (
	SeverityLow  = "low"
	SeverityHigh = "high"
)

// Cold starts.
//
// Lambda publishes no init-duration metric of its own (only Lambda Insights
// does, at the price of an extension layer and per-function metrics). The
// platform already prints it: the REPORT line after every cold start ends
// with "Init Duration: 123.45 ms". A metric filter on each function's log
// group turns that into a custom metric, so cold starts cost nothing extra:
// SampleCount is the number of cold starts, Maximum the slowest init.
// It needs the function's log format to be Text (set on every function).
const initDurationPattern = `[report="REPORT", request_id_label="RequestId:", request_id, ` +
	`duration_label="Duration:", duration, duration_unit="ms", ` +
	`billed_label1="Billed", billed_label2="Duration:", billed, billed_unit="ms", ` +
	`memory_label1="Memory", memory_label2="Size:", memory, memory_unit="MB", ` +
	`max_label1="Max", max_label2="Memory", max_label3="Used:", max_memory, max_unit="MB", ` +
	`init_label1="Init", init_label2="Duration:", init_duration, init_unit="ms", ...]`

// InitDurationMetricName is the metric (in the stack's metrics namespace) the
// filter writes for one deployed function. A metric filter cannot attach a
// constant dimension, so the function name is part of the metric name.
func InitDurationMetricName(functionName string) string {
	return contract.InitDurationMetricPrefix + functionName
}

func (d *deployed) deployMonitoring(ctx *pulumi.Context) error {
	for _, fn := range contract.Functions() {
		_, err := cloudwatch.NewLogMetricFilter(ctx, "init-duration-"+fn, &cloudwatch.LogMetricFilterArgs{
			Name:         pulumi.String(d.name(fn) + "-init-duration"),
			LogGroupName: d.logGroups[fn].Name,
			Pattern:      pulumi.String(initDurationPattern),
			MetricTransformation: cloudwatch.LogMetricFilterMetricTransformationArgs{
				Name:      pulumi.String(InitDurationMetricName(d.fnNames[fn])),
				Namespace: pulumi.String(d.cfg.MetricsNamespace),
				Value:     pulumi.String("$init_duration"),
				Unit:      pulumi.String("Milliseconds"),
			},
		})
		if err != nil {
			return err
		}
	}
	if err := d.deployQueries(ctx); err != nil {
		return err
	}
	if err := d.deployDashboard(ctx); err != nil {
		return err
	}
	if !d.cfg.Alarms.Enabled {
		return nil
	}
	if err := d.deployTopics(ctx); err != nil {
		return err
	}
	return d.deployAlarms(ctx)
}

func (d *deployed) deployTopics(ctx *pulumi.Context) error {
	d.topics = map[string]*sns.Topic{}
	emails := map[string]string{SeverityLow: d.cfg.Alarms.EmailLow, SeverityHigh: d.cfg.Alarms.EmailHigh}
	for _, sev := range []string{SeverityLow, SeverityHigh} {
		t, err := sns.NewTopic(ctx, "alarms-"+sev, &sns.TopicArgs{
			Name:           pulumi.String(d.name("alarms-" + sev)),
			KmsMasterKeyId: d.key.Arn,
			Tags:           d.tags,
		})
		if err != nil {
			return err
		}
		d.topics[sev] = t
		if emails[sev] != "" {
			if _, err := sns.NewTopicSubscription(ctx, "alarms-"+sev+"-email", &sns.TopicSubscriptionArgs{
				Topic:    t.Arn,
				Protocol: pulumi.String("email"),
				Endpoint: pulumi.String(emails[sev]),
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// The key-source alarm: any KeySourceErrors datapoint in one 5-minute
// period.
const (
	KeySourceErrorsAlarmID       = "key-source-errors"
	KeySourceErrorsPeriodSeconds = 300
)

// The reaper's alarm (alarms.reaperErrors), over one hour: the reaper
// runs a few times an hour, so most shorter periods hold no datapoint.
const (
	ReaperErrorsAlarmID       = "reaper-errors"
	ReaperErrorsPeriodSeconds = 3600
)

// alarm is the part of an alarm that varies; newAlarm adds the rest.
type alarm struct {
	id          string // logical and physical name suffix
	description string
	severity    string
	threshold   float64
	// Either a single metric...
	namespace, metric, stat string
	dimensions              map[string]string
	// period (seconds) and evaluationPeriods of a single-metric alarm; 0 =>
	// the stack's alarms.periodSeconds and alarms.evaluationPeriods.
	period, evaluationPeriods int
	// ...or metric math: queries with exactly one ReturnData.
	queries cloudwatch.MetricAlarmMetricQueryArray
}

func (d *deployed) newAlarm(ctx *pulumi.Context, a alarm) error {
	topic := d.topics[a.severity].Arn
	args := &cloudwatch.MetricAlarmArgs{
		Name:               pulumi.String(d.name(a.id)),
		AlarmDescription:   pulumi.String(fmt.Sprintf("[%s] %s", a.severity, a.description)),
		ComparisonOperator: pulumi.String("GreaterThanThreshold"),
		Threshold:          pulumi.Float64(a.threshold),
		EvaluationPeriods:  pulumi.Int(orDefault(a.evaluationPeriods, d.cfg.Alarms.EvaluationPeriods)),
		// No traffic is not an incident.
		TreatMissingData: pulumi.String("notBreaching"),
		AlarmActions:     pulumi.Array{topic},
		OkActions:        pulumi.Array{topic},
		Tags:             d.tags,
	}
	if a.queries != nil {
		args.MetricQueries = a.queries
	} else {
		args.Namespace = pulumi.String(a.namespace)
		args.MetricName = pulumi.String(a.metric)
		args.Statistic = pulumi.String(a.stat)
		args.Period = pulumi.Int(orDefault(a.period, d.cfg.Alarms.PeriodSeconds))
		if len(a.dimensions) > 0 {
			args.Dimensions = pulumi.ToStringMap(a.dimensions)
		}
	}
	_, err := cloudwatch.NewMetricAlarm(ctx, "alarm-"+a.id, args)
	return err
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func (d *deployed) metricQuery(id, namespace, metric, stat string, dims map[string]string) cloudwatch.MetricAlarmMetricQueryArgs {
	return metricQuery(id, namespace, metric, stat, dims, d.cfg.Alarms.PeriodSeconds)
}

func metricQuery(id, namespace, metric, stat string, dims map[string]string, period int) cloudwatch.MetricAlarmMetricQueryArgs {
	return cloudwatch.MetricAlarmMetricQueryArgs{
		Id: pulumi.String(id),
		Metric: cloudwatch.MetricAlarmMetricQueryMetricArgs{
			Namespace:  pulumi.String(namespace),
			MetricName: pulumi.String(metric),
			Stat:       pulumi.String(stat),
			Period:     pulumi.Int(period),
			Dimensions: pulumi.ToStringMap(dims),
		},
		ReturnData: pulumi.Bool(false),
	}
}

func expression(id, expr, label string) cloudwatch.MetricAlarmMetricQueryArgs {
	return cloudwatch.MetricAlarmMetricQueryArgs{
		Id: pulumi.String(id), Expression: pulumi.String(expr), Label: pulumi.String(label), ReturnData: pulumi.Bool(true),
	}
}

func (d *deployed) deployAlarms(ctx *pulumi.Context) error {
	a := d.cfg.Alarms
	var alarms []alarm
	for _, fn := range contract.Functions() {
		if contract.RouteOf(fn) == "" {
			// The reaper runs a few times an hour: one failed run would
			// be a 25% error rate. Its own alarm is below.
			continue
		}
		name := d.fnNames[fn]
		dims := map[string]string{"FunctionName": name}
		for _, lvl := range []struct {
			sev string
			pct float64
		}{{SeverityLow, a.ErrorRateLowPercent}, {SeverityHigh, a.ErrorRateHighPercent}} {
			alarms = append(alarms, alarm{
				id:          fmt.Sprintf("%s-error-rate-%s", fn, lvl.sev),
				description: fmt.Sprintf("%s: more than %g%% of invocations failed (Errors/Invocations*100)", name, lvl.pct),
				severity:    lvl.sev, threshold: lvl.pct,
				queries: cloudwatch.MetricAlarmMetricQueryArray{
					d.metricQuery("errors", "AWS/Lambda", "Errors", "Sum", dims),
					d.metricQuery("invocations", "AWS/Lambda", "Invocations", "Sum", dims),
					expression("error_rate", "IF(invocations > 0, 100 * errors / invocations, 0)", "error rate %"),
				},
			})
		}
		alarms = append(alarms, alarm{
			id:          fn + "-init-duration",
			description: fmt.Sprintf("%s: a cold start (Init Duration) took longer than %g ms", name, a.InitDurationMs),
			severity:    SeverityLow, threshold: a.InitDurationMs,
			namespace: d.cfg.MetricsNamespace, metric: InitDurationMetricName(name), stat: "Maximum",
		})
		if rc := d.cfg.Functions[fn].ReservedConcurrency; rc > 0 {
			alarms = append(alarms, alarm{
				id:          fn + "-concurrency",
				description: fmt.Sprintf("%s: concurrent executions above %g%% of its reserved %d", name, a.ConcurrencyPercent, rc),
				severity:    SeverityHigh, threshold: float64(rc) * a.ConcurrencyPercent / 100,
				namespace: "AWS/Lambda", metric: "ConcurrentExecutions", stat: "Maximum", dimensions: dims,
			})
		}
	}
	alarms = append(alarms,
		alarm{
			id: "account-concurrency",
			description: fmt.Sprintf("account: Lambda concurrent executions above %g%% of the account limit %d in %s",
				a.ConcurrencyPercent, d.cfg.AccountConcurrencyLimit, d.acct.Region),
			severity: SeverityHigh, threshold: float64(d.cfg.AccountConcurrencyLimit) * a.ConcurrencyPercent / 100,
			namespace: "AWS/Lambda", metric: "ConcurrentExecutions", stat: "Maximum",
		},
		alarm{
			id: "auth-failures",
			description: fmt.Sprintf("more than %g rejected $connect attempts (AuthenticationFailures) in %d s: a broken client or an attack",
				a.AuthFailures, a.PeriodSeconds),
			severity: SeverityHigh, threshold: a.AuthFailures,
			namespace: d.cfg.MetricsNamespace, metric: contract.MetricAuthenticationFailures, stat: "Sum",
			dimensions: map[string]string{contract.DimensionEnvironment: d.cfg.Environment},
		},
		alarm{
			// Every KeySourceErrors datapoint is a $connect answered 500
			// because the token keys could not be had (Secrets Manager or
			// the JWKS endpoint down): no client can connect, so any one
			// pages, whatever the stack's alarm period.
			id: KeySourceErrorsAlarmID,
			description: fmt.Sprintf("$connect could not get the token verification keys (%s > 0 in %d s): clients cannot connect; check Secrets Manager / the JWKS endpoint and the connect function's logs (reason key_source)",
				contract.MetricKeySourceErrors, KeySourceErrorsPeriodSeconds),
			severity: SeverityHigh, threshold: 0,
			namespace: d.cfg.MetricsNamespace, metric: contract.MetricKeySourceErrors, stat: "Sum",
			dimensions: map[string]string{contract.DimensionEnvironment: d.cfg.Environment},
			period:     KeySourceErrorsPeriodSeconds, evaluationPeriods: 1,
		},
	)

	// The reaper: records it could not check and failed runs (ReaperErrors),
	// plus the function's Lambda Errors, since a crashed or timed-out run
	// writes no metric. Low severity: zombies cost 410s and a high gauge,
	// not an outage.
	reaperName := d.fnNames[contract.FunctionReaper]
	alarms = append(alarms, alarm{
		id: ReaperErrorsAlarmID,
		description: fmt.Sprintf("the reaper (%s) could not check some connection records or a run failed (%s + Lambda Errors > %g in %d s): see its \"reaper run\" log lines",
			reaperName, contract.MetricReaperErrors, a.ReaperErrors, ReaperErrorsPeriodSeconds),
		severity: SeverityLow, threshold: a.ReaperErrors, evaluationPeriods: 1,
		queries: cloudwatch.MetricAlarmMetricQueryArray{
			metricQuery("reaper_errors", d.cfg.MetricsNamespace, contract.MetricReaperErrors, "Sum",
				map[string]string{contract.DimensionEnvironment: d.cfg.Environment}, ReaperErrorsPeriodSeconds),
			metricQuery("function_errors", "AWS/Lambda", "Errors", "Sum", map[string]string{"FunctionName": reaperName}, ReaperErrorsPeriodSeconds),
			expression("errors", "FILL(reaper_errors, 0) + FILL(function_errors, 0)", "reaper errors"),
		},
	})

	// DynamoDB throttles: read/write throttle events on the table and its
	// indexes, and throttled requests for each operation the handlers call.
	events := cloudwatch.MetricAlarmMetricQueryArray{}
	var ids []string
	tableDims := map[string]string{"TableName": d.cfg.TableName}
	for _, m := range []string{"ReadThrottleEvents", "WriteThrottleEvents"} {
		id := strings.ToLower(m[:1]) + "_table"
		events = append(events, d.metricQuery(id, "AWS/DynamoDB", m, "Sum", tableDims))
		ids = append(ids, id)
		for i, ix := range schema.Connections().Indexes {
			id := fmt.Sprintf("%s_gsi%d", strings.ToLower(m[:1]), i)
			events = append(events, d.metricQuery(id, "AWS/DynamoDB", m, "Sum",
				map[string]string{"TableName": d.cfg.TableName, "GlobalSecondaryIndexName": ix.Name}))
			ids = append(ids, id)
		}
	}
	events = append(events, expression("throttle_events", "SUM(["+strings.Join(ids, ",")+"])", "throttle events"))
	requests := cloudwatch.MetricAlarmMetricQueryArray{}
	ids = nil
	for i, op := range tableOperations() {
		id := fmt.Sprintf("op%d", i)
		requests = append(requests, d.metricQuery(id, "AWS/DynamoDB", "ThrottledRequests", "Sum",
			map[string]string{"TableName": d.cfg.TableName, "Operation": op}))
		ids = append(ids, id)
	}
	requests = append(requests, expression("throttled_requests", "SUM(["+strings.Join(ids, ",")+"])", "throttled requests"))
	alarms = append(alarms,
		alarm{
			id:          "dynamodb-throttle-events",
			description: fmt.Sprintf("%s: more than %g read/write throttle events (table and indexes)", d.cfg.TableName, a.DynamoThrottles),
			severity:    SeverityHigh, threshold: a.DynamoThrottles, queries: events,
		},
		alarm{
			id:          "dynamodb-throttled-requests",
			description: fmt.Sprintf("%s: more than %g throttled requests (%s)", d.cfg.TableName, a.DynamoThrottles, strings.Join(tableOperations(), ", ")),
			severity:    SeverityHigh, threshold: a.DynamoThrottles, queries: requests,
		},
	)
	for _, al := range alarms {
		if err := d.newAlarm(ctx, al); err != nil {
			return err
		}
	}
	return nil
}

// tableOperations are the DynamoDB operations the handlers call
// (contract.DynamoDBActions of every function, each once).
func tableOperations() []string {
	var ops []string
	for _, fn := range contract.Functions() {
		for _, op := range contract.DynamoDBActions(fn) {
			if !slices.Contains(ops, op) {
				ops = append(ops, op)
			}
		}
	}
	return ops
}

// savedQuery is one saved Logs Insights query. A saved query takes no
// parameters: replace the placeholder value before running it.
type savedQuery struct {
	name, query string
	// withAccess: the query also searches the API's access log (it carries
	// the correlation and connection ids too).
	withAccess bool
}

// queries are the saved Logs Insights queries, in deployment order.
func (d *deployed) queries() []savedQuery {
	return []savedQuery{
		{name: "by-correlation-id", withAccess: true, query: `fields @timestamp, @log, level, operation, connection_id, user_id, tenant_id, msg, error
| filter correlation_id = "REPLACE_WITH_CORRELATION_ID"
| sort @timestamp asc`},
		{name: "by-connection-id", withAccess: true, query: `fields @timestamp, @log, level, operation, correlation_id, user_id, tenant_id, msg, error
| filter connection_id = "REPLACE_WITH_CONNECTION_ID"
| sort @timestamp asc`},
		{name: "auth-failures-by-reason", query: `filter operation = "connect" and ispresent(reason)
| stats count(*) as failures by reason
| sort failures desc`},
		{name: "reaper-runs", query: `fields @timestamp, checked, live, recent, removed, errors, complete, resumed, stopped, error
| filter msg = "reaper run"
| sort @timestamp desc
| limit 100`},
		// Handlers log operation=send; pkg/connection's Manager logs op=send|broadcast.
		{name: "slow-sends", query: fmt.Sprintf(`fields @timestamp, @log, coalesce(operation, op) as what, connection_id, correlation_id, duration_ms, outcome, error
| filter (operation = "send" or op = "send" or op = "broadcast") and duration_ms > %d
| sort duration_ms desc
| limit 100`, d.cfg.SlowSendMs)},
	}
}

func (d *deployed) deployQueries(ctx *pulumi.Context) error {
	groups := pulumi.StringArray{}
	for _, fn := range contract.Functions() {
		groups = append(groups, d.logGroups[fn].Name)
	}
	withAccess := append(append(pulumi.StringArray{}, groups...), d.accessLogs.Name)
	for _, q := range d.queries() {
		lgs := groups
		if q.withAccess {
			lgs = withAccess
		}
		if _, err := cloudwatch.NewQueryDefinition(ctx, "query-"+q.name, &cloudwatch.QueryDefinitionArgs{
			// Slashes make folders in the console's saved queries list.
			Name:          pulumi.String("streamer/" + d.cfg.Environment + "/" + q.name),
			LogGroupNames: lgs,
			QueryString:   pulumi.String(q.query),
		}); err != nil {
			return err
		}
	}
	return nil
}

// ReaperWidgetTitle titles the dashboard's reaper widget: zombie records
// removed, records not checked, failed runs.
const ReaperWidgetTitle = "Reaper: zombie records removed, errors"

// dashboardBody is the CloudWatch dashboard JSON.
func (d *deployed) dashboardBody(apiID string) (string, error) {
	region := d.acct.Region
	envDim := []any{contract.DimensionEnvironment, d.cfg.Environment}
	widget := func(title string, metrics [][]any, stat string, x, y int) map[string]any {
		return map[string]any{
			"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
			"properties": map[string]any{
				"title": title, "region": region, "stat": stat, "period": 60, "view": "timeSeries", "metrics": metrics,
			},
		}
	}
	var custom [][]any
	for _, m := range contract.Metrics() {
		stat := "Sum"
		if m == contract.MetricActiveConnections {
			stat = "Maximum"
		}
		custom = append(custom, append([]any{d.cfg.MetricsNamespace, m}, append(envDim, map[string]any{"stat": stat})...))
	}
	var errs, durations, colds [][]any
	for _, fn := range contract.Functions() {
		name := d.fnNames[fn]
		errs = append(errs, []any{"AWS/Lambda", "Errors", "FunctionName", name})
		durations = append(durations, []any{"AWS/Lambda", "Duration", "FunctionName", name, map[string]any{"stat": "p99"}})
		colds = append(colds, []any{d.cfg.MetricsNamespace, InitDurationMetricName(name), map[string]any{"stat": "SampleCount", "label": fn + " cold starts"}})
	}
	api := [][]any{
		{"AWS/ApiGateway", "ConnectCount", "ApiId", apiID, "Stage", d.cfg.StageName},
		{"AWS/ApiGateway", "MessageCount", "ApiId", apiID, "Stage", d.cfg.StageName},
		{"AWS/ApiGateway", "IntegrationError", "ApiId", apiID, "Stage", d.cfg.StageName},
		{"AWS/ApiGateway", "ClientError", "ApiId", apiID, "Stage", d.cfg.StageName},
	}
	throttles := [][]any{
		{"AWS/DynamoDB", "ReadThrottleEvents", "TableName", d.cfg.TableName},
		{"AWS/DynamoDB", "WriteThrottleEvents", "TableName", d.cfg.TableName},
	}
	for _, op := range tableOperations() {
		throttles = append(throttles, []any{"AWS/DynamoDB", "ThrottledRequests", "TableName", d.cfg.TableName, "Operation", op})
	}
	reaperName := d.fnNames[contract.FunctionReaper]
	reaper := [][]any{
		append([]any{d.cfg.MetricsNamespace, contract.MetricZombieRecordsRemoved}, envDim...),
		append([]any{d.cfg.MetricsNamespace, contract.MetricReaperErrors}, envDim...),
		{"AWS/Lambda", "Errors", "FunctionName", reaperName, map[string]any{"label": "reaper failed runs"}},
	}
	body := map[string]any{"widgets": []any{
		widget("Connections and messages (streamer metrics)", custom, "Sum", 0, 0),
		widget("API Gateway: connects, messages, errors", api, "Sum", 12, 0),
		widget("Lambda errors", errs, "Sum", 0, 6),
		widget("Lambda duration p99 (ms)", durations, "p99", 12, 6),
		widget("Lambda cold starts", colds, "SampleCount", 0, 12),
		widget("DynamoDB throttles", throttles, "Sum", 12, 12),
		widget(ReaperWidgetTitle, reaper, "Sum", 0, 18),
	}}
	b, err := json.Marshal(body)
	if err != nil {
		return "", fmt.Errorf("encode dashboard: %w", err)
	}
	return string(b), nil
}

func (d *deployed) deployDashboard(ctx *pulumi.Context) error {
	body := d.api.ID().ToStringOutput().ApplyT(func(id string) (string, error) { return d.dashboardBody(id) }).(pulumi.StringOutput)
	_, err := cloudwatch.NewDashboard(ctx, "dashboard", &cloudwatch.DashboardArgs{
		DashboardName: pulumi.String(d.name("dashboard")),
		DashboardBody: body,
	})
	return err
}
