package e2e_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/internal/clitest"
)

// fakePulumi answers as the Pulumi CLI does for a logged-in user whose
// backend has the stack: `stack output --json` prints $FAKE_OUTPUTS, `up`
// fails when $FAKE_UP_FAILS is set. Every call is logged to $FAKE_LOG.
const fakePulumi = `#!/bin/sh
echo "pulumi $*" >> "$FAKE_LOG"
case "$1 $2" in
  "whoami "*) echo alice ;;
  "stack ls") printf '[{"name": "dev", "current": true}]\n' ;;
  "stack output") cat "$FAKE_OUTPUTS" ;;
  "up "*) [ -z "$FAKE_UP_FAILS" ] || { echo "error: update failed" >&2; exit 255; } ;;
esac
exit 0
`

// deployTree copies scripts/deploy.sh into a fresh tree with fake pulumi,
// aws, go and build script, and returns the script's path and the PATH
// entry of the fakes.
func deployTree(t *testing.T) (script, fakes string) {
	t.Helper()
	root := t.TempDir()
	src, err := os.ReadFile(filepath.Join("..", "..", "scripts", "deploy.sh"))
	if err != nil {
		t.Fatal(err)
	}
	clitest.WriteFiles(t, root, map[string]string{
		"scripts/deploy.sh":                 string(src),
		"scripts/build-lambdas.sh":          "#!/bin/sh\nexit 0\n",
		"deployment/pulumi/Pulumi.dev.yaml": "config: {}\n",
		"deployment/pulumi/Pulumi.yaml":     "name: streamer\nruntime: go\n",
		"fakebin/pulumi":                    fakePulumi,
		"fakebin/aws":                       "#!/bin/sh\necho arn:aws:iam::123456789012:user/alice\n",
		"fakebin/go":                        "#!/bin/sh\nexit 0\n",
	})
	return filepath.Join(root, "scripts", "deploy.sh"), filepath.Join(root, "fakebin")
}

// TestDeploySavesStackProfile: scripts/deploy.sh saves the deployed
// stack's outputs as the CLI's profile, and `streamer --stack dev` takes
// the endpoint, WebSocket URL, table, region and issuer from it: here the
// "deployed" stack is a running streamer local, and smoke passes against
// it with no other flag than the key. A failed deployment saves nothing.
func TestDeploySavesStackProfile(t *testing.T) {
	s := startLocal(t)
	env := clitest.CleanEnv(t) // a private HOME and XDG_CONFIG_HOME: the profile lands there
	script, fakes := deployTree(t)
	outputs := filepath.Join(t.TempDir(), "outputs.json")
	b, err := json.Marshal(map[string]any{
		contract.OutputWebSocketURL: s.WebSocketURL, contract.OutputManagementEndpoint: s.ManagementEndpoint,
		contract.OutputTableName: "streamer-connections", contract.OutputRegion: "us-east-1", contract.OutputStage: "local",
		contract.OutputJWTIssuer: "streamer-local", contract.OutputJWTAudience: "", contract.OutputEnvironment: "dev",
		"functionNames": map[string]string{"connect": "streamer-dev-connect"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(outputs, b, 0o600); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "calls.log")
	denv := append(append([]string(nil), env...), "PATH="+fakes+string(os.PathListSeparator)+os.Getenv("PATH"),
		"FAKE_LOG="+log, "FAKE_OUTPUTS="+outputs)
	profile := filepath.Join(homeConfig(env), "streamer", "stacks", "dev.json")

	// A failed `pulumi up`: no profile.
	if r := clitest.Run(t, script, append(denv, "FAKE_UP_FAILS=1"), "", "dev", "--yes"); r.Code == 0 {
		t.Fatalf("deploy with a failing pulumi up: %s", r)
	}
	if _, err := os.Stat(profile); !os.IsNotExist(err) {
		t.Fatalf("a failed deployment saved a profile (%v)", err)
	}

	r := clitest.Run(t, script, denv, "", "dev", "--yes")
	if r.Code != 0 || !strings.Contains(r.Stdout, "saved the stack's outputs to "+profile) {
		t.Fatalf("deploy: %s", r)
	}
	if calls, _ := os.ReadFile(log); !strings.Contains(string(calls), "pulumi up --stack dev --yes\npulumi stack output --json --stack dev\n") {
		t.Errorf("pulumi calls:\n%s", calls)
	}

	// The profile alone points smoke at the stack (no STREAMER_ENDPOINT,
	// STREAMER_WS_URL, --table or --issuer).
	senv := append(append([]string(nil), env...), "STREAMER_KEY_DIR="+s.KeyDir)
	if r := run(t, senv, "", "smoke", "--stack", "dev"); r.Code != 0 || !strings.Contains(r.Stderr, "PASS: 12/12") {
		t.Errorf("smoke --stack dev: %s", r)
	}
	// A flag still wins over the profile.
	if r := run(t, senv, "", "--stack", "dev", "--table", "nope", "conn", "ls"); r.Code != 1 || !strings.Contains(r.Stderr, "table nope not found") {
		t.Errorf("--stack dev --table nope: %s", r)
	}
	// A stack never deployed: what to do.
	if r := run(t, senv, "", "conn", "ls", "--stack", "staging"); r.Code != 1 || !strings.Contains(r.Stderr, "make deploy STACK=staging") {
		t.Errorf("--stack staging with no profile: %s", r)
	}
}

// homeConfig is the user config directory env gives the binary (Linux:
// XDG_CONFIG_HOME; macOS: ~/Library/Application Support).
func homeConfig(env []string) string {
	var home, xdg string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME":
			home = v
		case "XDG_CONFIG_HOME":
			xdg = v
		}
	}
	if runtime.GOOS == "darwin" {
		return filepath.Join(home, "Library", "Application Support")
	}
	return xdg
}
