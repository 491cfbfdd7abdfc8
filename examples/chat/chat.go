// Package chat is a sendmessage route for an API Gateway WebSocket API,
// built on this repository's library: AWS's "simple websockets chat app",
// done the way it should be. A client sends
//
//	{"action":"sendmessage","data":"hello"}
//
// and every other connection of the sender's tenant receives
//
//	{"action":"message","from":"alice","connection_id":"L0SM9cOFvHcCIhw=","data":"hello","sent_at":"2026-12-01T11:24:51.244Z"}
//
// ("include_sender": true delivers it to the sender's connection too).
//
// Where the AWS sample scans the whole table unpaginated, fans out with an
// unbounded Promise.all and, on a 410, deletes the sender instead of the
// stale target, Handler reads the sender's record (its tenant, and the
// management endpoint of the stage it connected through), lists only that
// tenant, page by page, and broadcasts with a connection.Manager: a
// bounded, adaptive number of requests in flight, retries with backoff, a
// circuit breaker, and exactly the stale targets' records removed.
//
// The Lambda entry point is ./bootstrap; README.md runs it under the
// Runtime Interface Emulator behind `streamer local --route sendmessage=…`.
package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/store"
)

// Route is the route key the handler serves: the route selection
// expression $request.body.action picks it for {"action":"sendmessage"}.
const Route = "sendmessage"

// Message is what a client sends.
type Message struct {
	Action string `json:"action"` // Route
	// Data is the message: any JSON value but null ("hello", {"text":"hi"}).
	Data json.RawMessage `json:"data"`
	// IncludeSender delivers the message to the sender's own connection
	// too; by default only the others get it.
	IncludeSender bool `json:"include_sender,omitempty"`
}

// Chat is what each recipient receives.
type Chat struct {
	Action       string          `json:"action"` // "message"
	From         string          `json:"from"`   // the sender's user id
	ConnectionID string          `json:"connection_id"`
	Data         json.RawMessage `json:"data"`
	SentAt       string          `json:"sent_at"` // RFC 3339, UTC, milliseconds
}

// Reply is the route's response body. On AWS, as on `streamer local`, it
// reaches the sender only when the route is two-way (has a route
// response); on a one-way route it is dropped and Recipients is only
// logged.
type Reply struct {
	Action string `json:"action"` // "sent" or "error"
	// Recipients is how many connections received the message; Stale how
	// many were gone (their records are removed); Failed how many could not
	// be reached for another reason.
	Recipients int `json:"recipients"`
	Stale      int `json:"stale,omitempty"`
	Failed     int `json:"failed,omitempty"`
	// Error says why nothing was sent (Action "error"), in words fit for a
	// client: never internal error text.
	Error string `json:"error,omitempty"`
}

// Store is the part of the connection store the handler reads
// (*store.Dynamo implements it).
type Store interface {
	// Get returns store.ErrNotFound for a connection without a record.
	Get(ctx context.Context, connectionID string) (store.Connection, error)
	store.Lister
}

// Broadcaster sends to connections of one API stage (*connection.Manager
// implements it).
type Broadcaster interface {
	BroadcastRecords(ctx context.Context, records iter.Seq2[store.Connection, error], message any, opts connection.BroadcastOptions) (connection.BroadcastResult, error)
	// Flush writes the messages_sent counts; in a Lambda, before returning.
	Flush(ctx context.Context) error
}

// Deps are the handler's collaborators, wired once per cold start.
type Deps struct {
	Store Store // required
	// Broadcaster returns the broadcaster for a management endpoint, such
	// as https://abc123.execute-api.eu-west-1.amazonaws.com/prod (or
	// `streamer local`'s http://127.0.0.1:4510/local), taken from the
	// sender's record. It is called once per endpoint; the handler keeps
	// the result. Required.
	Broadcaster func(endpoint string) (Broadcaster, error)
	Logger      *slog.Logger     // nil => discard
	Now         func() time.Time // nil => time.Now
}

// Handler handles the sendmessage route.
type Handler struct {
	d Deps

	mu           sync.Mutex
	broadcasters map[string]Broadcaster // by endpoint: one per API stage served
}

