package cmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/smithy-go"
	"github.com/pay-theory/streamer/pkg/dashboard"
	"github.com/spf13/cobra"
)

// Dashboard sources (--source).
const (
	DashboardSourceLocal      = "local"
	DashboardSourceCloudWatch = "cloudwatch"
)

// Bounds of the dashboard's flags. A refresh under a second would poll a
// local gateway needlessly and, against CloudWatch, bill every GetMetricData
// query; CloudWatch keeps metrics for 15 months.
const (
	MinDashboardRefresh = time.Second
	MinDashboardRange   = time.Minute
	MaxDashboardRange   = 455 * 24 * time.Hour
	// dashboardOnceSettle is how long --once waits for a local gateway's
	// second poll, which the per-minute rates need (see
	// dashboard.Options.OnceSettle).
	dashboardOnceSettle = time.Second
	defaultDashboardEnv = "dev"
)

// DashboardOptions are the inputs of `streamer dashboard`.
type DashboardOptions struct {
	F          *Factory
	Source     string        // local | cloudwatch
	Env        string        // CloudWatch Environment dimension and function names
	Refresh    time.Duration // between fetches
	Range      time.Duration // window the CloudWatch counts cover
	Once       bool          // one snapshot, then exit
	Output     string        // snapshot format: plain|json ("" => plain); implies Once
	MetricsURL string        // local: "" => derived from the resolved --endpoint
	Namespace  string        // CloudWatch metrics namespace ("" => the handlers' default)

	// NewSource builds the metrics source from the validated options; nil
	// => newDashboardSource. Tests inject fakes here.
	NewSource func(ctx context.Context, opts *DashboardOptions) (dashboard.Source, error)
	// CloudWatch builds the CloudWatch client for --source cloudwatch; nil
	// => a *cloudwatch.Client from the resolved AWS configuration.
	CloudWatch func(ctx context.Context, cfg Config) (dashboard.CloudWatchAPI, error)

	// envSet: --env was given; otherwise a --stack's environment is used.
	envSet bool
}

// NewCmdDashboard builds `streamer dashboard`. runF replaces the run
// function in tests.
func NewCmdDashboard(f *Factory, runF func(*DashboardOptions) error) *cobra.Command {
	opts := &DashboardOptions{F: f}
	c := &cobra.Command{
		Use:   "dashboard [--source local|cloudwatch] [--env ENV] [--refresh 5s] [--range 1h] [--once [-o plain|json]]",
		Short: "Live terminal dashboard of connection metrics (local gateway or CloudWatch)",
		Long: `Show the health of the WebSocket API at a glance: active connections, connections
and messages per minute, authentication failures, error rate, management API latency
p50/p99 and the circuit breaker; with --source cloudwatch also Lambda errors,
throttles, cold starts and alarm states (alarms in ALARM stand out).

--source local (the default) polls a running ` + "`streamer local`" + `'s GET /metrics.json, at the
host of --endpoint unless --metrics-url is given. Its counts are totals since the
gateway started and its rates come from two polls, so rates read "—" at first.
Run ` + "`streamer local --simulate 20`" + ` in another terminal for live numbers.

--source cloudwatch reads the metrics the handlers emit in environment --env
(dev, staging or production; with --stack, that stack's) in namespace --namespace,
and the AWS/Lambda metrics of the functions streamer-<env>-*, over the last --range,
with the AWS credentials of --profile / --region (or the SDK's default chain; with
--stack, its region). It needs cloudwatch:GetMetricData and cloudwatch:DescribeAlarms.

Keys: q quit, r refresh now, tab / shift+tab or the arrows move between panels,
? help. Fetch errors show in the status line and the next refresh retries.

With --once, or when stdout is not a terminal, it prints one plain snapshot
("name: value" per line, "n/a" for no data) and exits: 0 when the metrics were
read, 1 when they could not be. -o json prints the snapshot as one JSON object
instead (and, like -o plain, implies --once): the same keys, numbers as
numbers (error_rate in percent, latency_p50/p99 in milliseconds), null for no
data, every key always present; the per-function, per-alarm and warning lines
become the arrays "functions", "alarms" and "warnings".`,
		Example: `  streamer local --simulate 20     # in one terminal
  streamer dashboard               # in another
  streamer dashboard --once | grep active_connections
  streamer dashboard --once -o json | jq .active_connections
  streamer dashboard --source cloudwatch --env production --profile ops --range 3h
  streamer dashboard --source cloudwatch --stack staging   # environment and region from the stack`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := validateDashboard(c, opts); err != nil {
				return err
			}
			opts.envSet = c.Flags().Changed("env")
			return runWith(c.Context(), opts, runF, dashboardRun)
		},
	}
	fl := c.Flags()
	fl.StringVar(&opts.Source, "source", DashboardSourceLocal, "where the metrics come from: local|cloudwatch")
	fl.StringVar(&opts.Env, "env", defaultDashboardEnv, "cloudwatch: deployment environment: dev, staging or production (metric dimension, function names streamer-ENV-*; default: the --stack's, else dev)")
	fl.DurationVar(&opts.Refresh, "refresh", dashboard.DefaultRefresh, "time between refreshes (at least 1s)")
	fl.DurationVar(&opts.Range, "range", dashboard.DefaultWindow, "cloudwatch: window the counts and series cover")
	fl.BoolVar(&opts.Once, "once", false, "print one plain snapshot and exit (the default when stdout is not a terminal)")
	addOutputFlag(c, &opts.Output, "snapshot format: plain|json (implies --once; default plain)", FormatPlain, FormatJSON)
	fl.StringVar(&opts.MetricsURL, "metrics-url", "", "local: metrics URL (default: scheme://host:port of --endpoint + /metrics.json)")
	fl.StringVar(&opts.Namespace, "namespace", "", "cloudwatch: namespace of the handlers' metrics (default the handlers' own)")
	return c
}

