// Package clitest runs the built streamer binary for the end-to-end tests:
// build it once, run commands as a user would, start `streamer local` as a
// subprocess, and drive a real terminal (tmux).
package clitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/syncbuf"
	"github.com/pay-theory/streamer/internal/testenv"
	"go.uber.org/goleak"
)

// Bounds of the waits (liveness, not performance: each wait ends as soon
// as its condition holds).
const (
	// RunTimeout bounds every CLI run: an unreachable endpoint must fail
	// well within it.
	RunTimeout = 60 * time.Second
	// StartTimeout bounds `streamer local` printing its startup block and
	// answering /health.
	StartTimeout = 60 * time.Second
	// StopTimeout bounds `streamer local` exiting after SIGINT (its own
	// bound is 10 s).
	StopTimeout = 30 * time.Second
	// BuildTimeout bounds `go build`.
	BuildTimeout = 5 * time.Minute
)

// Main builds the streamer binary into a temporary directory, stores its
// path in *bin, runs the tests, and after a pass fails on leaked
// goroutines. It returns the exit code: TestMain calls
// os.Exit(clitest.Main(m, &bin)).
func Main(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "streamer-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "streamer")
	if err := Build(*bin); err != nil {
		fmt.Fprintln(os.Stderr, "build the streamer binary:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// Build compiles the streamer binary (the module's main package) to out.
func Build(out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, ".")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, b)
	}
	return nil
}

// moduleRoot is the nearest directory at or above the working directory
// (a test's package directory) holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// CleanEnv is the process environment without anything that would point
// the CLI elsewhere, with a private home so no test touches real keys.
func CleanEnv(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "STREAMER_") || strings.HasPrefix(k, "AWS_") || k == "HOME" || k == "XDG_CONFIG_HOME" || k == "NO_COLOR" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
}

// Result is one finished CLI run.
type Result struct {
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// Run executes bin with env (nil: this process's environment), stdin and
// args, and waits for it; a run longer than RunTimeout fails the test.
func Run(t *testing.T, bin string, env []string, stdin string, args ...string) Result {
	t.Helper()
	return Cmd{Env: env, Stdin: stdin, Timeout: RunTimeout}.Run(t, bin, args...)
}

// Cmd is how to run a program for a test (the binary, a script, a shell
// around either).
type Cmd struct {
	// Env is the environment (nil: this process's); Dir the working
	// directory ("": this process's); Stdin what the program reads.
	Env   []string
	Dir   string
	Stdin string
	// Timeout bounds the run: the program is killed and the test fails
	// when it passes. It is a liveness bound, never a performance figure.
	Timeout time.Duration
}

// Run executes name with args as c says and waits for it.
func (c Cmd) Run(t *testing.T, name string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = c.Env, c.Dir
	cmd.Stdin = strings.NewReader(c.Stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not finish within %s:\n%s", filepath.Base(name), strings.Join(args, " "), c.Timeout, errOut.String())
	}
	r := Result{Stdout: out.String(), Stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", name, err)
	}
	return r
}

// Local is a running `streamer local` process: its -o json startup block,
// and what the tests need around it.
type Local struct {
	WebSocketURL       string `json:"websocket_url"`
	ManagementEndpoint string `json:"management_endpoint"`
	DynamoDBEndpoint   string `json:"dynamodb_endpoint"`
	MetricsURL         string `json:"metrics_url"`
	KeyDir             string `json:"key_dir"`
	KeyCreated         bool   `json:"key_created"`
	Wscat              string `json:"wscat"`

	// BaseURL is the listener's root, http://127.0.0.1:PORT.
	BaseURL string `json:"-"`
	// BaseEnv is the clean environment the process runs with.
	BaseEnv []string `json:"-"`
	// Stderr is what the process wrote to stderr so far.
	Stderr *syncbuf.Buffer `json:"-"`
}

// Env is the environment that points every CLI command at this stack.
func (l *Local) Env() []string {
	return append(append([]string(nil), l.BaseEnv...),
		"STREAMER_ENDPOINT="+l.ManagementEndpoint, "STREAMER_WS_URL="+l.WebSocketURL, "STREAMER_KEY_DIR="+l.KeyDir)
}

// StartLocal runs `streamer local --listen 127.0.0.1:0 -o json args...`
// with CleanEnv, waits for its startup block, for /health to answer 200
// and for "ready" on stderr (after --simulate's clients started), and on
// cleanup stops it with SIGINT, requiring exit 0 with "stopped" on stderr
// within StopTimeout.
func StartLocal(t *testing.T, bin string, args ...string) *Local {
	t.Helper()
	base := CleanEnv(t)
	cmd := exec.Command(bin, append([]string{"local", "--listen", "127.0.0.1:0", "-o", "json"}, args...)...)
	cmd.Env = base
	out, errOut := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, errOut
	if err := cmd.Start(); err != nil {
		t.Fatalf("start streamer local: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("interrupt streamer local: %v", err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("streamer local exited with %v after SIGINT, want 0:\n%s", err, errOut)
			} else if !strings.Contains(errOut.String(), "stopped") {
				t.Errorf("streamer local stderr lacks \"stopped\":\n%s", errOut)
			}
		case <-time.After(StopTimeout):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("streamer local did not exit within %s of SIGINT:\n%s", StopTimeout, errOut)
		}
	})

	deadline := time.After(StartTimeout)
	// wait polls ready until it holds, failing when the process exits or
	// StartTimeout passes.
	wait := func(what string, ready func() bool) {
		t.Helper()
		for !ready() {
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("streamer local exited early (%v):\n%s", err, errOut)
			case <-deadline:
				t.Fatalf("streamer local: no %s within %s\nstdout:\n%s\nstderr:\n%s", what, StartTimeout, out, errOut)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	wait("startup block", func() bool {
		b := bytes.TrimSpace([]byte(out.String()))
		return len(b) > 0 && json.Valid(b)
	})
	l := &Local{BaseEnv: base, Stderr: errOut}
	if err := json.Unmarshal([]byte(out.String()), l); err != nil {
		t.Fatal(err)
	}
	l.BaseURL = strings.TrimSuffix(l.MetricsURL, "/metrics.json")
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	wait("/health answering 200 and \"ready\" on stderr", func() bool {
		resp, err := hc.Get(l.BaseURL + "/health")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK && strings.Contains(errOut.String(), "ready")
	})
	return l
}

// Tmux is a private tmux server (its own socket, no user configuration).
type Tmux struct {
	bin, sock string
}

// NewTmux starts nothing yet: it finds tmux (missing fails under CI and
// skips elsewhere) and kills the private server when the test ends.
func NewTmux(t *testing.T) *Tmux {
	t.Helper()
	bin, err := exec.LookPath("tmux")
	if err != nil {
		testenv.Missing(t, "tmux is not installed", "apt-get install tmux")
	}
	x := &Tmux{bin: bin, sock: fmt.Sprintf("streamer-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(func() { _, _ = x.Run("kill-server") })
	return x
}

// Run runs one tmux command on the private server and returns its output.
func (x *Tmux) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// -f /dev/null: no user configuration changes what the test sees.
	out, err := exec.CommandContext(ctx, x.bin, append([]string{"-L", x.sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
	return string(out), err
}

// ShellQuote single-quotes s for sh.
func ShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
