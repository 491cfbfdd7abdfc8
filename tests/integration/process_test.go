package integration_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineProcess is a child process whose stdout is read line by line and whose
// stdin stays open until Stop (wscat and the swarm both exit at stdin EOF).
type lineProcess struct {
	Lines <-chan string
	// Stdin writes to the process (the swarm's STATS command).
	Stdin io.Writer
	stop  func()
}

// startLines starts cmd (stderr as the caller set it, or merged into stdout
// when mergeStderr) and streams its stdout lines.
func startLines(t testing.TB, cmd *exec.Cmd, mergeStderr bool) *lineProcess {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if mergeStderr {
		cmd.Stderr = cmd.Stdout
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	lines := make(chan string, 64)
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return &lineProcess{Lines: lines, Stdin: stdin, stop: func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		reader.Wait()
	}}
}

// Stop closes stdin, waits for the process (killing it after 5 s) and for
// the line reader.
func (p *lineProcess) Stop() { p.stop() }

// Next returns the next line, failing t when the process has exited or
// nothing came within timeout.
func (p *lineProcess) Next(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.Lines:
		if !ok {
			t.Fatal("the process exited")
		}
		return l
	case <-time.After(timeout):
		t.Fatalf("nothing from the process in %v", timeout)
	}
	return ""
}

// startSwarm runs the swarm binary: n WebSocket clients connecting to
// wsURL with token. It returns once all are connected (the swarm's
// "CONNECTED n secs" line, within 5 minutes), with the process (Stop it)
// and the seconds connecting took.
func startSwarm(t testing.TB, swarm, wsURL, token string, n int) (*lineProcess, *exec.Cmd, float64) {
	t.Helper()
	cmd := exec.Command(swarm, "-url", wsURL, "-token", token, "-n", strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	proc := startLines(t, cmd, false)
	line := proc.Next(t, 5*time.Minute)
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "CONNECTED" {
		proc.Stop()
		t.Fatalf("swarm: %q", line)
	}
	secs, _ := strconv.ParseFloat(f[2], 64)
	return proc, cmd, secs
}
