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
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
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
// CPU time says where the cycles go on a machine the three parties share:
// cli-cpu-ms (the CLI process, to exit), stack+swarm-cpu-ms (the gateway
// and its table, in this process, and the swarm), the same two until
// delivery (-delivered-ms), and loop-cpu-ms (the loop, the gateway and the
// swarm). STREAMER_BENCH_BEFORE=PATH also times an older streamer binary;
// STREAMER_BENCH_ARGS adds flags to this build's broadcast.
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
	proc, cmd, _ := startSwarm(b, swarm, s.WebSocketURL, tok, n)
	defer proc.Stop()
	// cpu is the CPU time used so far by this process (the gateway and
	// the table) and the swarm: with the CLI's own, it shows where a
	// broadcast's cycles go on a machine that all three share.
	cpu := func() time.Duration { return selfCPU() + procCPU(cmd.Process.Pid) }
	ids := tenantIDs(b, ctx, s, "cli-tenant", n)
	// STREAMER_BENCH_BEFORE names another streamer binary (an older build)
	// to time in the same run: before-ms and x-before (its time over this
	// build's).
	before := os.Getenv("STREAMER_BENCH_BEFORE")
	// STREAMER_BENCH_ARGS adds flags to this build's broadcast (for
	// example "--fixed-concurrency 256"), to compare settings.
	extra := strings.Fields(os.Getenv("STREAMER_BENCH_ARGS"))
	sdk := connection.NewManagementClient(s.ManagementEndpoint, connection.ClientOptions{})
	defer connection.CloseIdleConnections(sdk)

	seq := 0
	type stats struct{ dups, dropped, got int }
	// statsOf asks the swarm for duplicates so far, dropped clients and
	// how many clients have seq.
	statsOf := func(b *testing.B, seq int) stats {
		fmt.Fprintf(proc.Stdin, "STATS %d\n", seq)
		for {
			var st stats
			if _, err := fmt.Sscanf(proc.Next(b, time.Minute), "STATS dups=%d dropped=%d got=%d", &st.dups, &st.dropped, &st.got); err == nil {
				return st
			}
		}
	}
	// await waits until every client has seq, or until the sender is done
	// (done closes) and 10 s more have passed: then it reports how many
	// clients never got it, so a run that loses messages says so instead
	// of hanging.
	await := func(b *testing.B, seq int, done <-chan struct{}) (lost int) {
		want := "ALL " + strconv.Itoa(seq)
		var grace <-chan time.Time
		for {
			select {
			case l, ok := <-proc.Lines:
				if !ok {
					b.Fatal("swarm exited")
				}
				if l == want {
					return 0
				}
			case <-done:
				done, grace = nil, time.After(10*time.Second)
			case <-grace:
				st := statsOf(b, seq)
				if st.dropped > 0 {
					b.Fatalf("%d swarm clients dropped their connection", st.dropped)
				}
				return n - st.got
			case <-time.After(5 * time.Minute):
				b.Fatalf("seq %d: no delivery for 5 minutes", seq)
			}
		}
	}
	env := append(os.Environ(), "STREAMER_KEY_DIR="+filepath.Join(dir, "keys"), "NO_COLOR=1")
	// cli returns the time until every client has the message and until
	// the process exits (which adds the messages_sent bookkeeping: one
	// conditional UpdateItem per connection, after delivery), and how many
	// clients never got it (then delivered is the time to exit). A failed
	// run of this build is fatal; an older build's (before) is reported.
	var cliToDelivery, otherToDelivery time.Duration // of the last cli run
	cli := func(b *testing.B, bin string, mustSucceed bool) (delivered, exited, cliCPU, otherCPU time.Duration, lost int) {
		seq++
		cpu0 := cpu()
		start := time.Now()
		args := []string{"broadcast", "--tenant", "cli-tenant", fmt.Sprintf(`{"seq":%d}`, seq), "-o", "json",
			"--endpoint", s.ManagementEndpoint, "--dynamodb-endpoint", s.DynamoDBEndpoint, "--table", s.Table}
		if mustSucceed {
			args = append(args, extra...)
		}
		c := exec.Command(bin, args...)
		c.Env = env
		var out, errOut bytes.Buffer
		c.Stdout, c.Stderr = &out, &errOut
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		var werr error
		go func() {
			werr = c.Wait()
			exited = time.Since(start)
			close(done)
		}()
		lost = await(b, seq, done)
		delivered = time.Since(start)
		// The CPU spent until every client had the message: the exit's
		// messages_sent writes come after.
		cliToDelivery, otherToDelivery = procCPU(c.Process.Pid), cpu()-cpu0
		<-done
		otherCPU = cpu() - cpu0
		if c.ProcessState != nil {
			cliCPU = c.ProcessState.UserTime() + c.ProcessState.SystemTime()
		}
		if lost > 0 {
			delivered = exited
		}
		if !mustSucceed {
			return delivered, exited, cliCPU, otherCPU, lost
		}
		if werr != nil {
			b.Fatalf("streamer broadcast: %v\n%s%s", werr, out.String(), errOut.String())
		}
		var sum struct{ Total, Sent int }
		if err := json.Unmarshal(out.Bytes(), &sum); err != nil || sum.Sent != n || sum.Total != n || lost > 0 {
			b.Fatalf("summary %s (%v); %d clients never got the message", out.String(), err, lost)
		}
		return delivered, exited, cliCPU, otherCPU, lost
	}
	loop := func(b *testing.B) (time.Duration, time.Duration) {
		seq++
		data := []byte(fmt.Sprintf(`{"seq":%d}`, seq))
		cpu0 := cpu()
		start := time.Now()
		done := make(chan struct{})
		fanOutIDs(ids, 10, func(id string) {
			if _, err := sdk.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: &id, Data: data}); err != nil {
				b.Errorf("sdk loop: %v", err)
			}
		})
		close(done)
		if lost := await(b, seq, done); lost > 0 {
			b.Fatalf("sdk loop: %d clients never got the message", lost)
		}
		return time.Since(start), cpu() - cpu0
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
			var cliT, exitT, loopT, cliCPU, otherCPU, loopCPU, cliDel, otherDel time.Duration
			dupsT := 0 // this build's duplicates
			var beforeT time.Duration
			beforeLost := 0
			for range b.N {
				d0 := statsOf(b, 0).dups
				d, e, cc, oc, _ := cli(b, bin, true)
				dupsT += statsOf(b, 0).dups - d0
				cliT += d
				exitT += e
				cliCPU += cc
				otherCPU += oc
				cliDel += cliToDelivery
				otherDel += otherToDelivery
				if r.rate == 0 {
					lt, lc := loop(b)
					loopT += lt
					loopCPU += lc
				}
				if before != "" {
					d, _, _, _, lost := cli(b, before, false)
					beforeT += d
					beforeLost += lost
				}
			}
			if before != "" {
				bp := beforeT / time.Duration(b.N)
				b.ReportMetric(msec(bp), "before-ms")
				b.ReportMetric(bp.Seconds()/(cliT/time.Duration(b.N)).Seconds(), "x-before")
				b.ReportMetric(float64(beforeLost), "before-lost")
			}
			per := cliT / time.Duration(b.N)
			b.ReportMetric(msec(per), "cli-ms")
			b.ReportMetric(msec(exitT/time.Duration(b.N)), "cli-exit-ms")
			b.ReportMetric(float64(n)/per.Seconds(), "cli-msgs/s")
			b.ReportMetric(msec(cliCPU/time.Duration(b.N)), "cli-cpu-ms")
			b.ReportMetric(msec(otherCPU/time.Duration(b.N)), "stack+swarm-cpu-ms")
			b.ReportMetric(msec(cliDel/time.Duration(b.N)), "cli-cpu-delivered-ms")
			b.ReportMetric(msec(otherDel/time.Duration(b.N)), "stack+swarm-cpu-delivered-ms")
			if r.rate == 0 {
				lp := loopT / time.Duration(b.N)
				b.ReportMetric(msec(lp), "loop-ms")
				b.ReportMetric(msec(loopCPU/time.Duration(b.N)), "loop-cpu-ms")
				b.ReportMetric(lp.Seconds()/per.Seconds(), "x-loop")
			}
			if r.latency > 0 {
				ideal := time.Duration(n) * r.latency / connection.DefaultMaxInFlight
				b.ReportMetric(msec(ideal), "ideal-ms")
				b.ReportMetric(per.Seconds()/ideal.Seconds(), "x-ideal")
			}
			if r.rate > 0 {
				b.ReportMetric(per.Seconds()/(float64(n)/r.rate), "x-N/rate")
				d := dupsT
				b.ReportMetric(float64(d), "dups")
				b.ReportMetric(0, "lost") // cli fails the run on any loss
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

// selfCPU is this process's CPU time (user and system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is a child's CPU time so far from /proc/PID/stat (utime and
// stime, in clock ticks of 10 ms); 0 where /proc is missing.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields resume after ")".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
