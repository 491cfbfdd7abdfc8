package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/spf13/cobra"
)

// readMessage resolves MESSAGE|@FILE|- into bytes and refuses
// anything over the gateway's limit before a single request is made.
// Reading stdin or @FILE (a FIFO too) ends when ctx ends.
func readMessage(ctx context.Context, arg string, stdin io.Reader) ([]byte, error) {
	var (
		b   []byte
		err error
		src = "message"
	)
	switch {
	case arg == "-":
		src = "stdin"
		// Errors name what was read: the interruption says "while
		// reading the message from stdin", a file error its path.
		b, err = readInput(ctx, "-", stdin, "the message from stdin", connection.MaxMessageBytes)
		if err != nil {
			return nil, err
		}
	case strings.HasPrefix(arg, "@"):
		path := arg[1:]
		src = path
		b, err = readInput(ctx, path, stdin, "the message file "+path, connection.MaxMessageBytes)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &UsageError{Err: fmt.Errorf("message file %s does not exist (MESSAGE may be text, @FILE or - for stdin)", path)}
		}
		if err != nil {
			return nil, err
		}
	default:
		b = []byte(arg)
	}
	if len(b) > connection.MaxMessageBytes {
		return nil, &UsageError{Err: fmt.Errorf("%s is larger than API Gateway's 128 KB message limit (%d bytes); nothing was sent", src, connection.MaxMessageBytes)}
	}
	if len(b) == 0 {
		return nil, &UsageError{Err: fmt.Errorf("%s is empty; nothing to send", src)}
	}
	return b, nil
}

// SendOptions are the inputs of `streamer send`.
type SendOptions struct {
	F            *Factory
	ConnectionID string
	Message      string
	Output       string
}

// NewCmdSend builds `streamer send`.
func NewCmdSend(f *Factory, runF func(*SendOptions) error) *cobra.Command {
	opts := &SendOptions{F: f}
	c := &cobra.Command{
		Use:   "send ID MESSAGE|@FILE|-",
		Short: "Send one message to one connection",
		Long: `Send a message to a connection through the connection manager (retries,
circuit breaker, stale-record cleanup). MESSAGE is sent as given; @FILE sends a
file's content; - reads stdin. Messages over 128 KB are refused before sending.

JSON output (-o json): {"connection_id", "status": "sent", "bytes": N}.`,
		Example: `  streamer send L0SM9cOFvHcCIhw= '{"type":"hello"}'
  streamer send L0SM9cOFvHcCIhw= @payload.json`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			opts.ConnectionID, opts.Message = args[0], args[1]
			if err := checkConnectionID("connection id", opts.ConnectionID); err != nil {
				return err
			}
			return runWith(c.Context(), opts, runF, sendRun)
		},
	}
	addOutputFlag(c, &opts.Output, "output format: table|json|plain (json: a result object on stdout; otherwise a confirmation on stderr)", dataFormats...)
	return c
}

// sendJSON is the documented -o json form of send.
type sendJSON struct {
	Bytes        int               `json:"bytes"`
	ConnectionID string            `json:"connection_id"`
	Status       connection.Status `json:"status"`
}

func sendRun(ctx context.Context, opts *SendOptions) error {
	f := opts.F
	msg, err := readMessage(ctx, opts.Message, f.IO.In)
	if err != nil {
		return err
	}
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	m, err := f.Messenger(ctx, MessengerOptions{})
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	err = m.Send(cctx, opts.ConnectionID, msg)
	cancel()
	switch {
	case errors.Is(err, connection.ErrConnectionNotFound):
		return fmt.Errorf("connection %s not found: no record in table %s (it disconnected or never existed)\nhint: list live connections with `streamer conn ls`", opts.ConnectionID, cfg.Table)
	case errors.Is(err, connection.ErrConnectionStale):
		return fmt.Errorf("connection %s is stale: the gateway answered 410 Gone, so its record was removed", opts.ConnectionID)
	case err != nil:
		return explainSendErr(cfg, fmt.Errorf("send to %s: %w", opts.ConnectionID, err))
	}
	if opts.Output == FormatJSON {
		return writeJSON(f.IO.Out, sendJSON{Bytes: len(msg), ConnectionID: opts.ConnectionID, Status: connection.StatusSent})
	}
	p := newPalette(f.IO.ErrTTY, f.Getenv)
	fmt.Fprintf(f.IO.ErrOut, "%s sent %d bytes to %s\n", p.Green("✓"), len(msg), terminalText(opts.ConnectionID))
	return nil
}
