package store_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pay-theory/streamer/pkg/store"
	"github.com/truora/minidyn/server"
)

// sizes records the last request and response body sizes seen by a handler,
// so the raw baseline moves the same bytes as the DynamoDB call.
type sizes struct{ req, resp atomic.Int64 }

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (s *sizes) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.req.Store(int64(len(body)))
		r.Body = io.NopCloser(bytes.NewReader(body))
		cw := &countingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		s.resp.Store(cw.n)
	})
}

// benchStore serves minidyn in-process on loopback, like dynamotest.Start,
// with body sizes recorded.
func benchStore(b *testing.B) (*store.Dynamo, *sizes) {
	b.Helper()
	sz := &sizes{}
	srv := httptest.NewServer(sz.wrap(server.NewServer()))
	b.Cleanup(srv.Close)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	b.Cleanup(tr.CloseIdleConnections)
	ctx := context.Background()
	client, err := store.NewDynamoClient(ctx, store.ClientConfig{Endpoint: srv.URL, HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		b.Fatal(err)
	}
	if err := store.EnsureTable(ctx, client, "bench"); err != nil {
		b.Fatal(err)
	}
	return store.New(client, store.Config{Table: "bench"}), sz
}

// rawBaseline measures a plain HTTP POST of reqBytes answered with respBytes
// on a loopback server in this process: the floor any HTTP store call pays.
func rawBaseline(b *testing.B, reqBytes, respBytes int64, n int) time.Duration {
	b.Helper()
	resp := bytes.Repeat([]byte("x"), int(respBytes))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = w.Write(resp)
	}))
	defer srv.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	body := bytes.Repeat([]byte("y"), int(reqBytes))
	post := func() {
		r, err := hc.Post(srv.URL, "application/x-amz-json-1.0", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	for range 50 { // warm the connection
		post()
	}
	start := time.Now()
	for range n {
		post()
	}
	return time.Since(start) / time.Duration(n)
}

func report(b *testing.B, elapsed time.Duration, sz *sizes) {
	b.Helper()
	per := elapsed / time.Duration(b.N)
	raw := rawBaseline(b, sz.req.Load(), sz.resp.Load(), min(max(b.N, 500), 5000))
	b.ReportMetric(float64(raw.Nanoseconds()), "raw-http-ns/op")
	b.ReportMetric(float64(per)/float64(raw), "x-raw-http")
	b.ReportMetric(float64(sz.req.Load()), "req-bytes")
	b.ReportMetric(float64(sz.resp.Load()), "resp-bytes")
}

func benchConn(i int) store.Connection {
	return store.Connection{
		ConnectionID: fmt.Sprintf("L0SM9cOFvH%06d=", i), UserID: "user-1", TenantID: "tenant-1",
		Endpoint: "https://abc.execute-api.us-east-1.amazonaws.com/prod", ConnectedAt: time.Now(),
		Metadata:    store.Metadata{UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", IPAddress: "203.0.113.7"},
		Permissions: []string{"read", "write"},
	}
}

func BenchmarkSave(b *testing.B) {
	s, sz := benchStore(b)
	ctx := context.Background()
	i := 0
	start := time.Now()
	for b.Loop() {
		if err := s.Save(ctx, benchConn(i%1000)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	report(b, time.Since(start), sz)
}

func BenchmarkGet(b *testing.B) {
	s, sz := benchStore(b)
	ctx := context.Background()
	if err := s.Save(ctx, benchConn(1)); err != nil {
		b.Fatal(err)
	}
	id := benchConn(1).ConnectionID
	start := time.Now()
	for b.Loop() {
		if _, err := s.Get(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	report(b, time.Since(start), sz)
}

func BenchmarkListPage100(b *testing.B) {
	s, sz := benchStore(b)
	ctx := context.Background()
	conns := make([]store.Connection, 100)
	for i := range conns {
		conns[i] = benchConn(i)
	}
	if err := s.SaveMany(ctx, conns); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for b.Loop() {
		p, err := s.List(ctx, store.ListQuery{TenantID: "tenant-1", PageSize: 100})
		if err != nil || len(p.Connections) != 100 {
			b.Fatalf("List = %d items, %v", len(p.Connections), err)
		}
	}
	report(b, time.Since(start), sz)
}
