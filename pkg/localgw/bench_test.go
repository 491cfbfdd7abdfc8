package localgw_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
)

// runConcurrent makes n calls of fn spread over conc goroutines and returns
// the wall time.
func runConcurrent(b *testing.B, n, conc int, fn func() error) time.Duration {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := fn(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// rawBaseline is a plain net/http server on loopback that reads the body and
// answers 200: the physical floor for one POST on this machine.
func rawBaseline(b *testing.B) (url string, client *http.Client) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(l) }()
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	b.Cleanup(func() {
		_ = srv.Close()
		tr.CloseIdleConnections()
	})
	return "http://" + l.Addr().String() + "/", &http.Client{Transport: tr}
}

func rawPost(client *http.Client, url string, body []byte, auth string) error {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := client.Do(req)
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

// BenchmarkPostToConnection posts 100-byte messages to one connected client
// that drains them, three ways in the same run: the real SDK client through
// the gateway (ns/op), plain HTTP through the gateway (no SigV4 cost), and
// a plain loopback POST baseline. Reported, never asserted.
func BenchmarkPostToConnection(b *testing.B) {
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("c=%d", conc), func(b *testing.B) {
			s := localgwtest.Start(b, localgw.Config{OutboundBuffer: 64 << 20})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, _, err := websocket.Dial(ctx, s.WSURL, &websocket.DialOptions{HTTPClient: s.HTTPClient()})
			if err != nil {
				b.Fatal(err)
			}
			var received atomic.Int64
			drained := make(chan struct{})
			go func() {
				defer close(drained)
				for {
					if _, _, err := c.Read(ctx); err != nil {
						return
					}
					received.Add(1)
				}
			}()
			defer func() { _ = c.CloseNow(); <-drained }()
			ids := s.Gateway.ConnectionIDs()
			if len(ids) != 1 {
				b.Fatalf("active connections %v", ids)
			}
			id := ids[0]
			api := s.ManagementClient()
			payload := bytes.Repeat([]byte("m"), 100)
			mgmtURL := s.ManagementEndpoint + "/@connections/" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(id)
			const sig = "AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=0"
			gwHTTP := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
			defer gwHTTP.CloseIdleConnections()
			baseURL, baseClient := rawBaseline(b)

			n := b.N
			b.ResetTimer()
			sdk := runConcurrent(b, n, conc, func() error { return post(ctx, api, id, payload) })
			b.StopTimer()
			plain := runConcurrent(b, n, conc, func() error { return rawPost(gwHTTP, mgmtURL, payload, sig) })
			base := runConcurrent(b, n, conc, func() error { return rawPost(baseClient, baseURL, payload, "") })

			// Every post was delivered to the client.
			deadline := time.Now().Add(10 * time.Second)
			for received.Load() < int64(2*n) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if got := received.Load(); got != int64(2*n) {
				b.Fatalf("client received %d of %d messages", got, 2*n)
			}
			rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
			b.ReportMetric(rate(sdk), "sdk_posts/s")
			b.ReportMetric(rate(plain), "http_posts/s")
			b.ReportMetric(rate(base), "baseline_posts/s")
			b.ReportMetric(rate(plain)/rate(base), "http/baseline")
			b.ReportMetric(rate(sdk)/rate(base), "sdk/baseline")
			p := s.Gateway.Metrics().Management.LatencyMS
			b.ReportMetric(p.P50*1000, "gw_p50_µs")
			b.ReportMetric(p.P99*1000, "gw_p99_µs")
		})
	}
}
