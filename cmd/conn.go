package cmd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/spf13/cobra"
)

// NewCmdConn groups the connection commands.
func NewCmdConn(f *Factory) *cobra.Command {
	c := &cobra.Command{
		Use:     "conn",
		Aliases: []string{"connections"},
		Short:   "List, inspect and disconnect live connections",
	}
	c.AddCommand(NewCmdConnLs(f, nil), NewCmdConnInspect(f, nil), NewCmdConnKick(f, nil))
	return c
}

// ---- ls

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
"messages_sent","messages_received","ttl"}.`,
		Example: `  streamer conn ls --tenant acme
  streamer conn ls --user alice -o json | jq -r '.[].connection_id'
  streamer conn ls --limit 50`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if opts.TenantID != "" && opts.UserID != "" {
				return &UsageError{Err: errors.New("give at most one of --tenant or --user (neither lists every connection)")}
			}
			if err := checkOwnerID("--tenant", opts.TenantID); err != nil {
				return err
			}
			if err := checkOwnerID("--user", opts.UserID); err != nil {
				return err
			}
			if err := checkOutput(opts.Output, dataFormats...); err != nil {
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
	c.Flags().StringVarP(&opts.Output, "output", "o", "", outputFlagHelp)
	return c
}

// connJSON is the documented JSON form of a connection record.
func connJSON(c store.Connection) store.Connection {
	if c.Permissions == nil {
		c.Permissions = []string{}
	}
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
				rows = append(rows, []string{c.ConnectionID, c.UserID, c.TenantID, connected, ping,
					strconv.FormatInt(c.MessagesSent, 10), strconv.FormatInt(c.MessagesReceived, 10)})
				objs = append(objs, connJSON(c))
			}
			return w.Write(rows, objs)
		})
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if w.Count() == 0 && f.IO.ErrTTY {
		switch {
		case opts.UserID != "":
			fmt.Fprintf(f.IO.ErrOut, "no connections for user %s in table %s\n", opts.UserID, cfg.Table)
		case opts.TenantID != "":
			fmt.Fprintf(f.IO.ErrOut, "no connections for tenant %s in table %s\n", opts.TenantID, cfg.Table)
		default:
			fmt.Fprintf(f.IO.ErrOut, "no connections in table %s\n", cfg.Table)
		}
	}
	return nil
}

// listIDs is every connection id of q (see listConnections).
func listIDs(ctx context.Context, st ConnStore, cfg Config, q store.ListQuery) ([]string, error) {
	var ids []string
	err := listConnections(ctx, st, cfg, q, 0, func(page []store.Connection) error {
		for _, c := range page {
			ids = append(ids, c.ConnectionID)
		}
		return nil
	})
	return ids, err
}

// listConnections walks every page of q (up to limit connections, 0 = all),
// calling each with one page. Each request is bounded by cfg.Timeout.
func listConnections(ctx context.Context, st ConnStore, cfg Config, q store.ListQuery, limit int, each func([]store.Connection) error) error {
	seen := 0
	for {
		cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		page, err := st.List(cctx, q)
		cancel()
		if err != nil {
			return storeErr(cfg, err)
		}
		conns := page.Connections
		if limit > 0 && seen+len(conns) > limit {
			conns = conns[:limit-seen]
		}
		seen += len(conns)
		if len(conns) > 0 {
			if err := each(conns); err != nil {
				return err
			}
		}
		if page.Next == "" || (limit > 0 && seen >= limit) {
			return nil
		}
		q.Cursor = page.Next
	}
}

func storeErr(cfg Config, err error) error {
	if err == nil {
		return nil
	}
	if ue := storeValidation(err); ue != nil {
		return ue
	}
	url := cfg.DynamoDBEndpoint
	if url == "" {
		url = "DynamoDB in " + cfg.Region
	}
	if strings.Contains(err.Error(), "ResourceNotFoundException") {
		return fmt.Errorf("table %s not found at %s: %w\nhint: pass --table / STREAMER_TABLE with the deployed table's name", cfg.Table, url, err)
	}
	return explainNetErr("DynamoDB API", url, err)
}

// ---- inspect

// ConnInspectOptions are the inputs of `streamer conn inspect`.
type ConnInspectOptions struct {
	F            *Factory
	ConnectionID string
	Output       string
}

// NewCmdConnInspect builds `streamer conn inspect`.
func NewCmdConnInspect(f *Factory, runF func(*ConnInspectOptions) error) *cobra.Command {
	opts := &ConnInspectOptions{F: f}
	c := &cobra.Command{
		Use:   "inspect ID",
		Short: "Show a connection's stored record and what the gateway says about it",
		Long: `Show the stored record and the gateway's live view (GetConnection: connectedAt,
lastActiveAt, sourceIp, userAgent). When the gateway no longer has the connection
but a record remains, the record is stale: it says so plainly.

state is one of: live (record and gateway agree), stale (record, gateway 410),
unrecorded (gateway has it, no record). An id known to neither is an error (exit 1).

