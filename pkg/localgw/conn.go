package localgw

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

// Close codes and reasons the gateway sends and reports in $disconnect
// (disconnectStatusCode / disconnectReason). A client-initiated close reports
// the client's own code and reason.
const (
	closeNormal         = int(websocket.StatusNormalClosure) // DeleteConnection
	closeGoingAway      = int(websocket.StatusGoingAway)     // idle, max duration, shutdown
	closeUnsupported    = int(websocket.StatusUnsupportedData)
	closeTooBig         = int(websocket.StatusMessageTooBig)
	closeAbnormal       = int(websocket.StatusAbnormalClosure) // never sent on the wire
	reasonDeleted       = "Connection Closed Normally"
	reasonGoingAway     = "Going away"
	reasonBinary        = "Binary frames are not supported"
	reasonMessageTooBig = "Message too big"
	reasonFrameTooBig   = "Frame too big"
	reasonAbnormal      = "Connection Closed Abnormally"
	reasonWriteFailed   = "Write to client failed"
)

var (
	errGone       = errors.New("connection gone")
	errBufferFull = errors.New("client buffer full")
)

type conn struct {
	g       *Gateway
	info    connInfo
	ws      atomic.Pointer[websocket.Conn]
	raw     atomic.Pointer[net.Conn] // the hijacked TCP connection
	sniffer *frameSniffer
	ctx     context.Context // cancelled by terminate; bounds writes
	cancel  context.CancelFunc

	lastActiveMono atomic.Int64 // since g.started, for the idle timer
	lastActiveAt   atomic.Int64 // cfg.Now() unix nanos, for GetConnection

	qmu    sync.Mutex
	queue  [][]byte
	queued int // bytes in queue and in the write in progress
	notify chan struct{}

	closeOnce   sync.Once
	closing     chan struct{}
	closeCode   int
	closeReason string
	serverClose bool
	writerDone  chan struct{}

	timerMu   sync.Mutex
	idleTimer *time.Timer
	maxTimer  *time.Timer
}

func isWebSocketUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet &&
		headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (g *Gateway) isClosing() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closing
}

