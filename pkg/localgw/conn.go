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

// API Gateway's error messages to clients (error frames and failed upgrades).
const (
	msgInternal = "Internal server error"
	msgTimedOut = "Endpoint request timed out" // observed
)

var (
	errGone       = errors.New("connection gone")
	errBufferFull = errors.New("client buffer full")
)

// Sizes of a connection's buffered reader and writer. coder/websocket keeps
// both for the connection's whole life, so they dominate an idle
// connection's memory at net/http's 4 KB each; frames are small (and large
// payloads bypass a bufio buffer), so 1 KB costs no more syscalls for the
// typical message.
const (
	connReadBuffer  = 1 << 10
	connWriteBuffer = 1 << 10
)

// conn is one established connection. It holds no goroutine of its own
// while idle but the one blocked reading from the client: writes run on a
// goroutine started only while messages are queued, and the idle and
// maximum-duration timeouts live in the gateway's deadline heap.
type conn struct {
	g       *Gateway
	info    connInfo
	sniffer frameSniffer

	lastActiveMono atomic.Int64 // since g.started, for the idle deadline
	lastActiveAt   atomic.Int64 // cfg.Now() unix nanos, for GetConnection

	idleDL, maxDL deadline // guarded by g.deadlines.mu

	mu          sync.Mutex
	ws          *websocket.Conn // nil until the upgrade completes
	raw         net.Conn        // the hijacked TCP connection (Shutdown's hard close)
	queue       [][]byte
	queued      int  // bytes in queue and in the write in progress
	writing     bool // a drain goroutine owns the writes
	closed      bool // terminate ran
	closeCode   int
	closeReason string
	serverClose bool
	closer      chan struct{} // closed when a gateway-initiated close handshake ends
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

// serveWebSocket runs $connect, upgrades, and hands the connection to a
// reader goroutine of its own, so this net/http goroutine (whose stack
// $connect grew) ends.
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
	if g.connectLimiter != nil && !g.connectLimiter.allow() {
		// API Gateway refuses connections beyond the account's new
		// connections per second before any integration runs.
		g.metrics.rejections.Add(1)
		g.metrics.connectsThrottled.Add(1)
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "Too Many Requests"})
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
	if in := g.Route(RouteConnect); in != nil {
		ev := g.connectEvent(info, r, now)
		resp, err := g.invoke(r.Context(), in, ev)
		if err != nil {
			g.metrics.rejections.Add(1)
			g.logIntegrationFailure(RouteConnect, ev, err)
			if errors.Is(err, ErrIntegrationTimeout) {
				writeJSON(w, http.StatusGatewayTimeout, map[string]string{"message": msgTimedOut})
				return
			}
			// Observed on AWS: a failing $connect fails the upgrade with
			// 502, not 500.
			writeJSON(w, http.StatusBadGateway, map[string]string{"message": msgInternal})
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

	c := &conn{g: g, info: info}
	c.sniffer.limit = MaxFrameBytes
	c.lastActiveMono.Store(g.mono())
	c.lastActiveAt.Store(now.UnixNano())

	// Registered (established) before the 101 is written, so a management
	// call made as soon as the client sees the upgrade finds it; messages
	// posted now wait in the queue until the upgrade completes.
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

	ws, err := websocket.Accept(&sniffWriter{ResponseWriter: w, c: c}, r, &websocket.AcceptOptions{
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
		c.finish()
		return
	}
	// The 128 KB limit is enforced in readLoop, not by coder/websocket: its
	// limit closes the socket itself with its own reason text ("read limited
	// at N bytes"), and clients must see API Gateway's close, not ours.
	ws.SetReadLimit(-1)
	c.start(ws)
	go c.run(ws)
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
	c.lastActiveMono.Store(c.g.mono())
	c.lastActiveAt.Store(c.g.cfg.Now().UnixNano())
}

// idleDeadline is when the connection times out if the client stays silent.
func (c *conn) idleDeadline() int64 {
	return c.lastActiveMono.Load() + int64(c.g.cfg.IdleTimeout)
}

// start hands the upgraded socket to the connection: it starts the idle and
// maximum-duration deadlines and writes what was queued during the upgrade,
// or closes at once when the connection was ended meanwhile
// (DeleteConnection, Shutdown).
func (c *conn) start(ws *websocket.Conn) {
	c.mu.Lock()
	c.ws = ws
	if c.closed {
		c.closeLocked(ws)
		return
	}
	g := c.g
	mono := g.mono()
	g.deadlines.add(c, mono+int64(g.cfg.IdleTimeout), mono+int64(g.cfg.MaxDuration))
	c.startDrainLocked()
	c.mu.Unlock()
}

// terminate ends the connection once: it leaves the registry at once (so the
// management API answers 410 from now on) and closes the socket, with a close
// frame when the gateway initiated the close.
func (c *conn) terminate(code int, reason string, server bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.closeCode, c.closeReason, c.serverClose = code, reason, server
	c.queue = nil
	g := c.g
	g.mu.Lock()
	if g.conns[c.info.id] == c {
		delete(g.conns, c.info.id)
	}
	g.mu.Unlock()
	g.metrics.active.Add(-1)
	g.deadlines.remove(c)
	if c.ws == nil { // the upgrade is in progress: start closes it
		c.mu.Unlock()
		return
	}
	c.closeLocked(c.ws)
}

// closeLocked closes the socket as terminate decided and unlocks c.mu. A
// gateway-initiated close runs the close handshake (which waits up to 5 s
// for the client's answer) on a goroutine of its own; finish waits for it.
func (c *conn) closeLocked(ws *websocket.Conn) {
	if !c.serverClose {
		c.mu.Unlock()
		_ = ws.CloseNow()
		return
	}
	done := make(chan struct{})
	c.closer = done
	code, reason := c.closeCode, c.closeReason
	c.mu.Unlock()
	go func() {
		defer close(done)
		_ = ws.Close(websocket.StatusCode(code), reason)
	}()
}

// forceClose drops the socket without waiting for a close handshake
// (Shutdown's hard stop). It closes the TCP connection itself: a
// websocket.Conn already inside Close would otherwise keep waiting up to 5 s
// for a client that does not answer.
func (c *conn) forceClose() {
	c.terminate(closeGoingAway, reasonGoingAway, true)
	c.mu.Lock()
	raw := c.raw
	c.mu.Unlock()
	if raw != nil {
		_ = raw.Close()
	}
}

// enqueue queues a text message for the client without blocking: a full
// buffer is errBufferFull (429 LimitExceededException), a closed connection
// errGone (410).
func (c *conn) enqueue(data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errGone
	}
	if c.queued > 0 && c.queued+len(data) > c.g.cfg.OutboundBuffer {
		return errBufferFull
	}
	c.queue = append(c.queue, data)
	c.queued += len(data)
	c.startDrainLocked()
	return nil
}

// startDrainLocked starts the writer when there is something to write and
// none runs. The connection's WaitGroup slot is held (it is not closed), so
// the Add is safe against Shutdown's Wait.
func (c *conn) startDrainLocked() {
	if c.writing || c.ws == nil || len(c.queue) == 0 {
		return
	}
	c.writing = true
	c.g.connWG.Add(1)
	go c.drain(c.ws)
}

// drain is the only writer of data messages while it runs, so messages
// never interleave; a slow client only fills its own buffer. It ends when
// the queue is empty.
func (c *conn) drain(ws *websocket.Conn) {
	defer c.g.connWG.Done()
	for {
		c.mu.Lock()
		if c.closed || len(c.queue) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		m := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		if len(c.queue) == 0 {
			c.queue = nil // let a burst's backing array go
		}
		c.mu.Unlock()

		err := c.write(ws, m)
		c.mu.Lock()
		c.queued -= len(m)
		c.mu.Unlock()
		if err != nil {
			c.terminate(closeAbnormal, reasonWriteFailed, false)
			continue // sees closed and ends
		}
		c.g.metrics.msgsOut.Add(1)
	}
}

// write sends one message, in frames of at most MaxFrameBytes as API
// Gateway does (its 32 KB frame quota applies to @connections messages
// too): a larger message goes out as a text frame and continuation frames,
// the last (empty) one with FIN, which every client library reassembles.
func (c *conn) write(ws *websocket.Conn, m []byte) error {
	// Our own timer rather than a ctx deadline: it records why the
	// connection ends before coder/websocket drops the socket, so the
	// reader's error cannot claim the close first.
	ctx, cancel := context.WithCancel(c.g.ctx)
	defer cancel()
	timer := time.AfterFunc(c.g.cfg.WriteTimeout, func() {
		c.terminate(closeAbnormal, reasonWriteFailed, false)
		cancel()
	})
	defer timer.Stop()
	if len(m) <= MaxFrameBytes {
		return ws.Write(ctx, websocket.MessageText, m)
	}
	w, err := ws.Writer(ctx, websocket.MessageText)
	if err != nil {
		return err
	}
	for len(m) > 0 {
		n := min(len(m), MaxFrameBytes)
		if _, err := w.Write(m[:n]); err != nil {
			return err
		}
		m = m[n:]
	}
	return w.Close()
}

// run reads the client until the connection ends, then finishes it.
func (c *conn) run(ws *websocket.Conn) {
	c.readLoop(ws)
	c.finish()
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *conn) readLoop(ws *websocket.Conn) {
	for {
		// Background, not a cancellable ctx: cancelling a read's ctx makes
		// coder/websocket drop the connection without our close code.
		// terminate ends reads by closing the socket instead.
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

// finish waits for the close handshake, runs $disconnect and releases the
// connection.
func (c *conn) finish() {
	c.mu.Lock()
	closer, code, reason := c.closer, c.closeCode, c.closeReason
	c.mu.Unlock()
	if closer != nil {
		<-closer
	}
	c.g.runDisconnect(c.info, code, reason)
	c.g.connWG.Done()
}

// runDisconnect runs the $disconnect integration, unless fault injection
// drops it (as AWS may: $disconnect is best-effort).
func (g *Gateway) runDisconnect(info connInfo, code int, reason string) {
	g.metrics.disconnects.Add(1)
	g.cfg.Logger.Debug("localgw: disconnected", "connectionId", info.id, "code", code, "reason", reason)
	in := g.Route(RouteDisconnect)
	if in == nil {
		return
	}
	if g.faults.dropDisconnect() {
		g.metrics.disconnectsDropped.Add(1)
		g.cfg.Logger.Debug("localgw: $disconnect dropped (fault injection)", "connectionId", info.id)
		return
	}
	ev := g.disconnectEvent(info, code, reason, g.cfg.Now())
	if _, err := g.invoke(g.ctx, in, ev); err != nil {
		g.logIntegrationFailure(RouteDisconnect, ev, err)
	}
}

// logIntegrationFailure says which route's integration failed for which
// request: the requestId is the one in the client's error frame and in the
// event the integration received (its own logs carry it), so one id ties
// the three together.
func (g *Gateway) logIntegrationFailure(route string, ev events.APIGatewayWebsocketProxyRequest, err error) {
	rc := ev.RequestContext
	if errors.Is(err, ErrIntegrationTimeout) {
		g.cfg.Logger.Error("localgw: route integration timed out", "route", route, "requestId", rc.RequestID,
			"connectionId", rc.ConnectionID, "timeout", g.cfg.IntegrationTimeout)
		return
	}
	g.cfg.Logger.Error("localgw: route integration failed", "route", route, "requestId", rc.RequestID,
		"connectionId", rc.ConnectionID, "err", err)
}

// selectRoute evaluates the route selection expression on a message body:
// the matching route, else $default (nil when neither exists). Keys that
// start with "$" never select a special route.
func (g *Gateway) selectRoute(body []byte) (string, Integration) {
	if key, ok := g.sel.eval(body); ok && key != "" && !strings.HasPrefix(key, "$") {
		if in := g.Route(key); in != nil {
			return key, in
		}
	}
	return RouteDefault, g.Route(RouteDefault)
}

// dispatch routes one client message. A two-way route's response body goes
// back to the client; a one-way route's is dropped, as on AWS. With no route
// or a failing integration the client gets API Gateway's error frame.
func (c *conn) dispatch(data []byte) {
	g := c.g
	key, in := g.selectRoute(data)
	if in == nil {
		c.sendError("Forbidden", newRequestID())
		return
	}
	ev := g.messageEvent(c.info, key, string(data), g.cfg.Now())
	resp, err := g.invoke(g.ctx, in, ev)
	if err != nil {
		g.logIntegrationFailure(key, ev, err)
		msg := msgInternal
		if errors.Is(err, ErrIntegrationTimeout) {
			msg = msgTimedOut
		}
		c.sendError(msg, ev.RequestContext.RequestID)
		return
	}
	if resp.Body == "" {
		return
	}
	if !IsTwoWay(in) {
		g.metrics.routeResponsesDropped.Add(1)
		g.cfg.Logger.Debug("localgw: response body dropped: one-way route (no route response)", "route", key, "connectionId", c.info.id)
		return
	}
	if err := c.enqueue(proxyBody(resp)); err != nil {
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
