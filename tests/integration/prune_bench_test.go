package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/store"
)

// BenchmarkPrune reports how fast `streamer conn prune` (the built binary,
// the whole process: start, listing, GetConnection per record through the
// adaptive limit, batch removals) reconciles 2,000 records, 10 of them
// held by real WebSocket clients, at 0 ms and 20 ms per GetConnection,
// beside a 10-goroutine AWS SDK GetConnection loop over the same ids in the
// same run (x-loop: prune's throughput over the loop's; the target read
// from it, not asserted, is ≥ 10 at 20 ms). The library's Reconcile alone
// (no process start) is reported too. Figures are printed, never asserted;
// the removals are checked, since a fast wrong prune is worth nothing.
func BenchmarkPrune(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "streamer")
	if err := clitest.Build(bin); err != nil {
		b.Fatal(err)
	}
	for _, lat := range []time.Duration{0, 20 * time.Millisecond} {
		b.Run(fmt.Sprintf("latency=%s", lat), func(b *testing.B) { benchPrune(b, bin, lat) })
	}
}

const (
	pruneBenchRecords = 2000
	pruneBenchLive    = 10
	pruneBenchLoop    = 10
)

func benchPrune(b *testing.B, bin string, latency time.Duration) {
	ctx := context.Background()
	s, err := localstack.Start(ctx, localstack.Config{Listen: "127.0.0.1:0", KeyDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = s.Close(cctx)
	}()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	for i := range pruneBenchLive {
		tok, err := s.Mint(auth.MintOptions{UserID: fmt.Sprintf("bench-live-%d", i), TenantID: "bench", TTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		c, resp, err := websocket.Dial(ctx, s.WebSocketURL+"?Authorization="+url.QueryEscape(tok), &websocket.DialOptions{HTTPClient: hc})
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
	}
	if err := s.Gateway.SetFaults(localgw.Faults{Latency: latency}); err != nil {
		b.Fatal(err)
	}
	zombies := make([]store.Connection, pruneBenchRecords-pruneBenchLive)
	old := time.Now().Add(-time.Hour)
	for i := range zombies {
		zombies[i] = store.Connection{ConnectionID: fmt.Sprintf("Bench%010d=", i), UserID: "gone", TenantID: "bench", ConnectedAt: old}
	}
	seed := func() []string {
		b.Helper()
		if err := s.Store.SaveMany(ctx, zombies); err != nil {
			b.Fatal(err)
		}
		var ids []string
		for c, err := range store.All(ctx, s.Store, store.ListQuery{TenantID: "bench", PageSize: store.MaxListPageSize}) {
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, c.ConnectionID)
		}
		if len(ids) != pruneBenchRecords {
			b.Fatalf("%d records seeded, want %d", len(ids), pruneBenchRecords)
		}
		return ids
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + b.TempDir(),
		"STREAMER_ENDPOINT=" + s.ManagementEndpoint, "AWS_ENDPOINT_URL_DYNAMODB=" + s.DynamoDBEndpoint}
	api := connection.NewManagementClient(s.ManagementEndpoint, connection.ClientOptions{})
	m, err := connection.New(api, s.Store, connection.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = m.Shutdown(ctx) }()

	var cli, lib, loop time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ids := seed()
		loop += getLoop(b, api, ids)
		b.StartTimer()
		cli += pruneProcess(b, bin, env)
		b.StopTimer()
		seed()
		lib += reconcileOnce(b, m, s.Store)
		b.StartTimer()
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 { return float64(pruneBenchRecords*b.N) / d.Seconds() }
	b.ReportMetric(rate(cli), "prune-records/s")
	b.ReportMetric(rate(lib), "reconcile-records/s")
	b.ReportMetric(rate(loop), "loop-records/s")
	b.ReportMetric(rate(cli)/rate(loop), "x-loop")
	b.ReportMetric(rate(lib)/rate(loop), "reconcile-x-loop")
}

// pruneProcess runs the built `streamer conn prune` once and checks it
// removed every zombie and kept the live records.
func pruneProcess(b *testing.B, bin string, env []string) time.Duration {
	b.Helper()
	cmd := exec.Command(bin, "conn", "prune", "--tenant", "bench", "--min-age", "0", "-o", "json")
	cmd.Env = env
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	var res struct {
		Checked, Live, Removed, Errors int
	}
	if jerr := json.Unmarshal(out, &res); err != nil || jerr != nil || res.Removed != pruneBenchRecords-pruneBenchLive || res.Live != pruneBenchLive {
		b.Fatalf("conn prune: %v %v %s", err, jerr, out)
	}
	return d
}

// reconcileOnce runs the library's Reconcile on the tenant and checks it.
func reconcileOnce(b *testing.B, m *connection.Manager, st store.Lister) time.Duration {
	b.Helper()
	start := time.Now()
	res, err := m.Reconcile(context.Background(), st, connection.ReconcileOptions{
		Query: store.ListQuery{TenantID: "bench", PageSize: store.MaxListPageSize}, MinAge: connection.ReconcileEveryRecord,
	})
	d := time.Since(start)
	if err != nil || res.Removed != pruneBenchRecords-pruneBenchLive || res.Live != pruneBenchLive {
		b.Fatalf("Reconcile: %+v %v", res, err)
	}
	return d
}

// getLoop is the baseline: 10 goroutines calling the SDK's GetConnection
// over ids, each id once.
func getLoop(b *testing.B, api connection.ManagementAPI, ids []string) time.Duration {
	b.Helper()
	next := make(chan string, len(ids))
	for _, id := range ids {
		next <- id
	}
	close(next)
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered := 0
	start := time.Now()
	for range pruneBenchLoop {
		wg.Go(func() {
			for id := range next {
				_, err := api.GetConnection(context.Background(), &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
				var gone *types.GoneException
				if err == nil || errors.As(err, &gone) {
					mu.Lock()
					answered++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if answered != len(ids) {
		b.Fatalf("the loop got %d answers for %d ids", answered, len(ids))
	}
	return d
}
