package cmd

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/spf13/cobra"
)

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
			if err := checkConnectionID("connection id", opts.ConnectionID); err != nil {
				return err
			}
			return runWith(c.Context(), opts, runF, connInspectRun)
		},
	}
	addOutputFlag(c, &opts.Output, outputFlagHelp, dataFormats...)
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
	ConnectionID string          `json:"connection_id"`
	State        string          `json:"state"`
	Record       *connectionJSON `json:"record"`
	Live         *liveJSON       `json:"live"`
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
		r := connJSON(rec)
		res.Record = &r
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
	// Every value below but the state came from a client (its token, its
	// headers) or the table: escaped before any colour is added.
	esc := terminalText
	rows := [][]string{{"connection_id", esc(id)}}
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
			[]string{"user_id", esc(r.UserID)}, []string{"tenant_id", esc(r.TenantID)}, []string{"endpoint", esc(r.Endpoint)},
			[]string{"connected_at", tm(r.ConnectedAt)}, []string{"last_ping", tm(r.LastPing)},
			[]string{"permissions", joinEscaped(r.Permissions)},
			[]string{"messages_sent", strconv.FormatInt(r.MessagesSent, 10)},
			[]string{"messages_received", strconv.FormatInt(r.MessagesReceived, 10)},
			[]string{"ip_address", esc(r.Metadata.IPAddress)}, []string{"user_agent", esc(r.Metadata.UserAgent)},
			[]string{"ttl", formatTime(time.Unix(r.TTL, 0))})
	}
	if l := res.Live; l != nil {
		rows = append(rows,
			[]string{"live.connected_at", tm(aws.ToTime(l.ConnectedAt))},
			[]string{"live.last_active_at", tm(aws.ToTime(l.LastActiveAt))},
			[]string{"live.source_ip", esc(l.SourceIP)}, []string{"live.user_agent", esc(l.UserAgent)})
	}
	if tg.format == FormatTable {
		return renderTable(f.IO.Out, []string{"field", "value"}, rows)
	}
	rows[1][1] = res.State // plain: the bare word, for scripts
	return renderPlain(f.IO.Out, rows)
}
