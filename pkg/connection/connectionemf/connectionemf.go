// Package connectionemf exports a pkg/connection Manager's deliveries as
// CloudWatch metrics in the Embedded Metric Format, for the Lambdas library
// users write: an Observer to put in connection.Config.Observer, flushed
// once per invocation. It writes through the stack's EMF writer
// (lambda/shared/observability), so the documents have the namespace,
// Environment dimension and correlation id every handler's have.
package connectionemf

import (
	"context"
	"sync"
	"time"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/connection"
)

// Emitter writes one EMF document; *observability.EMF implements it.
type Emitter interface {
	Emit(ctx context.Context, metrics []observability.Metric, props map[string]any) error
}

// Observer is a connection.Observer that exports a Manager's deliveries as
// EMF: every message delivered (by Send or as part of a Broadcast) adds one
// to MessagesSentPerMinute. The counts are aggregated and written by Flush
// as one document per call — once per invocation, not one per message —
// with the Environment dimension only, like every metric of the stack.
//
// Wire it once at cold start and flush at the end of each invocation:
//
//	emf := observability.NewEMF(observability.EMFConfig{Environment: os.Getenv("ENVIRONMENT")})
//	cm := connectionemf.New(emf)
//	mgr, err := connection.New(api, st, connection.Config{Observer: cm})
//	...
//	func handle(ctx context.Context, ev Event) error {
//		defer cm.Flush(ctx)
//		...
//	}
//
// Counts not yet flushed are kept for the next Flush, never dropped. It is
// safe for concurrent use: the Manager calls it from its workers.
type Observer struct {
	emf Emitter

	mu      sync.Mutex
	sent    int64 // delivered since the last Flush
	failed  int64 // StatusFailed since the last Flush (a property, not a metric)
	breaker string
}

var _ connection.Observer = (*Observer)(nil)

// New returns the adapter from a connection Manager's Observer hook to emf
// (nil: Flush writes nothing).
func New(emf Emitter) *Observer {
	return &Observer{emf: emf}
}

// OnSend counts one delivery outcome.
func (c *Observer) OnSend(o connection.Outcome, _ time.Duration) {
	switch o.Status {
	case connection.StatusSent:
		c.mu.Lock()
		c.sent++
		c.mu.Unlock()
	case connection.StatusFailed:
		c.mu.Lock()
		c.failed++
		c.mu.Unlock()
	}
}

// OnBroadcast does nothing: a broadcast's deliveries were already counted
// one by one through OnSend.
func (c *Observer) OnBroadcast(connection.BroadcastResult) {}

// OnBreakerChange remembers the breaker state, written as the
// "breaker_state" property of the next document.
func (c *Observer) OnBreakerChange(_, to string) {
	c.mu.Lock()
	c.breaker = to
	c.mu.Unlock()
}

// Pending returns the deliveries and failures counted since the last Flush.
func (c *Observer) Pending() (sent, failed int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent, c.failed
}

// Flush writes one EMF document with MessagesSentPerMinute (the messages
// delivered since the last Flush) and the properties operation "send",
// send_failures and, after a breaker change, breaker_state. It writes
// nothing when nothing was sent or failed. When the write fails the counts
// are kept for the next Flush and the error is returned.
func (c *Observer) Flush(ctx context.Context) error {
	if c == nil || c.emf == nil {
		return nil
	}
	c.mu.Lock()
	sent, failed, breaker := c.sent, c.failed, c.breaker
	c.sent, c.failed, c.breaker = 0, 0, ""
	c.mu.Unlock()
	if sent == 0 && failed == 0 && breaker == "" {
		return nil
	}
	props := map[string]any{"operation": observability.OpSend, "send_failures": failed}
	if breaker != "" {
		props["breaker_state"] = breaker
	}
	err := c.emf.Emit(ctx, []observability.Metric{observability.Count(contract.MetricMessagesSentPerMinute, float64(sent))}, props)
	if err != nil {
		c.mu.Lock()
		c.sent += sent
		c.failed += failed
		if c.breaker == "" {
			c.breaker = breaker
		}
		c.mu.Unlock()
	}
	return err
}
