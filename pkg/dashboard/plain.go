package dashboard

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"time"
)

// plainNoData is the plain-text "no data": one token, easy for scripts.
const plainNoData = "n/a"

// RenderPlain writes s as plain text, one "name: value" per line, no colour,
// for --once and non-terminal output. Missing values read "n/a".
func RenderPlain(w io.Writer, s Snapshot, source string) error {
	b := bufio.NewWriter(w)
	line := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteByte('\n')
	}
	val := func(v Value, f func(Value) string) string {
		if !v.OK {
			return plainNoData
		}
		return f(v)
	}
	count, pct, ms := Value.Count, Value.Percent, Value.Millis

	line("source", clean(source))
	if !s.Time.IsZero() {
		line("time", s.Time.UTC().Format(time.RFC3339))
	}
	if s.CountsLabel != "" {
		line("counts", clean(s.CountsLabel))
	}
	line("active_connections", val(s.ActiveConnections, count))
	line("connections_per_minute", val(s.ConnectionsPerMinute, count))
	line("authentication_failures", val(s.AuthenticationFailures, count))
	line("messages_sent_per_minute", val(s.MessagesSentPerMinute, count))
	line("error_rate", val(s.ErrorRatePercent, pct))
	line("latency_p50", val(s.LatencyP50, ms))
	line("latency_p99", val(s.LatencyP99, ms))
	if s.LatencyLabel != "" {
		line("latency_source", clean(s.LatencyLabel))
	}
	line("breaker_state", breakerText(clean(s.BreakerState)))
	if s.SendLimit.OK { // only a source that sees a Manager has these
		line("send_limit", val(s.SendLimit, count))
		line("send_in_flight", val(s.SendInFlight, count))
		line("send_rate_limit", val(s.SendRate, count))
	}
	line("disconnects_dropped", val(s.DisconnectsDropped, count))
	if s.HasLambda {
		line("lambda_errors", val(s.LambdaErrors, count))
		line("lambda_throttles", val(s.Throttles, count))
		line("lambda_cold_starts", val(s.ColdStarts, count))
		for _, f := range s.Functions {
			n := clean(f.Name)
			line("function "+n+" invocations", val(f.Invocations, count))
			line("function "+n+" errors", val(f.Errors, count))
			line("function "+n+" throttles", val(f.Throttles, count))
			line("function "+n+" cold_starts", val(f.ColdStarts, count))
		}
		line("alarms_in_alarm", Some(float64(s.FiringAlarms())).Count())
		for _, a := range s.Alarms {
			v := clean(a.State)
			if r := clean(a.Reason); r != "" {
				v += " (" + r + ")"
			}
			line("alarm "+clean(a.Name), v)
		}
	}
	for _, wn := range s.Warnings {
		line("warning", clean(strings.TrimSpace(wn)))
	}
	return b.Flush()
}

// Snapshot output formats (Options.Output).
const (
	OutputPlain = "plain"
	OutputJSON  = "json"
)

// ErrUnknownOutput is returned by Once for an Options.Output it cannot write.
var ErrUnknownOutput = errors.New("dashboard: unknown output format (want plain or json)")

// snapshotJSON is RenderJSON's object: RenderPlain's keys, every one always
// present, null for no data or for what the source does not report. The
// per-function and per-alarm lines of the plain output become the arrays
// "functions" and "alarms", and its "warning" lines the array "warnings".
type snapshotJSON struct {
	Source                 string         `json:"source"`
	Time                   *string        `json:"time"`
	Counts                 *string        `json:"counts"`
	ActiveConnections      *float64       `json:"active_connections"`
	ConnectionsPerMinute   *float64       `json:"connections_per_minute"`
	AuthenticationFailures *float64       `json:"authentication_failures"`
	MessagesSentPerMinute  *float64       `json:"messages_sent_per_minute"`
	ErrorRate              *float64       `json:"error_rate"`  // percent
	LatencyP50             *float64       `json:"latency_p50"` // milliseconds
	LatencyP99             *float64       `json:"latency_p99"` // milliseconds
	LatencySource          *string        `json:"latency_source"`
	BreakerState           *string        `json:"breaker_state"`
	SendLimit              *float64       `json:"send_limit"`
	SendInFlight           *float64       `json:"send_in_flight"`
	SendRateLimit          *float64       `json:"send_rate_limit"` // requests/s; 0 when off
	DisconnectsDropped     *float64       `json:"disconnects_dropped"`
	LambdaErrors           *float64       `json:"lambda_errors"`
	LambdaThrottles        *float64       `json:"lambda_throttles"`
	LambdaColdStarts       *float64       `json:"lambda_cold_starts"`
	Functions              []functionJSON `json:"functions"`
	AlarmsInAlarm          *int           `json:"alarms_in_alarm"`
	Alarms                 []alarmJSON    `json:"alarms"`
	Warnings               []string       `json:"warnings"`
}

