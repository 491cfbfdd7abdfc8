// Package disconnect is the $disconnect handler: it deletes the connection
// record and logs one summary line. The Lambda entry point is ./bootstrap.
package disconnect

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/store"
)

// BodyDisconnected is the (ignored by API Gateway) response body.
const BodyDisconnected = "Disconnected"

// Store is the part of store.Store the handler uses.
type Store interface {
	Delete(ctx context.Context, connectionID string) (store.Connection, bool, error)
	AddActive(ctx context.Context, delta int64) (int64, error)
}

// SubscriptionCanceller is the seam for topic subscriptions, a future
// feature: when they exist, $disconnect must cancel the connection's. conn is
// the deleted record, or only its ConnectionID when there was none.
type SubscriptionCanceller interface {
	CancelSubscriptions(ctx context.Context, conn store.Connection) error
}

// NoSubscriptions is the SubscriptionCanceller of today: there is nothing to
// cancel.
type NoSubscriptions struct{}

// CancelSubscriptions does nothing.
func (NoSubscriptions) CancelSubscriptions(context.Context, store.Connection) error { return nil }

// Metrics receives EMF metric sets (*observability.EMF).
type Metrics = observability.Emitter

// ErrMissingDependency is returned by New when a required dependency is nil.
var ErrMissingDependency = errors.New("disconnect: missing dependency")

// Deps are the handler's collaborators.
type Deps struct {
	Store Store // required
	// Subscriptions nil => NoSubscriptions.
	Subscriptions SubscriptionCanceller
	Logger        *slog.Logger // nil => discard
	Metrics       Metrics      // nil => none
	Tracer        trace.Tracer // nil => no spans
	Now           func() time.Time
}

// Handler handles $disconnect.
type Handler struct {
	d       Deps
	invoked atomic.Bool
}

// New returns a Handler.
func New(d Deps) (*Handler, error) {
	if d.Store == nil {
		return nil, errors.Join(ErrMissingDependency, errors.New("disconnect: Deps.Store is nil"))
	}
	if d.Subscriptions == nil {
		d.Subscriptions = NoSubscriptions{}
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Handler{d: d}, nil
}

// Summary log line fields.
const (
	KeyDurationSeconds      = "duration_seconds"
	KeyMessagesSent         = "messages_sent"
	KeyMessagesReceived     = "messages_received"
	KeyDisconnectTime       = "disconnect_time"
	KeyDisconnectReason     = "disconnect_reason"
	KeyDisconnectStatusCode = "disconnect_status_code"
	KeyRecordFound          = "record_found"
	// SummaryMessage is the msg of the summary line.
	SummaryMessage = "connection closed"
)

// Handle deletes the record and always answers 200: the connection is gone
// whatever happens here, and API Gateway ignores the $disconnect response.
// Failures are logged and counted (StoreErrors).
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := req.RequestContext
	ctx, inv, span := observability.BeginRoute(ctx, h.d.Tracer, observability.RouteInvocation{
		Operation: observability.OpDisconnect,
		Route:     contract.RouteDisconnect,
		Request:   rc,
		ColdStart: !h.invoked.Swap(true),
		Now:       h.d.Now,
	})
	defer span.End()

	now := h.d.Now()
	var (
		rec      store.Connection
		found    bool
		storeErr error
		metrics  []observability.Metric
	)
	if rc.ConnectionID == "" {
		storeErr = errors.New("request context has no connectionId")
	} else {
		rec, found, storeErr = h.d.Store.Delete(ctx, rc.ConnectionID)
	}
	if storeErr != nil {
		h.d.Logger.ErrorContext(ctx, "disconnect: connection record not deleted (it expires by TTL)", observability.ErrAttr(storeErr))
		metrics = append(metrics, observability.Count(contract.MetricStoreErrors, 1))
		span.RecordError(storeErr)
		span.SetStatus(codes.Error, "delete failed")
		found = false
	}
	if found {
		inv.SetUser(rec.UserID, rec.TenantID)
		span.SetAttributes(observability.AttrUserID.String(rec.UserID), observability.AttrTenantID.String(rec.TenantID))
		// Only a real deletion moves the gauge: a repeated or late
		// $disconnect must not count a connection twice.
		if active, err := h.d.Store.AddActive(ctx, -1); err != nil {
			h.d.Logger.WarnContext(ctx, "active connection counter not updated", observability.ErrAttr(err))
		} else {
			metrics = append(metrics, observability.Gauge(contract.MetricActiveConnections, active))
		}
	} else {
		rec = store.Connection{ConnectionID: rc.ConnectionID}
	}
	if err := h.d.Subscriptions.CancelSubscriptions(ctx, rec); err != nil {
		h.d.Logger.WarnContext(ctx, "disconnect: subscriptions not cancelled", observability.ErrAttr(err))
	}

	// Duration from the record; without one, from API Gateway's own
	// connectedAt (epoch ms) in the request context.
	connectedAt := rec.ConnectedAt
	if !found && rc.ConnectedAt > 0 {
		connectedAt = time.UnixMilli(rc.ConnectedAt)
	}
	duration := 0.0
	if !connectedAt.IsZero() && now.After(connectedAt) {
		duration = now.Sub(connectedAt).Seconds()
	}
	reason := ""
	if rc.DisconnectReason != nil {
		reason = strings.TrimSpace(*rc.DisconnectReason)
	}
	attrs := []any{
		slog.Bool(KeyRecordFound, found),
		slog.Float64(KeyDurationSeconds, duration),
		slog.Int64(KeyMessagesSent, rec.MessagesSent),
		slog.Int64(KeyMessagesReceived, rec.MessagesReceived),
		slog.String(KeyDisconnectTime, now.UTC().Format(observability.TimestampFormat)),
		slog.String(KeyDisconnectReason, reason),
		slog.Int64(KeyDisconnectStatusCode, rc.DisconnectStatusCode),
	}
	if storeErr != nil {
		attrs = append(attrs, observability.ErrAttr(storeErr))
	}
	h.d.Logger.InfoContext(ctx, SummaryMessage, attrs...)

	observability.Emit(ctx, h.d.Metrics, h.d.Logger, metrics, map[string]any{"operation": observability.OpDisconnect})
	return events.APIGatewayProxyResponse{StatusCode: 200, Body: BodyDisconnected}, nil
}