// serveWebSocket runs $connect, then upgrades and serves the connection on
// this goroutine until it closes and $disconnect has run.
func (g *Gateway) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !isWebSocketUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		writeJSON(w, http.StatusUpgradeRequired, map[string]string{
			"message": "Upgrade Required: connect with a WebSocket client, e.g. wscat -c ws://" + r.Host + "/" + g.cfg.Stage,
		})
		return
	}
	if g.isClosing() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "Service Unavailable: the gateway is shutting down"})
		return
	}
	now := g.cfg.Now()
	info := connInfo{
		id:          g.cfg.NewID(),
		connectedAt: now,
		sourceIP:    sourceIP(r),
		userAgent:   r.UserAgent(),
		domainName:  g.cfg.DomainName,
	}
	if info.domainName == "" {
		info.domainName = r.Host
	}

	var subprotocols []string
	if in := g.route(RouteConnect); in != nil {
		ctx, cancel := context.WithTimeout(r.Context(), g.cfg.IntegrationTimeout)
		resp, err := safeInvoke(ctx, in, g.connectEvent(info, r, now))
		cancel()
		if err != nil {
			g.metrics.rejections.Add(1)
			g.metrics.integrationErrors.Add(1)
			g.cfg.Logger.Error("localgw: $connect integration failed", "connectionId", info.id, "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "Internal server error"})
			return
		}
		status := resp.StatusCode
		if status == 0 {
			status = http.StatusOK // an unset status code is a success
		}
		if status < 200 || status > 299 {
			g.rejectUpgrade(w, status, resp)
			return
		}
		if p := headerValue(resp, "Sec-WebSocket-Protocol"); p != "" {
			subprotocols = []string{strings.TrimSpace(strings.Split(p, ",")[0])}
		}
	}

	c := &conn{
		g:          g,
		info:       info,
		sniffer:    newFrameSniffer(MaxFrameBytes),
		notify:     make(chan struct{}, 1),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(g.ctx)
	c.lastActiveMono.Store(int64(time.Since(g.started)))
	c.lastActiveAt.Store(now.UnixNano())

	// Registered (established) before the 101 is written, so a management
	// call made as soon as the client sees the upgrade finds it; messages
	// posted now wait in the queue until the writer starts.
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "Service Unavailable: the gateway is shutting down"})
		g.runDisconnect(info, closeGoingAway, reasonGoingAway)
		return
	}
	g.conns[info.id] = c
	g.connWG.Add(1)
	g.mu.Unlock()
	g.metrics.active.Add(1)
	g.metrics.connects.Add(1)
	g.cfg.Logger.Debug("localgw: connected", "connectionId", info.id, "sourceIp", info.sourceIP)

	sw := &sniffWriter{ResponseWriter: w, s: c.sniffer, onHijack: func(nc net.Conn) { c.raw.Store(&nc) }}
	ws, err := websocket.Accept(sw, r, &websocket.AcceptOptions{
		Subprotocols:       subprotocols,
		InsecureSkipVerify: true, // API Gateway does not check Origin
		OnPingReceived: func(context.Context, []byte) bool {
			c.touch()
			return true
		},
	})
	if err != nil {
		g.cfg.Logger.Warn("localgw: upgrade failed after $connect", "connectionId", info.id, "err", err)
		c.terminate(closeAbnormal, reasonAbnormal, false)
		close(c.writerDone)
		c.finish()
		return
	}
	// The 128 KB limit is enforced in readLoop, not by coder/websocket: its
	// limit closes the socket itself with its own reason text ("read limited
	// at N bytes"), and clients must see API Gateway's close, not ours.
	ws.SetReadLimit(-1)
	c.ws.Store(ws)
	go c.writeLoop()
	c.startTimers()
	c.readLoop()
	c.finish()
}

func headerValue(resp events.APIGatewayProxyResponse, key string) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	for k, vs := range resp.MultiValueHeaders {
		if strings.EqualFold(k, key) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// rejectUpgrade answers the upgrade request with $connect's status, headers
// and body, as API Gateway does.
func (g *Gateway) rejectUpgrade(w http.ResponseWriter, status int, resp events.APIGatewayProxyResponse) {
	g.metrics.rejections.Add(1)
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		g.metrics.authFailures.Add(1)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	body := proxyBody(resp)
	if len(body) == 0 {
		body, _ = json.Marshal(map[string]string{"message": http.StatusText(status)})
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (c *conn) touch() {
	c.lastActiveMono.Store(int64(time.Since(c.g.started)))
	c.lastActiveAt.Store(c.g.cfg.Now().UnixNano())
}

func (c *conn) startTimers() {
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	select {
	case <-c.closing:
		return
	default:
	}
	c.idleTimer = time.AfterFunc(c.g.cfg.IdleTimeout, c.checkIdle)
	c.maxTimer = time.AfterFunc(c.g.cfg.MaxDuration, func() {
		c.terminate(closeGoingAway, reasonGoingAway, true)
	})
}

func (c *conn) checkIdle() {
	idle := time.Since(c.g.started) - time.Duration(c.lastActiveMono.Load())
	if idle >= c.g.cfg.IdleTimeout {
		c.terminate(closeGoingAway, reasonGoingAway, true)
		return
	}
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if c.idleTimer != nil {
		c.idleTimer.Reset(c.g.cfg.IdleTimeout - idle)
	}
}

func (c *conn) stopTimers() {
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if c.idleTimer != nil {
		c.idleTimer.Stop()
		c.idleTimer = nil
	}
	if c.maxTimer != nil {
		c.maxTimer.Stop()
		c.maxTimer = nil
	}
}

// terminate ends the connection once: it leaves the registry at once (so the
// management API answers 410 from now on) and tells the writer to close the
// socket, with a close frame when the gateway initiated the close.
func (c *conn) terminate(code int, reason string, server bool) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeReason, c.serverClose = code, reason, server
		g := c.g
		g.mu.Lock()
		if g.conns[c.info.id] == c {
			delete(g.conns, c.info.id)
		}
		g.mu.Unlock()
		g.metrics.active.Add(-1)
		close(c.closing)
		c.stopTimers()
	})
}

