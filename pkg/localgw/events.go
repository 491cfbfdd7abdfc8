package localgw

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// newID returns an id shaped like API Gateway's connection, request and
// message ids (observed: 15 characters of [A-Za-z0-9_-] then "=", e.g.
// "L0SM9cOFvHcCIhw=" or "dDa5Ab_-IAMCJcQ="): 11 random bytes in URL-safe
// base64. The "=" is why clients URL-encode ids in @connections paths.
func newID() string {
	var b [11]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.URLEncoding.EncodeToString(b[:])
}

// newRequestID is an id of the same shape for request and message ids,
// which label a request rather than guard anything: drawn from math/rand/v2
// (ChaCha8, per-thread state), not crypto/rand, whose getrandom system call
// per @connections request was a measurable share of the gateway's CPU.
func newRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], mrand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], mrand.Uint64())
	return base64.URLEncoding.EncodeToString(b[:11])
}

// WellFormedID reports whether id has the shape of an API Gateway
// connection id: 15 characters of the base64 alphabets then "=". Real ids
// use [A-Za-z0-9_-]; "+" and "/" (standard base64, which this gateway's
// ids used before) are accepted too, so a test's Config.NewID of that shape
// keeps getting 410 for a closed id.
func WellFormedID(id string) bool {
	if len(id) != 16 || id[15] != '=' {
		return false
	}
	for i := 0; i < 15; i++ {
		switch b := id[i]; {
		case b >= 'A' && b <= 'Z', b >= 'a' && b <= 'z', b >= '0' && b <= '9', b == '-', b == '_', b == '+', b == '/':
		default:
			return false
		}
	}
	return true
}

// requestTimeLayout is API Gateway's requestTime format.
const requestTimeLayout = "02/Jan/2006:15:04:05 -0700"

// connInfo is what the gateway knows about a connection for its events.
type connInfo struct {
	id          string
	connectedAt time.Time
	sourceIP    string
	userAgent   string
	domainName  string
}

func (g *Gateway) requestContext(ci connInfo, routeKey, eventType string, now time.Time) events.APIGatewayWebsocketProxyRequestContext {
	reqID := newRequestID()
	return events.APIGatewayWebsocketProxyRequestContext{
		RouteKey:          routeKey,
		EventType:         eventType,
		ExtendedRequestID: reqID,
		RequestTime:       now.UTC().Format(requestTimeLayout),
		MessageDirection:  "IN",
		Stage:             g.cfg.Stage,
		ConnectedAt:       ci.connectedAt.UnixMilli(),
		RequestTimeEpoch:  now.UnixMilli(),
		Identity:          events.APIGatewayRequestIdentity{SourceIP: ci.sourceIP, UserAgent: ci.userAgent},
		RequestID:         reqID,
		DomainName:        ci.domainName,
		ConnectionID:      ci.id,
		APIID:             g.cfg.APIID,
	}
}

// awsHeaderCase restores the spelling API Gateway uses for headers that Go's
// canonicalisation changes.
var awsHeaderCase = map[string]string{
	"Sec-Websocket-Key":        "Sec-WebSocket-Key",
	"Sec-Websocket-Version":    "Sec-WebSocket-Version",
	"Sec-Websocket-Extensions": "Sec-WebSocket-Extensions",
	"Sec-Websocket-Protocol":   "Sec-WebSocket-Protocol",
}

// connectEvent builds the $connect event from the upgrade request, with the
// headers API Gateway adds: X-Forwarded-Proto always (the gateway's own
// scheme, "http" on a plain listener), X-Forwarded-For, X-Forwarded-Port and
// X-Amzn-Trace-Id when the client did not send them.
func (g *Gateway) connectEvent(ci connInfo, r *http.Request, now time.Time) events.APIGatewayWebsocketProxyRequest {
	headers := map[string]string{}
	multi := map[string][]string{}
	for k, vs := range r.Header {
		if len(vs) == 0 || k == "Connection" || k == "Upgrade" { // hop-by-hop: API Gateway drops them
			continue
		}
		if aws, ok := awsHeaderCase[k]; ok {
			k = aws
		}
		headers[k] = vs[0]
		multi[k] = append([]string(nil), vs...)
	}
	setDefault := func(k, v string) {
		if _, ok := multi[k]; !ok {
			headers[k] = v
			multi[k] = []string{v}
		}
	}
	set := func(k, v string) {
		headers[k] = v
		multi[k] = []string{v}
	}
	set("Host", r.Host)
	// How the client reached the gateway is the gateway's to say (API
	// Gateway: always https), never the client's: the $connect handler
	// builds the connection's endpoint from it.
	set("X-Forwarded-Proto", scheme(r))
	setDefault("X-Forwarded-For", ci.sourceIP)
	setDefault("X-Amzn-Trace-Id", traceID(now))
	if _, port, err := net.SplitHostPort(localAddr(r)); err == nil {
		setDefault("X-Forwarded-Port", port)
	}
	ev := events.APIGatewayWebsocketProxyRequest{
		Headers:           headers,
		MultiValueHeaders: multi,
		RequestContext:    g.requestContext(ci, RouteConnect, "CONNECT", now),
	}
	if q := r.URL.Query(); len(q) > 0 {
		ev.QueryStringParameters = make(map[string]string, len(q))
		ev.MultiValueQueryStringParameters = make(map[string][]string, len(q))
		for k, vs := range q {
			// API Gateway's single-value map keeps the last value.
			ev.QueryStringParameters[k] = vs[len(vs)-1]
			ev.MultiValueQueryStringParameters[k] = vs
		}
	}
	return ev
}

func (g *Gateway) messageEvent(ci connInfo, routeKey, body string, now time.Time) events.APIGatewayWebsocketProxyRequest {
	rc := g.requestContext(ci, routeKey, "MESSAGE", now)
	rc.MessageID = newRequestID()
	return events.APIGatewayWebsocketProxyRequest{RequestContext: rc, Body: body}
}

// disconnectEvent mirrors AWS's: a few fixed headers, the close code and
// reason, no body.
func (g *Gateway) disconnectEvent(ci connInfo, code int, reason string, now time.Time) events.APIGatewayWebsocketProxyRequest {
	rc := g.requestContext(ci, RouteDisconnect, "DISCONNECT", now)
	rc.DisconnectStatusCode = int64(code)
	rc.DisconnectReason = &reason
	return events.APIGatewayWebsocketProxyRequest{
		Headers: map[string]string{
			"Host":            ci.domainName,
			"X-Forwarded-For": ci.sourceIP,
		},
		MultiValueHeaders: map[string][]string{
			"Host":            {ci.domainName},
			"X-Forwarded-For": {ci.sourceIP},
		},
		RequestContext: rc,
	}
}

// traceID returns an X-Ray trace header like API Gateway adds:
// Root=1-{epoch seconds, 8 hex}-{96 random bits, 24 hex}.
func traceID(now time.Time) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("Root=1-%08x-%x", now.Unix(), b)
}

// scheme is the scheme the client used: the gateway serves plain http
// unless it was given a TLS listener.
func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func localAddr(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a.String()
	}
	return ""
}
