// Package rietest runs built Lambda bootstraps under the AWS Lambda Runtime
// Interface Emulator for tests: build the artifacts exactly as a deployment
// zips them, start one emulator per function on loopback ports, invoke.
package rietest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/internal/freeport"
	"github.com/pay-theory/streamer/internal/syncbuf"
	"github.com/pay-theory/streamer/internal/testenv"
)

// Binary returns the aws-lambda-rie path from STREAMER_TEST_RIE: missing
// fails under CI and skips elsewhere (run `make test`).
func Binary(t *testing.T) string {
	t.Helper()
	p := testenv.Env(t, "STREAMER_TEST_RIE", "scripts/with-dynalite.sh sets it; scripts/tools.sh installs aws-lambda-rie")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("STREAMER_TEST_RIE=%s: %v (run scripts/tools.sh)", p, err)
	}
	return p
}

// BuildBootstraps runs scripts/build-lambdas.sh for the host architecture,
// so the emulator runs exactly the artifacts a deployment zips, and logs
// each zip's size.
func BuildBootstraps(t *testing.T, ctx context.Context, repoRoot string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("Lambda has no %s runtime", runtime.GOARCH)
	}
	cmd := exec.CommandContext(ctx, "bash", "scripts/build-lambdas.sh", "--arch", runtime.GOARCH, "--out", dir)
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-lambdas.sh: %v\n%s", err, b)
	}
	out := map[string]string{}
	for _, fn := range contract.Functions() {
		out[fn] = filepath.Join(dir, fn, "bootstrap")
		zst, err := os.Stat(filepath.Join(dir, fn+".zip"))
		if err != nil {
			t.Fatalf("no zip for %s: %v", fn, err)
		}
		bst, err := os.Stat(out[fn])
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: bootstrap %d bytes, %s.zip %d bytes (linux/%s)", fn, bst.Size(), fn, zst.Size(), runtime.GOARCH)
	}
	return out
}

// BuildBootstrap builds the main package pkg (a path relative to
// repoRoot, such as ./examples/chat/bootstrap) as a Lambda bootstrap for
// the host architecture, with the flags scripts/build-lambdas.sh uses, and
// returns its path.
func BuildBootstrap(t *testing.T, ctx context.Context, repoRoot, pkg string) string {
	t.Helper()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("Lambda has no %s runtime", runtime.GOARCH)
	}
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// Function is one bootstrap served by its own emulator process.
type Function struct {
	Name string
	URL  string // the Lambda Invoke URL
	Log  *syncbuf.Buffer
}

// LocalAWSEnv is the environment that points a bootstrap's AWS SDK at a
// local DynamoDB endpoint with dummy credentials and no instance metadata.
func LocalAWSEnv(dynamoURL string) []string {
	return []string{
		contract.EnvEndpointURLDynamoDB + "=" + dynamoURL,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=local",
		"AWS_SECRET_ACCESS_KEY=local",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Start runs aws-lambda-rie on loopback ports for bootstrap with env, and
// kills its process group (the emulator and the bootstrap it spawned) when
// the test ends.
func Start(t *testing.T, ctx context.Context, rie, name, bootstrap string, env []string) *Function {
	t.Helper()
	p, q := freeport.Port(t), freeport.Port(t)
	cmd := exec.Command(rie,
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", p),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", q),
		bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	f := &Function{Name: name, URL: fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", p), Log: &syncbuf.Buffer{}}
	cmd.Stdout, cmd.Stderr = f.Log, f.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", rie, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			t.Logf("%s emulator log:\n%s", name, f.Log.String())
		}
	})
	// The emulator listens at once; the bootstrap starts on the first invoke.
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
		if err == nil {
			c.Close()
			return f
		}
		select {
		case <-done:
			t.Fatalf("%s: aws-lambda-rie exited before listening:\n%s", name, f.Log.String())
		case <-ctx.Done():
			t.Fatalf("%s: aws-lambda-rie not listening: %v", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ProxyResponse is the API Gateway proxy response a handler returns.
type ProxyResponse struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// Invoke posts event to the function and returns its response and raw body.
func (f *Function) Invoke(t *testing.T, ctx context.Context, event map[string]any) (ProxyResponse, []byte) {
	t.Helper()
	b, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("invoke %s: %v", f.Name, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var pr ProxyResponse
	_ = json.Unmarshal(raw, &pr)
	return pr, raw
}