type functionJSON struct {
	Name        string   `json:"name"`
	Invocations *float64 `json:"invocations"`
	Errors      *float64 `json:"errors"`
	Throttles   *float64 `json:"throttles"`
	ColdStarts  *float64 `json:"cold_starts"`
}

type alarmJSON struct {
	Name   string  `json:"name"`
	State  string  `json:"state"`
	Reason *string `json:"reason"`
}

// RenderJSON writes s as one JSON object (indented, newline-terminated)
// with RenderPlain's keys. Numbers are numbers, rounded to three decimals
// (plain rounds more): error_rate in percent, latency_p50/p99 in
// milliseconds. No data is null, as are disconnects_dropped for a source
// that cannot see it (CloudWatch), send_limit/send_in_flight/send_rate_limit
// when the source sees no connection Manager (CloudWatch, or a local stack
// without --simulate),
// time, counts and latency_source when the source gives none, breaker_state
// when it cannot see a breaker, and the Lambda keys (lambda_*, functions,
// alarms_in_alarm, alarms) for a source without Lambda metrics (local).
// warnings is always an array.
func RenderJSON(w io.Writer, s Snapshot, source string) error {
	num := func(v Value) *float64 {
		if !v.OK {
			return nil
		}
		// Rates come from timed deltas (59.891684212135196 a minute):
		// three decimals keep microseconds of latency and drop the noise.
		r := math.Round(v.V*1000) / 1000
		return &r
	}
	str := func(v string) *string {
		if v = clean(v); v == "" {
			return nil
		}
		return &v
	}
	o := snapshotJSON{
		Source:                 clean(source),
		Counts:                 str(s.CountsLabel),
		ActiveConnections:      num(s.ActiveConnections),
		ConnectionsPerMinute:   num(s.ConnectionsPerMinute),
		AuthenticationFailures: num(s.AuthenticationFailures),
		MessagesSentPerMinute:  num(s.MessagesSentPerMinute),
		ErrorRate:              num(s.ErrorRatePercent),
		LatencyP50:             num(s.LatencyP50),
		LatencyP99:             num(s.LatencyP99),
		LatencySource:          str(s.LatencyLabel),
		BreakerState:           str(s.BreakerState),
		SendLimit:              num(s.SendLimit),
		SendInFlight:           num(s.SendInFlight),
		SendRateLimit:          num(s.SendRate),
		DisconnectsDropped:     num(s.DisconnectsDropped),
		Warnings:               []string{},
	}
	if !s.Time.IsZero() {
		t := s.Time.UTC().Format(time.RFC3339)
		o.Time = &t
	}
	if s.HasLambda {
		o.LambdaErrors, o.LambdaThrottles, o.LambdaColdStarts = num(s.LambdaErrors), num(s.Throttles), num(s.ColdStarts)
		o.Functions = make([]functionJSON, 0, len(s.Functions))
		for _, f := range s.Functions {
			o.Functions = append(o.Functions, functionJSON{Name: clean(f.Name), Invocations: num(f.Invocations),
				Errors: num(f.Errors), Throttles: num(f.Throttles), ColdStarts: num(f.ColdStarts)})
		}
		n := s.FiringAlarms()
		o.AlarmsInAlarm = &n
		o.Alarms = make([]alarmJSON, 0, len(s.Alarms))
		for _, a := range s.Alarms {
			o.Alarms = append(o.Alarms, alarmJSON{Name: clean(a.Name), State: clean(a.State), Reason: str(a.Reason)})
		}
	}
	for _, wn := range s.Warnings {
		o.Warnings = append(o.Warnings, clean(strings.TrimSpace(wn)))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(o)
}
