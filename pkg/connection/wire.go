package connection

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// wire is the direct path's HTTP/1.1 client: a pool of keep-alive
// connections, each carrying one request at a time, written and read in
// the caller's goroutine. net/http's Transport hands every request to two
// goroutines per connection (a writer and a reader) and back over
// channels: at 256 in flight and 20 ms per request that cost about 85 µs
// of client CPU per request, against about 47 µs for the same request
// written and read in place (docs/decisions.md). The framing stays
// net/http's (http.ReadResponse) and TLS is crypto/tls. It serves only
// endpoints reached without a proxy; NewManagementClient keeps net/http
// for the others and for a caller's own HTTPClient.
type wire struct {
	addr   string      // host:port dialled
	tls    *tls.Config // nil: plain HTTP
	dialer net.Dialer
	// tokens bound the requests on connections: one per request, so at
	// most cap(tokens) connections are ever open (a new one is dialled
	// only when none is idle).
	tokens chan struct{}
	// checkAfter is wireCheckAfter (a test shortens or lengthens it).
	checkAfter time.Duration

	mu   sync.Mutex
	idle []*wireConn // the most recently used last
}

// wireConn is one keep-alive connection.
type wireConn struct {
	nc     net.Conn // the TLS connection, or raw
	raw    net.Conn // the TCP connection under it (the liveness check)
	br     *bufio.Reader
	idleAt time.Time
}

const (
	// wireIdleTimeout drops connections idle this long (net/http's
	// default transport's IdleConnTimeout).
	wireIdleTimeout = 90 * time.Second
	// wireCheckAfter: a connection idle longer than this is checked for a
	// close from the server before reuse (alive); a broadcast reuses its
	// connections within milliseconds and skips the system call.
	wireCheckAfter = time.Second
	// wireMaxDrain is the most of an answer's body read to keep its
	// connection; a longer one closes it.
	wireMaxDrain = 64 << 10
	// wireMaxErrorBody is the most of an error answer's body kept.
	wireMaxErrorBody = 4 << 10
)

// newWire is the client for scheme://host (host with or without a port);
// maxConns bounds its connections.
func newWire(scheme, host string, maxConns int) *wire {
	hostname, port, err := net.SplitHostPort(host)
	if err != nil {
		hostname, port = host, "80"
		if scheme == "https" {
			port = "443"
		}
		if len(hostname) > 1 && hostname[0] == '[' && hostname[len(hostname)-1] == ']' {
			hostname = hostname[1 : len(hostname)-1] // a bare IPv6 literal
		}
	}
	w := &wire{
		addr:       net.JoinHostPort(hostname, port),
		dialer:     net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		tokens:     make(chan struct{}, maxConns),
		checkAfter: wireCheckAfter,
	}
	if scheme == "https" {
		// A session cache makes each connection after the first resume
		// its TLS session (no certificate check, no key exchange), which
		// matters when the limit opens hundreds at once.
		w.tls = &tls.Config{ServerName: hostname, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12,
			ClientSessionCache: tls.NewLRUClientSessionCache(maxConns)}
	}
	return w
}

// wireAnswer is what the direct path reads of an answer.
type wireAnswer struct {
	status  int
	errType string // X-Amzn-Errortype
	body    []byte // up to wireMaxErrorBody, for error answers only
}

// do sends one request (req: the request line, the headers, the blank
// line and the body) and reads the answer, within ctx: its end (its
// deadline included) interrupts the I/O.
func (w *wire) do(ctx context.Context, req []byte) (wireAnswer, error) {
	select {
	case w.tokens <- struct{}{}:
	case <-ctx.Done():
		return wireAnswer{}, ctx.Err()
	}
	defer func() { <-w.tokens }()
	c, reused := w.get()
	if c == nil {
		var err error
		if c, err = w.dial(ctx); err != nil {
			return wireAnswer{}, err
		}
	}
	a, keep, wrote, err := c.roundTrip(ctx, req)
	if err != nil && reused && !wrote && ctx.Err() == nil {
		// The server closed the idle connection as the request went out
		// and none of it was sent: send it once more on a new one, as
		// net/http does.
		_ = c.nc.Close()
		if c, err = w.dial(ctx); err != nil {
			return wireAnswer{}, err
		}
		a, keep, _, err = c.roundTrip(ctx, req)
	}
	if !keep {
		_ = c.nc.Close()
		return a, err
	}
	w.put(c)
	return a, nil
}

