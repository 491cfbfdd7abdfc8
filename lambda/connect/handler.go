// Package connect is the $connect handler: it verifies the client's RS256
// JWT and records the connection. The Lambda entry point is ./bootstrap;
// `streamer local` runs the same Handler in-process.
package connect

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/store"
)

// Response bodies: generic on purpose, the reason is in logs and metrics only.
const (
	BodyConnected    = "Connected"
	BodyUnauthorized = "Unauthorized"
	BodyInternal     = "Internal Server Error"
)

// TokenVerifier verifies a connection token (*auth.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Claims, error)
}

// Store is the part of store.Store the handler uses.
type Store interface {
	Save(ctx context.Context, c store.Connection) error
	AddActive(ctx context.Context, delta int64) (int64, error)
}

// Metrics receives EMF metric sets (*observability.EMF).
type Metrics = observability.Emitter

// ErrMissingDependency is returned by New when a required dependency is nil.
var ErrMissingDependency = errors.New("connect: missing dependency")

// Deps are the handler's collaborators.
type Deps struct {
	Verifier TokenVerifier // required
	Store    Store         // required
	// Logger nil => discard.
	Logger *slog.Logger
	// Metrics nil => no metrics.
	Metrics Metrics
	// Tracer nil => no spans.
	Tracer trace.Tracer
	// Now nil => time.Now.
	Now func() time.Time
}

// Config tunes the handler; the zero value is the production behaviour.
type Config struct {
	// TTL of a record; 0 => store.DefaultTTL (24h).
	TTL time.Duration
}

// Handler handles $connect.
type Handler struct {
	d       Deps
	cfg     Config
	invoked atomic.Bool // false until the first invocation: cold_start
}

// New returns a Handler.
func New(d Deps, cfg Config) (*Handler, error) {
	if d.Verifier == nil {
		return nil, errors.Join(ErrMissingDependency, errors.New("connect: Deps.Verifier is nil"))
	}
	if d.Store == nil {
		return nil, errors.Join(ErrMissingDependency, errors.New("connect: Deps.Store is nil"))
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if cfg.TTL <= 0 {
		cfg.TTL = store.DefaultTTL
	}
	return &Handler{d: d, cfg: cfg}, nil
}

// Handle answers $connect: 200 and a saved record for a valid token, 401 for
// any authentication failure (including claims the record cannot hold), 500
// when the verification keys cannot be had or the record cannot be saved. The
// returned error is always nil: API Gateway turns a Lambda error into a 502
// with no way to tell the client why, so every outcome is a status code.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := req.RequestContext
	ctx, inv, span := observability.BeginRoute(ctx, h.d.Tracer, observability.RouteInvocation{
		Operation:   observability.OpConnect,
		Route:       contract.RouteConnect,
		Request:     rc,
		TraceHeader: header(req, "X-Amzn-Trace-Id"),
		ColdStart:   !h.invoked.Swap(true),
		Now:         h.d.Now,
	})
	defer span.End()

	if rc.ConnectionID == "" {
		// API Gateway always sends one: without it nothing can be recorded.
		err := errors.New("request context has no connectionId")
		h.d.Logger.ErrorContext(ctx, "connect failed: malformed gateway event", observability.ErrAttr(err))
		span.SetStatus(codes.Error, err.Error())
		return respond(500, BodyInternal), nil
	}

	claims, err := h.authenticate(ctx, req)
	if errors.Is(err, auth.ErrKeySource) {
		// The keys could not be had (Secrets Manager or the JWKS endpoint
		// down, ctx expired waiting for them): a server fault, not the
		// client's, so neither a 401 nor an authentication failure.
		reason := auth.Reason(err)
		h.d.Logger.ErrorContext(ctx, "connect failed: token verification keys unavailable",
			slog.String("reason", reason), observability.ErrAttr(err))
		observability.Emit(ctx, h.d.Metrics, h.d.Logger,
			[]observability.Metric{observability.Count(contract.MetricKeySourceErrors, 1)},
			map[string]any{"reason": reason})
		span.RecordError(err)
		span.SetStatus(codes.Error, "key source unavailable")
		return respond(500, BodyInternal), nil
	}
	if err != nil {
		return h.reject(ctx, span, auth.Reason(err), err), nil
	}

	now := h.d.Now()
	conn := store.Connection{
		ConnectionID: rc.ConnectionID,
		UserID:       claims.UserID,
		TenantID:     claims.TenantID,
		Endpoint:     Endpoint(req),
		ConnectedAt:  now,
		LastPing:     now,
		Metadata: store.Metadata{
			// Oversized client-controlled values are cut, not rejected: a
			// long User-Agent is no reason to refuse a valid token.
			UserAgent: truncate(userAgent(req), store.MaxUserAgentLength),
			IPAddress: truncate(rc.Identity.SourceIP, store.MaxIPAddressLength),
		},
		Permissions: claims.Permissions,
		TTL:         now.Add(h.cfg.TTL).Unix(),
	}
	// A signed token can still carry claims the record cannot hold (more
	// than store.MaxPermissions permissions, an over-long sub): the token is
	// unusable, so that is the client's authentication failure, not a 500.
	var verr *store.ValidationError
	if err := store.Validate(conn); errors.As(err, &verr) && claimField(verr.Field) {
		return h.reject(ctx, span, ReasonInvalidClaims, err), nil
	}
	inv.SetUser(claims.UserID, claims.TenantID)
	span.SetAttributes(observability.AttrUserID.String(claims.UserID), observability.AttrTenantID.String(claims.TenantID))

	if err := h.d.Store.Save(ctx, conn); err != nil {
		h.d.Logger.ErrorContext(ctx, "connect failed: cannot save the connection record",
			slog.Bool("invalid_record", errors.Is(err, store.ErrInvalid)), observability.ErrAttr(err))
		span.RecordError(err)
		span.SetStatus(codes.Error, "save failed")
		return respond(500, BodyInternal), nil
	}

	metrics := []observability.Metric{observability.Count(contract.MetricConnectionsPerMinute, 1)}
	active, err := h.d.Store.AddActive(ctx, 1)
	if err != nil {
		// The connection is recorded; only the gauge misses one update.
		h.d.Logger.WarnContext(ctx, "active connection counter not updated", observability.ErrAttr(err))
	} else {
		metrics = append(metrics, observability.Gauge(contract.MetricActiveConnections, active))
	}
	observability.Emit(ctx, h.d.Metrics, h.d.Logger, metrics, nil)
	h.d.Logger.InfoContext(ctx, "connection accepted",
		slog.String("endpoint", conn.Endpoint),
		slog.Int("permissions", len(conn.Permissions)))
	return respond(200, BodyConnected), nil
}

