package connection

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"

	"github.com/pay-theory/streamer/internal/latency"
)

// Benchmarks report figures with b.ReportMetric; nothing is asserted. Each
// one also measures a raw baseline in the same run: plain net/http POSTs of
// the same payload to the same server over the same kind of transport, no
// SDK, no signing, no store, so every figure also reads as a ratio.
//
//	go test -run '^$' -bench . -benchtime 2000x ./pkg/connection/

var benchPayload = []byte(`{"type":"bench","data":"` + string(bytes.Repeat([]byte("x"), 70)) + `"}`) // ~100 bytes

// benchServer answers every POST with 200 after delay (cut short when the
// client goes away).
func benchServer(b *testing.B, delay time.Duration) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchManager(b *testing.B, srv *httptest.Server, st Store, workers int) *Manager {
	api := NewManagementClient(srv.URL+"/bench", ClientOptions{})
	m, err := New(api, st, Config{Workers: workers, Logger: quietLogger(), FlushInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = m.Shutdown(context.Background())
		CloseIdleConnections(api)
	})
	return m
}

type rawClient struct {
	c    *http.Client
	tr   *http.Transport
	base string
}

func newRawClient(b *testing.B, srv *httptest.Server) *rawClient {
	tr := NewTransport(0)
	b.Cleanup(tr.CloseIdleConnections)
	return &rawClient{c: &http.Client{Transport: tr}, tr: tr, base: srv.URL + "/bench/@connections/"}
}

func (r *rawClient) post(id string) error {
	resp, err := r.c.Post(r.base+url.PathEscape(id), "application/json", bytes.NewReader(benchPayload))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// fanOut runs fn(i) for i in [0,n) on conc goroutines and returns the wall time.
func fanOut(n, conc int, fn func(i int)) time.Duration {
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func usec(d time.Duration) float64 { return float64(d) / 1e3 }
func msec(d time.Duration) float64 { return float64(d) / 1e6 }

// One Send at a time through the real SDK client (existence check on an
// in-memory store, signing, retry/breaker bookkeeping) to a loopback server.
func BenchmarkSend(b *testing.B) {
	srv := benchServer(b, 0)
	m := benchManager(b, srv, newMemStore("L0SM9cOFvHcCIhw="), 0)
	ctx := context.Background()
	_ = m.Send(ctx, "L0SM9cOFvHcCIhw=", benchPayload) // warm the connection
	m.m.latency = latency.Histogram{}
	b.ResetTimer()
	for range b.N {
		if err := m.Send(ctx, "L0SM9cOFvHcCIhw=", benchPayload); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	lat := m.Metrics().Latency

	raw := newRawClient(b, srv)
	_ = raw.post("L0SM9cOFvHcCIhw=")
	var rh latency.Histogram
	for range b.N {
		t0 := time.Now()
		if err := raw.post("L0SM9cOFvHcCIhw="); err != nil {
			b.Fatal(err)
		}
		rh.Record(time.Since(t0))
	}
	rl := rh.Snapshot()
	b.ReportMetric(usec(lat.P50), "p50-µs")
	b.ReportMetric(usec(lat.P99), "p99-µs")
	b.ReportMetric(usec(rl.P50), "raw-p50-µs")
	b.ReportMetric(usec(rl.P99), "raw-p99-µs")
	b.ReportMetric(float64(lat.P50)/float64(rl.P50), "p50-x-raw")
}

// Broadcast to 100 connections (existence check, 10 workers, outcomes).
func BenchmarkBroadcast100(b *testing.B) {
	srv := benchServer(b, 0)
	all := ids("b", 100)
	m := benchManager(b, srv, newMemStore(all...), 0)
	ctx := context.Background()
	_, _ = m.Broadcast(ctx, all, benchPayload)
	var h latency.Histogram
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		res, err := m.Broadcast(ctx, all, benchPayload)
		if err != nil || res.Sent != 100 {
			b.Fatalf("%v %+v", err, res)
		}
		h.Record(time.Since(t0))
	}
	b.StopTimer()
	raw := newRawClient(b, srv)
	var rh latency.Histogram
	for range b.N {
		rh.Record(fanOut(100, DefaultWorkers, func(i int) { _ = raw.post(all[i]) }))
	}
	s, r := h.Snapshot(), rh.Snapshot()
	b.ReportMetric(msec(s.P50), "p50-ms/broadcast")
	b.ReportMetric(msec(s.P99), "p99-ms/broadcast")
	b.ReportMetric(msec(r.P50), "raw-p50-ms/100")
	b.ReportMetric(float64(s.P50)/float64(r.P50), "p50-x-raw")
}

// 1000 goroutines calling Send at once: b.N sends in total.
func BenchmarkSendConcurrent1000(b *testing.B) {
	srv := benchServer(b, 0)
	all := ids("c", 1000)
	m := benchManager(b, srv, newMemStore(all...), 0)
	ctx := context.Background()
	var errs atomic.Int64
	b.ResetTimer()
	wall := fanOut(b.N, 1000, func(i int) {
		if err := m.Send(ctx, all[i%len(all)], benchPayload); err != nil {
			errs.Add(1)
		}
	})
	b.StopTimer()
	lat := m.Metrics().Latency
	raw := newRawClient(b, srv)
	var rh latency.Histogram
	var rawErrs atomic.Int64
	rawWall := fanOut(b.N, 1000, func(i int) {
		t0 := time.Now()
		if err := raw.post(all[i%len(all)]); err != nil {
			rawErrs.Add(1)
		}
		rh.Record(time.Since(t0))
	})
	rl := rh.Snapshot()
	tput, rawTput := float64(b.N)/wall.Seconds(), float64(b.N)/rawWall.Seconds()
	b.ReportMetric(tput, "msgs/s")
	b.ReportMetric(msec(lat.P99), "p99-ms")
	b.ReportMetric(float64(errs.Load()), "errors")
	b.ReportMetric(rawTput, "raw-msgs/s")
	b.ReportMetric(msec(rl.P99), "raw-p99-ms")
	b.ReportMetric(float64(rawErrs.Load()), "raw-errors")
	b.ReportMetric(tput/rawTput, "tput-x-raw")
}

// Broadcast to 1000 with the server adding 20 ms per request (like AWS):
// fixed limits of 10 and 100 in flight, and the adaptive default. ideal-ms
// is 1000 × 20 ms / the limit the broadcast ended at; the raw baseline
// holds the same number in flight.
func BenchmarkBroadcast1000Latency20ms(b *testing.B) {
	for _, tc := range []struct {
		name    string
		workers int
		fixed   bool
	}{{"fixed=10", 10, true}, {"fixed=100", 100, true}, {"adaptive", 0, false}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := benchServer(b, 20*time.Millisecond)
			all := ids("l", 1000)
			api := NewManagementClient(srv.URL+"/bench", ClientOptions{})
			m, err := New(api, newMemStore(all...), Config{Workers: tc.workers, Limit: LimitConfig{Fixed: tc.fixed}, Logger: quietLogger(), FlushInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = m.Shutdown(context.Background()); CloseIdleConnections(api) })
			ctx := context.Background()
			var h latency.Histogram
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				res, err := m.Broadcast(ctx, all, benchPayload)
				if err != nil || res.Sent != 1000 {
					b.Fatalf("%v %+v", err, res)
				}
				h.Record(time.Since(t0))
			}
			b.StopTimer()
			limit := m.Metrics().Limit.Limit
			raw := newRawClient(b, srv)
			var rh latency.Histogram
			for range b.N {
				rh.Record(fanOut(1000, limit, func(i int) { _ = raw.post(all[i]) }))
			}
			s, r := h.Snapshot(), rh.Snapshot()
			b.ReportMetric(msec(s.Mean), "ms/broadcast")
			b.ReportMetric(msec(r.Mean), "raw-ms/1000")
			b.ReportMetric(float64(s.Mean)/float64(r.Mean), "x-raw")
			b.ReportMetric(1000*20/float64(limit), "ideal-ms")
			b.ReportMetric(float64(limit), "limit")
			b.ReportMetric(1000/s.Mean.Seconds(), "msgs/s")
		})
	}
}

