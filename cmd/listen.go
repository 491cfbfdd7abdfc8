package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// Bounds of `streamer listen`.
const (
	// MaxListenCount bounds --count: a fan-out witness for demos, not a
	// load generator (`streamer local --simulate` and the fan-out
	// benchmark are those), and well under API Gateway's default of 500
	// new connections per second.
	MaxListenCount = 100
	// listenDialers is how many connections --count opens at once.
	listenDialers = 10
	// maxHeldMessages bounds what a connection holds back while it waits
	// for its whoami answer (messages that arrived first are printed once
	// the id is known); past it, listen stops waiting.
	maxHeldMessages = 256
	// maxStdinLine is the largest line sent from stdin: API Gateway closes
	// a connection whose client sends a frame over 32 KB (1009).
	maxStdinLine = localgw.MaxFrameBytes
	// listenTokenTTL is the lifetime of a minted token; it only has to
	// outlive the upgrade.
	listenTokenTTL = time.Hour
)

// WebSocket close codes listen reports on.
const (
	closeNormal    = 1000
	closeGoingAway = 1001
	closeAbnormal  = 1006 // no close frame: never sent on the wire
)

// receivedAtFormat is the time of a received message: RFC 3339 UTC with
// milliseconds, in plain and JSON output alike.
const receivedAtFormat = "2006-01-02T15:04:05.000Z07:00"

// ListenOptions are the inputs of `streamer listen`.
type ListenOptions struct {
	F           *Factory
	TenantID    string
	UserID      string // "" => listen-<random>
	Permissions []string
	Token       string // "" => mint; "-" => the first line of stdin
	KeyFile     string
	Count       int
	For         time.Duration // 0 => until stopped
	MaxMessages int           // 0 => no limit
	Output      string
}

// NewCmdListen builds `streamer listen`.
func NewCmdListen(f *Factory, runF func(*ListenOptions) error) *cobra.Command {
	opts := &ListenOptions{F: f}
	c := &cobra.Command{
		Use:   "listen [--tenant T] [--user U] [--count N] [--token TOKEN|-]",
		Short: "Connect as a WebSocket client and print every message that arrives",
		Long: `Connect to the WebSocket API as a client and print each message as it arrives:
a built-in client, so seeing a broadcast arrive needs no Node.js or pasted token.

It mints a token with the key in --key-dir (or --key FILE) for --tenant, --user
and --permissions, as ` + "`streamer token mint`" + ` does, or connects with --token TOKEN
(- reads the token from the first line of stdin). The token never appears in
any output. It connects to --ws-url (env STREAMER_WS_URL; default ` + DefaultWSURL + `).

Once connected it asks the stack for its connection id: it sends
{"action":"whoami","request_id":...} and the $default handler answers with the
id the gateway gave the connection (the route is two-way, so this works on AWS
as locally). Messages arriving before the answer are printed once it is in; a
stack whose $default predates whoami leaves the id unknown after --timeout.

Plain output is one line per message, "RECEIVED_AT<TAB>PAYLOAD" (with --count,
"RECEIVED_AT<TAB>CONNECTION<TAB>PAYLOAD"); control characters and invalid UTF-8
in a payload are shown escaped. JSON output (-o json) is one object per line:
{"received_at","connection","bytes","data"}, where data is the JSON value when
the payload is JSON and a string otherwise, and connection is the connection id
("" when the stack did not tell it). Status (connected, the connection id, the
close code and reason) goes to stderr.

Lines read from stdin are sent as text messages on every connection (empty
lines are skipped; lines over 32 KB, which API Gateway would close the
connection for, are refused). End of stdin does not stop listening.

--count N (at most 100) holds N connections of the tenant, users USER-1..USER-N,
and prints which one received each message; a connection that cannot connect
is reported and the others keep listening.

It stops on Ctrl-C (closing with 1000), after --for, after --max-messages, or
when the server has closed every connection. Exit 0 on such an end, also when
the server closed with 1000 or 1001; 1 when a connection could not connect (a
refusal says the HTTP status and why), ended abnormally or was closed by the
server with any other code; 2 for usage errors.`,
		Example: `  streamer listen --tenant acme
  streamer listen --tenant acme --max-messages 1 -o json
  echo '{"action":"ping"}' | streamer listen --max-messages 1
  streamer listen --tenant acme --count 50 --for 30s
  streamer token mint --ttl 5m | streamer listen --token -`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := opts.check(c.Flags()); err != nil {
				return err
			}
			return runWith(c.Context(), opts, runF, listenRun)
		},
	}
	fl := c.Flags()
	fl.StringVar(&opts.TenantID, "tenant", "tenant-1", "tenant id (tenant_id claim) of the minted token")
	fl.StringVar(&opts.UserID, "user", "", "user id (sub claim) of the minted token (default listen-<random>; with --count N: USER-1..USER-N)")
	fl.StringSliceVar(&opts.Permissions, "permissions", nil, "permissions claim of the minted token (comma-separated)")
	fl.StringVar(&opts.Token, "token", "", "connect with this token instead of minting one; - reads it from stdin's first line (keeps it out of the process list)")
	fl.StringVar(&opts.KeyFile, "key", "", "private key PEM file to mint with (default: <key-dir>/"+PrivateKeyFile+")")
	fl.IntVar(&opts.Count, "count", 1, fmt.Sprintf("connections to hold, 1 to %d", MaxListenCount))
	fl.DurationVar(&opts.For, "for", 0, "stop after this long (default: until Ctrl-C)")
	fl.IntVar(&opts.MaxMessages, "max-messages", 0, "stop after this many messages, over all connections (default: no limit)")
	addOutputFlag(c, &opts.Output, "output format: plain (one line per message) or json (one object per line)", FormatPlain, FormatJSON)
	return c
}

