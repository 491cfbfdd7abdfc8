package cmd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/spf13/cobra"
)

// ConnPruneOptions are the inputs of `streamer conn prune`.
type ConnPruneOptions struct {
	F           *Factory
	TenantID    string
	UserID      string
	DryRun      bool
	Concurrency int
	// MinAge leaves alone records connected less than this long ago; 0
	// checks every record.
	MinAge time.Duration
	// Cursor resumes an interrupted prune.
	Cursor string
	Output string
}

// NewCmdConnPrune builds `streamer conn prune`.
func NewCmdConnPrune(f *Factory, runF func(*ConnPruneOptions) error) *cobra.Command {
	opts := &ConnPruneOptions{F: f, MinAge: connection.DefaultReconcileMinAge}
	c := &cobra.Command{
		Use:   "prune [--tenant T | --user U]",
		Short: "Remove the records of connections that are gone (their $disconnect was lost)",
		Long: `Reconcile the table with the gateway. API Gateway delivers $disconnect on a
best-effort basis, so a record can outlive its connection until its 24 h TTL:
broadcasts pay a 410 for it, conn ls lists it and ActiveConnections reads high.
prune asks the management API about every record of a tenant, a user or (with
neither flag) the whole table (a Scan: every item is read), page by page, with
broadcast's adaptive concurrency, breaker and retries. Records whose connection
answers 410 Gone are removed in batches of 25 and ActiveConnections is
decremented by as many. Nothing else is ever removed: a live connection, and a
record that could not be checked (5xx, 429, timeouts, an open breaker) are kept.
Records connected less than --min-age ago are left alone too: a connection still
in its $connect answers 410 as a gone one does. The deployed reaper function does
the same on a schedule.

On a terminal a progress bar shows on stderr. A summary follows (checked, live,
recent, removed or would remove, errors, duration) and the ids removed (the
first 20; -o json has all). --dry-run removes nothing and lists what would go.
Exit code 0 when every record was checked, 3 when some could not be (run it
again later), 130/143 when interrupted: the summary so far is printed, with the
--cursor that resumes after the last whole page.

JSON output (-o json): {"dry_run","checked","live","recent","removed","errors",
"complete","interrupted","cursor","duration_ms","zombies":[ids],
"failures":[{"connection_id","status","error"}]}; zombies are the ids removed
(with --dry-run, to be removed); failures samples at most 20 records not checked.`,
		Example: `  streamer conn prune --tenant acme --dry-run
  streamer conn prune
  streamer conn prune --stack production --concurrency 50 -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if opts.TenantID != "" && opts.UserID != "" {
				return &UsageError{Err: errors.New("give at most one of --tenant or --user (neither checks every connection)")}
			}
			if err := checkOwnerFlags(opts.TenantID, opts.UserID); err != nil {
				return err
			}
			if err := checkConcurrency(opts.Concurrency); err != nil {
				return err
			}
			if opts.MinAge < 0 {
				return &UsageError{Err: fmt.Errorf("--min-age %s is negative: give how long ago a record must have connected to be checked (0: every record)", opts.MinAge)}
			}
			if len(opts.Cursor) > store.MaxCheckpointCursor {
				return &UsageError{Err: fmt.Errorf("--cursor is %d bytes, longer than any cursor prune prints (at most %d)", len(opts.Cursor), store.MaxCheckpointCursor)}
			}
			return runWith(c.Context(), opts, runF, connPruneRun)
		},
	}
	c.Flags().StringVar(&opts.TenantID, "tenant", "", "this tenant's connections")
	c.Flags().StringVar(&opts.UserID, "user", "", "this user's connections")
	c.Flags().BoolVar(&opts.DryRun, "dry-run", false, "check and list the records that would be removed; remove nothing")
	addConcurrencyFlag(c, &opts.Concurrency)
	c.Flags().DurationVar(&opts.MinAge, "min-age", opts.MinAge, "leave alone records connected less than this long ago (0: check every record)")
	c.Flags().StringVar(&opts.Cursor, "cursor", "", "resume an interrupted prune (the cursor it printed; with the same --tenant/--user)")
	addOutputFlag(c, &opts.Output, outputFlagHelp, dataFormats...)
	return c
}

func connPruneRun(ctx context.Context, opts *ConnPruneOptions) error {
	f := opts.F
	tuneGC(f.Getenv)
	format := resolveFormat(opts.Output, f.IO.OutTTY)
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	st, err := f.Store(ctx)
	if err != nil {
		return err
	}
	m, err := f.Messenger(ctx, concurrencyOptions(opts.Concurrency, false))
	if err != nil {
		return err
	}
	what := "table " + cfg.Table
	switch {
	case opts.TenantID != "":
		what = "tenant " + terminalText(opts.TenantID)
	case opts.UserID != "":
		what = "user " + terminalText(opts.UserID)
	case f.IO.ErrTTY:
		fmt.Fprintf(f.IO.ErrOut, "no --tenant or --user: checking every connection in table %s (a Scan: every item is read)\n", cfg.Table)
	}
	minAge := opts.MinAge
	if minAge == 0 {
		minAge = connection.ReconcileEveryRecord
	}
	pr := &pruneProgress{f: f}
	res, err := m.Reconcile(ctx, explainingLister{st: st, cfg: cfg}, connection.ReconcileOptions{
		Query:    store.ListQuery{TenantID: opts.TenantID, UserID: opts.UserID, PageSize: store.MaxListPageSize, Cursor: opts.Cursor},
		DryRun:   opts.DryRun,
		MinAge:   minAge,
		Progress: pr.update,
	})
	pr.done(res.Complete)
	// A pass that finished as the signal came was not cut short.
	interrupted := ctx.Err() != nil && !res.Complete
	if err != nil && !interrupted && res.Checked == 0 && res.Recent == 0 {
		return explainPruneErr(cfg, what, err)
	}
	if perr := printPrune(f, format, res, opts, interrupted); perr != nil {
		return perr
	}
	if err != nil {
		if !res.Complete {
			fmt.Fprintf(f.IO.ErrOut, "to resume: %s\n", resumeCommand(opts, res.Cursor))
		}
		return explainPruneErr(cfg, what, err)
	}
	if res.Errors > 0 {
		return fmt.Errorf("%w: %d of %d %s could not be checked and %s kept; run prune again later", ErrPartial,
			res.Errors, res.Checked, plural(res.Checked, "record", "records"), plural(res.Errors, "was", "were"))
	}
	return nil
}

// explainPruneErr says why a prune stopped: the listing (a refused
// --cursor is a usage error), a removal, or an interruption.
func explainPruneErr(cfg Config, what string, err error) error {
	return explainSendErr(cfg, fmt.Errorf("prune %s: %w", what, err))
}

// resumeCommand is the command line that resumes opts after cursor ("":
// from the start).
func resumeCommand(opts *ConnPruneOptions, cursor string) string {
	args := []string{"streamer", "conn", "prune"}
	if opts.TenantID != "" {
		args = append(args, "--tenant", shellQuote(terminalText(opts.TenantID)))
	}
	if opts.UserID != "" {
		args = append(args, "--user", shellQuote(terminalText(opts.UserID)))
	}
	if opts.DryRun {
		args = append(args, "--dry-run")
	}
	if cursor != "" {
		args = append(args, "--cursor", shellQuote(cursor))
	}
	return strings.Join(args, " ")
}

// pruneProgress drives the progress bar on a terminal once 50 records are
// listed (the total grows as the pages arrive).
type pruneProgress struct {
	f   *Factory
	bar *progressBar
	p   connection.ReconcileProgress
}

func (p *pruneProgress) update(rp connection.ReconcileProgress) {
	p.p = rp
	if p.bar == nil {
		if !p.f.IO.ErrTTY || rp.Listed < progressThreshold {
			return
		}
		p.bar = newProgressBar(p.f.IO.ErrOut, p.f.Now, "prune")
	}
	p.bar.UpdateListing(rp.Checked+rp.Recent, rp.Listed, true)
}

func (p *pruneProgress) done(complete bool) {
	if p.bar != nil {
		p.bar.UpdateListing(p.p.Checked+p.p.Recent, p.p.Listed, !complete)
		p.bar.Done()
	}
}

// pruneJSON is the documented -o json form of conn prune.
type pruneJSON struct {
	DryRun      bool     `json:"dry_run"`
	Checked     int      `json:"checked"`
	Live        int      `json:"live"`
	Recent      int      `json:"recent"`
	Removed     int      `json:"removed"`
	Errors      int      `json:"errors"`
	Complete    bool     `json:"complete"`
	Interrupted bool     `json:"interrupted"`
	Cursor      string   `json:"cursor"`
	DurationMS  float64  `json:"duration_ms"`
	Zombies     []string `json:"zombies"`
	// Failures share broadcast's shape: the id, its status, why.
	Failures []undeliveredJSON `json:"failures"`
}

func pruneSummaryJSON(res connection.ReconcileResult, dryRun, interrupted bool) pruneJSON {
	j := pruneJSON{DryRun: dryRun, Checked: res.Checked, Live: res.Live, Recent: res.Recent, Removed: res.Removed,
		Errors: res.Errors, Complete: res.Complete, Interrupted: interrupted, Cursor: res.Cursor,
		DurationMS: float64(res.Duration.Microseconds()) / 1000, Zombies: append([]string{}, res.Zombies...),
		Failures: []undeliveredJSON{}}
	if res.Complete {
		j.Cursor = ""
	}
	for _, o := range res.Failures {
		u := undeliveredJSON{ConnectionID: o.ConnectionID, Status: o.Status}
		if o.Err != nil {
			u.Error = userText(o.Err.Error())
		}
		j.Failures = append(j.Failures, u)
	}
	return j
}

// printPrune writes the summary and the ids to stdout, what needs saying
// to stderr.
func printPrune(f *Factory, format string, res connection.ReconcileResult, opts *ConnPruneOptions, interrupted bool) error {
	if format == FormatJSON {
		return writeJSON(f.IO.Out, pruneSummaryJSON(res, opts.DryRun, interrupted))
	}
	p := newPalette(f.IO.OutTTY, f.Getenv)
	removed, removedKey := strconv.Itoa(res.Removed), "removed"
	if opts.DryRun {
		removed, removedKey = strconv.Itoa(len(res.Zombies)), "would_remove"
	}
	errs := strconv.Itoa(res.Errors)
	if res.Errors > 0 {
		errs = p.Red(errs)
	}
	rows := [][]string{
		{"checked", strconv.Itoa(res.Checked)},
		{"live", strconv.Itoa(res.Live)},
		{"recent", strconv.Itoa(res.Recent)},
		{removedKey, removed},
		{"errors", errs},
		{"duration", formatDuration(res.Duration)},
	}
	ids := res.Zombies[:min(len(res.Zombies), maxListedFailures)]
	var err error
	if format == FormatTable {
		if err = renderTable(f.IO.Out, nil, rows); err == nil && len(ids) > 0 {
			header := "REMOVED"
			if opts.DryRun {
				header = "WOULD REMOVE"
			}
			idRows := make([][]string, len(ids))
			for i, id := range ids {
				idRows[i] = []string{terminalText(id)}
			}
			err = renderTable(f.IO.Out, []string{header}, idRows)
		}
	} else {
		rows[4][1] = strconv.Itoa(res.Errors)
		rows[5][1] = strconv.FormatFloat(float64(res.Duration.Microseconds())/1000, 'f', 1, 64) + "ms"
		for _, id := range ids {
			rows = append(rows, []string{removedKey, terminalText(id)})
		}
		err = renderPlain(f.IO.Out, rows)
	}
	if err != nil {
		return err
	}
	if more := len(res.Zombies) - len(ids); more > 0 {
		fmt.Fprintf(f.IO.ErrOut, "... and %d more (use -o json for all)\n", more)
	}
	for _, o := range res.Failures {
		msg := string(o.Status)
		if o.Err != nil {
			msg += ": " + userText(o.Err.Error())
		}
		fmt.Fprintf(f.IO.ErrOut, "%s %s not checked (kept): %s\n", p.Red("✗"), terminalText(o.ConnectionID), msg)
	}
	if more := res.Errors - len(res.Failures); more > 0 {
		fmt.Fprintf(f.IO.ErrOut, "... and %d more not checked\n", more)
	}
	if res.Recent > 0 {
		fmt.Fprintf(f.IO.ErrOut, "%d %s connected less than %s ago %s left alone (--min-age)\n",
			res.Recent, plural(res.Recent, "record", "records"), opts.MinAge, plural(res.Recent, "was", "were"))
	}
	if opts.DryRun {
		fmt.Fprintf(f.IO.ErrOut, "dry run: %d %s would be removed; nothing removed\n", len(res.Zombies), plural(len(res.Zombies), "record", "records"))
	}
	return nil
}
