package dashboard

import (
	"math"
	"strconv"
	"time"
)

// Value is one metric reading that can say "no data" (OK false; the zero
// Value): a first poll has no rate yet, CloudWatch may hold no datapoints, a
// source may not measure the metric at all.
type Value struct {
	V  float64
	OK bool
}

// Some returns a Value holding v; NaN and ±Inf mean no data.
func Some(v float64) Value {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Value{}
	}
	return Value{V: v, OK: true}
}

// noDataText is what a missing value looks like on screen.
const noDataText = "—"

// Count formats v as a count (rounded to an integer when large, one decimal
// below 10 so small per-minute rates do not all read 0).
func (v Value) Count() string {
	if !v.OK {
		return noDataText
	}
	if v.V == math.Trunc(v.V) || math.Abs(v.V) >= 10 {
		return strconv.FormatFloat(math.Round(v.V), 'f', 0, 64)
	}
	return strconv.FormatFloat(v.V, 'f', 1, 64)
}

// Percent formats v as a percentage with two decimals.
func (v Value) Percent() string {
	if !v.OK {
		return noDataText
	}
	return strconv.FormatFloat(v.V, 'f', 2, 64) + "%"
}

// Millis formats v as milliseconds.
func (v Value) Millis() string {
	if !v.OK {
		return noDataText
	}
	prec := 1
	if v.V < 1 {
		prec = 3
	}
	return strconv.FormatFloat(v.V, 'f', prec, 64) + " ms"
}

// Alarm is one CloudWatch alarm and its state (OK, ALARM, INSUFFICIENT_DATA).
type Alarm struct {
	Name    string
	State   string
	Reason  string
	Updated time.Time
}

// AlarmStateAlarm is the state of an alarm that fires.
const AlarmStateAlarm = "ALARM"

// Firing reports whether the alarm is in ALARM.
func (a Alarm) Firing() bool { return a.State == AlarmStateAlarm }

// FunctionStats are one Lambda function's counts over the window.
type FunctionStats struct {
	Name        string
	Invocations Value
	Errors      Value
	Throttles   Value
	ColdStarts  Value
}

// Snapshot is everything a dashboard shows at one refresh. Series are oldest
// first and feed the sparklines.
type Snapshot struct {
	// Time is when the data was read (the gateway's clock, or the end of the
	// CloudWatch query).
	Time time.Time
	// Window is the span the counts cover (CloudWatch: the query range).
	Window time.Duration
	// CountsLabel says what AuthenticationFailures, LambdaErrors, Throttles
	// and ColdStarts count over, e.g. "last 1h" or "since gateway start".
	CountsLabel string

	ActiveConnections      Value
	ActiveSeries           []float64
	ConnectionsPerMinute   Value
	ConnectionsSeries      []float64
	AuthenticationFailures Value
	MessagesSentPerMinute  Value
	MessagesSeries         []float64
	ErrorRatePercent       Value
	ErrorRateSeries        []float64
	LatencyP50, LatencyP99 Value
	// LatencyLabel names what the latency measures (it differs by source).
	LatencyLabel string
	// BreakerState is closed|open|half-open; "" when the source cannot see a
	// circuit breaker.
	BreakerState string
	// SendLimit is a connection Manager's adaptive limit on @connections
	// requests in flight, SendInFlight how many hold a slot, SendRate the
	// client-side rate a 429 turned on (0: off); no data when the source
	// sees no Manager.
	SendLimit, SendInFlight, SendRate Value
	// DisconnectsDropped counts closes whose $disconnect the local gateway
	// skipped by fault injection (as AWS may: each leaves a record of a
	// gone client behind), since the gateway started; no data from sources
	// that cannot see it (CloudWatch).
	DisconnectsDropped Value

	// HasLambda is true for sources that report Lambda metrics and alarms
	// (CloudWatch); the view shows those panels only then.
	HasLambda    bool
	LambdaErrors Value
	Throttles    Value
	ColdStarts   Value
	Functions    []FunctionStats
	Alarms       []Alarm

	// Warnings are partial failures that did not prevent a snapshot (alarms
	// unreadable, partial CloudWatch data).
	Warnings []string
}

// FiringAlarms counts alarms in ALARM.
func (s Snapshot) FiringAlarms() int {
	n := 0
	for _, a := range s.Alarms {
		if a.Firing() {
			n++
		}
	}
	return n
}

func breakerText(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}