// check refuses bad flag combinations before any file or network access.
func (o *ListenOptions) check(fl *pflag.FlagSet) error {
	usage := func(format string, a ...any) error { return &UsageError{Err: fmt.Errorf(format, a...)} }
	switch {
	case o.Count < 1 || o.Count > MaxListenCount:
		return usage("--count must be 1 to %d, got %d", MaxListenCount, o.Count)
	case o.For < 0:
		return usage("--for must be positive, got %s", o.For)
	case o.MaxMessages < 0:
		return usage("--max-messages must be positive, got %d", o.MaxMessages)
	}
	if fl.Changed("token") {
		for _, name := range []string{"tenant", "user", "permissions", "key", "count"} {
			if fl.Changed(name) {
				return usage("--token cannot be used with --%s: the token carries the identity (leave out --token to mint one)", name)
			}
		}
		if strings.TrimSpace(o.Token) == "" {
			return usage("--token is blank: give a token, or - to read it from stdin")
		}
		return nil
	}
	user := o.UserID
	if !fl.Changed("user") {
		user = defaultListenUser("000000")
	}
	if o.Count > 1 && strings.TrimSpace(user) != "" {
		user = fmt.Sprintf("%s-%d", user, o.Count) // the longest user id minted
	}
	if err := checkClaims(user, o.TenantID, nil, nil); err != nil {
		return err
	}
	return checkPermissions("--permissions", o.Permissions)
}

// defaultListenUser is the user minted for when --user is not given: a
// fresh one per run, so `conn ls --user` finds this listener alone.
func defaultListenUser(suffix string) string { return "listen-" + suffix }

// listenClient is one connection to open: who it is and its token.
type listenClient struct {
	user  string // "" when the token was given
	token string
}

func listenRun(ctx context.Context, opts *ListenOptions) error {
	f := opts.F
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	// Reads of stdin (the token, the lines to send) end when the run
	// does: on Ctrl-C, and when listen stops by itself (ctxReader).
	inCtx, stopInput := context.WithCancel(ctx)
	defer stopInput()
	var in *bufio.Reader
	if f.IO.In != nil {
		in = bufio.NewReaderSize(newCtxReader(inCtx, f.IO.In, "stdin"), 64<<10)
	}
	clients, err := listenClients(inCtx, opts, cfg, in)
	if err != nil {
		return err
	}
	l := &listener{
		f: f, cfg: cfg, opts: opts, clients: clients,
		jsonOut:   opts.Output == FormatJSON,
		events:    make(chan listenEvent),
		done:      make(chan struct{}),
		input:     inCtx,
		stopInput: stopInput,
	}
	return l.run(ctx, in)
}

