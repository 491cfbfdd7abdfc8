package cmd

import "testing"

func TestTerminalTextEscapesWhatATerminalWouldObey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"user-1", "user-1"},
		{"L0SM9cOFvHc_-w=", "L0SM9cOFvHc_-w="},
		{"Zoë 東京", "Zoë 東京"},
		{"u\x1b[31mred", `u\x1b[31mred`},
		{"a\u009bb", `a\u009bb`},                   // C1 CSI
		{"evil\u202etxt.exe", `evil\u202etxt.exe`}, // right-to-left override
		{"zero\u200bwidth", `zero\u200bwidth`},
		{"tab\there\nline\r", `tab\there\nline\r`},
		{"back\\slash", `back\\slash`},
		{"bad\xffbyte", `bad\xffbyte`},
		{"del\x7f", `del\x7f`},
	} {
		if got := terminalText(c.in); got != c.want {
			t.Errorf("terminalText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
