// Package connection delivers messages to API Gateway WebSocket clients: the
// library backend Lambdas call to Send, Broadcast and check IsActive.
//
// A Manager wraps the API Gateway Management API (POST/GET/DELETE
// /{stage}/@connections/{id}, through the aws-sdk-go-v2 client or anything
// implementing ManagementAPI) and the connection store:
//
//	api := connection.NewManagementClient("https://"+domain+"/"+stage, connection.ClientOptions{})
//	m, err := connection.New(api, dynamoStore, connection.Config{})  // zero Config = documented defaults
//	defer m.Shutdown(ctx)
//	err = m.Send(ctx, connectionID, map[string]any{"type": "greeting"})
//	res, err := m.BroadcastQuery(ctx, dynamoStore, store.ListQuery{TenantID: tenant}, msg, connection.BroadcastOptions{})
//
// # Behaviour
//
//   - Messages are encoded once ([]byte, json.RawMessage and string pass
//     through, anything else is JSON) and rejected over 128 KB before any
//     network call (ErrPayloadTooLarge).
//   - Every Management API request of a Manager (Send, Broadcast, IsActive,
//     Reconcile, Disconnect) takes a slot of one adaptive concurrency limit
//     (LimitConfig): it starts at Workers (10), doubles per round trip while
//     the endpoint keeps up, and is cut on 429 (which also turns on a
//     client-side rate that paces the retries; a 429 is not an attempt) and
//     when more in flight stops buying throughput while latency rises; at
//     most MaxInFlight (256), or fixed at Workers with Limit.Fixed.
//   - The store is asked first: no record, or an expired one, is
//     ErrConnectionNotFound with no request. Broadcast asks in batches of 100
//     (one BatchGetItem each, eight at a time), never one read per id;
//     BroadcastQuery and BroadcastRecords send to records just listed with
//     no second check, as the listing's pages arrive.
//   - 410 Gone removes the record and returns ErrConnectionStale; Broadcast
//     removes stale records in batches of 25. Records the Manager removes
//     (410, Disconnect) are also subtracted from the store's active
//     connection counter, since the $disconnect that may follow finds nothing
//     to delete and leaves the counter alone.
//   - 5xx and network errors (refused, reset, EOF, per-attempt timeout), and
//     429 with a fixed limit, are retried 3 times (MaxAttempts 4 = the first attempt + 3 retries):
//     100 ms, 200 ms, 400 ms (×2, ±25% jitter, never over 5 s); no wait after
//     the last attempt; every wait is a Clock timer raced against ctx. Other
//     4xx are not retried. The SDK's retryer is off, so one attempt is one
//     HTTP request.
//   - A circuit breaker (sony/gobreaker) opens after 5 consecutive endpoint
//     failures (5xx, network); 410 and other 4xx count as successes, 429 and
//     cancellations as neither. Open => ErrCircuitOpen at once; after 30 s one
//     probe is let through (half-open).
//   - A connection whose deliveries fail 3 times in a row is unhealthy:
//     Broadcast skips it (StatusSkipped) until 30 s after its last failure,
//     then lets one single-attempt probe through. Only failing connections
//     are remembered, in an LRU capped at 10000 entries.
//   - Broadcast hands each target to a worker once it holds a limit slot,
//     spawning workers only when none is idle; the payload and its SHA-256
//     are computed once. Broadcast(ids) reports one Outcome per id;
//     BroadcastQuery/Records/IDs keep only the ones not sent (OnOutcome sees
//     all); progress callbacks are called serially. Cancelling ctx, or a
//     Shutdown whose deadline passes, ends it promptly with the rest
//     StatusCancelled.
//   - Reconcile walks records and deletes those whose connection the
//     gateway says is gone (410), for the $disconnect events AWS may lose.
//   - NewManagementClient's client posts directly (the same signed request
//     without the SDK's per-call middleware), over its own keep-alive
//     HTTP/1.1 connections written and read in the caller's goroutine
//     (net/http's transport when a proxy applies); a client built by the
//     caller is always called through the SDK.
//   - IsActive checks the record and GetConnection; it never posts.
//   - messages_sent counts are added up in memory and written with one
//     Store.AddSent per FlushInterval (5 s), on Flush, and on Shutdown.
//   - Shutdown waits for in-flight work until its ctx is done, then cancels
//     it; operations stuck in injected code that ignores ctx (a Store,
//     Observer or progress callback) are abandoned 1 s later and counted in
//     its error, so Shutdown never hangs.
//   - Errors are *SendError values wrapping this package's sentinels; the
//     Management API's SDK error types never reach callers, and a store
//     failure keeps the store's error in the chain (store.ErrUnavailable
//     names the endpoint that did not answer). One table decides, per
//     sentinel, the metrics label, the Outcome status (StatusOf) and
//     whether retries, the breaker and health count it. Every operation
//     logs (log/slog) its correlation_id (WithCorrelationID, else
//     generated), connection_id, attempt, duration_ms and outcome.
//   - Metrics returns counters, a latency histogram (p50/p90/p99; lock-free,
//     O(1) record), error counts by type and the breaker state; an Observer
//     receives each outcome (connectionemf exports them as EMF).
//
// # Performance
//
// On loopback the cost of a delivery is CPU in the SDK (middleware, SigV4
// signing); against AWS it is the request's latency, so Broadcast's
// throughput is about Workers / latency. The measured figures, with the
// machine and the baselines they were taken against, are dated records in
// docs/decisions.md; `go test -run '^$' -bench . ./pkg/connection/`
// reproduces them.
//
// # In a Lambda
//
// Between invocations Lambda freezes the execution environment, so the
// background flusher does not run; and an environment is reclaimed without
// warning, so Shutdown is never called and counts still in memory are lost.
// In a Lambda set Config.FlushInterval to -1 (flush only on demand) and call
// m.Flush(ctx) before the handler returns (see the Manager.Flush example):
//
//	m, err := connection.New(api, st, connection.Config{FlushInterval: -1}) // at cold start
//	...
//	func handle(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) error {
//		err := m.Send(ctx, id, reply)
//		if ferr := m.Flush(ctx); ferr != nil { // one batched store write per invocation
//			log.Warn("messages_sent flush", "error", ferr)
//		}
//		return err
//	}
//
// Long-running processes (the CLI, a server) keep the default interval and
// call Shutdown on exit.
//
// Package connectiontest provides a Recorder implementing Sender for tests
// of code that sends.
package connection
