package cmd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pay-theory/streamer/pkg/store"
)

// User input (a message from stdin or @FILE, a token from stdin, ids from
// --ids-from) comes from places that can block for ever: a terminal nobody
// types into, a pipe whose writer sleeps, a FIFO no writer has opened yet.
// Every read here is bounded, and ends as soon as the command's context
// ends (Ctrl-C, SIGTERM: Run then exits 130 or 143), whatever the read is
// blocked on.

// inputChunk bounds one read of user input.
const inputChunk = 32 << 10

// interrupted is the error of a read of what that ctx ended: it wraps the
// context's cause (a *SignalError when a signal ended the run, which Run
// maps to its exit code), so its text reads "interrupted (SIGINT) while
// reading the message from stdin".
func interrupted(ctx context.Context, what string) error {
	return fmt.Errorf("%w while reading %s", context.Cause(ctx), what)
}

// ctxReader is a reader whose reads end when ctx ends, even while the
// underlying read is blocked. Each read runs on a goroutine of its own
// into the reader's buffer; when ctx ends first, a file that supports
// deadlines (a pipe or FIFO the runtime polls) is woken and the goroutine
// ends at once; otherwise (a terminal or pipe inherited as stdin) it stays
// in its read until that returns or the process exits, which for the CLI
// is right after. Once interrupted, every later read fails the same way.
// Not safe for concurrent use.
type ctxReader struct {
	ctx  context.Context
	r    io.Reader
	what string
	buf  []byte
	res  chan readResult
	err  error
}

type readResult struct {
	n   int
	err error
}

// newCtxReader wraps r; what names the input in errors ("the message from
// stdin").
func newCtxReader(ctx context.Context, r io.Reader, what string) *ctxReader {
	return &ctxReader{ctx: ctx, r: r, what: what, res: make(chan readResult, 1)}
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.ctx.Err() != nil {
		c.err = interrupted(c.ctx, c.what)
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := min(len(p), inputChunk)
	if cap(c.buf) < n {
		// A fresh buffer only while no read is in flight: an abandoned
		// read keeps the old one, and no read follows an abandoned one.
		c.buf = make([]byte, n)
	}
	buf := c.buf[:n]
	go func() {
		n, err := c.r.Read(buf)
		c.res <- readResult{n, err}
	}()
	select {
	case r := <-c.res:
		copy(p, buf[:r.n])
		return r.n, r.err
	case <-c.ctx.Done():
		c.err = interrupted(c.ctx, c.what)
		if d, ok := c.r.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Now()) == nil {
			<-c.res // the deadline ends the read now
		}
		return 0, c.err
	}
}

// inputReader is what openInput opens: stdin (f is nil; closing it is a
// no-op, the process's stdin stays open) or a file.
type inputReader struct {
	*ctxReader
	f *os.File
}

func (i *inputReader) Close() error {
	if i.f == nil {
		return nil
	}
	return i.f.Close()
}

// openInput opens user input for reading: stdin when name is "-", else
// the file name. Its reads end when ctx ends (see ctxReader), and so does
// the open: opening a FIFO blocks until a writer opens it. what names the
// input in errors ("the message from stdin"). A missing file is an error
// that matches fs.ErrNotExist (the caller says which flag named it).
func openInput(ctx context.Context, name string, stdin io.Reader, what string) (io.ReadCloser, error) {
	if name == "-" {
		return &inputReader{ctxReader: newCtxReader(ctx, stdin, what)}, nil
	}
	type opened struct {
		f   *os.File
		err error
	}
	// Unbuffered: the file changes hands only while this function still
	// waits for it; an open that finishes after ctx ended is closed.
	ch := make(chan opened)
	go func() {
		f, err := os.Open(name)
		select {
		case ch <- opened{f, err}:
		case <-ctx.Done():
			if f != nil {
				_ = f.Close()
			}
		}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			return nil, o.err
		}
		return &inputReader{ctxReader: newCtxReader(ctx, o.f, what), f: o.f}, nil
	case <-ctx.Done():
		return nil, interrupted(ctx, what)
	}
}

