package dashboard

import (
	"io"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// NewRenderer returns a lipgloss renderer for w that detects the terminal's
// colours, or draws none when noColor (NO_COLOR set, tests).
func NewRenderer(w io.Writer, noColor bool) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(w)
	if noColor {
		r.SetColorProfile(termenv.Ascii)
	}
	// Fixed colours below, so the renderer never has to query the terminal's
	// background (a query would race with bubbletea's input reader).
	r.SetHasDarkBackground(true)
	return r
}

// styles are built from one renderer so a test can switch colour off.
type styles struct {
	header, dim, title, spark, value, good, warn, bad, alarm, status, statusErr lipgloss.Style
	panel, focused                                                              lipgloss.Style
	help                                                                        help.Styles
}

func newStyles(r *lipgloss.Renderer) styles {
	var (
		red    = lipgloss.Color("1")
		green  = lipgloss.Color("2")
		yellow = lipgloss.Color("3")
		cyan   = lipgloss.Color("6")
		grey   = lipgloss.Color("8")
	)
	s := styles{
		header:    r.NewStyle().Bold(true),
		dim:       r.NewStyle().Foreground(grey),
		title:     r.NewStyle().Bold(true),
		spark:     r.NewStyle().Foreground(cyan),
		value:     r.NewStyle().Bold(true),
		good:      r.NewStyle().Foreground(green),
		warn:      r.NewStyle().Foreground(yellow).Bold(true),
		bad:       r.NewStyle().Foreground(red).Bold(true),
		alarm:     r.NewStyle().Foreground(red).Bold(true),
		status:    r.NewStyle().Foreground(grey),
		statusErr: r.NewStyle().Foreground(red),
		// Focus changes the border's shape too, so it shows without colour.
		panel:   r.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(grey).Padding(0, 1),
		focused: r.NewStyle().Border(lipgloss.ThickBorder()).BorderForeground(cyan).Padding(0, 1),
	}
	s.help = help.Styles{
		Ellipsis:       r.NewStyle().Foreground(grey),
		ShortKey:       r.NewStyle().Bold(true),
		ShortDesc:      r.NewStyle().Foreground(grey),
		ShortSeparator: r.NewStyle().Foreground(grey),
		FullKey:        r.NewStyle().Bold(true),
		FullDesc:       r.NewStyle().Foreground(grey),
		FullSeparator:  r.NewStyle().Foreground(grey),
	}
	return s
}
