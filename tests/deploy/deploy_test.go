// Package deploy_test runs scripts/deploy.sh against a fake `pulumi` (and
// fake aws, go and build script) on PATH: what the script does for a
// missing login, a missing stack and an existing one, without AWS, the
// Pulumi CLI or a 41 s build.
package deploy_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/clitest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakePulumi logs each call as "<dir relative to the tree>: pulumi <args>"
// and answers as the Pulumi CLI does in the state FAKE_PULUMI names:
// logged-out, no-stack, has-stack, ls-fails or init-fails.
const fakePulumi = `#!/bin/sh
echo "${PWD#"$FAKE_ROOT"}: pulumi $*" >> "$FAKE_LOG"
if [ "$FAKE_PULUMI" = logged-out ]; then
  echo "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions" >&2
  exit 255
fi
case "$1 $2" in
  "whoami "*) echo alice ;;
  "stack ls")
    case "$FAKE_PULUMI" in
      ls-fails) echo "error: could not reach https://api.pulumi.com: i/o timeout" >&2; exit 255 ;;
      has-stack) printf '[\n  {\n    "name": "staging",\n    "current": true\n  },\n  {\n    "name": "dev",\n    "current": false\n  }\n]\n' ;;
      # Names that contain "dev" but are not "dev".
      *) printf '[\n  {\n    "name": "devel",\n    "current": false\n  },\n  {\n    "name": "acme/dev-old",\n    "current": false\n  }\n]\n' ;;
    esac ;;
  "stack init")
    if [ "$FAKE_PULUMI" = init-fails ]; then echo "error: stack 'dev' already exists" >&2; exit 255; fi ;;
esac
exit 0
`

// fakeBuild stands in for scripts/build-lambdas.sh: it only logs.
const fakeBuild = `#!/bin/sh
echo "${PWD#"$FAKE_ROOT"}: build $*" >> "$FAKE_LOG"
`

type deployRun struct {
	clitest.Result
	calls []string // the fakes' log, in order
}

// runDeploy copies scripts/deploy.sh into a fresh tree beside a fake build
// script and Pulumi.dev.yaml, and runs it with the fakes first on PATH.
func runDeploy(t *testing.T, pulumiState string, args ...string) deployRun {
	t.Helper()
	root := t.TempDir()
	script, err := os.ReadFile(filepath.Join("..", "..", "scripts", "deploy.sh"))
	if err != nil {
		t.Fatal(err)
	}
	fakes := filepath.Join(root, "fakebin")
	clitest.WriteFiles(t, root, map[string]string{
		"scripts/deploy.sh":                 string(script),
		"scripts/build-lambdas.sh":          fakeBuild,
		"deployment/pulumi/Pulumi.dev.yaml": "config: {}\n",
		"deployment/pulumi/Pulumi.yaml":     "name: streamer\nruntime: go\n",
		"fakebin/pulumi":                    fakePulumi,
		"fakebin/aws":                       "#!/bin/sh\necho arn:aws:iam::123456789012:user/alice\n",
		"fakebin/go":                        "#!/bin/sh\nexit 0\n",
	})
	log := filepath.Join(root, "calls.log")

	// Timeout: a liveness bound; every path through the script ends at once here.
	res := clitest.Cmd{
		Dir: root,
		// A private HOME: the script saves the CLI's stack profile under
		// the user config directory.
		Env: append(os.Environ(), "PATH="+fakes+string(os.PathListSeparator)+os.Getenv("PATH"),
			"FAKE_ROOT="+root, "FAKE_LOG="+log, "FAKE_PULUMI="+pulumiState,
			"HOME="+filepath.Join(root, "home"), "XDG_CONFIG_HOME="+filepath.Join(root, "home", ".config")),
		Timeout: time.Minute,
	}.Run(t, filepath.Join(root, "scripts", "deploy.sh"), args...)
	r := deployRun{Result: res}
	b, err := os.ReadFile(log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		r.calls = strings.Split(s, "\n")
	}
	return r
}