// listenClients mints a token per connection, or takes the given one
// (reading it from stdin for "-").
func listenClients(ctx context.Context, opts *ListenOptions, cfg Config, in *bufio.Reader) ([]listenClient, error) {
	if opts.Token != "" {
		tok := opts.Token
		if tok == "-" {
			if in == nil {
				return nil, &UsageError{Err: errors.New("--token -: no stdin to read the token from")}
			}
			line, n, err := readLine(in, auth.DefaultMaxTokenBytes)
			switch {
			case err != nil && ctx.Err() != nil:
				return nil, err // "interrupted (SIGINT) while reading stdin"
			case err != nil && !errors.Is(err, io.EOF):
				return nil, fmt.Errorf("read the token from stdin: %w", err)
			}
			if n > auth.DefaultMaxTokenBytes {
				return nil, &UsageError{Err: fmt.Errorf("the first line of stdin is %d bytes, longer than any token the stack accepts (%d)", n, auth.DefaultMaxTokenBytes)}
			}
			tok = string(line)
		}
		tok = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(tok), "Bearer "))
		if tok == "" {
			return nil, &UsageError{Err: errors.New("no token on stdin's first line: pipe one in, e.g. `streamer token mint | streamer listen --token -`")}
		}
		return []listenClient{{token: tok}}, nil
	}
	key, err := opts.F.SigningKey(opts.KeyFile)
	if err != nil {
		return nil, err
	}
	base := opts.UserID
	if base == "" {
		base = defaultListenUser(randomHex(3))
	}
	var aud []string
	if cfg.Audience != "" { // the stack's $connect requires it (--stack)
		aud = []string{cfg.Audience}
	}
	clients := make([]listenClient, opts.Count)
	for i := range clients {
		user := base
		if opts.Count > 1 {
			user = fmt.Sprintf("%s-%d", base, i+1)
		}
		tok, err := auth.Mint(key, auth.MintOptions{
			UserID: user, TenantID: opts.TenantID, Permissions: opts.Permissions,
			Issuer: cfg.Issuer, Audience: aud, TTL: listenTokenTTL, Now: opts.F.Now,
		})
		if err != nil {
			return nil, fmt.Errorf("mint token: %w", err)
		}
		clients[i] = listenClient{user: user, token: tok}
	}
	return clients, nil
}

// listener runs one `streamer listen`: a goroutine dials, one per
// connection reads, one reads stdin; they hand everything to run's loop as
// events, so only that loop touches the connections' state and the output.
type listener struct {
	f       *Factory
	cfg     Config
	opts    *ListenOptions
	clients []listenClient
	jsonOut bool

	events      chan listenEvent
	cancelDials context.CancelFunc
	// input bounds the reads of stdin; stopInput ends them.
	input     context.Context
	stopInput context.CancelFunc
	// done is closed when the loop ends: every goroutine's pending send
	// gives up.
	done chan struct{}
	wg   sync.WaitGroup

	conns    []*listenConn // connected, in connect order
	open     int           // connections not ended
	dialing  bool          // the dialer has clients left
	failed   []error       // connect failures
	received int
	whoamiT  *time.Timer
}

// listenConn is one open connection (owned by run's loop).
type listenConn struct {
	client listenClient
	ws     WSConn
	// requestID tags this connection's whoami, so its answer is told
	// apart from every other message.
	requestID string
	id        string // from whoami; "" while unknown
	// pending: the whoami answer is awaited until whoamiBy; messages are
	// held meanwhile.
	pending  bool
	whoamiBy time.Time
	held     []listenEvent
	ended    bool
	endErr   error // how the server ended it, when that is an error
}

type listenEventKind int

const (
	evConnected listenEventKind = iota
	evDialFailed
	evDialsDone
	evMessage
	evEnded
)

