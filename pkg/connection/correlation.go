package connection

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

type correlationKey struct{}

// WithCorrelationID returns ctx carrying id; the Manager logs it with every
// record of operations run under ctx (use the API Gateway request id).
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the id set by WithCorrelationID, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

// correlationFor returns ctx's id or a fresh random one.
func correlationFor(ctx context.Context) string {
	if id := CorrelationID(ctx); id != "" {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
