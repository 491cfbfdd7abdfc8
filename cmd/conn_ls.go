package cmd

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/pay-theory/streamer/pkg/store"
	"github.com/spf13/cobra"
)

// ConnLsOptions are the inputs of `streamer conn ls`.
type ConnLsOptions struct {
	F        *Factory
	TenantID string
	UserID   string
	Limit    int
	PageSize int
	Output   string
}

// NewCmdConnLs builds `streamer conn ls`.
func NewCmdConnLs(f *Factory, runF func(*ConnLsOptions) error) *cobra.Command {
	opts := &ConnLsOptions{F: f}
	c := &cobra.Command{
		Use:   "ls [--tenant T | --user U]",
		Short: "List connections (of a tenant, a user, or all), streaming page by page",
		Long: `List the stored connections of one tenant or one user, oldest first. Rows print
as each page arrives, so a tenant with 100,000 connections starts printing at once.

With neither --tenant nor --user, list every connection in the table. That scans
the whole table (every item is read, and costs read capacity on AWS), in no
particular order; on a terminal a note on stderr says so. --limit stops early.

Table columns: ID, USER, TENANT, CONNECTED (age), LAST PING (age), SENT, RECEIVED.
Plain output (not a terminal) has the same columns tab-separated, no header, times RFC 3339.
JSON output (-o json) is an array of {"connection_id","user_id","tenant_id","endpoint",
"connected_at","last_ping","metadata":{"user_agent","ip_address"},"permissions",
"messages_sent","messages_received","ttl"}. When listing fails (exit 1), the error goes to
stderr and stdout holds no complete result: nothing when the first page failed, an
unterminated (invalid) array when a later page did.`,
		Example: `  streamer conn ls --tenant acme
  streamer conn ls --user alice -o json | jq -r '.[].connection_id'
  streamer conn ls --limit 50`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if opts.TenantID != "" && opts.UserID != "" {
				return &UsageError{Err: errors.New("give at most one of --tenant or --user (neither lists every connection)")}
			}
			if err := checkOwnerFlags(opts.TenantID, opts.UserID); err != nil {
				return err
			}
			if opts.Limit < 0 {
				return &UsageError{Err: errors.New("--limit must be 0 (no limit) or positive")}
			}
			if opts.PageSize < 0 || opts.PageSize > store.MaxListPageSize {
				return &UsageError{Err: fmt.Errorf("--page-size must be between 1 and %d", store.MaxListPageSize)}
			}
			return runWith(c.Context(), opts, runF, connLsRun)
		},
	}
	c.Flags().StringVar(&opts.TenantID, "tenant", "", "tenant id")
	c.Flags().StringVar(&opts.UserID, "user", "", "user id")
	c.Flags().IntVar(&opts.Limit, "limit", 0, "stop after N connections (0: all)")
	c.Flags().IntVar(&opts.PageSize, "page-size", 0, "items read per request (default 100)")
	addOutputFlag(c, &opts.Output, outputFlagHelp, dataFormats...)
	return c
}

func connLsRun(ctx context.Context, opts *ConnLsOptions) error {
	f := opts.F
	format := resolveFormat(opts.Output, f.IO.OutTTY)
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	st, err := f.Store(ctx)
	if err != nil {
		return err
	}
	if opts.TenantID == "" && opts.UserID == "" && f.IO.OutTTY {
		fmt.Fprintf(f.IO.ErrOut, "no --tenant or --user: scanning the whole table %s (every item is read; rows in no particular order)\n", cfg.Table)
	}
	w := newListWriter(f.IO.Out, format, []string{"ID", "USER", "TENANT", "CONNECTED", "LAST PING", "SENT", "RECEIVED"})
	err = listConnections(ctx, st, cfg, store.ListQuery{TenantID: opts.TenantID, UserID: opts.UserID, PageSize: int32(opts.PageSize)}, opts.Limit,
		func(page []store.Connection) error {
			now := f.Now()
			rows := make([][]string, 0, len(page))
			objs := make([]any, 0, len(page))
			for _, c := range page {
				connected, ping := formatTime(c.ConnectedAt), formatTime(c.LastPing)
				if format == FormatTable {
					connected, ping = formatAge(now, c.ConnectedAt), formatAge(now, c.LastPing)
				}
				rows = append(rows, []string{terminalText(c.ConnectionID), terminalText(c.UserID), terminalText(c.TenantID), connected, ping,
					strconv.FormatInt(c.MessagesSent, 10), strconv.FormatInt(c.MessagesReceived, 10)})
				objs = append(objs, connJSON(c))
			}
			return w.Write(rows, objs)
		})
	if err != nil {
		// A failure must never read as a result: no closing bracket (or
		// bottom border), so -o json prints nothing when the first page
		// failed and an unterminated, invalid array when a later one did.
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if w.Count() == 0 && f.IO.ErrTTY {
		switch {
		case opts.UserID != "":
			fmt.Fprintf(f.IO.ErrOut, "no connections for user %s in table %s\n", terminalText(opts.UserID), cfg.Table)
		case opts.TenantID != "":
			fmt.Fprintf(f.IO.ErrOut, "no connections for tenant %s in table %s\n", terminalText(opts.TenantID), cfg.Table)
		default:
			fmt.Fprintf(f.IO.ErrOut, "no connections in table %s\n", cfg.Table)
		}
	}
	return nil
}