// New returns a Handler.
func New(d Deps) (*Handler, error) {
	if d.Store == nil || d.Broadcaster == nil {
		return nil, errors.New("chat: Deps.Store and Deps.Broadcaster are required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Handler{d: d, broadcasters: map[string]Broadcaster{}}, nil
}

// Handle broadcasts one message to the sender's tenant. It never returns
// an error: API Gateway would turn one into an "Internal server error"
// frame with no hint of what went wrong, so every outcome is a Reply with
// the matching status code, and details go to the log only.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := req.RequestContext
	log := h.d.Logger.With("route", rc.RouteKey, "request_id", rc.RequestID, "connection_id", rc.ConnectionID)

	var msg Message
	if err := json.Unmarshal([]byte(req.Body), &msg); err != nil || len(msg.Data) == 0 || string(msg.Data) == "null" {
		log.InfoContext(ctx, "message refused: no data")
		return reply(400, Reply{Action: "error", Error: `want {"action":"sendmessage","data":...}`}), nil
	}
	sender, err := h.d.Store.Get(ctx, rc.ConnectionID)
	if errors.Is(err, store.ErrNotFound) {
		log.WarnContext(ctx, "message from a connection without a record (expired, or removed after a 410)")
		return reply(410, Reply{Action: "error", Error: "this connection is no longer registered: reconnect"}), nil
	}
	if err != nil {
		log.ErrorContext(ctx, "cannot read the sender's record", "error", err.Error())
		return internalError(), nil
	}
	log = log.With("user_id", sender.UserID, "tenant_id", sender.TenantID)
	b, err := h.broadcaster(sender.Endpoint)
	if err != nil {
		log.ErrorContext(ctx, "no broadcaster for the sender's endpoint", "endpoint", sender.Endpoint, "error", err.Error())
		return internalError(), nil
	}

	out := Chat{
		Action: "message", From: sender.UserID, ConnectionID: sender.ConnectionID,
		Data: msg.Data, SentAt: h.d.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	}
	// The tenant's connections, a page at a time, sent to as they arrive.
	targets := store.All(ctx, h.d.Store, store.ListQuery{TenantID: sender.TenantID})
	if !msg.IncludeSender {
		targets = except(targets, sender.ConnectionID)
	}
	res, err := b.BroadcastRecords(ctx, targets, out, connection.BroadcastOptions{})
	// The counts of what was sent, written before the environment freezes.
	if ferr := b.Flush(ctx); ferr != nil {
		log.WarnContext(ctx, "messages_sent counts not written", "error", ferr.Error())
	}
	attrs := []any{"recipients", res.Sent, "stale", res.Stale, "failed", res.Failed + res.Skipped, "cancelled", res.Cancelled, "duration_ms", res.Duration.Milliseconds()}
	switch {
	case errors.Is(err, connection.ErrPayloadTooLarge):
		log.InfoContext(ctx, "message refused: too large", "bytes", len(msg.Data))
		return reply(413, Reply{Action: "error", Error: "the message is too large: API Gateway delivers at most 128 KB"}), nil
	case err != nil:
		// The listing failed or ctx ended: some may have received it.
		log.ErrorContext(ctx, "broadcast stopped", append(attrs, "error", err.Error())...)
		return internalError(), nil
	}
	log.InfoContext(ctx, "message sent", attrs...)
	return reply(200, Reply{Action: "sent", Recipients: res.Sent, Stale: res.Stale, Failed: res.Failed + res.Skipped}), nil
}

// broadcaster returns the endpoint's broadcaster, made on first use.
func (h *Handler) broadcaster(endpoint string) (Broadcaster, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b, ok := h.broadcasters[endpoint]; ok {
		return b, nil
	}
	if endpoint == "" {
		return nil, errors.New("the record has no endpoint")
	}
	b, err := h.d.Broadcaster(endpoint)
	if err != nil {
		return nil, err
	}
	h.broadcasters[endpoint] = b
	return b, nil
}

// Close shuts down the broadcasters that can be (a *connection.Manager's
// Shutdown), for a process that outlives its requests. A Lambda never
// calls it: its environment is frozen, then reclaimed.
func (h *Handler) Close(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for endpoint, b := range h.broadcasters {
		if s, ok := b.(interface{ Shutdown(context.Context) error }); ok {
			if err := s.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("chat: shut down the broadcaster of %s: %w", endpoint, err))
			}
		}
		delete(h.broadcasters, endpoint)
	}
	return errors.Join(errs...)
}

// except yields the records of seq but the one with id: the sender, when
// it does not want its own message.
func except(seq iter.Seq2[store.Connection, error], id string) iter.Seq2[store.Connection, error] {
	return func(yield func(store.Connection, error) bool) {
		for c, err := range seq {
			if err == nil && c.ConnectionID == id {
				continue
			}
			if !yield(c, err) {
				return
			}
		}
	}
}

func reply(status int, r Reply) events.APIGatewayProxyResponse {
	body, _ := json.Marshal(r) // a Reply always encodes
	return events.APIGatewayProxyResponse{
		StatusCode: status,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       string(body),
	}
}

func internalError() events.APIGatewayProxyResponse {
	return reply(500, Reply{Action: "error", Error: "Internal server error"})
}

// DynamoDBActions are the DynamoDB operations the handler, with a
// connection.Manager, calls on the connections table: GetItem (the
// sender's record), Query (the tenant index), BatchWriteItem (the stale
// records a broadcast removes) and UpdateItem (messages_sent and the
// active connection count). The function's role grants exactly these
// ("dynamodb:" + each, on the table and its indexes); README.md's policy
// lists them, and a test holds both to what the function calls.
func DynamoDBActions() []string { return []string{"BatchWriteItem", "GetItem", "Query", "UpdateItem"} }