// forceClose drops the socket without waiting for a close handshake
// (Shutdown's hard stop). It closes the TCP connection itself: a
// websocket.Conn already inside Close would otherwise keep waiting up to 5 s
// for a client that does not answer.
func (c *conn) forceClose() {
	c.terminate(closeGoingAway, reasonGoingAway, true)
	c.cancel()
	if nc := c.raw.Load(); nc != nil {
		_ = (*nc).Close()
	}
}

func (c *conn) isClosed() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// enqueue queues a text frame for the client without blocking: a full
// buffer is errBufferFull (429 LimitExceededException), a closed connection
// errGone (410).
func (c *conn) enqueue(data []byte) error {
	c.qmu.Lock()
	if c.isClosed() {
		c.qmu.Unlock()
		return errGone
	}
	if c.queued > 0 && c.queued+len(data) > c.g.cfg.OutboundBuffer {
		c.qmu.Unlock()
		return errBufferFull
	}
	c.queue = append(c.queue, data)
	c.queued += len(data)
	c.qmu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return nil
}

func (c *conn) dequeue() ([]byte, bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.queue) == 0 {
		return nil, false
	}
	m := c.queue[0]
	c.queue[0] = nil
	c.queue = c.queue[1:]
	if len(c.queue) == 0 {
		c.queue = nil // let a burst's backing array go
	}
	return m, true
}

func (c *conn) release(n int) {
	c.qmu.Lock()
	c.queued -= n
	c.qmu.Unlock()
}

// writeLoop is the only writer of data frames, so frames never interleave;
// a slow client only fills its own buffer.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	ws := c.ws.Load()
	for {
		select {
		case <-c.closing:
			c.closeSocket(ws)
			return
		case <-c.notify:
		}
		for {
			if c.isClosed() {
				break
			}
			m, ok := c.dequeue()
			if !ok {
				break
			}
			// Our own timer rather than a ctx deadline: it records why the
			// connection ends before coder/websocket drops the socket, so the
			// reader's error cannot claim the close first.
			ctx, cancel := context.WithCancel(c.ctx)
			timer := time.AfterFunc(c.g.cfg.WriteTimeout, func() {
				c.terminate(closeAbnormal, reasonWriteFailed, false)
				cancel()
			})
			err := ws.Write(ctx, websocket.MessageText, m)
			timer.Stop()
			cancel()
			c.release(len(m))
			if err != nil {
				c.terminate(closeAbnormal, reasonWriteFailed, false)
				break
			}
			c.g.metrics.msgsOut.Add(1)
		}
	}
}

func (c *conn) closeSocket(ws *websocket.Conn) {
	if c.serverClose {
		_ = ws.Close(websocket.StatusCode(c.closeCode), c.closeReason)
		return
	}
	_ = ws.CloseNow()
}

func (c *conn) readLoop() {
	ws := c.ws.Load()
	for {
		// Background, not c.ctx: cancelling a read's ctx makes coder/websocket
		// drop the connection without our close code. terminate ends reads by
		// closing the socket instead.
		typ, rd, err := ws.Reader(context.Background())
		if err != nil {
			c.readFailed(err)
			return
		}
		if typ == websocket.MessageBinary {
			c.terminate(closeUnsupported, reasonBinary, true)
			return
		}
		// Read at most one byte past the limit: enough to know it is over,
		// never buffering an unbounded message.
		data, err := io.ReadAll(io.LimitReader(rd, MaxMessageBytes+1))
		if err != nil {
			c.readFailed(err)
			return
		}
		if c.sniffer.oversize.Load() {
			c.terminate(closeTooBig, reasonFrameTooBig, true)
			return
		}
		if len(data) > MaxMessageBytes {
			c.terminate(closeTooBig, reasonMessageTooBig, true)
			return
		}
		c.touch()
		c.g.metrics.msgsIn.Add(1)
		c.dispatch(data)
	}
}

