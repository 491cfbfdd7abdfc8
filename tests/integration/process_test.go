package integration_test

import (
	"bufio"
	"io"
	"os/exec"
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