// ReasonInvalidClaims is the auth failure reason of a verified token whose
// claims break the record's limits (see store.Validate).
const ReasonInvalidClaims = "invalid_claims"

// claimField reports whether a store.ValidationError field comes from the
// token's claims.
func claimField(field string) bool {
	switch field {
	case "user_id", "tenant_id", "permissions":
		return true
	}
	return false
}

// reject answers 401 for an authentication failure; the reason goes to the
// log line, the AuthenticationFailures document and the span only.
func (h *Handler) reject(ctx context.Context, span trace.Span, reason string, err error) events.APIGatewayProxyResponse {
	h.d.Logger.WarnContext(ctx, "connect rejected: authentication failed",
		slog.String("reason", reason), observability.ErrAttr(err))
	observability.Emit(ctx, h.d.Metrics, h.d.Logger,
		[]observability.Metric{observability.Count(contract.MetricAuthenticationFailures, 1)},
		map[string]any{"reason": reason})
	span.SetAttributes(observability.AttrAuthFailure.String(reason))
	span.SetStatus(codes.Error, "authentication failed: "+reason)
	return respond(401, BodyUnauthorized)
}

func (h *Handler) authenticate(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (auth.Claims, error) {
	token := Token(req)
	if token == "" {
		return auth.Claims{}, auth.ErrMissingToken
	}
	return h.d.Verifier.Verify(ctx, token)
}

// Token returns the connection token: the Authorization query string
// parameter (browsers cannot set headers on a WebSocket), else the
// Authorization header (any case), with an optional "Bearer " prefix.
func Token(req events.APIGatewayWebsocketProxyRequest) string {
	t := req.QueryStringParameters["Authorization"]
	if t == "" {
		if vs := req.MultiValueQueryStringParameters["Authorization"]; len(vs) > 0 {
			t = vs[0]
		}
	}
	if strings.TrimSpace(t) == "" {
		t = header(req, "Authorization")
	}
	t = strings.TrimSpace(t)
	if len(t) >= 7 && strings.EqualFold(t[:7], "Bearer ") {
		t = strings.TrimSpace(t[7:])
	}
	return t
}

// Endpoint is the management API endpoint of the connection's API stage:
// {scheme}://{domainName}/{stage}, with the scheme of Scheme.
func Endpoint(req events.APIGatewayWebsocketProxyRequest) string {
	return Scheme(req) + "://" + req.RequestContext.DomainName + "/" + req.RequestContext.Stage
}

// Scheme is the scheme the client reached the gateway with, from the
// X-Forwarded-Proto header the gateway adds: always "https" on AWS, "http"
// on the local gateway (pkg/localgw) unless it serves TLS. Only "http" and
// "https" (any case) are accepted; anything else, or no header, is "https".
func Scheme(req events.APIGatewayWebsocketProxyRequest) string {
	switch p := strings.ToLower(strings.TrimSpace(header(req, "X-Forwarded-Proto"))); p {
	case "http", "https":
		return p
	}
	return "https"
}

// header looks name up case-insensitively in Headers, then MultiValueHeaders.
func header(req events.APIGatewayWebsocketProxyRequest, name string) string {
	for k, v := range req.Headers {
		if strings.EqualFold(k, name) && v != "" {
			return v
		}
	}
	for k, vs := range req.MultiValueHeaders {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

func userAgent(req events.APIGatewayWebsocketProxyRequest) string {
	if ua := header(req, "User-Agent"); ua != "" {
		return ua
	}
	return req.RequestContext.Identity.UserAgent
}

// truncate cuts s to at most n bytes on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func respond(status int, body string) events.APIGatewayProxyResponse {
	return events.APIGatewayProxyResponse{
		StatusCode: status,
		Headers:    map[string]string{"Content-Type": "text/plain; charset=utf-8"},
		Body:       body,
	}
}
