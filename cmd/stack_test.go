package cmd

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/dashboard"
)

// stackOutputs is what `pulumi stack output --json` prints for a deployed
// stack: the profile scripts/deploy.sh saves.
func stackOutputs(env string) map[string]any {
	return map[string]any{
		contract.OutputWebSocketURL:       "wss://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/" + env,
		contract.OutputManagementEndpoint: "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/" + env,
		contract.OutputTableName:          "streamer-connections-" + env,
		contract.OutputRegion:             "eu-west-1",
		contract.OutputStage:              env,
		contract.OutputJWTIssuer:          "streamer-" + env,
		contract.OutputJWTAudience:        "",
		contract.OutputEnvironment:        env,
		"functionNames":                   map[string]string{"connect": "streamer-" + env + "-connect"},
		"jwtSecretArn":                    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:streamer-" + env,
	}
}

// writeProfile saves outputs as dir/name.json.
func writeProfile(t *testing.T, dir, name string, outputs map[string]any) string {
	t.Helper()
	b, err := json.MarshalIndent(outputs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// resolvedBy runs a command line and returns the Config the store was
// built with.
func resolvedBy(t *testing.T, te *testEnv, args ...string) (Config, int) {
	t.Helper()
	var got Config
	te.f.Build.Store = func(_ context.Context, c Config) (ConnStore, error) { got = c; return te.store, nil }
	return got, te.run(args...)
}

// TestStackProfile: --stack NAME (or STREAMER_STACK) takes the endpoint,
// WebSocket URL, table, region and issuer from the saved outputs of a
// deployed stack; flags and environment variables still win.
func TestStackProfile(t *testing.T) {
	dir := t.TempDir()
	writeProfile(t, dir, "staging", stackOutputs("staging"))
	prod := stackOutputs("production")
	prod[contract.OutputJWTAudience] = "acme-clients"
	prodPath := writeProfile(t, t.TempDir(), "prod-copy", prod)
	newTE := func() *testEnv {
		te := newTestEnv(t)
		te.f.StackDir = func() (string, error) { return dir, nil }
		return te
	}

	te := newTE()
	var cfg Config
	te.f.Build.Store = func(_ context.Context, c Config) (ConnStore, error) { cfg = c; return te.store, nil }
	if code := te.run("conn", "ls", "--stack", "staging"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, te.errOut)
	}
	want := Config{Endpoint: "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/staging", WSURL: "wss://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/staging",
		Table: "streamer-connections-staging", Region: "eu-west-1", Issuer: "streamer-staging", Stack: "staging", Environment: "staging"}
	if cfg.Endpoint != want.Endpoint || cfg.WSURL != want.WSURL || cfg.Table != want.Table || cfg.Region != want.Region ||
		cfg.Issuer != want.Issuer || cfg.Stack != want.Stack || cfg.Environment != want.Environment || cfg.Audience != "" || cfg.DynamoDBEndpoint != "" {
		t.Errorf("--stack staging resolved\n%+v\nwant\n%+v", cfg, want)
	}

	// Flag > environment > profile.
	te = newTE()
	te.env[tableEnv] = "from-env"
	te.env[regionEnv] = "us-west-2"
	cfg, _ = resolvedBy(t, te, "conn", "ls", "--stack", "staging", "--issuer", "from-flag")
	if cfg.Table != "from-env" || cfg.Region != "us-west-2" || cfg.Issuer != "from-flag" || cfg.Endpoint != want.Endpoint {
		t.Errorf("flags and environment must win over the profile: %+v", cfg)
	}

	// STREAMER_STACK, and a profile given by path.
	te = newTE()
	te.env[stackEnv] = prodPath
	cfg, code := resolvedBy(t, te, "conn", "ls")
	if code != ExitOK || cfg.Table != "streamer-connections-production" || cfg.Audience != "acme-clients" || cfg.Stack != prodPath {
		t.Errorf("STREAMER_STACK=%s: exit %d, %+v", prodPath, code, cfg)
	}

	// The profile's audience is minted into tokens.
	te = newTE()
	te.env[keyDirEnv] = sharedKeyDir(t)
	if code := te.run("token", "mint", "--stack", prodPath); code != ExitOK {
		t.Fatalf("mint: exit %d: %s", code, te.errOut)
	}
	if c, err := decodeUnverified(strings.TrimSpace(te.out.String())); err != nil || c.Issuer != "streamer-production" || len(c.Audience) != 1 || c.Audience[0] != "acme-clients" {
		t.Errorf("minted with --stack: %+v, %v; want the stack's issuer and audience", c, err)
	}
}

func TestStackProfileErrors(t *testing.T) {
	dir := t.TempDir()
	partial := stackOutputs("dev")
	delete(partial, contract.OutputJWTIssuer)
	partial[contract.OutputEnvironment] = ""
	writeProfile(t, dir, "old", partial)
	if err := os.WriteFile(filepath.Join(dir, "junk.json"), []byte("Current stack outputs (8):"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stack string
		code  int
		want  string
	}{
		{"dev", ExitError, "no profile for stack dev at " + filepath.Join(dir, "dev.json") + "\nhint: deploy it with `make deploy STACK=dev`"},
		{"old", ExitError, "lacks the output(s) jwtIssuer, environment"},
		{filepath.Join(dir, "junk.json"), ExitError, "is not the JSON of `pulumi stack output --json`"},
		{dir + "/", ExitError, "not a regular file"},
		{"prod uction", ExitUsage, `--stack "prod uction" names neither a deployed stack`},
	} {
		te := newTestEnv(t)
		te.f.StackDir = func() (string, error) { return dir, nil }
		n := countingBuilders(te)
		if code := te.run("conn", "ls", "--stack", tc.stack); code != tc.code || !strings.Contains(te.errOut.String(), tc.want) || *n != 0 {
			t.Errorf("--stack %q: exit %d (%d clients), stderr %s; want %d and %q", tc.stack, code, *n, te.errOut, tc.code, tc.want)
		}
	}
}

// TestDashboardCloudWatchStack: the dashboard reads the --stack's
// environment and region unless --env / --region say otherwise.
func TestDashboardCloudWatchStack(t *testing.T) {
	dir := t.TempDir()
	writeProfile(t, dir, "staging", stackOutputs("staging"))
	for _, tc := range []struct {
		args     []string
		env, reg string
	}{
		{nil, "staging", "eu-west-1"},
		{[]string{"--env", "production", "--region", "us-east-1"}, "production", "us-east-1"},
	} {
		te := newTestEnv(t)
		te.f.StackDir = func() (string, error) { return dir, nil }
		cw := &fakeCloudWatch{}
		var gotCfg Config
		args := append([]string{"dashboard", "--once", "--source", "cloudwatch", "--stack", "staging"}, tc.args...)
		code := runDashboard(te, func(o *DashboardOptions) {
			o.CloudWatch = func(_ context.Context, cfg Config) (dashboard.CloudWatchAPI, error) { gotCfg = cfg; return cw, nil }
		}, args...)
		if code != ExitOK || len(cw.gets) != 1 {
			t.Fatalf("%q: exit %d: %s", args, code, te.errOut)
		}
		if gotCfg.Region != tc.reg {
			t.Errorf("%q: region %q, want %q", args, gotCfg.Region, tc.reg)
		}
		for _, q := range cw.gets[0].MetricDataQueries {
			if q.MetricStat != nil && len(q.MetricStat.Metric.Dimensions) > 0 && aws.ToString(q.MetricStat.Metric.Dimensions[0].Name) == contract.DimensionEnvironment {
				if v := aws.ToString(q.MetricStat.Metric.Dimensions[0].Value); v != tc.env {
					t.Errorf("%q: environment %q, want %q", args, v, tc.env)
				}
			}
		}
	}
}
