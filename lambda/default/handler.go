// Package defaultroute is the $default handler (Go cannot name a package
// "default"): every client message touches the connection record; a ping is
// answered with a pong and a whoami with the connection's own id, through
// the route response ($default is two-way). The Lambda entry point is
// ./bootstrap.
package defaultroute

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/store"
)

// RoutePing is the route key a ping arrives on when the API has a "ping"
// route; this stack deploys only $default, where pings arrive too.
const RoutePing = "ping"

// BodyInternal is the generic body of a failed message.
const BodyInternal = `{"message":"Internal server error"}`

// Store is the part of store.Store the handler uses.
type Store interface {
	Touch(ctx context.Context, connectionID string, at time.Time, received int64) error
}

// Metrics receives EMF metric sets (*observability.EMF).
type Metrics = observability.Emitter

// ErrMissingDependency is returned by New when a required dependency is nil.
var ErrMissingDependency = errors.New("defaultroute: missing dependency")

// Deps are the handler's collaborators.
type Deps struct {
	Store   Store        // required
	Logger  *slog.Logger // nil => discard
	Metrics Metrics      // nil => none
	Tracer  trace.Tracer // nil => no spans
	Now     func() time.Time
}

// Handler handles $default (and "ping").
type Handler struct {
	d       Deps
	invoked atomic.Bool
}

// New returns a Handler.
func New(d Deps) (*Handler, error) {
	if d.Store == nil {
		return nil, errors.Join(ErrMissingDependency, errors.New("defaultroute: Deps.Store is nil"))
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Handler{d: d}, nil
}

// Pong is the answer to a ping.
type Pong struct {
	Action string `json:"action"` // "pong"
	// Timestamp is the server time, RFC 3339 UTC with milliseconds.
	Timestamp string `json:"timestamp"`
}

// Handle touches the record (last_ping, messages_received+1), answers a
// ping with a pong and a whoami with a contract.Whoami (the id comes from
// the gateway's request context, so it is the asking connection's own).
// Other messages get 200 with an empty body, which the route response sends
// nowhere. A record that vanished (ErrNotFound) is
// logged, not an error: the message raced $disconnect or the TTL. Any other
// store failure is 500 with a generic body.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := req.RequestContext
	route := rc.RouteKey
	if route == "" {
		route = contract.RouteDefault
	}
	ctx, _, span := observability.BeginRoute(ctx, h.d.Tracer, observability.RouteInvocation{
		Operation: observability.OpMessage,
		Route:     route,
		Request:   rc,
		ColdStart: !h.invoked.Swap(true),
		Now:       h.d.Now,
	})
	defer span.End()

	msg := parseAction(req)
	ping := route == RoutePing || msg.Action == contract.ActionPing
	whoami := !ping && msg.Action == contract.ActionWhoami
	now := h.d.Now()
	if rc.ConnectionID == "" {
		err := errors.New("request context has no connectionId")
		h.d.Logger.ErrorContext(ctx, "message failed: malformed gateway event", observability.ErrAttr(err))
		span.SetStatus(codes.Error, err.Error())
		return events.APIGatewayProxyResponse{StatusCode: 500, Body: BodyInternal}, nil
	}
	err := h.d.Store.Touch(ctx, rc.ConnectionID, now, 1)
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.d.Logger.WarnContext(ctx, "message from a connection without a record (deleted or expired); not recreated",
			slog.Bool("ping", ping))
	case err != nil:
		h.d.Logger.ErrorContext(ctx, "message failed: cannot touch the connection record", slog.Bool("ping", ping), observability.ErrAttr(err))
		h.emit(ctx, []observability.Metric{observability.Count(contract.MetricStoreErrors, 1)})
		span.RecordError(err)
		span.SetStatus(codes.Error, "touch failed")
		return events.APIGatewayProxyResponse{StatusCode: 500, Body: BodyInternal}, nil
	}
	var body []byte
	switch {
	case ping:
		body, _ = json.Marshal(Pong{Action: "pong", Timestamp: now.UTC().Format(observability.TimestampFormat)})
		h.d.Logger.DebugContext(ctx, "ping answered")
	case whoami:
		w := contract.Whoami{Action: contract.ActionWhoami, ConnectionID: rc.ConnectionID}
		if contract.ValidWhoamiRequestID(msg.RequestID) {
			w.RequestID = msg.RequestID
		}
		body, _ = json.Marshal(w)
		h.d.Logger.DebugContext(ctx, "whoami answered")
	default:
		h.d.Logger.DebugContext(ctx, "message received", slog.Int("bytes", len(req.Body)))
		return events.APIGatewayProxyResponse{StatusCode: 200}, nil
	}
	h.emit(ctx, []observability.Metric{observability.Count(contract.MetricMessagesSentPerMinute, 1)})
	return events.APIGatewayProxyResponse{
		StatusCode: 200,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       string(body),
	}, nil
}

func (h *Handler) emit(ctx context.Context, ms []observability.Metric) {
	observability.Emit(ctx, h.d.Metrics, h.d.Logger, ms, map[string]any{"operation": observability.OpMessage})
}

// parseAction reads the body as a JSON object with an "action" (and a
// whoami's "request_id"). Anything else (other JSON, malformed JSON, text)
// is an ordinary message: the zero value.
func parseAction(req events.APIGatewayWebsocketProxyRequest) clientAction {
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(req.Body)
		if err != nil {
			return clientAction{}
		}
		body = b
	}
	var m clientAction
	if json.Unmarshal(body, &m) != nil {
		return clientAction{}
	}
	return m
}

// clientAction is the part of a client message the handler answers on.
type clientAction struct {
	Action    string `json:"action"`
	RequestID string `json:"request_id"` // a whoami's (contract.WhoamiRequest)
}
