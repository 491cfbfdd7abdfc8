package dashboard

import (
	"io"
	"os"

	"charm.land/bubbles/v2/help"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/colorprofile"
)

// colourEnv are the variables colorprofile.Detect reads.
var colourEnv = []string{"TERM", "COLORTERM", "CLICOLOR", "CLICOLOR_FORCE", "TTY_FORCE", "GOOGLE_CLOUD_SHELL", "TMUX"}

// DetectProfile returns the colour profile for drawing on w: Ascii (no
// colour, no text attributes) when NO_COLOR is set to anything, else what
// colorprofile.Detect finds from w and the environment that getenv reads
// (nil => os.Getenv). It reads the environment and w's file descriptor only;
// it never queries the terminal.
func DetectProfile(w io.Writer, getenv func(string) string) colorprofile.Profile {
	if getenv == nil {
		getenv = os.Getenv
	}
	// https://no-color.org: any non-empty value. colorprofile itself only
	// honours values strconv.ParseBool reads as true.
	if getenv("NO_COLOR") != "" {
		return colorprofile.Ascii
	}
	var env []string
	for _, k := range colourEnv {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return colorprofile.Detect(w, env)
}

// hasColour reports whether a profile draws colours and text attributes;
// NoTTY and Ascii draw plain text (the dashboard's shapes, like the focused
// panel's thick border, carry the meaning then).
func hasColour(p colorprofile.Profile) bool { return p >= colorprofile.ANSI }

// styles are built for one colour profile so a test can switch colour off.
type styles struct {
	header, dim, title, spark, value, good, ok, warn, bad, alarm, status, statusErr lipgloss.Style
	panel, focused                                                                  lipgloss.Style
	// alertBorder is the border colour of a panel that reports something
	// wrong (nil without colour).
	alertBorder func(lipgloss.Style) lipgloss.Style
	help        help.Styles
}

// newStyles returns the dashboard's styles. The colours are fixed ANSI
// colours, so nothing ever asks the terminal for its background (in Bubble
// Tea v1 that query ran at package init, in every command). Without colour
// every style is plain: lipgloss v2 renders full-fidelity escapes and leaves
// downsampling to the output, and the model's View must be plain text then.
func newStyles(p colorprofile.Profile) styles {
	plain := lipgloss.NewStyle()
	if !hasColour(p) {
		s := styles{
			header: plain, dim: plain, title: plain, spark: plain, value: plain, good: plain, ok: plain,
			warn: plain, bad: plain, alarm: plain, status: plain, statusErr: plain,
			// Focus changes the border's shape too, so it shows without colour.
			panel:       plain.Border(lipgloss.RoundedBorder()).Padding(0, 1),
			focused:     plain.Border(lipgloss.ThickBorder()).Padding(0, 1),
			alertBorder: func(s lipgloss.Style) lipgloss.Style { return s },
		}
		s.help = help.Styles{Ellipsis: plain, ShortKey: plain, ShortDesc: plain, ShortSeparator: plain, FullKey: plain, FullDesc: plain, FullSeparator: plain}
		return s
	}
	var (
		red    = lipgloss.Red
		green  = lipgloss.Green
		yellow = lipgloss.Yellow
		cyan   = lipgloss.Cyan
		grey   = lipgloss.BrightBlack
	)
	s := styles{
		header:    plain.Bold(true),
		dim:       plain.Foreground(grey),
		title:     plain.Bold(true),
		spark:     plain.Foreground(cyan),
		value:     plain.Bold(true),
		good:      plain.Foreground(green),
		ok:        plain.Foreground(green).Bold(true),
		warn:      plain.Foreground(yellow).Bold(true),
		bad:       plain.Foreground(red).Bold(true),
		alarm:     plain.Foreground(red).Bold(true),
		status:    plain.Foreground(grey),
		statusErr: plain.Foreground(red),
		panel:     plain.Border(lipgloss.RoundedBorder()).BorderForeground(grey).Padding(0, 1),
		focused:   plain.Border(lipgloss.ThickBorder()).BorderForeground(cyan).Padding(0, 1),
		alertBorder: func(s lipgloss.Style) lipgloss.Style {
			return s.BorderForeground(red)
		},
	}
	s.help = help.Styles{
		Ellipsis:       plain.Foreground(grey),
		ShortKey:       plain.Bold(true),
		ShortDesc:      plain.Foreground(grey),
		ShortSeparator: plain.Foreground(grey),
		FullKey:        plain.Bold(true),
		FullDesc:       plain.Foreground(grey),
		FullSeparator:  plain.Foreground(grey),
	}
	return s
}