JSON output (-o json): {"connection_id", "state", "record": <conn ls JSON object>|null,
"live": {"connected_at","last_active_at","source_ip","user_agent"}|null}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.ConnectionID = args[0]
			if err := checkTargetArgs(opts.ConnectionID, opts.Output); err != nil {
				return err
			}
			return runWith(c.Context(), opts, runF, connInspectRun)
		},
	}
	c.Flags().StringVarP(&opts.Output, "output", "o", "", outputFlagHelp)
	return c
}

// Connection states reported by inspect.
const (
	StateLive       = "live"
	StateStale      = "stale"
	StateUnrecorded = "unrecorded"
)

type liveJSON struct {
	ConnectedAt  *time.Time `json:"connected_at"`
	LastActiveAt *time.Time `json:"last_active_at"`
	SourceIP     string     `json:"source_ip"`
	UserAgent    string     `json:"user_agent"`
}

type inspectJSON struct {
	ConnectionID string            `json:"connection_id"`
	State        string            `json:"state"`
	Record       *store.Connection `json:"record"`
	Live         *liveJSON         `json:"live"`
}

// connTarget is what inspect and kick work with: the output format, the
// configuration, the store and the management API.
type connTarget struct {
	format string
	cfg    Config
	st     ConnStore
	mg     ManagementAPI
}

// resolveConnTarget resolves a connTarget, failing on the first problem.
func resolveConnTarget(ctx context.Context, f *Factory, output string) (connTarget, error) {
	format := resolveFormat(output, f.IO.OutTTY)
	cfg, err := f.Config()
	if err != nil {
		return connTarget{}, err
	}
	st, err := f.Store(ctx)
	if err != nil {
		return connTarget{}, err
	}
	mg, err := f.Management(ctx)
	if err != nil {
		return connTarget{}, err
	}
	return connTarget{format: format, cfg: cfg, st: st, mg: mg}, nil
}

// record reads id's record within the configured timeout; found is false
// when the table has none.
func (t connTarget) record(ctx context.Context, id string) (rec store.Connection, found bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	rec, err = t.st.Get(cctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Connection{}, false, nil
	case err != nil:
		return store.Connection{}, false, storeErr(t.cfg, err)
	}
	return rec, true, nil
}

// gatewayCall runs a management API call (op, on id) within the configured
// timeout; gone is true when the gateway answered 410.
func (t connTarget) gatewayCall(ctx context.Context, op, id string, call func(context.Context) error) (gone bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	err = call(cctx)
	var g *types.GoneException
	switch {
	case errors.As(err, &g):
		return true, nil
	case err != nil:
		return false, explainNetErr("management API", t.cfg.Endpoint, fmt.Errorf("%s %s: %w", op, id, err))
	}
	return false, nil
}

func connInspectRun(ctx context.Context, opts *ConnInspectOptions) error {
	f := opts.F
	tg, err := resolveConnTarget(ctx, f, opts.Output)
	if err != nil {
		return err
	}
	id := opts.ConnectionID
	res := inspectJSON{ConnectionID: id}

	rec, found, err := tg.record(ctx, id)
	if err != nil {
		return err
	}
	if found {
		rec = connJSON(rec)
		res.Record = &rec
	}

	var out *apigatewaymanagementapi.GetConnectionOutput
	gone, err := tg.gatewayCall(ctx, "GetConnection", id, func(ctx context.Context) (err error) {
		out, err = tg.mg.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
		return err
	})
	if err != nil {
		return err
	}
	if !gone {
		l := &liveJSON{ConnectedAt: out.ConnectedAt, LastActiveAt: out.LastActiveAt}
		if out.Identity != nil {
			l.SourceIP, l.UserAgent = aws.ToString(out.Identity.SourceIp), aws.ToString(out.Identity.UserAgent)
		}
		res.Live = l
	}

	switch {
	case res.Record == nil && res.Live == nil:
		return fmt.Errorf("unknown connection %s: no record in table %s and the gateway at %s does not know it (410)\nhint: list live connections with `streamer conn ls`", id, tg.cfg.Table, tg.cfg.Endpoint)
	case res.Live == nil:
		res.State = StateStale
	case res.Record == nil:
		res.State = StateUnrecorded
	default:
		res.State = StateLive
	}

	if tg.format == FormatJSON {
		return writeJSON(f.IO.Out, res)
	}
	p := newPalette(f.IO.OutTTY, f.Getenv)
	now := f.Now()
	tm := func(t time.Time) string {
		if tg.format == FormatTable && !t.IsZero() {
			return formatTime(t) + " (" + formatAge(now, t) + ")"
		}
		return formatTime(t)
	}
	rows := [][]string{{"connection_id", id}}
	switch res.State {
	case StateLive:
		rows = append(rows, []string{"state", p.Green(StateLive)})
	case StateStale:
		rows = append(rows, []string{"state", p.Yellow("stale: the gateway no longer has this connection (410)")})
	case StateUnrecorded:
		rows = append(rows, []string{"state", p.Yellow("unrecorded: the gateway has this connection but the table has no record")})
	}
	if r := res.Record; r != nil {
		rows = append(rows,
			[]string{"user_id", r.UserID}, []string{"tenant_id", r.TenantID}, []string{"endpoint", r.Endpoint},
			[]string{"connected_at", tm(r.ConnectedAt)}, []string{"last_ping", tm(r.LastPing)},
			[]string{"permissions", strings.Join(r.Permissions, ",")},
			[]string{"messages_sent", strconv.FormatInt(r.MessagesSent, 10)},
			[]string{"messages_received", strconv.FormatInt(r.MessagesReceived, 10)},
			[]string{"ip_address", r.Metadata.IPAddress}, []string{"user_agent", r.Metadata.UserAgent},
			[]string{"ttl", formatTime(time.Unix(r.TTL, 0))})
	}
	if l := res.Live; l != nil {
		rows = append(rows,
			[]string{"live.connected_at", tm(aws.ToTime(l.ConnectedAt))},
			[]string{"live.last_active_at", tm(aws.ToTime(l.LastActiveAt))},
			[]string{"live.source_ip", l.SourceIP}, []string{"live.user_agent", l.UserAgent})
	}
	if tg.format == FormatTable {
		return renderTable(f.IO.Out, []string{"field", "value"}, rows)
	}
	rows[1][1] = res.State // plain: the bare word, for scripts
	return renderPlain(f.IO.Out, rows)
}

