package dashboard

import (
	"bufio"
	"io"
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
