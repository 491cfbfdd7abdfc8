package localgw

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/truora/minidyn/server"

	"github.com/pay-theory/streamer/pkg/store"
)

// maxDynamoRequest bounds a DynamoDB API request body (BatchWriteItem's
// 16 MB limit).
const maxDynamoRequest = 16 << 20

// embeddedDynamo serves minidyn one request at a time: minidyn's CreateTable
// and table map are not safe for concurrent use. Bodies are read before the
// lock so a slow client never holds it.
type embeddedDynamo struct {
	mu  sync.Mutex
	srv *server.Server
}

func (d *embeddedDynamo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDynamoRequest+1))
	if err != nil || len(body) > maxDynamoRequest {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"com.amazon.coral.validate#ValidationException","message":"request body unreadable or over 16 MB"}`))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	d.mu.Lock()
	defer d.mu.Unlock()
	d.srv.ServeHTTP(w, r)
}

// newEmbeddedDynamo starts an in-memory DynamoDB API with the connections
// table already created, through the real SDK client over an in-process
// transport (the listener does not exist yet).
func newEmbeddedDynamo(ctx context.Context, table string) (*embeddedDynamo, error) {
	d := &embeddedDynamo{srv: server.NewServer()}
	// The SDK's default retryer applies: the table setup is idempotent, so a
	// retried 5xx or throttle from the store is harmless.
	client, err := store.NewDynamoClient(ctx, store.ClientConfig{
		Endpoint:   "http://localgw.embedded",
		HTTPClient: &http.Client{Transport: handlerTransport{d}},
	})
	if err != nil {
		return nil, fmt.Errorf("localgw: embedded DynamoDB client: %w", err)
	}
	// pkg/store owns the table definition (from pkg/store/schema).
	if err := store.EnsureTable(ctx, client, table); err != nil {
		return nil, fmt.Errorf("localgw: create table %q in the embedded DynamoDB: %w", table, err)
	}
	return d, nil
}

// handlerTransport serves requests with an http.Handler in process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// slogErrorLog routes net/http's internal error log to the gateway logger.
func slogErrorLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelWarn)
}