func (c *conn) readFailed(err error) {
	switch {
	case c.isClosed():
	case errors.Is(err, websocket.ErrMessageTooBig):
		c.terminate(closeTooBig, reasonMessageTooBig, true)
	case c.sniffer.oversize.Load():
		c.terminate(closeTooBig, reasonFrameTooBig, true)
	default:
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			c.terminate(int(ce.Code), ce.Reason, false)
			return
		}
		c.terminate(closeAbnormal, reasonAbnormal, false)
	}
}

// finish waits for the writer, runs $disconnect and releases the connection.
func (c *conn) finish() {
	<-c.writerDone
	c.cancel()
	c.g.runDisconnect(c.info, c.closeCode, c.closeReason)
	c.g.connWG.Done()
}

func (g *Gateway) runDisconnect(info connInfo, code int, reason string) {
	g.metrics.disconnects.Add(1)
	g.cfg.Logger.Debug("localgw: disconnected", "connectionId", info.id, "code", code, "reason", reason)
	in := g.route(RouteDisconnect)
	if in == nil {
		return
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.IntegrationTimeout)
	defer cancel()
	if _, err := safeInvoke(ctx, in, g.disconnectEvent(info, code, reason, g.cfg.Now())); err != nil {
		g.metrics.integrationErrors.Add(1)
		g.cfg.Logger.Error("localgw: $disconnect integration failed", "connectionId", info.id, "err", err)
	}
}

// selectRoute evaluates the route selection expression on a message body.
func (g *Gateway) selectRoute(body []byte) (string, Integration) {
	var v any
	if json.Unmarshal(body, &v) == nil {
		for _, field := range g.selPath {
			obj, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = obj[field]
		}
		if key, ok := v.(string); ok && key != "" && !strings.HasPrefix(key, "$") {
			if in := g.route(key); in != nil {
				return key, in
			}
		}
	}
	return RouteDefault, g.route(RouteDefault)
}

// dispatch routes one client message and queues the route response, or
// API Gateway's error frame when there is no route or the integration fails.
func (c *conn) dispatch(data []byte) {
	g := c.g
	key, in := g.selectRoute(data)
	if in == nil {
		c.sendError("Forbidden", newID())
		return
	}
	ev := g.messageEvent(c.info, key, string(data), g.cfg.Now())
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.IntegrationTimeout)
	resp, err := safeInvoke(ctx, in, ev)
	cancel()
	if err != nil {
		g.metrics.integrationErrors.Add(1)
		g.cfg.Logger.Error("localgw: route integration failed", "route", key, "connectionId", c.info.id, "err", err)
		c.sendError("Internal server error", ev.RequestContext.RequestID)
		return
	}
	if resp.Body == "" {
		return
	}
	body := proxyBody(resp)
	if err := c.enqueue(body); err != nil {
		g.cfg.Logger.Warn("localgw: route response dropped", "route", key, "connectionId", c.info.id, "err", err)
	}
}

// proxyBody is an integration response's body, base64-decoded when it says
// so (kept as is when that decoding fails).
func proxyBody(resp events.APIGatewayProxyResponse) []byte {
	if resp.IsBase64Encoded {
		if b, err := base64.StdEncoding.DecodeString(resp.Body); err == nil {
			return b
		}
	}
	return []byte(resp.Body)
}

// sendError queues API Gateway's error frame, byte for byte in its format:
// {"message": "Forbidden", "connectionId":"...", "requestId":"..."}.
func (c *conn) sendError(message, requestID string) {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	frame := `{"message": ` + q(message) + `, "connectionId":` + q(c.info.id) + `, "requestId":` + q(requestID) + `}`
	_ = c.enqueue([]byte(frame))
}
