package localgw

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// isoMillis is the GetConnection timestamp format (ISO 8601, UTC, ms).
const isoMillis = "2006-01-02T15:04:05.000Z"

type identity struct {
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

type getConnectionResponse struct {
	ConnectedAt  string   `json:"connectedAt"`
	Identity     identity `json:"identity"`
	LastActiveAt string   `json:"lastActiveAt"`
}

// writeAPIError answers like the @connections API: status, x-amzn-ErrorType
// and a JSON body {"message": ...}; the AWS SDK maps it to its typed error.
func (g *Gateway) writeAPIError(w http.ResponseWriter, status int, errType, message string) {
	g.metrics.countError(errType)
	w.Header().Set("x-amzn-ErrorType", errType)
	writeJSON(w, status, map[string]string{"message": message})
}

func (g *Gateway) serveManagement(w http.ResponseWriter, r *http.Request, rawID string) {
	start := time.Now()
	defer func() {
		g.metrics.mgmtRequests.Add(1)
		g.metrics.mgmtLatency.Record(time.Since(start))
	}()
	w.Header().Set("x-amzn-RequestId", newRequestID())

	// A presence check, not a signature check: enough to catch a client that
	// forgot to sign, as API Gateway's 403 would.
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		g.writeAPIError(w, http.StatusForbidden, ErrTypeForbidden,
			"Missing Authentication Token: sign the request with SigV4 (any credentials work locally)")
		return
	}
	if throttled, f := g.faults.throttled(); throttled {
		g.writeAPIError(w, http.StatusTooManyRequests, ErrTypeLimitExceeded,
			fmt.Sprintf("Rate exceeded: over %g requests per second (burst %d); slow down and retry with backoff", f.ThrottleRate, int(throttleBurst(f))))
		return
	}
	id, err := url.PathUnescape(rawID)
	if err != nil {
		g.badID(w, rawID)
		return
	}
	if g.faults.active() {
		injected, err := g.faults.apply(r.Context())
		if err != nil {
			return // the caller went away during the injected latency
		}
		if injected != nil {
			g.metrics.faultsInjected.Add(1)
			g.writeAPIError(w, injected.status, injected.errType, injected.message)
			return
		}
	}

	switch r.Method {
	case http.MethodPost:
		data, err := io.ReadAll(io.LimitReader(r.Body, MaxMessageBytes+1))
		if err != nil {
			g.writeAPIError(w, http.StatusBadRequest, "BadRequestException", "could not read the request body: "+err.Error())
			return
		}
		if len(data) > MaxMessageBytes {
			g.writeAPIError(w, http.StatusRequestEntityTooLarge, ErrTypePayloadTooLarge,
				fmt.Sprintf("Request body exceeds the %d byte (128 KB) message limit", MaxMessageBytes))
			return
		}
		c := g.lookup(id)
		if c == nil {
			g.unknown(w, id)
			return
		}
		switch err := c.enqueue(data); {
		case errors.Is(err, errBufferFull):
			g.writeAPIError(w, http.StatusTooManyRequests, ErrTypeLimitExceeded,
				"the WebSocket client side buffer is full: the client is not reading fast enough; retry later")
		case err != nil:
			g.gone(w, id)
		default:
			w.WriteHeader(http.StatusOK)
		}
	case http.MethodGet:
		c := g.lookup(id)
		if c == nil {
			g.unknown(w, id)
			return
		}
		writeJSON(w, http.StatusOK, getConnectionResponse{
			ConnectedAt:  c.info.connectedAt.UTC().Format(isoMillis),
			Identity:     identity{SourceIP: c.info.sourceIP, UserAgent: c.info.userAgent},
			LastActiveAt: time.Unix(0, c.lastActiveAt.Load()).UTC().Format(isoMillis),
		})
	case http.MethodDelete:
		c := g.lookup(id)
		if c == nil {
			g.unknown(w, id)
			return
		}
		c.terminate(closeNormal, reasonDeleted, true)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{
			"message": r.Method + " is not an @connections operation; use POST (send), GET (info) or DELETE (disconnect)",
		})
	}
}

// unknown answers for an id with no connection: 400 when it cannot be a
// connection id at all (observed on AWS), else 410.
func (g *Gateway) unknown(w http.ResponseWriter, id string) {
	if !WellFormedID(id) {
		g.badID(w, id)
		return
	}
	g.gone(w, id)
}

func (g *Gateway) badID(w http.ResponseWriter, id string) {
	g.writeAPIError(w, http.StatusBadRequest, ErrTypeBadRequest, "Invalid connectionId: "+truncate(id, 128))
}

func (g *Gateway) gone(w http.ResponseWriter, id string) {
	g.writeAPIError(w, http.StatusGone, ErrTypeGone,
		fmt.Sprintf("connection %s is gone: unknown, closed, or not established yet", id))
}

func (g *Gateway) lookup(id string) *conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns[id]
}