// ---- kick

// ConnKickOptions are the inputs of `streamer conn kick`.
type ConnKickOptions struct {
	F            *Factory
	ConnectionID string
	Output       string
}

// NewCmdConnKick builds `streamer conn kick`.
func NewCmdConnKick(f *Factory, runF func(*ConnKickOptions) error) *cobra.Command {
	opts := &ConnKickOptions{F: f}
	c := &cobra.Command{
		Use:   "kick ID",
		Short: "Disconnect a connection at the gateway and remove its record",
		Long: `Call DeleteConnection (the client sees its socket close) and delete the stored
record; report both. An id known to neither the gateway nor the table is an error.

JSON output (-o json): {"connection_id", "gateway": "disconnected|gone", "record": "removed|absent"}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.ConnectionID = args[0]
			if err := checkTargetArgs(opts.ConnectionID, opts.Output); err != nil {
				return err
			}
			return runWith(c.Context(), opts, runF, connKickRun)
		},
	}
	c.Flags().StringVarP(&opts.Output, "output", "o", "", outputFlagHelp)
	return c
}

func connKickRun(ctx context.Context, opts *ConnKickOptions) error {
	f := opts.F
	tg, err := resolveConnTarget(ctx, f, opts.Output)
	if err != nil {
		return err
	}
	id := opts.ConnectionID
	res := struct {
		ConnectionID string `json:"connection_id"`
		Gateway      string `json:"gateway"`
		Record       string `json:"record"`
	}{ConnectionID: id, Gateway: "disconnected", Record: "removed"}

	// Read the record first: DeleteConnection runs $disconnect, which may
	// remove it before this command does, and "removed" must not depend on
	// who won.
	_, existed, err := tg.record(ctx, id)
	if err != nil {
		return err
	}

	gone, err := tg.gatewayCall(ctx, "DeleteConnection", id, func(ctx context.Context) error {
		_, err := tg.mg.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)})
		return err
	})
	if err != nil {
		return err
	}
	if gone {
		res.Gateway = "gone"
	}
	// Remove the record even after a successful disconnect: $disconnect
	// does it too, but perhaps not yet.
	cctx, cancel := context.WithTimeout(ctx, tg.cfg.Timeout)
	_, found, err := tg.st.Delete(cctx, id)
	cancel()
	if err != nil {
		return fmt.Errorf("gateway: %s; but deleting the record failed: %w", res.Gateway, storeErr(tg.cfg, err))
	}
	found = found || existed
	if !found {
		res.Record = "absent"
	}
	if res.Gateway == "gone" && !found {
		return fmt.Errorf("unknown connection %s: the gateway at %s does not know it (410) and table %s has no record", id, tg.cfg.Endpoint, tg.cfg.Table)
	}
	if tg.format == FormatJSON {
		return writeJSON(f.IO.Out, res)
	}
	gw := "disconnected"
	if res.Gateway == "gone" {
		gw = "already gone (410)"
	}
	rec := "removed"
	if !found {
		rec = "no record"
	}
	rows := [][]string{{"gateway", gw}, {"record", rec}}
	if tg.format == FormatTable {
		fmt.Fprintf(f.IO.Out, "Kicked %s\n", id)
		return renderTable(f.IO.Out, nil, rows)
	}
	rows[0][1], rows[1][1] = res.Gateway, res.Record
	return renderPlain(f.IO.Out, rows)
}