// get takes the most recently used idle connection that is still fit
// for a request; nil when there is none.
func (w *wire) get() (*wireConn, bool) {
	now := time.Now()
	for {
		w.mu.Lock()
		n := len(w.idle)
		if n == 0 {
			w.mu.Unlock()
			return nil, false
		}
		c := w.idle[n-1]
		w.idle[n-1] = nil
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		idle := now.Sub(c.idleAt)
		if idle < w.checkAfter || (idle < wireIdleTimeout && alive(c.raw)) {
			return c, true
		}
		_ = c.nc.Close()
	}
}

// put returns c to the pool and closes the connections idle past
// wireIdleTimeout (the oldest come first: a busy pool keeps reusing its
// newest and would otherwise hold the rest open for good).
func (w *wire) put(c *wireConn) {
	c.idleAt = time.Now()
	var stale []*wireConn
	w.mu.Lock()
	for len(w.idle) > 0 && c.idleAt.Sub(w.idle[0].idleAt) >= wireIdleTimeout {
		stale = append(stale, w.idle[0])
		w.idle[0] = nil
		w.idle = w.idle[1:]
	}
	w.idle = append(w.idle, c)
	w.mu.Unlock()
	for _, s := range stale {
		_ = s.nc.Close()
	}
}

// closeIdle closes the idle connections.
func (w *wire) closeIdle() {
	w.mu.Lock()
	idle := w.idle
	w.idle = nil
	w.mu.Unlock()
	for _, c := range idle {
		_ = c.nc.Close()
	}
}

func (w *wire) dial(ctx context.Context) (*wireConn, error) {
	raw, err := w.dialer.DialContext(ctx, "tcp", w.addr)
	if err != nil {
		return nil, err
	}
	nc := raw
	if w.tls != nil {
		tc := tls.Client(raw, w.tls)
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second) // net/http's TLSHandshakeTimeout in NewTransport
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = raw.Close()
			return nil, err
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != "http/1.1" {
			_ = raw.Close()
			return nil, fmt.Errorf("the endpoint negotiated %q, not http/1.1", p)
		}
		nc = tc
	}
	return &wireConn{nc: nc, raw: raw, br: bufio.NewReaderSize(nc, 4<<10)}, nil
}

// longAgo is a deadline in the past: it interrupts blocked I/O at once.
var longAgo = time.Unix(1, 0)

// roundTrip writes the request and reads the answer. keep says whether the
// connection may carry another request; wrote whether any of the request
// may have reached the server.
func (c *wireConn) roundTrip(ctx context.Context, req []byte) (a wireAnswer, keep, wrote bool, err error) {
	// ctx's end (its deadline included) interrupts the I/O: the socket's
	// deadline moves to the past. Only then, so ctx.Err() is set whenever
	// the request fails for it (a socket deadline of its own could fire
	// first, and the error would read as the network's).
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(longAgo) })
	defer func() {
		if !stop() {
			// ctx ended while the request was out: the connection is
			// done. An answer read in full stands; a failure is ctx's.
			keep = false
			if err != nil {
				err = ctx.Err()
			}
		}
	}()
	// One write: the request is one buffer (a writev of head and body
	// would save copying the body, but the race detector sees no order
	// through writev, so every test's gateway would read as racing).
	if n, err := c.nc.Write(req); err != nil {
		return a, false, n > 0, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return a, false, true, err
	}
	a.status = resp.StatusCode
	if a.status < 200 || a.status > 299 {
		a.errType = resp.Header.Get("X-Amzn-Errortype")
		if a.body, err = io.ReadAll(io.LimitReader(resp.Body, wireMaxErrorBody)); err != nil {
			return a, false, true, nil // the answer is in; the connection is not
		}
	}
	// Keep the connection only when the whole body has been read and the
	// server did not ask to close it.
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, wireMaxDrain+1))
	return a, err == nil && n <= wireMaxDrain && !resp.Close, true, nil
}

// appendHeader appends "key: value\r\n", refusing a value that would end
// the header early (a credential with a line break, say), as net/http does.
func appendHeader(b []byte, key, value string) ([]byte, error) {
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return b, fmt.Errorf("connection: invalid %s header value: control character at byte %d", key, i)
		}
	}
	b = append(b, key...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...), nil
}

// appendRequestHead appends the request line and headers of a direct
// request: h holds the signed headers; contentLength < 0 means no body.
func appendRequestHead(b []byte, method, path, host string, h http.Header, contentLength int) ([]byte, error) {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\n"...)
	var err error
	if b, err = appendHeader(b, "Host", host); err != nil {
		return b, err
	}
	for k, vs := range h {
		for _, v := range vs {
			if b, err = appendHeader(b, k, v); err != nil {
				return b, err
			}
		}
	}
	if contentLength >= 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(contentLength), 10)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...), nil
}