type listenEvent struct {
	kind   listenEventKind
	conn   *listenConn
	client listenClient
	data   []byte
	at     time.Time
	err    error
}

// stdinLine is one line of stdin, or its size when it was too long to send.
type stdinLine struct {
	data []byte
	size int
	err  error
}

// run connects, prints what arrives and sends what stdin gives until a
// stop condition; then it closes every connection with 1000 and waits for
// its goroutines.
func (l *listener) run(ctx context.Context, in *bufio.Reader) error {
	dialCtx, cancelDials := context.WithCancel(ctx)
	l.cancelDials = cancelDials
	readCtx, cancelReads := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		close(l.done)
		cancelDials()
		l.stopInput()
		l.closeAll()
		// Close made every Read return; this is a backstop.
		cancelReads()
		l.wg.Wait()
	}()

	l.status("connecting to %s %s", redactURL(l.cfg.WSURL), l.who())
	l.dialing = true
	l.wg.Add(1)
	go l.dialAll(dialCtx, readCtx)

	var lines <-chan stdinLine
	if in != nil {
		ch := make(chan stdinLine)
		l.wg.Add(1)
		go l.pumpStdin(in, ch)
		lines = ch
	}
	var stopAt <-chan time.Time
	if l.opts.For > 0 {
		t := time.NewTimer(l.opts.For)
		defer t.Stop()
		stopAt = t.C
	}
	l.whoamiT = time.NewTimer(time.Hour)
	l.whoamiT.Stop()
	defer l.whoamiT.Stop()

	for {
		// Lines wait until every connection is open (or failed), so the
		// first line reaches them all.
		linesNow := lines
		if l.dialing {
			linesNow = nil
		}
		select {
		case <-ctx.Done():
			reason := "interrupted"
			var se *SignalError
			if errors.As(context.Cause(ctx), &se) {
				reason += " by " + signalName(se.Signal)
			}
			return l.finish(reason)
		case <-stopAt:
			return l.finish(fmt.Sprintf("--for %s elapsed", l.opts.For))
		case <-l.whoamiT.C:
			l.whoamiTimeouts()
		case ln, ok := <-linesNow:
			if !ok {
				lines = nil
				continue
			}
			l.send(ctx, ln)
		case ev := <-l.events:
			if err := l.handle(ev); err != nil {
				return err
			}
		}
		// Messages are printed on events and on whoami timeouts (the held
		// ones): check after either.
		if l.opts.MaxMessages > 0 && l.received >= l.opts.MaxMessages {
			return l.finish(fmt.Sprintf("--max-messages %d reached", l.opts.MaxMessages))
		}
		if !l.dialing && l.open == 0 {
			return l.finish("")
		}
	}
}

// who describes the identities connecting.
func (l *listener) who() string {
	first, last := l.clients[0], l.clients[len(l.clients)-1]
	switch {
	case first.user == "":
		// Decoded, not verified: only to say who is connecting.
		if claims, err := decodeUnverified(first.token); err == nil && claims.UserID != "" {
			return fmt.Sprintf("as user %s, tenant %s (from the token)", terminalText(claims.UserID), terminalText(claims.TenantID))
		}
		return "with the given token"
	case len(l.clients) == 1:
		return fmt.Sprintf("as user %s, tenant %s", terminalText(first.user), terminalText(l.opts.TenantID))
	}
	return fmt.Sprintf("with %d connections of tenant %s, users %s..%s", len(l.clients),
		terminalText(l.opts.TenantID), terminalText(first.user), terminalText(last.user))
}

func (l *listener) multi() bool { return len(l.clients) > 1 }

// status prints one status line on stderr.
func (l *listener) status(format string, a ...any) {
	fmt.Fprintf(l.f.IO.ErrOut, format+"\n", a...)
}

// connStatus prints a status line about c, naming it when there are
// several.
func (l *listener) connStatus(c listenClient, format string, a ...any) {
	if l.multi() {
		format = terminalText(c.user) + ": " + format
	}
	l.status(format, a...)
}

func (l *listener) stdinTTY() bool {
	fh, ok := l.f.IO.In.(*os.File)
	return ok && term.IsTerminal(int(fh.Fd()))
}

