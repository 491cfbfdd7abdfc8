package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"strconv"

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
	Fixed       bool
	Output      string
}

// NewCmdBroadcast builds `streamer broadcast`.
func NewCmdBroadcast(f *Factory, runF func(*BroadcastOptions) error) *cobra.Command {
	opts := &BroadcastOptions{F: f}
	c := &cobra.Command{
		Use:   "broadcast (--tenant T | --user U | --ids a,b | --ids-from FILE|-) MESSAGE|@FILE|-",
		Short: "Send one message to many connections",
		Long: `Fan a message out to every connection of a tenant or a user, or to listed ids,
through the connection manager. A tenant's or user's connections are sent to
as the listing's pages arrive; listed ids are checked against the table in
batches of 100. On a terminal a progress bar shows on stderr for large
fan-outs. A summary (sent, not found, stale, skipped, failed, cancelled)
follows. Exit code 0 when every target received the message, 3 when some did not.

Requests in flight adapt to what the endpoint sustains: they start at 10, grow
while latency holds and back off on 429 LimitExceededException (throttling
slows the broadcast down instead of failing it) and on rising latency, up to
--concurrency (default 256, at most 1000). --fixed-concurrency holds exactly
--concurrency in flight instead.

--ids-from reads ids one per line (or comma-separated; the first tab-separated
field, so ` + "`conn ls -o plain`" + ` pipes straight in); blank lines and lines
starting with # are ignored; - reads stdin (then MESSAGE cannot also be -).
Each id is checked as it is read; the first invalid one stops the broadcast
with its line number. At most 1,000,000 ids: split larger files.

JSON output (-o json): {"total","sent","not_found","stale","skipped","failed","cancelled",
"duration_ms","interrupted","undelivered":[{"connection_id","status","error"}]}; an
interrupted broadcast (Ctrl-C) still prints it, with the ids not reached as cancelled.
With --dry-run: the targets, as rows (plain/table) or {"targets":[ids],"bytes":N} (json).`,
		Example: `  streamer broadcast --tenant acme '{"type":"maintenance","in":"5m"}'
  streamer conn ls --tenant acme -o plain | streamer broadcast --ids-from - @notice.json
  streamer broadcast --tenant acme --concurrency 50 --fixed-concurrency '{"type":"hi"}'`,
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
			if err := checkConcurrency(opts.Concurrency); err != nil {
				return err
			}
			if opts.Fixed && opts.Concurrency == 0 {
				return &UsageError{Err: errors.New("--fixed-concurrency needs --concurrency N (the number of requests to hold in flight)")}
			}
			if err := checkOwnerFlags(opts.TenantID, opts.UserID); err != nil {
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
	c.Flags().StringVar(&opts.IDsFrom, "ids-from", "", "file of connection ids, or - for stdin (at most 1,000,000)")
	c.Flags().BoolVar(&opts.DryRun, "dry-run", false, "list the targets; send nothing")
	addConcurrencyFlag(c, &opts.Concurrency)
	c.Flags().BoolVar(&opts.Fixed, "fixed-concurrency", false, "hold exactly --concurrency requests in flight (no adaptation)")
	addOutputFlag(c, &opts.Output, outputFlagHelp, dataFormats...)
	return c
}

// broadcastPlan is what a broadcast will send to: one of a listing, an id
// list or an id stream, and words for messages.
type broadcastPlan struct {
	what    string
	query   *store.ListQuery
	lister  store.Lister
	ids     []string
	stream  iter.Seq2[string, error]
	closeFn func()
}

func broadcastRun(ctx context.Context, opts *BroadcastOptions) error {
	f := opts.F
	tuneGC(f.Getenv)
	format := resolveFormat(opts.Output, f.IO.OutTTY)
	msg, err := readMessage(ctx, opts.Message, f.IO.In)
	if err != nil {
		return err
	}
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	plan, err := planBroadcast(ctx, opts, cfg)
	if err != nil {
		return err
	}
	defer plan.closeFn()
	if opts.DryRun {
		return dryRun(ctx, f, format, plan, len(msg))
	}
	m, err := f.Messenger(ctx, messengerOptions(opts, plan))
	if err != nil {
		return err
	}
	pr := newBroadcastProgress(f, len(plan.ids))
	bopts := connection.BroadcastOptions{Progress: pr.update}
	var sum connection.BroadcastResult
	switch {
	case plan.query != nil:
		sum, err = m.BroadcastQuery(ctx, plan.lister, *plan.query, msg, bopts)
	case plan.stream != nil:
		sum, err = m.BroadcastIDs(ctx, plan.stream, msg, bopts)
	default:
		sum, err = m.BroadcastWithProgress(ctx, plan.ids, msg, func(done, total int) {
			pr.update(connection.BroadcastProgress{Done: done, Total: total, Listed: true})
		})
	}
	pr.done()
	if err == nil {
		if serr := storeDown(sum); serr != nil {
			// Nothing could be checked: the store is down, not the targets.
			return explainSendErr(cfg, fmt.Errorf("broadcast to %s: %w", plan.what, serr))
		}
	}
	interrupted := ctx.Err() != nil
	if err != nil && !interrupted && sum.Total == 0 {
		return explainSendErr(cfg, fmt.Errorf("broadcast to %s: %w", plan.what, err))
	}
	if sum.Total == 0 && err == nil {
		if plan.stream != nil {
			fmt.Fprintf(f.IO.ErrOut, "no connection ids in %s; nothing sent\n", plan.what)
		} else {
			fmt.Fprintf(f.IO.ErrOut, "no connections for %s; nothing sent\n", plan.what)
		}
		if format == FormatJSON {
			return writeJSON(f.IO.Out, summaryJSON(sum, false))
		}
		return nil
	}
	// The summary so far is printed even when the broadcast stopped early:
	// a failure must not look like an empty result, and what was sent is
	// worth knowing.
	if perr := printSummary(f, format, sum, interrupted); perr != nil {
		return perr
	}
	switch {
	case err != nil:
		return explainBroadcastStop(cfg, plan.what, err)
	case sum.Sent < sum.Total:
		return fmt.Errorf("%w: %d of %d %s did not receive the message", ErrPartial, sum.Total-sum.Sent, sum.Total, plural(sum.Total, "connection", "connections"))
	}
	return nil
}

// storeDown returns the store's error when no target was sent because
// every existence check failed (the table's endpoint is down or missing).
func storeDown(sum connection.BroadcastResult) error {
	if sum.Total == 0 || sum.Sent > 0 || sum.Failed != sum.Total || len(sum.Outcomes) == 0 {
		return nil
	}
	for _, o := range sum.Outcomes {
		if !errors.Is(o.Err, connection.ErrStoreUnavailable) {
			return nil
		}
	}
	return sum.Outcomes[0].Err
}

// explainBroadcastStop says why a broadcast that started stopped early: an
// interruption, a bad --ids-from line (a usage error: the ids before it
// were sent), or the store.
func explainBroadcastStop(cfg Config, what string, err error) error {
	var ue *UsageError
	if errors.As(err, &ue) {
		return &UsageError{Err: fmt.Errorf("%w (the ids before it were sent; see the summary)", ue.Err)}
	}
	return explainSendErr(cfg, fmt.Errorf("broadcast to %s: %w", what, err))
}

// messengerOptions turns the flags into the Manager's limit: adaptive up
// to --concurrency, or fixed at it; never more than the targets need.
func messengerOptions(opts *BroadcastOptions, plan broadcastPlan) MessengerOptions {
	mo := concurrencyOptions(opts.Concurrency, opts.Fixed)
	if plan.ids != nil { // a known number of targets
		n := max(1, len(plan.ids))
		if mo.Workers > n {
			mo.Workers = n
		}
		if mo.MaxInFlight == 0 || mo.MaxInFlight > n {
			mo.MaxInFlight = n
		}
	}
	return mo
}

// planBroadcast resolves the targets: a listing (streamed), an id list, or
// an id stream from --ids-from.
func planBroadcast(ctx context.Context, opts *BroadcastOptions, cfg Config) (broadcastPlan, error) {
	f := opts.F
	plan := broadcastPlan{closeFn: func() {}}
	switch {
	case opts.TenantID != "" || opts.UserID != "":
		q := store.ListQuery{TenantID: opts.TenantID, UserID: opts.UserID, PageSize: store.MaxListPageSize}
		plan.what = "tenant " + terminalText(opts.TenantID)
		if opts.UserID != "" {
			plan.what = "user " + terminalText(opts.UserID)
		}
		st, err := f.Store(ctx)
		if err != nil {
			return plan, err
		}
		plan.query, plan.lister = &q, explainingLister{st: st, cfg: cfg}
	case len(opts.IDs) > 0:
		plan.what = "--ids"
		plan.ids = dedupe(opts.IDs)
	default:
		plan.what = opts.IDsFrom
		if opts.IDsFrom == "-" {
			plan.what = "stdin"
		}
		r, err := openInput(ctx, opts.IDsFrom, f.IO.In, "connection ids from "+plan.what)
		if errors.Is(err, fs.ErrNotExist) {
			return plan, &UsageError{Err: fmt.Errorf("--ids-from file %s does not exist", opts.IDsFrom)}
		}
		if err != nil {
			return plan, err
		}
		plan.closeFn = func() { _ = r.Close() }
		if in, ok := r.(*inputReader); ok && in.f != nil {
			if fi, err := in.f.Stat(); err == nil && fi.Mode().IsRegular() {
				// A file is read twice: once to check every line, so a
				// bad line sends nothing, then to send. Neither pass
				// holds the list.
				if err := scanIDs(ctx, r, 0, func(int, string) error { return nil }); err != nil {
					return plan, err
				}
				if _, err := in.f.Seek(0, io.SeekStart); err != nil {
					return plan, err
				}
			}
		}
		plan.stream = idStream(ctx, r)
	}
	return plan, nil
}

// explainingLister bounds each page request by the configured timeout and
// explains a store failure as the other commands do.
type explainingLister struct {
	st  store.Lister
	cfg Config
}

func (l explainingLister) List(ctx context.Context, q store.ListQuery) (store.Page, error) {
	cctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	p, err := l.st.List(cctx, q)
	if err != nil {
		return p, storeErr(l.cfg, err)
	}
	return p, nil
}

// idStream yields the ids scanIDs reads from r (each checked as it
// arrives; a bad line or more than DefaultMaxIDs ends it with a usage error
// naming the line).
func idStream(ctx context.Context, r io.Reader) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		err := scanIDs(ctx, r, 0, func(_ int, id string) error {
			if !yield(id, nil) {
				return errStopped
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStopped) {
			yield("", err)
		}
	}
}

// errStopped: the consumer of an id stream stopped taking ids.
var errStopped = errors.New("stopped")

// dryRun lists the targets and sends nothing.
func dryRun(ctx context.Context, f *Factory, format string, plan broadcastPlan, bytes int) error {
	ids := plan.ids
	var err error
	switch {
	case plan.query != nil:
		for c, lerr := range store.All(ctx, plan.lister, *plan.query) {
			if lerr != nil {
				return lerr
			}
			ids = append(ids, c.ConnectionID)
		}
	case plan.stream != nil:
		seen := map[string]bool{}
		for id, serr := range plan.stream {
			if serr != nil {
				return serr
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	if format == FormatJSON {
		if ids == nil {
			ids = []string{}
		}
		return writeJSON(f.IO.Out, dryRunJSON{Bytes: bytes, Targets: ids})
	}
	rows := make([][]string, len(ids))
	for i, id := range ids {
		rows[i] = []string{terminalText(id)}
	}
	if format == FormatTable && len(rows) > 0 {
		err = renderTable(f.IO.Out, []string{"target"}, rows)
	} else {
		err = renderPlain(f.IO.Out, rows)
	}
	fmt.Fprintf(f.IO.ErrOut, "dry run: would send %d %s to %d %s (%s); nothing sent\n",
		bytes, plural(bytes, "byte", "bytes"), len(ids), plural(len(ids), "connection", "connections"), plan.what)
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
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

// broadcastProgress drives the progress bar on a terminal: it appears once
// 50 targets are known (a listing's total grows as its pages arrive).
type broadcastProgress struct {
	f   *Factory
	bar *progressBar
}

func newBroadcastProgress(f *Factory, known int) *broadcastProgress {
	p := &broadcastProgress{f: f}
	if f.IO.ErrTTY && known >= progressThreshold {
		p.bar = newProgressBar(f.IO.ErrOut, f.Now, "broadcast")
	}
	return p
}

func (p *broadcastProgress) update(bp connection.BroadcastProgress) {
	if p.bar == nil {
		if !p.f.IO.ErrTTY || bp.Total < progressThreshold {
			return
		}
		p.bar = newProgressBar(p.f.IO.ErrOut, p.f.Now, "broadcast")
	}
	p.bar.UpdateListing(bp.Done, bp.Total, !bp.Listed)
}

func (p *broadcastProgress) done() {
	if p.bar != nil {
		p.bar.Done()
	}
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
	Interrupted bool              `json:"interrupted"`
	Undelivered []undeliveredJSON `json:"undelivered"`
}

func summaryJSON(s connection.BroadcastResult, interrupted bool) broadcastJSON {
	j := broadcastJSON{Total: s.Total, Sent: s.Sent, NotFound: s.NotFound, Stale: s.Stale, Skipped: s.Skipped,
		Failed: s.Failed, Cancelled: s.Cancelled, DurationMS: float64(s.Duration.Microseconds()) / 1000,
		Interrupted: interrupted, Undelivered: []undeliveredJSON{}}
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

func printSummary(f *Factory, format string, s connection.BroadcastResult, interrupted bool) error {
	if format == FormatJSON {
		return writeJSON(f.IO.Out, summaryJSON(s, interrupted))
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
		fmt.Fprintf(f.IO.ErrOut, "%s %s %s\n", p.Red("✗"), terminalText(o.ConnectionID), msg)
	}
	return nil
}
