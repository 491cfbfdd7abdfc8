// Command swarm holds many real WebSocket clients for the fan-out
// benchmarks, in its own process so the gateway's file descriptors and
// memory are measured apart from the clients'.
//
// Usage: swarm -url WS_URL -token TOKEN -n N [-concurrency C]
//
// It prints "CONNECTED n seconds" once every client is connected, then for
// every message sequence number k that all n clients have received it prints
// "ALL k". A client receiving the same k twice counts a duplicate; the line
// "STATS k" on stdin prints "STATS dups=D dropped=X got=G": duplicates so
// far, clients whose socket ended, and how many clients have k (so a run
// that lost messages says how many). It exits when stdin closes, closing
// every client.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

func main() {
	wsURL := flag.String("url", "", "WebSocket URL")
	token := flag.String("token", "", "token")
	n := flag.Int("n", 100, "clients")
	conc := flag.Int("concurrency", 64, "parallel connects")
	flag.Parse()
	if err := run(*wsURL, *token, *n, *conc); err != nil {
		fmt.Fprintln(os.Stderr, "swarm:", err)
		os.Exit(1)
	}
}

func run(wsURL, token string, n, conc int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u := wsURL + "?Authorization=" + url.QueryEscape(token)
	// One transport for every upgrade; the clients' sockets are hijacked
	// and independent of it.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}

	var (
		mu     sync.Mutex
		counts = map[int]int{}
		out    = bufio.NewWriter(os.Stdout)
	)
	conns := make([]*websocket.Conn, n)
	start := time.Now()
	sem := make(chan struct{}, conc)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, dcancel := context.WithTimeout(ctx, 60*time.Second)
			defer dcancel()
			c, _, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPClient: hc})
			if err != nil {
				errs <- err
				return
			}
			c.SetReadLimit(256 << 10)
			conns[i] = c
		}(i)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	fmt.Fprintf(out, "CONNECTED %d %f\n", n, time.Since(start).Seconds())
	out.Flush()

	var readers sync.WaitGroup
	var dropped, dups atomic.Int64
	for _, c := range conns {
		readers.Add(1)
		go func(c *websocket.Conn) {
			defer readers.Done()
			seen := map[int]bool{}
			for {
				_, data, err := c.Read(ctx)
				if err != nil {
					dropped.Add(1)
					return
				}
				var m struct {
					Seq int `json:"seq"`
				}
				if json.Unmarshal(data, &m) != nil {
					continue
				}
				if seen[m.Seq] {
					dups.Add(1)
					continue
				}
				seen[m.Seq] = true
				mu.Lock()
				counts[m.Seq]++
				if counts[m.Seq] == n {
					fmt.Fprintf(out, "ALL %d\n", m.Seq)
					out.Flush()
				}
				mu.Unlock()
			}
		}(c)
	}
	// Stay until the parent closes stdin, answering STATS.
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var k int
		if _, err := fmt.Sscanf(in.Text(), "STATS %d", &k); err == nil {
			mu.Lock()
			got := counts[k] // each client counts a sequence number once: at most n
			fmt.Fprintf(out, "STATS dups=%d dropped=%d got=%d\n", dups.Load(), dropped.Load(), got)
			out.Flush()
			mu.Unlock()
		}
	}
	for _, c := range conns {
		_ = c.CloseNow()
	}
	cancel()
	readers.Wait()
	return nil
}