// emit sends ev to the loop unless run has ended.
func (l *listener) emit(ev listenEvent) bool {
	select {
	case l.events <- ev:
		return true
	case <-l.done:
		return false
	}
}

// dialAll opens every connection, listenDialers at a time, and starts a
// reader for each.
func (l *listener) dialAll(ctx, readCtx context.Context) {
	defer l.wg.Done()
	sem := make(chan struct{}, listenDialers)
	var wg sync.WaitGroup
	for _, cl := range l.clients {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			l.dial(ctx, readCtx, cl)
		}()
	}
	wg.Wait()
	l.emit(listenEvent{kind: evDialsDone})
}

// dial opens cl's connection, asks for its id and hands it to the loop.
func (l *listener) dial(ctx, readCtx context.Context, cl listenClient) {
	cctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	ws, status, err := l.f.Dial(cctx, tokenURL(l.cfg.WSURL, cl.token), nil)
	if err != nil {
		if ctx.Err() == nil {
			l.emit(listenEvent{kind: evDialFailed, client: cl, err: l.dialErr(ctx, cl, status, err)})
		}
		return
	}
	c := &listenConn{client: cl, ws: ws, requestID: randomHex(8)}
	ask, _ := json.Marshal(contract.WhoamiRequest{Action: contract.ActionWhoami, RequestID: c.requestID})
	// A failed write means the connection is already gone: its reader
	// reports how it ended.
	_ = ws.Write(cctx, ask)
	if !l.emit(listenEvent{kind: evConnected, conn: c}) {
		_ = ws.Close()
		return
	}
	l.wg.Add(1)
	go l.read(readCtx, c)
}

// read hands c's messages to the loop until the connection ends.
func (l *listener) read(ctx context.Context, c *listenConn) {
	defer l.wg.Done()
	for {
		b, err := c.ws.Read(ctx)
		ev := listenEvent{kind: evMessage, conn: c, data: b, at: l.f.Now()}
		if err != nil {
			ev = listenEvent{kind: evEnded, conn: c, err: err}
		}
		if !l.emit(ev) || err != nil {
			return
		}
	}
}

// pumpStdin hands stdin's lines to the loop until EOF, or until the run
// ends (its reads are a ctxReader's: stopInput ends them).
func (l *listener) pumpStdin(in *bufio.Reader, out chan<- stdinLine) {
	defer l.wg.Done()
	defer close(out)
	for {
		line, n, err := readLine(in, maxStdinLine)
		if n == 0 && err != nil {
			// A read the run's end (or Ctrl-C) cut short is no news.
			if !errors.Is(err, io.EOF) && l.input.Err() == nil {
				select {
				case out <- stdinLine{err: err}:
				case <-l.done:
				}
			}
			return
		}
		select {
		case out <- stdinLine{data: line, size: n}:
		case <-l.done:
			return
		}
	}
}

// handle applies one event; an error ends the run.
func (l *listener) handle(ev listenEvent) error {
	switch ev.kind {
	case evConnected:
		c := ev.conn
		l.conns = append(l.conns, c)
		l.open++
		c.pending, c.whoamiBy = true, time.Now().Add(l.cfg.Timeout)
		l.armWhoami()
		if !l.multi() {
			l.status("connected")
		}
	case evDialFailed:
		l.failed = append(l.failed, ev.err)
		if l.multi() {
			l.connStatus(ev.client, "could not connect: %s", userText(ev.err.Error()))
		}
	case evDialsDone:
		l.dialing = false
		if l.multi() {
			l.status("connected %d of %d", len(l.conns), len(l.clients))
		}
		if len(l.conns) == 0 && len(l.failed) > 0 {
			return l.failure()
		}
		if len(l.conns) > 0 && l.stdinTTY() {
			// Typed lines are sent from now on.
			l.status("type a message and press Enter to send it; Ctrl-C to stop")
		}
	case evMessage:
		c := ev.conn
		if c.id == "" && l.whoamiAnswer(c, ev.data) {
			return nil
		}
		if c.pending {
			c.held = append(c.held, ev)
			if len(c.held) >= maxHeldMessages {
				l.giveUpWhoami(c, fmt.Sprintf("%d messages arrived first", len(c.held)))
			}
			return nil
		}
		return l.print(ev)
	case evEnded:
		l.ended(ev.conn, ev.err)
	}
	return nil
}