// readInput reads user input (see openInput) to its end, but at most
// limit+1 bytes, so the caller can tell input over limit from input of
// exactly limit and refuse it in its own words.
func readInput(ctx context.Context, name string, stdin io.Reader, what string, limit int64) ([]byte, error) {
	r, err := openInput(ctx, name, stdin, what)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, limit+1))
}

// plainID reports whether b is an id checkConnectionID surely accepts:
// printable ASCII without spaces, not starting with #, within the length
// limit (every id API Gateway issues). Others get the full check, and its
// message, without building the message for every good id.
func plainID(b []byte) bool {
	if len(b) == 0 || len(b) > store.MaxIDLength || b[0] == '#' {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// Bounds of an id list (broadcast --ids-from).
const (
	// MaxIDLineBytes bounds one line of an id list: `conn ls` plain
	// output is about 100 bytes a line, and a comma-separated line of
	// 64 KB holds some 3,500 ids. A longer line is not an id list.
	MaxIDLineBytes = 64 << 10
	// DefaultMaxIDs is how many ids one list may hold when the caller
	// gives no limit: about 30 MB of ids, read and checked in well under a
	// second. For more, split the list and run one broadcast per part
	// (split -l 1000000 ids.txt part-), or target --tenant / --user,
	// which read the table instead of a list.
	DefaultMaxIDs = 1_000_000
)

// scanIDs reads connection ids from r as they arrive, line by line, and
// calls each with the id and its line number (counting from 1); an error
// from each stops the scan and is returned. It is the reader of
// `broadcast --ids-from`:
//
//   - a line holds one id or several separated by commas; only its first
//     tab-separated field counts, so `streamer conn ls` plain output pipes
//     straight in;
//   - blank lines and lines starting with # are skipped, as are spaces
//     around ids;
//   - each id is checked as it arrives (checkConnectionID), and the first
//     one that cannot be a connection id stops the scan with a usage error
//     naming its line, so a file of garbage (/dev/urandom) fails at line 1
//     after reading at most one line;
//   - a line longer than MaxIDLineBytes, or more than limit ids (limit <= 0
//     means DefaultMaxIDs), is a usage error saying how to go beyond it.
//
// Memory is one line's buffer plus what each keeps: each id is a string of
// its own (not a slice of the line), so keeping ids costs their own size.
// Reads end when ctx ends (the error wraps the context's cause, see
// interrupted); r is read through a ctxReader unless openInput opened it.
func scanIDs(ctx context.Context, r io.Reader, limit int, each func(line int, id string) error) error {
	if limit <= 0 {
		limit = DefaultMaxIDs
	}
	switch r.(type) {
	case *ctxReader, *inputReader:
	default:
		r = newCtxReader(ctx, r, "connection ids")
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxIDLineBytes)
	line, n := 0, 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		b, _, _ = bytes.Cut(b, []byte{'\t'})
		for len(b) > 0 {
			var field []byte
			field, b, _ = bytes.Cut(b, []byte{','})
			if field = bytes.TrimSpace(field); len(field) == 0 {
				continue
			}
			id := string(field)
			if !plainID(field) {
				if err := checkConnectionID(fmt.Sprintf("the id on line %d", line), id); err != nil {
					return err
				}
			}
			if n++; n > limit {
				return &UsageError{Err: fmt.Errorf("more than %d ids (line %d): broadcast to them in parts, e.g. split -l %d FILE part- and one --ids-from per part, or target --tenant / --user", limit, line, limit)}
			}
			if err := each(line, id); err != nil {
				return err
			}
		}
	}
	err := sc.Err()
	if errors.Is(err, bufio.ErrTooLong) {
		return &UsageError{Err: fmt.Errorf("line %d is longer than %d KB, so it is not a list of connection ids (one per line, or comma-separated)", line+1, MaxIDLineBytes>>10)}
	}
	return err
}
