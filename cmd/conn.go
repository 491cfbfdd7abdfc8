package cmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	smithy "github.com/aws/smithy-go"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/spf13/cobra"
)

// NewCmdConn groups the connection commands (conn_ls.go, conn_inspect.go,
// conn_kick.go).
func NewCmdConn(f *Factory) *cobra.Command {
	c := &cobra.Command{
		Use:     "conn",
		Aliases: []string{"connections"},
		Short:   "List, inspect and disconnect live connections",
	}
	c.AddCommand(NewCmdConnLs(f, nil), NewCmdConnInspect(f, nil), NewCmdConnKick(f, nil), NewCmdConnPrune(f, nil))
	return asGroup(c)
}

// connectionJSON is the documented JSON form of a connection record (conn
// ls rows, conn inspect's record): the CLI's contract, kept apart from
// store.Connection so the store can change without changing the output.
type connectionJSON struct {
	ConnectionID     string       `json:"connection_id"`
	UserID           string       `json:"user_id"`
	TenantID         string       `json:"tenant_id"`
	Endpoint         string       `json:"endpoint"`
	ConnectedAt      time.Time    `json:"connected_at"`
	LastPing         time.Time    `json:"last_ping"`
	Metadata         metadataJSON `json:"metadata"`
	Permissions      []string     `json:"permissions"`
	MessagesSent     int64        `json:"messages_sent"`
	MessagesReceived int64        `json:"messages_received"`
	TTL              int64        `json:"ttl"` // epoch seconds
}

type metadataJSON struct {
	UserAgent string `json:"user_agent,omitempty"`
	IPAddress string `json:"ip_address,omitempty"`
}

func connJSON(c store.Connection) connectionJSON {
	perms := c.Permissions
	if perms == nil {
		perms = []string{}
	}
	return connectionJSON{
		ConnectionID: c.ConnectionID, UserID: c.UserID, TenantID: c.TenantID, Endpoint: c.Endpoint,
		ConnectedAt: c.ConnectedAt, LastPing: c.LastPing,
		Metadata:    metadataJSON{UserAgent: c.Metadata.UserAgent, IPAddress: c.Metadata.IPAddress},
		Permissions: perms, MessagesSent: c.MessagesSent, MessagesReceived: c.MessagesReceived, TTL: c.TTL,
	}
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
	var api smithy.APIError
	switch {
	case errors.As(err, &g):
		return true, nil
	case errors.As(err, &api) && api.ErrorCode() == localgw.ErrTypeBadRequest:
		// API Gateway answers 400 for a malformed id (a well-formed
		// unknown one is 410).
		return false, fmt.Errorf("%s is not a connection id: the gateway answered 400 BadRequestException (ids look like L0SM9cOFvHcCIhw=)\nhint: list live connections with `streamer conn ls`", terminalText(id))
	case err != nil:
		return false, explainNetErr(managementAPI, t.cfg.Endpoint, fmt.Errorf("%s %s: %w", op, id, err))
	}
	return false, nil
}