// whoamiAnswer reports whether data is the answer to c's whoami; it
// records the id (and prints what was held back meanwhile).
func (l *listener) whoamiAnswer(c *listenConn, data []byte) bool {
	var w contract.Whoami
	if json.Unmarshal(data, &w) != nil || w.Action != contract.ActionWhoami || w.RequestID != c.requestID || w.ConnectionID == "" {
		return false
	}
	c.id = w.ConnectionID
	late := ""
	if !c.pending {
		late = " (answered late)"
	}
	l.connStatus(c.client, "connection id %s%s", terminalText(c.id), late)
	l.release(c)
	return true
}

// armWhoami sets the timer to the earliest whoami deadline.
func (l *listener) armWhoami() {
	var next time.Time
	for _, c := range l.conns {
		if c.pending && (next.IsZero() || c.whoamiBy.Before(next)) {
			next = c.whoamiBy
		}
	}
	l.whoamiT.Stop()
	if !next.IsZero() {
		l.whoamiT.Reset(time.Until(next))
	}
}

// whoamiTimeouts stops waiting for the answers that are overdue.
func (l *listener) whoamiTimeouts() {
	now := time.Now()
	for _, c := range l.conns {
		if c.pending && !now.Before(c.whoamiBy) {
			l.giveUpWhoami(c, "no answer within "+l.cfg.Timeout.String())
		}
	}
	l.armWhoami()
}

func (l *listener) giveUpWhoami(c *listenConn, why string) {
	l.connStatus(c.client, "connection id unknown: %s to {\"action\":\"whoami\"} (does the stack's $default predate whoami?)", why)
	l.release(c)
}

// release prints what c held back while its id was awaited.
func (l *listener) release(c *listenConn) {
	c.pending = false
	held := c.held
	c.held = nil
	for _, ev := range held {
		if err := l.print(ev); err != nil {
			return
		}
	}
}

// ended records how c ended (the server closed it, or it was lost).
func (l *listener) ended(c *listenConn, err error) {
	if c.ended {
		return
	}
	l.release(c)
	c.ended = true
	l.open--
	var ce *WSCloseError
	switch {
	case errors.As(err, &ce):
		l.connStatus(c.client, "closed by the server: %d %s", ce.Code, terminalText(ce.Reason))
		if ce.Code != closeNormal && ce.Code != closeGoingAway {
			c.endErr = fmt.Errorf("closed by the server with %d %s", ce.Code, terminalText(ce.Reason))
		}
	default:
		l.connStatus(c.client, "connection lost (%d, no close frame): %s", closeAbnormal, userText(err.Error()))
		c.endErr = fmt.Errorf("connection lost (%d, no close frame)", closeAbnormal)
	}
}

// print writes one received message to stdout.
func (l *listener) print(ev listenEvent) error {
	l.received++
	c := ev.conn
	if l.jsonOut {
		b, err := json.Marshal(listenMessageJSON{
			ReceivedAt: ev.at.UTC().Format(receivedAtFormat),
			Connection: c.id,
			Bytes:      len(ev.data),
			Data:       jsonData(ev.data),
		})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(l.f.IO.Out, "%s\n", b)
		return err
	}
	cols := []string{ev.at.UTC().Format(receivedAtFormat)}
	if l.multi() {
		label := c.id
		if label == "" {
			label = c.client.user
		}
		cols = append(cols, terminalText(label))
	}
	cols = append(cols, terminalText(string(ev.data)))
	_, err := fmt.Fprintln(l.f.IO.Out, strings.Join(cols, "\t"))
	return err
}

// listenMessageJSON is one message in -o json output (one per line).
type listenMessageJSON struct {
	ReceivedAt string `json:"received_at"`
	// Connection is the receiving connection's id; "" when the stack did
	// not answer whoami.
	Connection string          `json:"connection"`
	Bytes      int             `json:"bytes"`
	Data       json.RawMessage `json:"data"`
}

