package localgw

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// frame builds a masked client frame header for opcode and payload length.
func frame(opcode byte, fin bool, n uint64) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	var h []byte
	switch {
	case n < 126:
		h = []byte{b0, 0x80 | byte(n)}
	case n <= 0xffff:
		h = []byte{b0, 0x80 | 126, 0, 0}
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h = make([]byte, 10)
		h[0], h[1] = b0, 0x80|127
		binary.BigEndian.PutUint64(h[2:], n)
	}
	h = append(h, 1, 2, 3, 4) // mask key
	return append(h, make([]byte, n)...)
}

func TestFrameSniffer(t *testing.T) {
	cat := func(fs ...[]byte) []byte {
		var out []byte
		for _, f := range fs {
			out = append(out, f...)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		stream []byte
		want   bool
	}{
		{"small text", frame(1, true, 10), false},
		{"exactly 32 KB", frame(1, true, MaxFrameBytes), false},
		{"fragments of 32 KB", cat(frame(1, false, MaxFrameBytes), frame(0, false, MaxFrameBytes), frame(0, true, 0)), false},
		{"ping between fragments", cat(frame(1, false, 100), frame(9, true, 4), frame(0, true, 100)), false},
		{"32 KB + 1 text", frame(1, true, MaxFrameBytes+1), true},
		{"oversize continuation", cat(frame(1, false, 10), frame(0, true, MaxFrameBytes+1)), true},
		{"oversize binary", frame(2, true, 70000), true},
		{"64-bit length", frame(1, true, 1<<17), true},
	} {
		for _, chunk := range []int{1, 3, 1000, len(tc.stream)} {
			s := newFrameSniffer(MaxFrameBytes)
			for i := 0; i < len(tc.stream); i += chunk {
				s.feed(tc.stream[i:min(i+chunk, len(tc.stream))])
			}
			if s.oversize.Load() != tc.want {
				t.Errorf("%s (chunks of %d): oversize %v, want %v", tc.name, chunk, s.oversize.Load(), tc.want)
			}
			if s.payload != 0 || s.hdrLen != 0 {
				t.Errorf("%s (chunks of %d): parser not at a frame boundary after the stream", tc.name, chunk)
			}
		}
	}
}

func TestTokenBucket(t *testing.T) {
	now := time.Unix(0, 0)
	b := newTokenBucket(10, 0, func() time.Time { return now }) // burst defaults to the rate
	n := 0
	for b.allow() {
		n++
	}
	if n != 10 {
		t.Errorf("burst %d, want 10", n)
	}
	now = now.Add(250 * time.Millisecond)
	n = 0
	for b.allow() {
		n++
	}
	if n != 2 {
		t.Errorf("after 250 ms at 10/s: %d allowed, want 2", n)
	}
}

func TestFaultDrawsFollowProbabilities(t *testing.T) {
	fi := newFaultInjector(Faults{Error500: 0.1, Error429: 0.2, Error410: 0.3, Rand: rand.New(rand.NewPCG(7, 7))})
	counts := map[*injectedError]int{}
	const n = 20000
	for range n {
		inj, err := fi.apply(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		counts[inj]++
	}
	for inj, p := range map[*injectedError]float64{fault500: 0.1, fault429: 0.2, fault410: 0.3, nil: 0.4} {
		if got := float64(counts[inj]) / n; math.Abs(got-p) > 0.02 {
			t.Errorf("%v: frequency %.3f, want %.2f", inj, got, p)
		}
	}
}

func TestParseSelectionExpression(t *testing.T) {
	for expr, want := range map[string]string{
		"$request.body.action":     "action",
		"${request.body.a.b}":      "a/b",
		"$request.body.type.inner": "type/inner",
	} {
		p, err := parseSelectionExpression(expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		got := ""
		for i, s := range p {
			if i > 0 {
				got += "/"
			}
			got += s
		}
		if got != want {
			t.Errorf("%s => %s, want %s", expr, got, want)
		}
	}
	for _, bad := range []string{"action", "$request.body.", "$request.querystring.a", "${request.body.}"} {
		if _, err := parseSelectionExpression(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNewIDShape(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		if len(id) != 16 || id[15] != '=' || seen[id] {
			t.Fatalf("id %q", id)
		}
		seen[id] = true
	}
}
