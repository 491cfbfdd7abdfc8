// Package dashboard is the live terminal dashboard behind `streamer dashboard`:
// a Bubble Tea v2 Model over a metrics Source, plain-text and JSON renderers
// for --once and non-terminal output, and two Sources.
//
// Importing it has no side effect on the terminal: Bubble Tea v1 queried the
// terminal's background from a package init(), which stalled every command
// of the binary on a terminal that does not answer. Colours are fixed ANSI
// colours chosen for a colour profile (DetectProfile: NO_COLOR, TERM,
// COLORTERM, CLICOLOR*), never from a terminal query.
//
// Sources:
//
//   - LocalSource polls the local gateway's GET /metrics.json (pkg/localgw) and
//     derives per-minute rates from counter deltas between two polls, so the
//     first poll shows rates as "no data" (—).
//   - CloudWatchSource reads the metrics the Lambda handlers emit as EMF
//     (namespace contract.DefaultMetricsNamespace unless configured, dimension
//     contract.DimensionEnvironment=<env>, names from contract/) plus the
//     AWS/Lambda metrics of the stack's functions, all in ONE batched
//     GetMetricData request (paginated by NextToken only), and the alarms whose
//     names start with a prefix through DescribeAlarms.
//
// Cold starts. AWS/Lambda has no cold-start metric. The deployment
// (deployment/pulumi) puts a log metric filter on each function's log group
// that turns the "Init Duration" of the platform's REPORT line into the metric
// "InitDuration-<function name>" in the metrics namespace, without dimensions
// (a filter cannot add a constant one). The SampleCount of that metric is the
// number of cold starts, which is what the cold-start panel shows
// (CloudWatchConfig.InitDurationMetricPrefix). The filter writes only when a
// cold start happens, so a quiet window reads "no data", not 0.
//
// Latency. Locally the latency panel shows the gateway's @connections
// (management API) latency. CloudWatch has no management-API latency metric
// from API Gateway WebSocket APIs, so there it shows the Duration p50/p99 of
// the function that sends (the $default route handler by default,
// CloudWatchConfig.LatencyFunction).
//
// Breaker state lives in the process that sends (pkg/connection.Manager); the
// local gateway reports it when a manager reporter is attached, CloudWatch
// never does (shown as n/a).
//
// Wiring (the `streamer dashboard` command stays thin):
//
//	src := dashboard.NewLocalSource("http://127.0.0.1:4510")
//	// or dashboard.NewCloudWatchSource(cloudwatch.NewFromConfig(awsCfg),
//	//        dashboard.CloudWatchConfig{Environment: env})
//	opts := dashboard.Options{Source: src, Refresh: refresh, Window: rng, In: in, Out: out}
//	if once || !outIsTTY {
//		opts.Output = dashboard.OutputPlain // "name: value" lines, or OutputJSON
//		return dashboard.Once(ctx, opts)
//	}
//	return dashboard.Run(ctx, opts) // returns nil on q, ctrl+c or ctx cancel
package dashboard