// validateDashboard rejects flag values that can never work, before any
// network call.
func validateDashboard(c *cobra.Command, opts *DashboardOptions) error {
	usage := func(format string, a ...any) error { return &UsageError{Err: fmt.Errorf(format, a...)} }
	changed := c.Flags().Changed
	switch opts.Source {
	case DashboardSourceLocal:
		for _, name := range []string{"env", "namespace", "range"} {
			if changed(name) {
				return usage("--%s applies to --source cloudwatch only (the local gateway keeps totals since it started)", name)
			}
		}
		if opts.MetricsURL != "" {
			u, err := url.Parse(opts.MetricsURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usage("--metrics-url %q is not an http(s) URL like http://127.0.0.1:4510/metrics.json", opts.MetricsURL)
			}
		}
	case DashboardSourceCloudWatch:
		if changed("metrics-url") {
			return usage("--metrics-url applies to --source local only")
		}
		if strings.TrimSpace(opts.Env) == "" {
			return usage("--env must name an environment, e.g. dev, staging or production")
		}
	default:
		return usage("unknown --source %q: use local or cloudwatch", opts.Source)
	}
	if opts.Refresh < MinDashboardRefresh {
		return usage("--refresh %s: want at least %s", opts.Refresh, MinDashboardRefresh)
	}
	if opts.Range < MinDashboardRange || opts.Range > MaxDashboardRange {
		return usage("--range %s: want between %s and 15 months (%s)", opts.Range, MinDashboardRange, MaxDashboardRange)
	}
	return nil
}

func dashboardRun(ctx context.Context, opts *DashboardOptions) error {
	f := opts.F
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	newSource := opts.NewSource
	if newSource == nil {
		newSource = newDashboardSource
	}
	src, err := newSource(ctx, opts)
	if err != nil {
		return err
	}
	do := dashboard.Options{
		Source:  src,
		Refresh: opts.Refresh,
		Window:  opts.Range,
		Timeout: cfg.Timeout,
		In:      f.IO.In,
		Out:     f.IO.Out,
		Getenv:  f.Getenv,
		Now:     f.Now,
		Output:  opts.Output,
	}
	if opts.Once || opts.Output != "" || !f.IO.OutTTY {
		if opts.Source == DashboardSourceLocal {
			do.OnceSettle = dashboardOnceSettle
		}
		if err := dashboard.Once(ctx, do); err != nil {
			return explainDashboardErr(opts, err)
		}
		return nil
	}
	return dashboard.Run(ctx, do)
}

