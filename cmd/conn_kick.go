package cmd

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/spf13/cobra"
)

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
			if err := checkConnectionID("connection id", opts.ConnectionID); err != nil {
				return err
			}
			return runWith(c.Context(), opts, runF, connKickRun)
		},
	}
	addOutputFlag(c, &opts.Output, outputFlagHelp, dataFormats...)
	return c
}

// kickJSON is the documented -o json form of conn kick.
type kickJSON struct {
	ConnectionID string `json:"connection_id"`
	Gateway      string `json:"gateway"` // disconnected | gone
	Record       string `json:"record"`  // removed | absent
}

func connKickRun(ctx context.Context, opts *ConnKickOptions) error {
	f := opts.F
	tg, err := resolveConnTarget(ctx, f, opts.Output)
	if err != nil {
		return err
	}
	id := opts.ConnectionID
	res := kickJSON{ConnectionID: id, Gateway: "disconnected", Record: "removed"}

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
		fmt.Fprintf(f.IO.Out, "Kicked %s\n", terminalText(id))
		return renderTable(f.IO.Out, nil, rows)
	}
	rows[0][1], rows[1][1] = res.Gateway, res.Record
	return renderPlain(f.IO.Out, rows)
}
