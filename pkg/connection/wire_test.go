package connection

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// wireServer is a test endpoint that counts the connections it accepted.
type wireServer struct {
	srv   *httptest.Server
	conns atomic.Int64
}

func newWireServer(t *testing.T, tlsOn bool, h http.HandlerFunc, configure ...func(*http.Server)) *wireServer {
	t.Helper()
	s := &wireServer{}
	s.srv = httptest.NewUnstartedServer(h)
	for _, f := range configure {
		f(s.srv.Config)
	}
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	if tlsOn {
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	t.Cleanup(s.srv.Close)
	return s
}

// wireFor is a wire to s (trusting its certificate).
func wireFor(s *wireServer, maxConns int) *wire {
	u, _ := url.Parse(s.srv.URL)
	w := newWire(u.Scheme, u.Host, maxConns)
	if w.tls != nil {
		w.tls.RootCAs = s.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	}
	return w
}

func wirePost(ctx context.Context, w *wire, host, body string) (wireAnswer, error) {
	head, err := appendRequestHead(nil, "POST", "/test/@connections/abc%3D", host, http.Header{"Content-Type": {"application/octet-stream"}}, len(body))
	if err != nil {
		return wireAnswer{}, err
	}
	return w.do(ctx, append(head, body...))
}

// A request is framed as net/http frames it (the server reads the method,
// escaped path, Host, headers and body), and keep-alive connections carry
// one request after another, over TLS too.
func TestWireReusesKeepAliveConnections(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		var got []string
		var mu sync.Mutex
		s := newWireServer(t, tlsOn, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			got = append(got, r.Method+" "+r.URL.EscapedPath()+" "+r.Host+" "+r.Header.Get("Content-Type")+" "+string(b))
			mu.Unlock()
			w.Write([]byte(`{"ok":true}`))
		})
		w := wireFor(s, 4)
		for i := range 5 {
			a, err := wirePost(context.Background(), w, "api.test", "hi")
			if err != nil || a.status != 200 {
				t.Fatalf("tls=%v request %d: %+v, %v", tlsOn, i, a, err)
			}
		}
		if n := s.conns.Load(); n != 1 {
			t.Errorf("tls=%v: %d connections for 5 requests in a row, want 1", tlsOn, n)
		}
		if want := "POST /test/@connections/abc%3D api.test application/octet-stream hi"; got[0] != want || len(got) != 5 {
			t.Errorf("tls=%v: server saw %q, want 5 × %q", tlsOn, got, want)
		}
		w.closeIdle()
	}
}

// An answer that asks to close, or whose body is longer than is worth
// reading, is not reused; an error answer's body is kept up to 4 KB.
func TestWireClosesWhatItShouldNotReuse(t *testing.T) {
	s := newWireServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Content-Type") {
		case "close":
			w.Header().Set("Connection", "close")
		case "big":
			w.Write(make([]byte, wireMaxDrain+10))
		case "error":
			w.Header().Set("X-Amzn-Errortype", "GoneException:http://internal")
			w.WriteHeader(http.StatusGone)
			w.Write([]byte(`{"message":"` + strings.Repeat("x", 8<<10) + `"}`))
		}
	})
	w := wireFor(s, 4)
	defer w.closeIdle()
	for _, kind := range []string{"close", "big"} {
		before := s.conns.Load()
		for range 2 {
			head, _ := appendRequestHead(nil, "POST", "/x", "h", http.Header{"Content-Type": {kind}}, 0)
			if a, err := w.do(context.Background(), head); err != nil || a.status != 200 {
				t.Fatalf("%s: %+v %v", kind, a, err)
			}
		}
		if n := s.conns.Load() - before; n != 2 {
			t.Errorf("%s: %d connections for 2 requests, want 2 (none reused)", kind, n)
		}
	}
	head, _ := appendRequestHead(nil, "GET", "/x", "h", http.Header{"Content-Type": {"error"}}, -1)
	a, err := w.do(context.Background(), head)
	if err != nil || a.status != 410 || a.errType != "GoneException:http://internal" || len(a.body) != wireMaxErrorBody {
		t.Fatalf("error answer: status %d type %q body %d bytes, %v", a.status, a.errType, len(a.body), err)
	}
	if e := answerError(a.status, a.errType, a.body).(*apiError); e.code != "GoneException" {
		t.Errorf("code %q", e.code)
	}
}

