package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/spf13/cobra"
)

// Output formats.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatPlain = "plain"
)

// dataFormats are the -o values of commands that print data.
var dataFormats = []string{FormatTable, FormatJSON, FormatPlain}

const outputFlagHelp = "output format: table|json|plain (default: table on a terminal, plain tab-separated otherwise)"

// addOutputFlag registers -o/--output on c into dst, with usage as its help
// and dst's current value as its default, and refuses (before the command
// runs, exit 2) any value other than "" and formats.
func addOutputFlag(c *cobra.Command, dst *string, usage string, formats ...string) {
	c.Flags().StringVarP(dst, "output", "o", *dst, usage)
	c.PreRunE = func(*cobra.Command, []string) error { return checkOutput(*dst, formats...) }
}

// checkOutput refuses an -o value the command does not know. allowed lists
// the accepted values; "" is always accepted.
func checkOutput(flag string, allowed ...string) error {
	if flag == "" || slices.Contains(allowed, flag) {
		return nil
	}
	return &UsageError{Err: fmt.Errorf("unknown --output %q: use %s", flag, orList(allowed))}
}

func orList(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// resolveFormat applies the -o flag: "" means a table on a terminal and
// plain tab-separated text otherwise (pipes, files, scripts).
func resolveFormat(flag string, outTTY bool) string {
	switch {
	case flag != "":
		return flag
	case outTTY:
		return FormatTable
	}
	return FormatPlain
}

// listWriter prints rows as they arrive, so a 100,000-row listing starts
// printing after its first page. Tables take their column widths from the
// first batch; JSON is one array written incrementally.
type listWriter struct {
	out    io.Writer
	format string
	header []string
	table  *tablewriter.Table
	n      int
}

func newListWriter(out io.Writer, format string, header []string) *listWriter {
	return &listWriter{out: out, format: format, header: header}
}

// Write prints one batch: rows for table/plain, objs (same order) for json.
func (w *listWriter) Write(rows [][]string, objs []any) error {
	switch w.format {
	case FormatJSON:
		for _, o := range objs {
			b, err := json.Marshal(o)
			if err != nil {
				return err
			}
			sep := ",\n  "
			if w.n == 0 {
				sep = "[\n  "
			}
			if _, err := fmt.Fprintf(w.out, "%s%s", sep, b); err != nil {
				return err
			}
			w.n++
		}
		return nil
	case FormatTable:
		if len(rows) == 0 {
			return nil
		}
		if w.table == nil {
			w.table = tablewriter.NewTable(w.out,
				tablewriter.WithStreaming(tw.StreamConfig{Enable: true}),
				tablewriter.WithWidths(tw.CellWidth{PerColumn: columnWidths(w.header, rows)}))
			if err := w.table.Start(); err != nil {
				return err
			}
			w.table.Header(anySlice(w.header)...)
		}
		for _, r := range rows {
			if err := w.table.Append(anySlice(r)...); err != nil {
				return err
			}
			w.n++
		}
		return nil
	default:
		if err := renderPlain(w.out, rows); err != nil {
			return err
		}
		w.n += len(rows)
		return nil
	}
}

// Close finishes the output (closing bracket, bottom border).
func (w *listWriter) Close() error {
	switch w.format {
	case FormatJSON:
		if w.n == 0 {
			_, err := fmt.Fprintln(w.out, "[]")
			return err
		}
		_, err := fmt.Fprintln(w.out, "\n]")
		return err
	case FormatTable:
		if w.table != nil {
			return w.table.Close()
		}
	}
	return nil
}

// Count is the number of rows written.
func (w *listWriter) Count() int { return w.n }

const maxColumnWidth = 48

func columnWidths(header []string, rows [][]string) tw.Mapper[int, int] {
	m := tw.NewMapper[int, int]()
	for i, h := range header {
		w := len(h)
		for _, r := range rows {
			if i < len(r) && len(r[i]) > w {
				w = len(r[i])
			}
		}
		if w > maxColumnWidth {
			w = maxColumnWidth
		}
		m.Set(i, w+2) // the padding is part of the width
	}
	return m
}

// renderTable prints a small complete table (summaries, records).
func renderTable(out io.Writer, header []string, rows [][]string) error {
	t := tablewriter.NewTable(out)
	if len(header) > 0 {
		t.Header(anySlice(header)...)
	}
	for _, r := range rows {
		if err := t.Append(anySlice(r)...); err != nil {
			return err
		}
	}
	return t.Render()
}

// renderPlain prints tab-separated rows.
func renderPlain(out io.Writer, rows [][]string) error {
	for _, r := range rows {
		if _, err := fmt.Fprintln(out, strings.Join(sanitizeCells(r), "\t")); err != nil {
			return err
		}
	}
	return nil
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// lineBreaks turns the characters that would split a plain record into spaces.
var lineBreaks = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")

// sanitizeCells keeps each record on one line in plain output.
func sanitizeCells(r []string) []string {
	out := make([]string, len(r))
	for i, c := range r {
		out[i] = lineBreaks.Replace(c)
	}
	return out
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// palette colours text only on a terminal and never when NO_COLOR is set
// (https://no-color.org: any non-empty value).
type palette struct{ on bool }

func newPalette(tty bool, getenv func(string) string) palette {
	return palette{on: tty && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"}
}

func (p palette) wrap(code, s string) string {
	if !p.on {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}
func (p palette) Green(s string) string  { return p.wrap("32", s) }
func (p palette) Red(s string) string    { return p.wrap("31", s) }
func (p palette) Yellow(s string) string { return p.wrap("33", s) }
func (p palette) Bold(s string) string   { return p.wrap("1", s) }

// formatAge renders how long ago t was: "12s ago", "5m ago", "3h ago",
// "2d ago"; "-" for the zero time.
func formatAge(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
}

// formatTime is the machine form used by plain output.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	default:
		return d.Round(100 * time.Millisecond).String()
	}
}

// joinEscaped is a list of client- or token-supplied values for one cell:
// each escaped (terminalText), joined with commas.
func joinEscaped(vals []string) string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = terminalText(v)
	}
	return strings.Join(out, ",")
}

// terminalLines is terminalText for a message of several lines (an error
// with its hint): each line escaped, the line breaks kept.
func terminalLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = terminalText(l)
	}
	return strings.Join(lines, "\n")
}

// terminalText makes text that came from a client or a token (ids, user
// and tenant, user agents, received messages) safe to print on a terminal:
// control characters (C0, DEL and C1 such as U+009B, a one-byte CSI) and
// Unicode format characters (bidi overrides such as U+202E, zero-width
// characters) become visible escapes, as %q writes them, and so does the
// backslash, so an escape is never ambiguous. Invalid UTF-8 bytes become
// \xNN. Printable text, non-ASCII letters included, is unchanged. JSON
// output needs none of this: encoding/json escapes it already.
func terminalText(s string) string {
	clean := true
	for _, r := range s {
		if r == '\\' || r == utf8.RuneError || invisible(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case invisible(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