// newDashboardSource is the production source builder.
func newDashboardSource(ctx context.Context, opts *DashboardOptions) (dashboard.Source, error) {
	cfg, err := opts.F.Config()
	if err != nil {
		return nil, err
	}
	if opts.Source == DashboardSourceLocal {
		target, err := dashboardMetricsURL(opts, cfg)
		if err != nil {
			return nil, err
		}
		return dashboard.NewLocalSource(target), nil
	}
	build := opts.CloudWatch
	if build == nil {
		build = newCloudWatchClient
	}
	client, err := build(ctx, cloudWatchConfig(opts.F, cfg))
	if err != nil {
		return nil, fmt.Errorf("dashboard --source cloudwatch: %w\nhint: to watch a running `streamer local` instead, use --source local", err)
	}
	env := opts.Env
	if !opts.envSet && cfg.Environment != "" {
		env = cfg.Environment // the --stack's
	}
	return dashboard.NewCloudWatchSource(client, dashboard.CloudWatchConfig{Environment: env, Namespace: opts.Namespace}), nil
}

// dashboardMetricsURL is --metrics-url, or the metrics endpoint of the
// gateway serving --endpoint: a running `streamer local` by default.
func dashboardMetricsURL(opts *DashboardOptions, cfg Config) (string, error) {
	if opts.MetricsURL != "" {
		return opts.MetricsURL, nil
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" {
		return "", &UsageError{Err: fmt.Errorf("cannot derive the metrics URL from --endpoint %q: pass --metrics-url", cfg.Endpoint)}
	}
	return u.Scheme + "://" + u.Host + "/metrics.json", nil
}

// cloudWatchConfig adapts the resolved configuration for loadAWSConfig.
// --endpoint is the management API and plays no part here, but its loopback
// default would select the local stack's dummy credentials; so the endpoint
// becomes a label for messages, and a region the local default filled in
// gives way to the profile's own.
func cloudWatchConfig(f *Factory, cfg Config) Config {
	if cfg.Local() && f.Flags.Region == "" && f.Getenv("AWS_REGION") == "" && f.Getenv("AWS_DEFAULT_REGION") == "" {
		cfg.Region = ""
	}
	cfg.Endpoint = "CloudWatch"
	return cfg
}

// newCloudWatchClient builds the production client from the same AWS
// configuration loader as every other command (profile, region, a clear
// error with a hint when there are no credentials).
func newCloudWatchClient(ctx context.Context, cfg Config) (dashboard.CloudWatchAPI, error) {
	ac, err := loadAWSConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return cloudwatch.NewFromConfig(ac), nil
}

// dashboardLocalURL is the metrics URL the local source polls, for messages.
func dashboardLocalURL(opts *DashboardOptions) string {
	cfg, err := opts.F.Config()
	if err != nil {
		return opts.MetricsURL
	}
	u, err := dashboardMetricsURL(opts, cfg)
	if err != nil {
		return opts.MetricsURL
	}
	return dashboard.NewLocalSource(u).MetricsURL()
}

// explainDashboardErr adds what to do to a failed --once fetch.
func explainDashboardErr(opts *DashboardOptions, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	if opts.Source == DashboardSourceLocal {
		var fe *dashboard.FetchError
		hint := "start `streamer local` (add --simulate 20 for live numbers) in another terminal, or point --endpoint / --metrics-url at a running gateway"
		if errors.Is(err, dashboard.ErrBadResponse) {
			hint = "that URL answered, but not with the local gateway's metrics; point --endpoint / --metrics-url at a running `streamer local`"
		}
		target := dashboardLocalURL(opts)
		var opErr *net.OpError
		switch {
		case errors.As(err, &opErr):
			// The package's message repeats the URL; the dial error says it all.
			return fmt.Errorf("cannot reach the local gateway's metrics at %s: %w\nhint: %s", target, opErr, hint)
		case errors.As(err, &fe):
			return fmt.Errorf("no metrics from the local gateway at %s: %w\nhint: %s", target, err, hint)
		}
		return err
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && (strings.Contains(ae.ErrorCode(), "AccessDenied") || ae.ErrorCode() == "UnauthorizedOperation") {
		return fmt.Errorf("%w\nhint: the dashboard needs cloudwatch:GetMetricData and cloudwatch:DescribeAlarms; pass --profile with a role that has them", err)
	}
	return err
}
