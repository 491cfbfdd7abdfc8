package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/clitest"
)

// BenchmarkIdle100k is the manual run of issue #14: 100,000 idle WebSocket
// clients on `streamer local` on this machine. It is a benchmark so that it
// runs only when asked for (several minutes, ~200,000 sockets):
//
//	go test -run '^$' -bench Idle100k -benchtime 1x -timeout 30m ./tests/integration/
//
// One process can hold at most its open-file limit of sockets (`ulimit -n`;
// 20,000 and not raisable here), so the clients are spread over
// STREAMER_BENCH_PROCESSES `streamer local` processes (default: enough for
// 17,000 each), each with its own swarm process. It reports the clients
// connected (every gateway's active_connections), the gateways' resident
// memory (VmRSS) in total and per connection, and how much the machine's
// MemAvailable fell (kernel socket buffers included). STREAMER_BENCH_CLIENTS
// changes the 100,000.
func BenchmarkIdle100k(b *testing.B) {
	total := envInt(b, "STREAMER_BENCH_CLIENTS", 100000)
	procs := envInt(b, "STREAMER_BENCH_PROCESSES", (total+16999)/17000)
	swarm := buildSwarm(b)
	bin := filepath.Join(b.TempDir(), "streamer")
	if err := clitest.Build(bin); err != nil {
		b.Fatal(err)
	}
	keyDir := filepath.Join(b.TempDir(), "keys")
	for range b.N {
		availBefore := memAvailable(b)
		var locals []*localProc
		for range procs {
			l := startLocalProc(b, bin, keyDir)
			defer l.stop(b)
			locals = append(locals, l)
		}
		out, err := exec.Command(bin, "token", "mint", "--key-dir", keyDir, "--user", "idle", "--tenant", "idle", "--ttl", "2h").Output()
		if err != nil {
			b.Fatalf("token mint: %v", err)
		}
		token := strings.TrimSpace(string(out))

		start := time.Now()
		var wg sync.WaitGroup
		swarms := make([]*lineProcess, procs)
		for i, l := range locals {
			n := total / procs
			if i < total%procs {
				n++
			}
			cmd := exec.Command(swarm, "-url", l.WebSocketURL, "-token", token, "-n", strconv.Itoa(n), "-concurrency", "32")
			cmd.Stderr = os.Stderr
			swarms[i] = startLines(b, cmd, false)
			wg.Add(1)
			go func(p *lineProcess) {
				defer wg.Done()
				select {
				case l, ok := <-p.Lines:
					if !ok || !strings.HasPrefix(l, "CONNECTED ") {
						b.Errorf("swarm: %q", l)
					}
				case <-time.After(20 * time.Minute):
					b.Error("swarm did not connect within 20 minutes")
				}
			}(swarms[i])
		}
		wg.Wait()
		connectSecs := time.Since(start).Seconds()
		if b.Failed() {
			b.FailNow()
		}
		time.Sleep(2 * time.Second) // let the connects' garbage be collected
		var active int64
		var rss float64
		for _, l := range locals {
			active += l.activeConnections(b)
			rss += l.rssBytes(b)
		}
		availAfter := memAvailable(b)
		b.Logf("%d connections on %d gateways in %.0f s; gateways' RSS %.0f MB (%.0f B/conn); MemAvailable fell %.0f MB",
			active, procs, connectSecs, rss/1e6, rss/float64(active), (availBefore-availAfter)/1e6)
		b.ReportMetric(float64(active), "connections")
		b.ReportMetric(float64(procs), "gateway-processes")
		b.ReportMetric(rss/1e6, "gateway-RSS-MB")
		b.ReportMetric(rss/float64(active), "gateway-RSS-B/conn")
		b.ReportMetric((availBefore-availAfter)/1e6, "machine-MemAvailable-drop-MB")
		b.ReportMetric(float64(active)/connectSecs, "connects/s")
		if active != int64(total) {
			b.Errorf("%d active connections, want %d", active, total)
			for i, l := range locals {
				b.Logf("gateway %d: %+v", i, l.metrics(b))
			}
		}
		// The clients leave one swarm at a time; each gateway's $disconnect
		// writes (two per client) queue on its embedded DynamoDB, and any
		// that overran the 29 s integration timeout are counted.
		var timeouts int64
		leave := time.Now()
		for i, s := range swarms {
			s.Stop()
			timeouts += locals[i].drained(b)
		}
		b.Logf("all clients left and every gateway ran its $disconnects in %.0f s; %d $disconnect integrations timed out",
			time.Since(leave).Seconds(), timeouts)
		b.ReportMetric(float64(timeouts), "disconnect-timeouts")
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// localProc is a `streamer local` process.
type localProc struct {
	cmd          *exec.Cmd
	WebSocketURL string `json:"websocket_url"`
	MetricsURL   string `json:"metrics_url"`
}

func startLocalProc(b *testing.B, bin, keyDir string) *localProc {
	b.Helper()
	cmd := exec.Command(bin, "local", "--listen", "127.0.0.1:0", "--key-dir", keyDir, "-o", "json")
	// Its warnings (a failed upgrade, a failing integration) are the
	// benchmark's diagnostics.
	cmd.Stderr = &prefixWriter{prefix: "streamer local: ", w: os.Stderr}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	l := &localProc{cmd: cmd}
	if err := json.NewDecoder(stdout).Decode(l); err != nil || l.WebSocketURL == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b.Fatalf("streamer local startup block: %v", err)
	}
	return l
}

type localMetrics struct {
	Active              int64 `json:"active_connections"`
	Disconnects         int64 `json:"disconnects_total"`
	Connects            int64 `json:"connects_total"`
	Rejections          int64 `json:"connect_rejections_total"`
	IntegrationErrors   int64 `json:"integration_errors_total"`
	IntegrationTimeouts int64 `json:"integration_timeouts_total"`
	MessagesIn          int64 `json:"messages_in_total"`
}

func (l *localProc) metrics(b *testing.B) localMetrics {
	resp, err := http.Get(l.MetricsURL)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var m localMetrics
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		b.Fatal(err)
	}
	return m
}

