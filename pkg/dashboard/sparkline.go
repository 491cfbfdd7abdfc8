package dashboard

import (
	"math"
	"strings"
)

var sparkLevels = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws the last width values (oldest first) as one line of block
// characters scaled from min(0, lowest) to the highest value, so a flat
// non-zero series reads as full rather than empty. Non-finite values are
// drawn as spaces. width <= 0 means no limit.
func Sparkline(values []float64, width int) string {
	if width > 0 && len(values) > width {
		values = values[len(values)-width:]
	}
	lo, hi := 0.0, math.Inf(-1)
	for _, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		lo = math.Min(lo, v)
		hi = math.Max(hi, v)
	}
	var b strings.Builder
	for _, v := range values {
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			b.WriteByte(' ')
		case hi <= lo:
			b.WriteRune(sparkLevels[0])
		default:
			i := int(math.Round((v - lo) / (hi - lo) * float64(len(sparkLevels)-1)))
			b.WriteRune(sparkLevels[i])
		}
	}
	return b.String()
}
