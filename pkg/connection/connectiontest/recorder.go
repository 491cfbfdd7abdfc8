// Package connectiontest provides a test double for code that sends through
// connection.Sender: a Recorder that captures what was sent (in a slice and,
// optionally, on a channel sink) and can be told to fail per id or globally.
package connectiontest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pay-theory/streamer/pkg/connection"
)

// Sent is one captured delivery.
type Sent struct {
	ConnectionID string
	// Message is the wire payload, encoded as the Manager encodes it
	// ([]byte, json.RawMessage and string unchanged, anything else as JSON).
	Message []byte
	// Broadcast is true when it was part of a Broadcast.
	Broadcast bool
}

// Decode unmarshals the captured JSON payload into v.
func (s Sent) Decode(v any) error { return json.Unmarshal(s.Message, v) }

// Recorder implements connection.Sender in memory. The zero value is ready;
// it is safe for concurrent use.
type Recorder struct {
	// Sink, when non-nil, also receives every successful delivery. A full
	// sink blocks the sender until ctx ends, so read it or buffer it.
	Sink chan Sent

	mu       sync.Mutex
	sent     []Sent
	failID   map[string]error
	failAll  error
	inactive map[string]bool
}

var _ connection.Sender = (*Recorder)(nil)

// NewRecorder returns a Recorder whose Sink is buffered for buffer messages
// (0 => no sink).
func NewRecorder(buffer int) *Recorder {
	r := &Recorder{}
	if buffer > 0 {
		r.Sink = make(chan Sent, buffer)
	}
	return r
}

// FailID makes deliveries to id fail with err (one of the connection
// sentinels, e.g. connection.ErrConnectionStale); nil clears it.
func (r *Recorder) FailID(id string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failID == nil {
		r.failID = map[string]error{}
	}
	if err == nil {
		delete(r.failID, id)
		return
	}
	r.failID[id] = err
}

// FailAll makes every delivery fail with err (e.g. connection.ErrCircuitOpen); nil clears it.
func (r *Recorder) FailAll(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failAll = err
}

// SetActive sets what IsActive answers for id. Ids default to active unless
// they are set to fail with ErrConnectionNotFound or ErrConnectionStale.
func (r *Recorder) SetActive(id string, active bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inactive == nil {
		r.inactive = map[string]bool{}
	}
	r.inactive[id] = !active
}

// Sent returns every successful delivery so far, in order.
func (r *Recorder) Sent() []Sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Sent(nil), r.sent...)
}

// SentTo returns the successful deliveries to id.
func (r *Recorder) SentTo(id string) []Sent {
	var out []Sent
	for _, s := range r.Sent() {
		if s.ConnectionID == id {
			out = append(out, s)
		}
	}
	return out
}

// Reset forgets deliveries and failure settings.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent, r.failID, r.failAll, r.inactive = nil, nil, nil, nil
}

// encode turns message into the payload the Manager would post, rejecting
// what it would reject (nil, unmarshalable, over MaxMessageBytes).
func encode(message any) ([]byte, error) {
	var b []byte
	switch v := message.(type) {
	case nil:
		return nil, fmt.Errorf("%w: message is nil", connection.ErrInvalidMessage)
	case []byte:
		b = v
	case json.RawMessage:
		b = v
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(message); err != nil {
			return nil, fmt.Errorf("%w: %v", connection.ErrInvalidMessage, err)
		}
	}
	if len(b) > connection.MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes", connection.ErrPayloadTooLarge, len(b))
	}
	return b, nil
}

func (r *Recorder) deliver(ctx context.Context, id string, payload []byte, broadcast bool) error {
	if err := ctx.Err(); err != nil {
		return &connection.SendError{ConnectionID: id, Err: err}
	}
	r.mu.Lock()
	err := r.failAll
	if e, ok := r.failID[id]; ok {
		err = e
	}
	r.mu.Unlock()
	if err != nil {
		var se *connection.SendError
		if errors.As(err, &se) {
			return err
		}
		return &connection.SendError{ConnectionID: id, Attempts: 1, Err: err}
	}
	s := Sent{ConnectionID: id, Message: payload, Broadcast: broadcast}
	if r.Sink != nil {
		select {
		case r.Sink <- s:
		case <-ctx.Done():
			return &connection.SendError{ConnectionID: id, Attempts: 1, Err: ctx.Err()}
		}
	}
	r.mu.Lock()
	r.sent = append(r.sent, s)
	r.mu.Unlock()
	return nil
}

// Send records message for connectionID or returns the configured failure
// as a *connection.SendError.
func (r *Recorder) Send(ctx context.Context, connectionID string, message any) error {
	payload, err := encode(message)
	if err != nil {
		return &connection.SendError{ConnectionID: connectionID, Err: err}
	}
	return r.deliver(ctx, connectionID, payload, false)
}

// Broadcast records message for every distinct id and reports outcomes the
// way the Manager does (not_found, stale, skipped and failed from the
// configured failures).
func (r *Recorder) Broadcast(ctx context.Context, connectionIDs []string, message any) (connection.BroadcastResult, error) {
	start := time.Now()
	payload, err := encode(message)
	if err != nil {
		return connection.BroadcastResult{Total: len(connectionIDs)}, fmt.Errorf("connectiontest: broadcast not started: %w", err)
	}
	var res connection.BroadcastResult
	seen := map[string]bool{}
	for _, id := range connectionIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		o := connection.Outcome{ConnectionID: id, Status: connection.StatusSent, Attempts: 1}
		if err := r.deliver(ctx, id, payload, true); err != nil {
			o.Err = err
			switch {
			case errors.Is(err, connection.ErrConnectionNotFound):
				o.Status, o.Attempts = connection.StatusNotFound, 0
				res.NotFound++
			case errors.Is(err, connection.ErrConnectionStale):
				o.Status = connection.StatusStale
				res.Stale++
			case errors.Is(err, connection.ErrUnhealthy):
				o.Status, o.Attempts = connection.StatusSkipped, 0
				res.Skipped++
			case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, connection.ErrShuttingDown):
				o.Status, o.Attempts = connection.StatusCancelled, 0
				res.Cancelled++
			default:
				o.Status = connection.StatusFailed
				res.Failed++
			}
		} else {
			res.Sent++
		}
		res.Outcomes = append(res.Outcomes, o)
	}
	res.Total = len(res.Outcomes)
	res.Duration = time.Since(start)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// IsActive reports what SetActive / FailID configured (default true).
func (r *Recorder) IsActive(ctx context.Context, connectionID string) bool {
	if ctx.Err() != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inactive[connectionID] {
		return false
	}
	err := r.failID[connectionID]
	return !errors.Is(err, connection.ErrConnectionNotFound) && !errors.Is(err, connection.ErrConnectionStale)
}