func (l *localProc) activeConnections(b *testing.B) int64 { return l.metrics(b).Active }

// drained waits until every client of the gateway left and the $disconnect
// integrations had their time (the 29 s timeout), and returns how many
// timed out.
func (l *localProc) drained(b *testing.B) int64 {
	deadline := time.Now().Add(5 * time.Minute)
	for m := l.metrics(b); m.Active > 0 || m.Disconnects < m.Connects; m = l.metrics(b) {
		if time.Now().After(deadline) {
			b.Fatalf("gateway still holds %d connections 5 minutes after its clients left", m.Active)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(30 * time.Second) // the last $disconnects finish or time out
	return l.metrics(b).IntegrationTimeouts
}

// rssBytes is the process's resident set (VmRSS in /proc/PID/status).
func (l *localProc) rssBytes(b *testing.B) float64 {
	return procKB(b, fmt.Sprintf("/proc/%d/status", l.cmd.Process.Pid), "VmRSS:") * 1024
}

func (l *localProc) stop(b *testing.B) {
	_ = l.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- l.cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	select {
	case <-done:
	case <-ctx.Done():
		_ = l.cmd.Process.Kill()
		<-done
		b.Error("streamer local did not exit within 2 minutes of SIGINT")
	}
}

func memAvailable(b *testing.B) float64 {
	return procKB(b, "/proc/meminfo", "MemAvailable:") * 1024
}

// procKB reads a "Name:   N kB" line of a /proc file.
func procKB(b *testing.B, path, name string) float64 {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, err := strconv.ParseFloat(f[0], 64)
				if err == nil {
					return v
				}
			}
		}
	}
	b.Fatalf("%s: no %s line", path, name)
	return 0
}

// prefixWriter prefixes each write (a child's log lines) so they can be
// told apart in the benchmark's output.
type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     sync.Mutex
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}