// jsonData is a payload as a JSON value: itself when it is JSON, else a
// string (the escaped form plain output shows when it is not UTF-8).
func jsonData(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	s := string(b)
	if !utf8.Valid(b) {
		s = terminalText(s)
	}
	out, _ := json.Marshal(s)
	return out
}

// send writes one stdin line on every open connection.
func (l *listener) send(ctx context.Context, ln stdinLine) {
	switch {
	case ln.err != nil:
		l.status("stdin: %s; no more lines will be sent", userText(ln.err.Error()))
		return
	case ln.size > maxStdinLine:
		l.status("not sent: the line is %d bytes, over the %d KB a client frame may carry (API Gateway closes the connection with 1009)", ln.size, maxStdinLine>>10)
		return
	case len(bytes.TrimSpace(ln.data)) == 0:
		return
	}
	for _, c := range l.conns {
		if c.ended {
			continue
		}
		// Not cancelled by Ctrl-C: a cancelled write drops the connection
		// without a close frame; the loop sees Ctrl-C right after.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.Timeout)
		err := c.ws.Write(wctx, ln.data)
		cancel()
		if err != nil {
			l.connStatus(c.client, "not sent: %s", userText(err.Error()))
		}
	}
}

// finish ends the run: reason says why listen stopped it ("" when the
// server ended every connection); the error says what failed.
func (l *listener) finish(reason string) error {
	l.drainDials()
	if reason != "" && l.open > 0 {
		what := "closing"
		if l.multi() {
			what = fmt.Sprintf("closing %d connections", l.open)
		}
		l.status("%s with %d (%s); %d message(s) received", what, closeNormal, reason, l.received)
	}
	return l.failure()
}

// drainDials stops the dials still under way and waits for them, so every
// connect failure already decided is reported and every connection opened
// is closed. Messages arriving meanwhile are past the stop: not printed.
func (l *listener) drainDials() {
	if !l.dialing {
		return
	}
	l.cancelDials()
	for l.dialing {
		switch ev := <-l.events; ev.kind {
		case evConnected, evDialFailed, evDialsDone:
			_ = l.handle(ev)
		}
	}
}

// failure is the run's error: connect failures first, then connections
// the server ended with an error.
func (l *listener) failure() error {
	var ended []string
	for _, c := range l.conns {
		if c.endErr != nil {
			ended = append(ended, c.endErr.Error())
		}
	}
	switch {
	case len(l.failed) > 0 && !l.multi():
		return l.failed[0]
	case len(l.failed) > 0 && len(l.conns) == 0:
		return fmt.Errorf("none of the %d connections could connect; the first: %w", len(l.clients), l.failed[0])
	case len(l.failed) > 0:
		return fmt.Errorf("%d of %d connections could not connect (see above)", len(l.failed), len(l.clients))
	case len(ended) == 1:
		return errors.New(ended[0])
	case len(ended) > 1:
		return fmt.Errorf("%d connections ended with an error (see above)", len(ended))
	}
	return nil
}

// closeAll closes every open connection with 1000, concurrently (each
// close waits, bounded, for the server's answer).
func (l *listener) closeAll() {
	var wg sync.WaitGroup
	for _, c := range l.conns {
		if c.ended {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.ws.Close()
		}()
	}
	wg.Wait()
}

// dialErr explains a failed connect: a refusal with its HTTP status and,
// for 401/403, which of the usual causes it is; an unreachable endpoint
// with its URL.
func (l *listener) dialErr(ctx context.Context, cl listenClient, status int, err error) error {
	if status == 0 {
		return explainNetErr(wsEndpoint, l.cfg.WSURL, err)
	}
	msg := fmt.Sprintf("the stack refused the WebSocket upgrade at %s with HTTP %d %s", redactURL(l.cfg.WSURL), status, http.StatusText(status))
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		hint := l.refusalHint(ctx, cl)
		if status == http.StatusForbidden {
			hint += "; on AWS a 403 also means --ws-url names no deployed stage (wss://ID.execute-api.REGION.amazonaws.com/STAGE)"
		}
		return fmt.Errorf("%s\nhint: %s", msg, hint)
	}
	return fmt.Errorf("%s: %w", msg, redactErr(err))
}

