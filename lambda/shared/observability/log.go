package observability

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// Log field names. Every line carries all of them except KeyError, which is
// present only when there is an error.
const (
	KeyTimestamp     = "timestamp"
	KeyLevel         = "level"
	KeyMessage       = "msg"
	KeyFunction      = "function"
	KeyColdStart     = "cold_start"
	KeyCorrelationID = "correlation_id"
	KeyOperation     = "operation"
	KeyUserID        = "user_id"
	KeyTenantID      = "tenant_id"
	KeyConnectionID  = "connection_id"
	KeyDurationMS    = "duration_ms"
	KeyError         = "error"
)

// TimestampFormat is ISO 8601 (RFC 3339) in UTC with milliseconds.
const TimestampFormat = "2006-01-02T15:04:05.000Z07:00"

// LogConfig configures NewLogger. The zero value logs at info to stdout.
type LogConfig struct {
	// Writer receives one JSON object per line; nil means os.Stdout, which
	// Lambda forwards to CloudWatch Logs.
	Writer io.Writer
	// Level is the minimum level; nil means info.
	Level slog.Leveler
	// Function is the "function" field (AWS_LAMBDA_FUNCTION_NAME or the
	// contract name).
	Function string
}

// NewLogger returns a JSON logger that adds the invocation fields found in
// the context (see Begin) to every line. Log with the *Context methods so the
// fields can be found.
func NewLogger(cfg LogConfig) *slog.Logger {
	w := cfg.Writer
	if w == nil {
		w = os.Stdout
	}
	level := cfg.Level
	if level == nil {
		level = slog.LevelInfo
	}
	inner := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String(KeyTimestamp, a.Value.Time().UTC().Format(TimestampFormat))
			case slog.LevelKey:
				return slog.String(KeyLevel, strings.ToLower(a.Value.String()))
			}
			return a
		},
	})
	return slog.New(&fieldsHandler{inner: inner, function: cfg.Function})
}

// ParseLevel maps LOG_LEVEL (debug|info|warn|warning|error, any case; ""
// means info) to a slog level.
func ParseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return slog.LevelInfo, true
	case "debug":
		return slog.LevelDebug, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}

// ErrAttr is the "error" field for err.
func ErrAttr(err error) slog.Attr {
	if err == nil {
		return slog.Attr{}
	}
	return slog.String(KeyError, err.Error())
}

// invocationKeys are the fields fieldsHandler puts on every line, in order.
var invocationKeys = [...]string{KeyFunction, KeyColdStart, KeyCorrelationID, KeyOperation, KeyUserID, KeyTenantID, KeyConnectionID, KeyDurationMS}

func invocationKeyIndex(k string) int {
	for i, ik := range invocationKeys {
		if ik == k {
			return i
		}
	}
	return -1
}

// blank reports whether a caller-provided value carries nothing: an empty
// string or a nil value.
func blank(v slog.Value) bool {
	switch v.Kind() {
	case slog.KindString:
		return v.String() == ""
	case slog.KindAny:
		return v.Any() == nil
	}
	return false
}

// fieldsHandler adds the invocation fields to each record. They are added
// as record attributes, so a logger derived with WithGroup nests them in the
// group: the handlers never open groups.
//
// Each field appears exactly once per line. A caller may pass one itself
// (pkg/connection logs the target connection_id, its own correlation_id and
// the duration_ms of a send): a non-blank caller value wins, and the
// invocation's value fills in only when the caller gave none or a blank one
// (""), so a line never loses a caller's value nor carries a key twice.
// Attributes given with Logger.With are held here until the next WithGroup
// for the same reason.
type fieldsHandler struct {
	inner    slog.Handler
	function string
	attrs    []slog.Attr // from WithAttrs since the last WithGroup
}

func (h *fieldsHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *fieldsHandler) Handle(ctx context.Context, r slog.Record) error {
	f := FromContext(ctx)
	fields := f.Fields()
	var dur time.Duration
	if f != nil {
		dur = f.Elapsed()
	}
	inv := [len(invocationKeys)]slog.Attr{
		slog.String(KeyFunction, h.function),
		slog.Bool(KeyColdStart, fields.ColdStart),
		slog.String(KeyCorrelationID, fields.CorrelationID),
		slog.String(KeyOperation, fields.Operation),
		slog.String(KeyUserID, fields.UserID),
		slog.String(KeyTenantID, fields.TenantID),
		slog.String(KeyConnectionID, fields.ConnectionID),
		slog.Float64(KeyDurationMS, float64(dur.Microseconds())/1000),
	}
	others := make([]slog.Attr, 0, len(h.attrs)+r.NumAttrs())
	take := func(a slog.Attr) {
		if a.Equal(slog.Attr{}) {
			return
		}
		if i := invocationKeyIndex(a.Key); i >= 0 {
			a.Value = a.Value.Resolve()
			if !blank(a.Value) {
				inv[i] = a // the record's own attribute (the later one) wins over With's
			}
			return
		}
		others = append(others, a)
	}
	for _, a := range h.attrs {
		take(a)
	}
	r.Attrs(func(a slog.Attr) bool {
		take(a)
		return true
	})
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(inv[:]...)
	out.AddAttrs(others...)
	return h.inner.Handle(ctx, out)
}

func (h *fieldsHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return &fieldsHandler{inner: h.inner, function: h.function, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *fieldsHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	inner := h.inner
	if len(h.attrs) > 0 {
		inner = inner.WithAttrs(h.attrs)
	}
	return &fieldsHandler{inner: inner.WithGroup(name), function: h.function}
}