// A connection the server closed while it sat idle is not used again:
// without the liveness check the next request would fail with EOF.
func TestWireSkipsAConnectionTheServerClosed(t *testing.T) {
	s := newWireServer(t, false, func(w http.ResponseWriter, r *http.Request) {}, func(srv *http.Server) { srv.IdleTimeout = 20 * time.Millisecond })
	w := wireFor(s, 4)
	defer w.closeIdle()
	w.checkAfter = 0
	for i := range 3 {
		if a, err := wirePost(context.Background(), w, "h", "x"); err != nil || a.status != 200 {
			t.Fatalf("request %d after the server closed the idle connection: %+v %v", i, a, err)
		}
		time.Sleep(100 * time.Millisecond) // the server closes it after 20 ms
	}
	if n := s.conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (each closed by the server while idle)", n)
	}
}

// A request whose write fails at once on a reused connection (nothing
// sent) goes out again on a new one.
func TestWireResendsWhatNeverLeft(t *testing.T) {
	s := newWireServer(t, false, func(w http.ResponseWriter, r *http.Request) {})
	w := wireFor(s, 4)
	defer w.closeIdle()
	w.checkAfter = time.Hour // no liveness check: the write finds out
	if _, err := wirePost(context.Background(), w, "h", "x"); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	_ = w.idle[0].nc.Close() // as if the connection had died under us
	w.mu.Unlock()
	if a, err := wirePost(context.Background(), w, "h", "x"); err != nil || a.status != 200 {
		t.Fatalf("after a dead idle connection: %+v %v", a, err)
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// Ending the context interrupts a request waiting on a slow answer at
// once, with the context's error, and the connection is not reused; a
// deadline bounds the I/O.
func TestWireHonoursTheContext(t *testing.T) {
	release := make(chan struct{})
	s := newWireServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	w := wireFor(s, 4)
	defer w.closeIdle()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := wirePost(ctx, w, "h", "x")
	if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Fatalf("cancelled request: %v after %v, want context.Canceled at once", err, time.Since(start))
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	if _, err := wirePost(dctx, w, "h", "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request past its deadline: %v, want context.DeadlineExceeded", err)
	}
	w.mu.Lock()
	idle := len(w.idle)
	w.mu.Unlock()
	if idle != 0 {
		t.Errorf("%d idle connections after interrupted requests, want 0", idle)
	}
}

// At most maxConns connections are open, however many callers there are;
// the others wait for one (and stop waiting when their context ends).
func TestWireBoundsItsConnections(t *testing.T) {
	var inHandler, peak atomic.Int64
	s := newWireServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		n := inHandler.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(10 * time.Millisecond)
		inHandler.Add(-1)
	})
	w := wireFor(s, 3)
	defer w.closeIdle()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := wirePost(context.Background(), w, "h", "x"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if c, p := s.conns.Load(), peak.Load(); c > 3 || p > 3 {
		t.Errorf("%d connections, %d requests at once; want at most 3", c, p)
	}
	for range 3 {
		w.tokens <- struct{}{} // every connection busy
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := wirePost(ctx, w, "h", "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for a connection: %v, want context.DeadlineExceeded", err)
	}
	for range 3 {
		<-w.tokens
	}
}