// refusalHint checks the token here, against the key directory's public
// key and the configured issuer, to say why $connect refused it: expired,
// signed by another key, another issuer; or, when it checks out here, that
// the stack trusts another key or issuer than this machine's.
func (l *listener) refusalHint(ctx context.Context, cl listenClient) string {
	generic := "$connect refuses an expired token, one signed by a key it does not trust (--key-dir, --key) and one of another issuer (--issuer, the stack's JWT_ISSUER); check with `streamer token verify`"
	keyFile := ""
	if cl.user != "" {
		keyFile = l.opts.KeyFile
	}
	pub, err := l.f.PublicKey(keyFile)
	if err != nil {
		claims, derr := decodeUnverified(cl.token)
		if derr == nil && !claims.ExpiresAt.IsZero() && l.f.Now().After(claims.ExpiresAt) {
			return fmt.Sprintf("the token expired %s (exp %s): mint a new one", formatAge(l.f.Now(), claims.ExpiresAt), formatTime(claims.ExpiresAt))
		}
		return generic
	}
	keys := "the key in " + l.cfg.KeyDir
	if keyFile != "" {
		keys = keyFile
	}
	_, verr := verifyToken(ctx, pub, l.cfg.Issuer, l.cfg.Audience, cl.token)
	switch {
	case verr == nil:
		return fmt.Sprintf("the token is valid for %s and issuer %q, so the stack trusts another key or issuer: pass --key-dir (or --key) with the key pair the stack verifies with and --issuer with its JWT_ISSUER (`streamer local` prints its key directory)", keys, l.cfg.Issuer)
	case errors.Is(verr, auth.ErrExpired):
		claims, _ := decodeUnverified(cl.token)
		return fmt.Sprintf("the token expired %s (exp %s): mint a new one (`streamer token mint`), or leave out --token and listen mints one",
			formatAge(l.f.Now(), claims.ExpiresAt), formatTime(claims.ExpiresAt))
	case errors.Is(verr, auth.ErrBadSignature), errors.Is(verr, auth.ErrUnknownKey):
		return fmt.Sprintf("the token is not signed by %s: pass --key-dir with the key pair the stack trusts, or a token minted with it", keys)
	case errors.Is(verr, auth.ErrWrongIssuer):
		claims, _ := decodeUnverified(cl.token)
		return fmt.Sprintf("the token's issuer is %q, not %q: pass --issuer with the stack's JWT_ISSUER, or a token minted for it", terminalText(claims.Issuer), l.cfg.Issuer)
	case errors.Is(verr, auth.ErrWrongAudience):
		return fmt.Sprintf("the token's audience is not %q, which the stack's $connect requires (JWT_AUDIENCE): mint one with --audience %s", l.cfg.Audience, l.cfg.Audience)
	}
	return fmt.Sprintf("the token is %s (%s)", auth.Reason(verr), userText(verr.Error()))
}

// readLine reads one line of at most max bytes, without its "\n" or
// "\r\n". A longer line is consumed whole and returned as nil with its
// size. It returns n == 0 with the error at the end of input.
func readLine(r *bufio.Reader, max int) (line []byte, n int, err error) {
	var last []byte
	for {
		chunk, err := r.ReadSlice('\n')
		n += len(chunk)
		if n <= max+2 {
			line = append(line, chunk...)
		}
		last = chunk
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if n == 0 {
			return nil, 0, err
		}
		if errors.Is(err, io.EOF) {
			err = nil // the last line had no newline; the next call says EOF
		}
		eol := 0
		if bytes.HasSuffix(last, []byte("\n")) {
			eol = 1
			if bytes.HasSuffix(last, []byte("\r\n")) {
				eol = 2
			}
		}
		n -= eol
		if n > max {
			return nil, n, err
		}
		return line[:n], n, err
	}
}