const (
	whoami = "/deployment/pulumi: pulumi whoami --non-interactive"
	ls     = "/deployment/pulumi: pulumi stack ls --json --non-interactive"
	build  = ": build --arch arm64 --out dist"
	up     = "/deployment/pulumi: pulumi up --stack dev --yes"
	// After the deployment: the outputs, saved as the CLI's stack profile
	// (tests/e2e TestDeploySavesStackProfile checks what is saved).
	output = "/deployment/pulumi: pulumi stack output --json --stack dev"
)

func TestDeploy(t *testing.T) {
	for _, tc := range []struct {
		name, state string
		code        int
		calls       []string
		// Substrings of stderr (want) and of stdout+stderr that must not
		// appear (never).
		want, never []string
	}{
		{
			name:  "not logged in: stops before the build, says how to log in",
			state: "logged-out", code: 1,
			calls: []string{whoami},
			want: []string{
				"deploy: not logged in to a Pulumi backend",
				"PULUMI_ACCESS_TOKEN must be set", // pulumi's own words
				"run 'pulumi login' (Pulumi Cloud), 'pulumi login s3://<bucket>' or 'pulumi login --local'",
			},
			never: []string{"creating", "stack init"},
		},
		{
			name:  "logged in, no such stack: creates it, then builds and deploys",
			state: "no-stack", code: 0,
			calls: []string{whoami, ls, "/deployment/pulumi: pulumi stack init dev", build, up, output},
			never: []string{"not logged in"},
		},
		{
			name:  "logged in, stack exists: selects it, then builds and deploys",
			state: "has-stack", code: 0,
			calls: []string{whoami, ls, "/deployment/pulumi: pulumi stack select dev --non-interactive", build, up, output},
			never: []string{"creating", "does not exist"},
		},
		{
			name:  "stacks cannot be listed: stops, never takes it for a new stack",
			state: "ls-fails", code: 1,
			calls: []string{whoami, ls},
			want:  []string{"deploy: cannot list this project's stacks", "could not reach https://api.pulumi.com"},
			never: []string{"creating", "not logged in"},
		},
		{
			name:  "stack creation fails: stops before the build",
			state: "init-fails", code: 1,
			calls: []string{whoami, ls, "/deployment/pulumi: pulumi stack init dev"},
			want:  []string{"stack 'dev' already exists", "deploy: could not create stack dev", "pulumi stack select <org>/dev"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runDeploy(t, tc.state, "dev", "--yes")
			if r.Code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.Code, tc.code, r.Stdout, r.Stderr)
			}
			if strings.Join(r.calls, "\n") != strings.Join(tc.calls, "\n") {
				t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(r.calls, "\n  "), strings.Join(tc.calls, "\n  "))
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.Stderr)
				}
			}
			for _, n := range tc.never {
				if strings.Contains(r.Stdout+r.Stderr, n) {
					t.Errorf("output says %q:\nstdout:\n%s\nstderr:\n%s", n, r.Stdout, r.Stderr)
				}
			}
			if tc.code == 0 && !strings.Contains(r.Stdout, "deploy: Pulumi user alice") {
				t.Errorf("stdout does not name the Pulumi user:\n%s", r.Stdout)
			}
			if tc.state == "no-stack" && !strings.Contains(r.Stdout, "deploy: stack dev does not exist in this backend yet: creating it") {
				t.Errorf("stdout does not say the stack is being created:\n%s", r.Stdout)
			}
		})
	}
}

// TestDeployRefusesOddStackNames: the name becomes a file name and a
// pattern; anything but letters, digits, - and _ stops before any call.
func TestDeployRefusesOddStackNames(t *testing.T) {
	for _, name := range []string{"de v", "dev.*", "../dev"} {
		r := runDeploy(t, "has-stack", name)
		if r.Code != 1 || !strings.Contains(r.Stderr, "use letters, digits, - and _") || len(r.calls) != 0 {
			t.Errorf("%q: exit %d, calls %v\n%s", name, r.Code, r.calls, r.Stderr)
		}
	}
}
