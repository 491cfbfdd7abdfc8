package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/spf13/cobra"
)

// BroadcastOptions are the inputs of `streamer broadcast`.
type BroadcastOptions struct {
	F           *Factory
	TenantID    string
	UserID      string
	IDs         []string
	IDsFrom     string
	Message     string
	DryRun      bool
	Concurrency int
	Output      string
}

// NewCmdBroadcast builds `streamer broadcast`.
func NewCmdBroadcast(f *Factory, runF func(*BroadcastOptions) error) *cobra.Command {
	opts := &BroadcastOptions{F: f}
	c := &cobra.Command{
		Use:   "broadcast (--tenant T | --user U | --ids a,b | --ids-from FILE|-) MESSAGE|@FILE|-",
		Short: "Send one message to many connections",
		Long: `Fan a message out to every connection of a tenant or a user, or to listed ids,
through the connection manager. On a terminal a progress bar shows on stderr for
large fan-outs. A summary (sent, not found, stale, skipped, failed, cancelled)
follows. Exit code 0 when every target received the message, 3 when some did not.

--ids-from reads ids one per line (or comma-separated); blank lines and lines
starting with # are ignored; - reads stdin (then MESSAGE cannot also be -).

JSON output (-o json): {"total","sent","not_found","stale","skipped","failed","cancelled",
"duration_ms","undelivered":[{"connection_id","status","error"}]}.
With --dry-run: the targets, as rows (plain/table) or {"targets":[ids],"bytes":N} (json).`,
		Example: `  streamer broadcast --tenant acme '{"type":"maintenance","in":"5m"}'
  streamer conn ls --tenant acme | cut -f1 | streamer broadcast --ids-from - @notice.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Message = args[0]
			n := 0
			for _, set := range []bool{opts.TenantID != "", opts.UserID != "", len(opts.IDs) > 0, opts.IDsFrom != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				return &UsageError{Err: errors.New("give exactly one target: --tenant, --user, --ids or --ids-from")}
			}
			if opts.IDsFrom == "-" && opts.Message == "-" {
				return &UsageError{Err: errors.New("--ids-from - and MESSAGE - cannot both read stdin; put the message in @FILE")}
			}
			if opts.Concurrency < 0 {
				return &UsageError{Err: errors.New("--concurrency must be positive")}
			}
			if err := checkOwnerID("--tenant", opts.TenantID); err != nil {
				return err
			}
			if err := checkOwnerID("--user", opts.UserID); err != nil {
				return err
			}
			for i, id := range opts.IDs {
				if err := checkConnectionID(fmt.Sprintf("--ids entry %d", i+1), id); err != nil {
					return err
				}
			}
			return runWith(c.Context(), opts, runF, broadcastRun)
		},
	}
	c.Flags().StringVar(&opts.TenantID, "tenant", "", "every connection of this tenant")
	c.Flags().StringVar(&opts.UserID, "user", "", "every connection of this user")
	c.Flags().StringSliceVar(&opts.IDs, "ids", nil, "comma-separated connection ids")
	c.Flags().StringVar(&opts.IDsFrom, "ids-from", "", "file of connection ids, or - for stdin")
	c.Flags().BoolVar(&opts.DryRun, "dry-run", false, "list the targets; send nothing")
	c.Flags().IntVar(&opts.Concurrency, "concurrency", 0, "parallel sends (default: the manager's, 10)")
	addOutputFlag(c, &opts.Output, outputFlagHelp, dataFormats...)
	return c
}

func broadcastRun(ctx context.Context, opts *BroadcastOptions) error {
	f := opts.F
	format := resolveFormat(opts.Output, f.IO.OutTTY)
	msg, err := readMessage(opts.Message, f.IO.In)
	if err != nil {
		return err
	}
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	ids, what, err := broadcastTargets(ctx, opts, cfg)
	if err != nil {
		return err
	}
	if opts.DryRun {
		if format == FormatJSON {
			return writeJSON(f.IO.Out, dryRunJSON{Bytes: len(msg), Targets: ids})
		}
		rows := make([][]string, len(ids))
		for i, id := range ids {
			rows[i] = []string{id}
		}
		if format == FormatTable && len(rows) > 0 {
			err = renderTable(f.IO.Out, []string{"target"}, rows)
		} else {
			err = renderPlain(f.IO.Out, rows)
		}
		fmt.Fprintf(f.IO.ErrOut, "dry run: would send %d bytes to %d connections (%s); nothing sent\n", len(msg), len(ids), what)
		return err
	}
	if len(ids) == 0 {
		fmt.Fprintf(f.IO.ErrOut, "no connections for %s; nothing sent\n", what)
		if format == FormatJSON {
			return writeJSON(f.IO.Out, summaryJSON(connection.BroadcastResult{}))
		}
		return nil
	}
	m, err := f.Messenger(ctx, MessengerOptions{Workers: opts.Concurrency})
	if err != nil {
		return err
	}
	var bar *progressBar
	var progress func(done, total int)
	if f.IO.ErrTTY && len(ids) >= progressThreshold {
		bar = newProgressBar(f.IO.ErrOut, f.Now, "broadcast")
		progress = bar.Update
	}
	sum, err := m.BroadcastWithProgress(ctx, ids, msg, progress)
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return explainSendErr(cfg, fmt.Errorf("broadcast to %s: %w", what, err))
	}
	if err := printSummary(f, format, sum); err != nil {
		return err
	}
	if sum.Sent < sum.Total {
		return fmt.Errorf("%w: %d of %d connections did not receive the message", ErrPartial, sum.Total-sum.Sent, sum.Total)
	}
	return nil
}

// broadcastTargets resolves the target ids (deduplicated, in order) and a
// description of them for messages.
func broadcastTargets(ctx context.Context, opts *BroadcastOptions, cfg Config) ([]string, string, error) {
	f := opts.F
	var ids []string
	var what string
	switch {
	case opts.TenantID != "" || opts.UserID != "":
		q := store.ListQuery{TenantID: opts.TenantID, UserID: opts.UserID, PageSize: store.MaxListPageSize}
		what = "tenant " + opts.TenantID
		if opts.UserID != "" {
			what = "user " + opts.UserID
		}
		st, err := f.Store(ctx)
		if err != nil {
			return nil, "", err
		}
		if ids, err = listIDs(ctx, st, cfg, q); err != nil {
			return nil, "", err
		}
	case len(opts.IDs) > 0:
		what = "--ids"
		ids = opts.IDs
	default:
		what = opts.IDsFrom
		var r io.Reader = f.IO.In
		if opts.IDsFrom != "-" {
			fh, err := os.Open(opts.IDsFrom)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, "", &UsageError{Err: fmt.Errorf("--ids-from file %s does not exist", opts.IDsFrom)}
			}
			if err != nil {
				return nil, "", err
			}
			defer fh.Close()
			r = fh
		} else {
			what = "stdin"
		}
		var err error
		if ids, err = readIDs(r); err != nil {
			return nil, "", fmt.Errorf("read ids from %s: %w", what, err)
		}
		for i, id := range ids {
			if err := checkConnectionID(fmt.Sprintf("id %d read from %s", i+1, what), id); err != nil {
				return nil, "", err
			}
		}
	}
	return dedupe(ids), what, nil
}

// readIDs reads ids one per line or comma-separated; the first
// tab-separated field is taken so `conn ls` plain output pipes straight in.
func readIDs(r io.Reader) ([]string, error) {
	var ids []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line, _, _ = strings.Cut(line, "\t")
		for _, id := range strings.Split(line, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
	}
	return ids, sc.Err()
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// dryRunJSON is the documented -o json form of broadcast --dry-run.
type dryRunJSON struct {
	Bytes   int      `json:"bytes"`
	Targets []string `json:"targets"`
}

type undeliveredJSON struct {
	ConnectionID string            `json:"connection_id"`
	Status       connection.Status `json:"status"`
	Error        string            `json:"error"`
}

// broadcastJSON is the documented -o json form of broadcast.
type broadcastJSON struct {
	Total       int               `json:"total"`
	Sent        int               `json:"sent"`
	NotFound    int               `json:"not_found"`
	Stale       int               `json:"stale"`
	Skipped     int               `json:"skipped"`
	Failed      int               `json:"failed"`
	Cancelled   int               `json:"cancelled"`
	DurationMS  float64           `json:"duration_ms"`
	Undelivered []undeliveredJSON `json:"undelivered"`
}

func summaryJSON(s connection.BroadcastResult) broadcastJSON {
	j := broadcastJSON{Total: s.Total, Sent: s.Sent, NotFound: s.NotFound, Stale: s.Stale, Skipped: s.Skipped,
		Failed: s.Failed, Cancelled: s.Cancelled, DurationMS: float64(s.Duration.Microseconds()) / 1000,
		Undelivered: []undeliveredJSON{}}
	for _, o := range undelivered(s) {
		u := undeliveredJSON{ConnectionID: o.ConnectionID, Status: o.Status}
		if o.Err != nil {
			u.Error = userText(o.Err.Error())
		}
		j.Undelivered = append(j.Undelivered, u)
	}
	return j
}

// undelivered lists every target of s that was not sent, in order.
func undelivered(s connection.BroadcastResult) []connection.Outcome {
	var out []connection.Outcome
	for _, o := range s.Outcomes {
		if o.Status != connection.StatusSent {
			out = append(out, o)
		}
	}
	return out
}

// maxListedFailures bounds the undelivered ids printed in table/plain.
const maxListedFailures = 20

func printSummary(f *Factory, format string, s connection.BroadcastResult) error {
	if format == FormatJSON {
		return writeJSON(f.IO.Out, summaryJSON(s))
	}
	p := newPalette(f.IO.OutTTY, f.Getenv)
	count := func(n int, bad bool) string {
		v := strconv.Itoa(n)
		if bad && n > 0 {
			return p.Red(v)
		}
		return v
	}
	rows := [][]string{
		{"total", strconv.Itoa(s.Total)},
		{"sent", p.Green(strconv.Itoa(s.Sent))},
		{"not_found", count(s.NotFound, true)},
		{"stale", count(s.Stale, true)},
		{"skipped", count(s.Skipped, true)},
		{"failed", count(s.Failed, true)},
		{"cancelled", count(s.Cancelled, true)},
		{"duration", formatDuration(s.Duration)},
	}
	var err error
	if format == FormatTable {
		err = renderTable(f.IO.Out, nil, rows)
	} else {
		rows[1][1] = strconv.Itoa(s.Sent)
		rows[len(rows)-1][1] = strconv.FormatFloat(float64(s.Duration.Microseconds())/1000, 'f', 1, 64) + "ms"
		err = renderPlain(f.IO.Out, rows)
	}
	if err != nil {
		return err
	}
	missed := undelivered(s)
	for i, o := range missed {
		if i == maxListedFailures {
			fmt.Fprintf(f.IO.ErrOut, "... and %d more (use -o json for all)\n", len(missed)-i)
			break
		}
		msg := string(o.Status)
		switch {
		case o.Status == connection.StatusNotFound:
			msg += ": no record (disconnected or never existed)"
		case o.Status == connection.StatusStale:
			msg += ": the gateway answered 410 Gone; record removed"
		case o.Err != nil:
			msg += ": " + userText(o.Err.Error())
		}
		fmt.Fprintf(f.IO.ErrOut, "%s %s %s\n", p.Red("✗"), o.ConnectionID, msg)
	}
	return nil
}
