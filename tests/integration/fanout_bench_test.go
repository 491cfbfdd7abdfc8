package integration_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/localstack"
)

// BenchmarkFanOut broadcasts to 1,000 and 10,000 real WebSocket clients held
// by a separate swarm process, through Manager -> AWS SDK -> local gateway
// @connections -> WebSocket frames, and reports the time until every client
// has the message and delivered messages per second, beside a raw loopback
// HTTP POST baseline (the same number of POSTs, the same concurrency, no SDK,
// no gateway) measured in the same run. It also reports connects per second
// (each through the real $connect handler and a DynamoDB-API write) and the
// gateway process's memory per idle connection (socket, buffers, goroutines
// and the in-memory store record).
func BenchmarkFanOut(b *testing.B) {
	swarm := buildSwarm(b)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { benchFanOut(b, swarm, n) })
	}
}

const fanOutWorkers = 100

func benchFanOut(b *testing.B, swarm string, n int) {
	ctx := context.Background()
	s, err := localstack.Start(ctx, localstack.Config{Listen: "127.0.0.1:0", KeyDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		_ = s.Close(cctx)
	}()
	tok, err := s.Mint(benchMint("fan-user", "fan-tenant"))
	if err != nil {
		b.Fatal(err)
	}

	before := heapAndStacks()
	proc, _, connectSecs := startSwarm(b, swarm, s.WebSocketURL, tok, n)
	defer proc.Stop()
	after := heapAndStacks()

	ids := tenantIDs(b, ctx, s, "fan-tenant", n)
	api := connection.NewManagementClient(s.ManagementEndpoint, connection.ClientOptions{})
	m, err := connection.New(api, s.Store, connection.Config{Workers: fanOutWorkers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = m.Shutdown(sctx)
	}()

	baseline := rawPOSTBaseline(b, n, fanOutWorkers)
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := m.Broadcast(ctx, ids, map[string]int{"seq": i})
		if err != nil || res.Sent != n {
			b.Fatalf("broadcast: %v %+v", err, res.Total)
		}
		if l := proc.Next(b, 5*time.Minute); l != "ALL "+strconv.Itoa(i) {
			b.Fatalf("swarm: %q", l)
		}
		total += time.Since(start)
	}
	b.StopTimer()
	per := total / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms-until-all")
	b.ReportMetric(float64(n)/per.Seconds(), "msgs/s")
	b.ReportMetric(float64(n)/baseline.Seconds(), "raw-POST-msgs/s")
	b.ReportMetric(per.Seconds()/baseline.Seconds(), "x-raw-POST")
	b.ReportMetric(float64(n)/connectSecs, "connects/s")
	if after > before {
		b.ReportMetric(float64(after-before)/float64(n), "gw-B/idle-conn")
	}
}

// rawPOSTBaseline times n plain HTTP POSTs of a small body to a loopback
// server with the given concurrency: the floor any @connections fan-out on
// this machine stands on.
func rawPOSTBaseline(b *testing.B, n, workers int) time.Duration {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: workers, MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	body := `{"seq":1}`
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				resp, err := client.Post(srv.URL+"/local/@connections/x", "application/json", strings.NewReader(body))
				if err != nil {
					b.Error(err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	return time.Since(start)
}

func heapAndStacks() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

func buildSwarm(b *testing.B) string {
	out := filepath.Join(b.TempDir(), "swarm")
	cmd := exec.Command("go", "build", "-o", out, "./swarm")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("build swarm: %v", err)
	}
	return out
}