// A header value with a line break (a malformed session token, say) is
// refused before anything is sent: it would end the header early.
func TestWireRefusesAHeaderBreak(t *testing.T) {
	s := newWireServer(t, false, func(w http.ResponseWriter, r *http.Request) {})
	c := NewManagementClient(s.srv.URL+"/test", ClientOptions{Credentials: credentials.StaticCredentialsProvider{Value: aws.Credentials{
		AccessKeyID: "AKID", SecretAccessKey: "secret", SessionToken: "token\r\nX-Injected: 1"}}})
	defer CloseIdleConnections(c)
	if c.direct == nil || c.direct.wire == nil {
		t.Fatal("NewManagementClient did not use the wire for a plain endpoint")
	}
	err := c.direct.postDirect(context.Background(), "abc=", []byte("x"), emptySHA256)
	if err == nil || !strings.Contains(err.Error(), "invalid X-Amz-Security-Token header value") {
		t.Fatalf("err = %v", err)
	}
	if n := s.conns.Load(); n != 0 {
		t.Errorf("%d connections: the request went out", n)
	}
}

// The wire serves only endpoints reached directly: a proxy, a caller's
// own HTTPClient or an endpoint the direct path cannot address keep
// net/http.
func TestWireOnlyWithoutAProxy(t *testing.T) {
	via := func(p string) func(*http.Request) (*url.URL, error) {
		return func(*http.Request) (*url.URL, error) {
			if p == "" {
				return nil, nil
			}
			return url.Parse(p)
		}
	}
	if proxied("https://abc.execute-api.eu-west-1.amazonaws.com/prod", via("")) {
		t.Error("no proxy: proxied")
	}
	if !proxied("https://abc.execute-api.eu-west-1.amazonaws.com/prod", via("http://proxy:3128")) {
		t.Error("a proxy: not proxied")
	}
	if c := NewManagementClient("http://127.0.0.1:1/local", ClientOptions{HTTPClient: &http.Client{}}); c.direct == nil || c.direct.wire != nil {
		t.Error("a caller's HTTPClient: want the direct path over it, not the wire")
	}
	for _, ep := range []string{"https://abc.execute-api.eu-west-1.amazonaws.com/prod", "http://[::1]:4510/local", "http://localhost/local"} {
		c := NewManagementClient(ep, ClientOptions{})
		if c.direct == nil || c.direct.wire == nil {
			t.Errorf("%s: no wire", ep)
			continue
		}
		if want := map[string]string{
			"https://abc.execute-api.eu-west-1.amazonaws.com/prod": "abc.execute-api.eu-west-1.amazonaws.com:443",
			"http://[::1]:4510/local":                              "[::1]:4510", "http://localhost/local": "localhost:80",
		}[ep]; c.direct.wire.addr != want {
			t.Errorf("%s: dials %q, want %q", ep, c.direct.wire.addr, want)
		}
	}
	if c := NewManagementClient("https://abc.execute-api.eu-west-1.amazonaws.com/prod", ClientOptions{}); c.direct.wire.tls == nil ||
		c.direct.wire.tls.ServerName != "abc.execute-api.eu-west-1.amazonaws.com" {
		t.Error("https: want TLS with the host as server name")
	}
}

// A connection idle past wireIdleTimeout is closed when another is put
// back, not kept for good under a pool that only reuses its newest.
func TestWireClosesConnectionsIdleTooLong(t *testing.T) {
	s := newWireServer(t, false, func(w http.ResponseWriter, r *http.Request) {})
	w := wireFor(s, 4)
	defer w.closeIdle()
	for range 2 {
		if _, err := wirePost(context.Background(), w, "h", "x"); err != nil {
			t.Fatal(err)
		}
	}
	w.mu.Lock()
	if len(w.idle) != 1 {
		t.Fatalf("%d idle, want 1", len(w.idle))
	}
	old := w.idle[0]
	old.idleAt = old.idleAt.Add(-wireIdleTimeout) // as if idle that long
	w.mu.Unlock()
	fresh, err := w.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w.put(fresh)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.idle) != 1 || w.idle[0] != fresh {
		t.Fatalf("idle %d connections; want only the fresh one", len(w.idle))
	}
	if _, err := old.nc.Write([]byte("x")); err == nil {
		t.Error("the stale connection is still open")
	}
}
