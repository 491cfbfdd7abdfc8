// Package observability is what every Lambda handler of the stack shares to
// be observable: JSON logs through log/slog whose every line carries the
// invocation's fields (correlation id, user, tenant, operation, duration,
// function, cold start), CloudWatch Embedded Metric Format documents written
// to stdout, and OpenTelemetry tracing with X-Ray ids and propagation.
//
// Nothing here is global: the entry point builds a logger, an EMF writer and a
// Tracing once at cold start and injects them into the handler.
package observability
