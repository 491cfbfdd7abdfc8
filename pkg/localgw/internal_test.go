package localgw

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
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
	fi := newFaultInjector(Faults{Error500: 0.1, Error429: 0.2, Error410: 0.3, Rand: rand.New(rand.NewPCG(7, 7))}, time.Now)
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

func TestSelectionExpressions(t *testing.T) {
	for _, tc := range []struct {
		expr, body, want string
		ok               bool
	}{
		{"$request.body.action", `{"action":"ping"}`, "ping", true},
		{"${request.body.action}", `{"action":"ping"}`, "ping", true},
		{"$request.body.meta.type", `{"meta":{"type":"sub"}}`, "sub", true},
		// Non-string values are stringified as their JSON text.
		{"$request.body.action", `{"action":42}`, "42", true},
		{"$request.body.action", `{"action":4.50}`, "4.50", true},
		{"$request.body.action", `{"action":true}`, "true", true},
		{"$request.body.action", `{"action":{"a": [1, 2]}}`, `{"a":[1,2]}`, true},
		// Templates join variables and literal text.
		{"${request.body.type}/${request.body.action}", `{"type":"chat","action":"send"}`, "chat/send", true},
		{"${request.body.version}-beta", `{"version":2}`, "2-beta", true},
		{"$request.body.version-beta", `{"version":"v1"}`, "v1-beta", true},
		{"v.$request.body.n.", `{"n":"3"}`, "v.3.", true},
		{`\$${request.body.a}`, `{"a":"x"}`, "$x", true},
		// Missing, null, not an object: no key ($default).
		{"$request.body.action", `{"other":1}`, "", false},
		{"$request.body.action", `{"action":null}`, "", false},
		{"${request.body.type}/${request.body.action}", `{"type":"chat"}`, "", false},
		{"$request.body.action", `not json`, "", false},
		{"$request.body.action", `["action"]`, "", false},
		{"$request.body.a.b", `{"a":"b"}`, "", false},
	} {
		sel, err := parseSelectionExpression(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		got, ok := sel.eval([]byte(tc.body))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s on %s = %q, %v; want %q, %v", tc.expr, tc.body, got, ok, tc.want, tc.ok)
		}
	}
	for _, bad := range []string{"action", "$request.body.", "$request.querystring.a", "${request.body.}", "${request.body.a", "$request.body.a..b", "\\$request.body.a", "$context.routeKey"} {
		if _, err := parseSelectionExpression(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%q: %v, want ErrInvalidConfig", bad, err)
		}
	}
}

func TestWellFormedID(t *testing.T) {
	for id, want := range map[string]bool{
		"L0SM9cOFvHcCIhw=": true, "dDa5Ab_-IAMCJcQ=": true, "ab+/cd+/ef+/ghI=": true,
		"abc": false, "%%%": false, "L0SM9cOFvHcCIhw": false, "L0SM9cOFvHcCIhw==": false, "L0SM9cOFvHc.Ihw=": false, "": false,
	} {
		if got := WellFormedID(id); got != want {
			t.Errorf("WellFormedID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestNewIDShape(t *testing.T) {
	for name, gen := range map[string]func() string{"newID": newID, "newRequestID": newRequestID} {
		t.Run(name, func(t *testing.T) { testIDShape(t, gen) })
	}
}

func testIDShape(t *testing.T, gen func() string) {
	seen := map[string]bool{}
	var dash, under bool
	for range 2000 {
		id := gen()
		if len(id) != 16 || id[15] != '=' || seen[id] || strings.ContainsAny(id, "+/") || !WellFormedID(id) {
			t.Fatalf("id %q, want 15 characters of [A-Za-z0-9_-] then =", id)
		}
		seen[id] = true
		dash = dash || strings.Contains(id, "-")
		under = under || strings.Contains(id, "_")
	}
	if !dash || !under {
		t.Errorf("2000 ids without a - (%v) or an _ (%v): not the URL-safe alphabet", !dash, !under)
	}
}

// The deadline heap, on a fake clock (deadlines hours away, so its real
// timer never fires during the test; expire runs by hand).
func TestDeadlines(t *testing.T) {
	const h = int64(time.Hour)
	var now int64
	var fired []*conn
	ds := &deadlines{
		now:       func() int64 { return now },
		fire:      func(c *conn) { fired = append(fired, c) },
		idleAfter: func(c *conn) int64 { return c.lastActiveMono.Load() + 10*h },
	}
	defer ds.stop()
	a, b, c, d := &conn{}, &conn{}, &conn{}, &conn{}
	ds.add(a, 10*h, 20*h)
	ds.add(b, 10*h, 20*h)
	ds.add(c, 10*h, 20*h)
	ds.add(d, 12*h, 13*h)
	b.lastActiveMono.Store(5 * h) // b was active at 5h: its idle deadline moved to 15h
	ds.remove(c)                  // c ended some other way

	expireAt := func(at int64) []*conn {
		now, fired = at, nil
		ds.expire()
		return fired
	}
	if got := expireAt(9 * h); len(got) != 0 {
		t.Fatalf("at 9h fired %d, want none", len(got))
	}
	if got := expireAt(10 * h); len(got) != 1 || got[0] != a {
		t.Fatalf("at 10h fired %v, want only a (idle)", got)
	}
	ds.remove(a) // as terminate does
	if got := expireAt(13 * h); len(got) != 1 || got[0] != d {
		t.Fatalf("at 13h fired %v, want only d (maximum duration)", got)
	}
	ds.remove(d)
	if got := expireAt(15 * h); len(got) != 1 || got[0] != b {
		t.Fatalf("at 15h fired %v, want b (idle since 5h)", got)
	}
	ds.remove(b)
	if len(ds.h) != 0 {
		t.Errorf("%d deadlines left in the heap", len(ds.h))
	}
}