// BenchmarkHotPath: the Manager's cost per message against the AWS SDK's
// own PostToConnection called by the same number of goroutines (10 in
// flight, the Manager's limit fixed at 10), both through the SDK to the
// same loopback server, no store: what the Manager adds per target. It
// reports wall time and heap allocations per message for both and their
// ratio (x-sdk), for a 100-byte and a 32 KB message (where hashing the
// payload once per broadcast, not per request, shows).
func BenchmarkHotPath(b *testing.B) {
	for _, size := range []int{100, 32 << 10} {
		b.Run(fmt.Sprintf("payload=%dB", size), func(b *testing.B) { benchHotPath(b, bytes.Repeat([]byte("x"), size)) })
	}
}

func benchHotPath(b *testing.B, payload []byte) {
	const n, conc = 2000, 10
	srv := benchServer(b, 0)
	all := ids("h", n)
	api := NewManagementClient(srv.URL+"/bench", ClientOptions{})
	m, err := New(api, nil, Config{Workers: conc, Limit: LimitConfig{Fixed: true}, Logger: quietLogger(), FlushInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	sdk := NewManagementClient(srv.URL+"/bench", ClientOptions{})
	b.Cleanup(func() { _ = m.Shutdown(context.Background()); CloseIdleConnections(api); CloseIdleConnections(sdk) })
	ctx := context.Background()
	loop := func() {
		fanOut(n, conc, func(i int) {
			if _, err := sdk.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: &all[i], Data: payload}); err != nil {
				b.Error(err)
			}
		})
	}
	bcast := func() {
		if res, err := m.Broadcast(ctx, all, payload); err != nil || res.Sent != n {
			b.Fatalf("%v %+v", err, res.Failed)
		}
	}
	loop()
	bcast() // warm both: connections, pools
	var sdkTime, mgrTime time.Duration
	var sdkAllocs, mgrAllocs uint64
	measure := func(fn func(), d *time.Duration, allocs *uint64) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.Mallocs
		t0 := time.Now()
		fn()
		*d += time.Since(t0)
		runtime.ReadMemStats(&ms)
		*allocs += ms.Mallocs - before
	}
	b.ResetTimer()
	for range b.N { // interleaved, so both see the same machine
		measure(loop, &sdkTime, &sdkAllocs)
		measure(bcast, &mgrTime, &mgrAllocs)
	}
	b.StopTimer()
	per := float64(b.N * n)
	b.ReportMetric(float64(mgrTime.Nanoseconds())/per, "mgr-ns/msg")
	b.ReportMetric(float64(sdkTime.Nanoseconds())/per, "sdk-ns/msg")
	b.ReportMetric(float64(mgrTime)/float64(sdkTime), "x-sdk")
	b.ReportMetric(float64(mgrAllocs)/per, "mgr-allocs/msg")
	b.ReportMetric(float64(sdkAllocs)/per, "sdk-allocs/msg")
}
