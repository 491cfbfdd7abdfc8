package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/store"
)

// BenchmarkBroadcastCLI is the fan-out yardstick: 2,000 real WebSocket
// clients of one tenant (the swarm process) on a local stack, reached by
// `streamer broadcast --tenant` (the built binary at default flags: process
// start, the listing and the sends) and, in the same run, by a loop of 10
// goroutines calling the AWS SDK's PostToConnection over the same ids. Each
// time runs until every client has the message (cli-exit-ms: until the
// process has also written the messages_sent counts). Regimes (the gateway's
// fault injection, as `streamer local --latency/--throttle` sets it):
//
//   - loopback: no added latency;
//   - latency=20ms: every @connections request waits 20 ms, as on AWS;
//     ideal-ms is N × 20 ms / 256 (the default most in flight);
//   - throttle=400: a 400 req/s token bucket (burst 200) answering 429
//     LimitExceededException; x-N/rate compares with N/400 s, and every
//     client must get the message exactly once (lost, dups).
//
// x-loop is the loop's time over the CLI's: above 1 the CLI is faster.
// STREAMER_BENCH_BEFORE=PATH also times an older streamer binary.
func BenchmarkBroadcastCLI(b *testing.B) {
	const n = 2000
	ctx := context.Background()
	dir := b.TempDir()
	bin := filepath.Join(dir, "streamer")
	if err := clitest.Build(bin); err != nil {
		b.Fatal(err)
	}
	swarm := buildSwarm(b)
	s, err := localstack.Start(ctx, localstack.Config{Listen: "127.0.0.1:0", KeyDir: filepath.Join(dir, "keys")})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		_ = s.Close(cctx)
	}()
	tok, err := s.Mint(benchMint("cli-user", "cli-tenant"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(swarm, "-url", s.WebSocketURL, "-token", tok, "-n", strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	proc := startLines(b, cmd, false)
	defer proc.Stop()
	next := func(timeout time.Duration) string {
		select {
		case l, ok := <-proc.Lines:
			if !ok {
				b.Fatal("swarm exited")
			}
			return l
		case <-time.After(timeout):
			b.Fatalf("swarm: nothing in %v", timeout)
		}
		return ""
	}
	if f := strings.Fields(next(5 * time.Minute)); len(f) != 3 || f[0] != "CONNECTED" {
		b.Fatalf("swarm: %v", f)
	}
	var ids []string
	for id, err := range storeIDs(ctx, s, store.ListQuery{TenantID: "cli-tenant"}) {
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	if len(ids) != n {
		b.Fatalf("store lists %d connections, want %d", len(ids), n)
	}
	// STREAMER_BENCH_BEFORE names another streamer binary (an older build)
	// to time in the same run: before-ms and x-before (its time over this
	// build's).
	before := os.Getenv("STREAMER_BENCH_BEFORE")
	sdk := connection.NewManagementClient(s.ManagementEndpoint, connection.ClientOptions{})
	defer connection.CloseIdleConnections(sdk)

	seq := 0
	// all waits for every client to have seq.
	all := func(seq int) {
		want := "ALL " + strconv.Itoa(seq)
		for {
			if l := next(2 * time.Minute); l == want {
				return
			}
		}
	}
	dups := func() int {
		fmt.Fprintln(proc.Stdin, "STATS")
		for {
			if l := next(time.Minute); strings.HasPrefix(l, "STATS dups=") {
				d, _ := strconv.Atoi(strings.TrimPrefix(l, "STATS dups="))
				return d
			}
		}
	}
	env := append(os.Environ(), "STREAMER_KEY_DIR="+filepath.Join(dir, "keys"), "NO_COLOR=1")
	// cli returns the time until every client has the message and until
	// the process exits (which adds the messages_sent bookkeeping: one
	// conditional UpdateItem per connection, after delivery).
	cli := func(bin string) (delivered, exited time.Duration) {
		seq++
		start := time.Now()
		c := exec.Command(bin, "broadcast", "--tenant", "cli-tenant", fmt.Sprintf(`{"seq":%d}`, seq), "-o", "json",
			"--endpoint", s.ManagementEndpoint, "--dynamodb-endpoint", s.DynamoDBEndpoint, "--table", s.Table)
		c.Env = env
		var out, errOut bytes.Buffer
		c.Stdout, c.Stderr = &out, &errOut
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		all(seq)
		delivered = time.Since(start)
		if err := c.Wait(); err != nil {
			b.Fatalf("streamer broadcast: %v\n%s%s", err, out.String(), errOut.String())
		}
		exited = time.Since(start)
		var sum struct{ Total, Sent int }
		if err := json.Unmarshal(out.Bytes(), &sum); err != nil || sum.Sent != n || sum.Total != n {
			b.Fatalf("summary %s (%v)", out.String(), err)
		}
		return delivered, exited
	}
	loop := func() time.Duration {
		seq++
		data := []byte(fmt.Sprintf(`{"seq":%d}`, seq))
		start := time.Now()
		fanOutIDs(ids, 10, func(id string) {
			if _, err := sdk.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: &id, Data: data}); err != nil {
				b.Errorf("sdk loop: %v", err)
			}
		})
		all(seq)
		return time.Since(start)
	}

	for _, r := range []struct {
		name    string
		latency time.Duration
		rate    float64
	}{{"loopback", 0, 0}, {"latency=20ms", 20 * time.Millisecond, 0}, {"throttle=400", 0, 400}} {
		b.Run(r.name, func(b *testing.B) {
			if err := s.Gateway.SetFaults(localgw.Faults{Latency: r.latency, ThrottleRate: r.rate, ThrottleBurst: int(r.rate / 2)}); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.Gateway.SetFaults(localgw.Faults{}) }()
			var cliT, exitT, loopT time.Duration
			dupsBefore := dups()
			var beforeT time.Duration
			for range b.N {
				d, e := cli(bin)
				cliT += d
				exitT += e
				if r.rate == 0 {
					loopT += loop()
				}
				if before != "" {
					d, _ := cli(before)
					beforeT += d
				}
			}
			if before != "" {
				bp := beforeT / time.Duration(b.N)
				b.ReportMetric(msec(bp), "before-ms")
				b.ReportMetric(bp.Seconds()/(cliT/time.Duration(b.N)).Seconds(), "x-before")
			}
			per := cliT / time.Duration(b.N)
			b.ReportMetric(msec(per), "cli-ms")
			b.ReportMetric(msec(exitT/time.Duration(b.N)), "cli-exit-ms")
			b.ReportMetric(float64(n)/per.Seconds(), "cli-msgs/s")
			if r.rate == 0 {
				lp := loopT / time.Duration(b.N)
				b.ReportMetric(msec(lp), "loop-ms")
				b.ReportMetric(lp.Seconds()/per.Seconds(), "x-loop")
			}
			if r.latency > 0 {
				ideal := time.Duration(n) * r.latency / connection.DefaultMaxInFlight
				b.ReportMetric(msec(ideal), "ideal-ms")
				b.ReportMetric(per.Seconds()/ideal.Seconds(), "x-ideal")
			}
			if r.rate > 0 {
				b.ReportMetric(per.Seconds()/(float64(n)/r.rate), "x-N/rate")
				d := dups() - dupsBefore
				b.ReportMetric(float64(d), "dups")
				b.ReportMetric(0, "lost") // every run waited for ALL: nothing lost
				if d != 0 {
					b.Errorf("%d duplicate deliveries under throttling", d)
				}
			}
		})
	}
}

// fanOutIDs calls fn for every id from conc goroutines.
func fanOutIDs(ids []string, conc int, fn func(string)) {
	ch := make(chan string)
	done := make(chan struct{})
	for range conc {
		go func() {
			for id := range ch {
				fn(id)
			}
			done <- struct{}{}
		}()
	}
	for _, id := range ids {
		ch <- id
	}
	close(ch)
	for range conc {
		<-done
	}
}

func msec(d time.Duration) float64 { return float64(d) / 1e6 }
