package cmd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/pkg/store"
	"go.uber.org/goleak"
)

// liveness bounds a wait that must end (it ends as soon as its condition
// holds; a hang fails here instead of at the test binary's timeout).
const liveness = 30 * time.Second

// interruptAfter cancels a fresh context with sig as its cause once started
// is closed (the read under test is blocked by then).
func interruptAfter(t *testing.T, started <-chan struct{}, sig syscall.Signal) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(nil) })
	go func() {
		select {
		case <-started:
			cancel(&SignalError{Signal: sig})
		case <-ctx.Done():
		}
	}()
	return ctx
}

// await runs fn and fails the test when it does not return within liveness.
func await[T any](t *testing.T, fn func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() { v, err := fn(); ch <- result{v, err} }()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(liveness):
		t.Fatalf("the read did not end within %s of the interrupt", liveness)
		panic("unreachable")
	}
}

// wantInterrupted checks that err says sig interrupted the read of what.
func wantInterrupted(t *testing.T, err error, sig syscall.Signal, what string) {
	t.Helper()
	var se *SignalError
	if !errors.As(err, &se) || se.Signal != sig {
		t.Fatalf("err = %v, want one carrying *SignalError{%v}", err, sig)
	}
	if want := "interrupted (" + signalName(sig) + ") while reading " + what; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to say %q", err, want)
	}
}

// pipe is an os.Pipe closed when the test ends.
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// blockingReader blocks in Read until release is closed, like a terminal
// or an inherited pipe whose reads cannot be woken by a deadline.
type blockingReader struct {
	started chan struct{}
	release chan struct{}
}

func newBlockingReader(t *testing.T) *blockingReader {
	b := &blockingReader{started: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(b.release) })
	return b
}

func (b *blockingReader) Read([]byte) (int, error) {
	select {
	case <-b.started:
	default:
		close(b.started)
	}
	<-b.release
	return 0, io.EOF
}

func TestReadInputReadsAndBounds(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	b, err := readInput(ctx, "-", strings.NewReader("hello"), "stdin", 10)
	if err != nil || string(b) != "hello" {
		t.Fatalf("readInput = %q, %v", b, err)
	}
	// limit+1 bytes at most, so over-limit input is told from exact-limit input.
	b, err = readInput(ctx, "-", strings.NewReader(strings.Repeat("x", 1<<20)), "stdin", 10)
	if err != nil || len(b) != 11 {
		t.Fatalf("readInput of 1 MB with limit 10 = %d bytes, %v; want 11", len(b), err)
	}
	path := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(path, []byte("from a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := readInput(ctx, path, nil, "the file", 100); err != nil || string(b) != "from a file" {
		t.Fatalf("readInput(file) = %q, %v", b, err)
	}
	if _, err := readInput(ctx, filepath.Join(t.TempDir(), "none"), nil, "the file", 100); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
}

// TestReadInputInterruptedPipe: a pipe whose writer never writes (`sleep 30
// | streamer send ID -`); the runtime polls pipes, so the interrupt wakes
// the read and its goroutine ends (goleak).
func TestReadInputInterruptedPipe(t *testing.T) {
	defer goleak.VerifyNone(t)
	r, _ := pipe(t)
	started := make(chan struct{})
	close(started)
	ctx := interruptAfter(t, started, syscall.SIGTERM)
	_, err := await(t, func() ([]byte, error) { return readInput(ctx, "-", r, "the message from stdin", 100) })
	wantInterrupted(t, err, syscall.SIGTERM, "the message from stdin")
}

// TestReadInputInterruptedBlockingRead: a read nothing can wake (a
// terminal): the command still gets its answer at once; the read's
// goroutine ends when the read returns (here at cleanup; in the CLI, at
// exit).
func TestReadInputInterruptedBlockingRead(t *testing.T) {
	br := newBlockingReader(t)
	ctx := interruptAfter(t, br.started, syscall.SIGINT)
	_, err := await(t, func() ([]byte, error) { return readInput(ctx, "-", br, "the token from stdin", 100) })
	wantInterrupted(t, err, syscall.SIGINT, "the token from stdin")
	// Later reads fail the same way, without another goroutine.
	r := newCtxReader(ctx, strings.NewReader("x"), "again")
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) && !errors.As(err, new(*SignalError)) {
		t.Errorf("read after the interrupt: %v", err)
	}
}

// TestReadInputInterruptedFIFO: `streamer send ID @fifo` with no writer
// blocks in open(2) itself; the interrupt ends the command all the same.
// A writer then opening the FIFO lets the abandoned open finish, and its
// goroutine closes the file and ends (goleak).
func TestReadInputInterruptedFIFO(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs on Windows")
	}
	defer goleak.VerifyNone(t)
	fifo := clitest.Mkfifo(t)
	started := make(chan struct{})
	close(started)
	ctx := interruptAfter(t, started, syscall.SIGINT)
	_, err := await(t, func() ([]byte, error) { return readInput(ctx, fifo, nil, "the message file "+fifo, 100) })
	wantInterrupted(t, err, syscall.SIGINT, "the message file "+fifo)
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
}

// TestReadInputFIFOWriterThenInterrupt: the writer opened the FIFO but
// sends nothing; the read (polled by the runtime) ends on the interrupt.
func TestReadInputFIFOWriterThenInterrupt(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs on Windows")
	}
	defer goleak.VerifyNone(t)
	fifo := clitest.Mkfifo(t)
	opened := make(chan *os.File, 1)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			panic(err)
		}
		_, _ = w.Write([]byte("part"))
		opened <- w
	}()
	// The read starts once the writer has written; the interrupt follows.
	started := make(chan struct{})
	ctx := interruptAfter(t, started, syscall.SIGTERM)
	var w *os.File
	_, err := await(t, func() ([]byte, error) {
		r, err := openInput(ctx, fifo, nil, "the message file")
		if err != nil {
			return nil, err
		}
		defer r.Close()
		w = <-opened
		buf := make([]byte, 4)
		if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "part" {
			return nil, fmt.Errorf("first read = %q, %v", buf, err)
		}
		close(started)
		return io.ReadAll(r)
	})
	wantInterrupted(t, err, syscall.SIGTERM, "the message file")
	_ = w.Close()
}

// scan runs scanIDs over in with limit and returns the ids with their lines.
func scan(in string, limit int) ([]string, error) {
	var got []string
	err := scanIDs(context.Background(), strings.NewReader(in), limit, func(line int, id string) error {
		got = append(got, fmt.Sprintf("%d:%s", line, id))
		return nil
	})
	return got, err
}

func TestScanIDs(t *testing.T) {
	defer goleak.VerifyNone(t)
	in := "# ids for the maintenance notice\n" +
		"L0SM9cOFvHcCIhw=\n" +
		"\n" +
		"  a1 , b2,,c3  \r\n" +
		"u9c6L9bM4CHMrNs=\tuser-1\ttenant-1\t2026-11-27T12:51:14Z\n" + // conn ls plain output
		"   # indented comment\n" +
		"last-without-newline"
	got, err := scan(in, 0)
	want := []string{"2:L0SM9cOFvHcCIhw=", "4:a1", "4:b2", "4:c3", "5:u9c6L9bM4CHMrNs=", "7:last-without-newline"}
	if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("scanIDs = %q, %v\nwant %q", got, err, want)
	}

	for _, tc := range []struct {
		name, in string
		limit    int
		want     string // in the usage error
		seen     int    // ids handed to each before the error
	}{
		{"invalid id stops at its line", "ok1\nok2\nbad\x1bid\nok3\n", 0, "the id on line 3 \"bad\\x1bid\" holds a control character", 2},
		{"reserved prefix", "a\n#b,c\n#x\nd,#e\n", 0, "the id on line 4 \"#e\" starts with \"#\"", 2},
		{"too long", "a\n" + strings.Repeat("x", 200) + "\n", 0, "the id on line 2 is 200 bytes", 1},
		{"not UTF-8", "\xff\xfe\n", 0, "the id on line 1 is not valid UTF-8", 0},
		{"over the limit", "a,b\nc\nd\n", 3, "more than 3 ids (line 3)", 3},
		{"line too long", "a\n" + strings.Repeat("b,", MaxIDLineBytes) + "\n", 0, "line 2 is longer than 64 KB", 1},
	} {
		got, err := scan(tc.in, tc.limit)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) || len(got) != tc.seen {
			t.Errorf("%s: scanIDs = %q, %v; want a usage error with %q after %d ids", tc.name, got, err, tc.want, tc.seen)
		}
	}

	// An error from each stops the scan and is returned as is.
	stop := errors.New("stop here")
	n := 0
	err = scanIDs(context.Background(), strings.NewReader("a\nb\nc\n"), 0, func(int, string) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Errorf("each's error: %v after %d calls, want %v after 2", err, n, stop)
	}
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// randomReader is an endless source of random bytes (/dev/urandom).
type randomReader struct{ r *rand.ChaCha8 }

func (r randomReader) Read(p []byte) (int, error) { return r.r.Read(p) }

// TestScanIDsGarbageFailsAtLineOne: `--ids-from /dev/urandom` (which grew to
// 24 GB before it was bounded) fails at line 1, having read at most one
// line's bound plus one read, whatever the seed.
func TestScanIDsGarbageFailsAtLineOne(t *testing.T) {
	defer goleak.VerifyNone(t)
	for seed := range uint64(20) {
		var s [32]byte
		s[0] = byte(seed)
		src := &countingReader{r: randomReader{rand.NewChaCha8(s)}}
		err := scanIDs(context.Background(), src, 0, func(int, string) error { return nil })
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "line 1") {
			t.Fatalf("seed %d: scanIDs over random bytes = %v, want a usage error at line 1", seed, err)
		}
		if max := int64(MaxIDLineBytes + inputChunk); src.n > max {
			t.Errorf("seed %d: read %d bytes of garbage before failing, want at most %d", seed, src.n, max)
		}
	}
	// Zeros with no newline: the line bound ends it.
	src := &countingReader{r: io.LimitReader(zeroReader{}, 1<<30)}
	err := scanIDs(context.Background(), src, 0, func(int, string) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "line 1") || src.n > MaxIDLineBytes+inputChunk {
		t.Errorf("/dev/zero: %v after %d bytes", err, src.n)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestScanIDsMemoryPerID: ids kept from `conn ls` plain output (about 80
// bytes a line, 16 of them the id) cost about the id's own size each, not
// the line's: each id is a string of its own.
func TestScanIDsMemoryPerID(t *testing.T) {
	const n = 20000
	var in bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, "%015d=\tuser-%d\ttenant-1\t2026-11-27T12:51:14Z\t2026-11-27T12:51:14Z\t0\t0\n", i, i)
	}
	data := in.Bytes()
	kept := make([]string, 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := scanIDs(context.Background(), bytes.NewReader(data), 0, func(_ int, id string) error {
		kept = append(kept, id)
		return nil
	})
	runtime.GC()
	runtime.ReadMemStats(&after)
	if err != nil || len(kept) != n {
		t.Fatalf("scanIDs: %d ids, %v", len(kept), err)
	}
	perID := float64(after.HeapAlloc-before.HeapAlloc) / n
	lineLen := float64(len(data)) / n
	t.Logf("retained %.1f bytes per 16-byte id (lines of %.0f bytes)", perID, lineLen)
	if perID > 32 {
		t.Errorf("retained %.1f bytes per 16-byte id, want close to the id's size (lines are %.0f bytes)", perID, lineLen)
	}
	runtime.KeepAlive(kept)
	runtime.KeepAlive(data)
}

// TestScanIDsInterrupted: ids from a pipe that stops writing; the scan ends
// on the interrupt with the ids so far handed over.
func TestScanIDsInterrupted(t *testing.T) {
	defer goleak.VerifyNone(t)
	r, w := pipe(t)
	if _, err := w.Write([]byte("a\nb\n")); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	ctx := interruptAfter(t, started, syscall.SIGINT)
	var got []string
	_, err := await(t, func() (struct{}, error) {
		return struct{}{}, scanIDs(ctx, r, 0, func(_ int, id string) error {
			if got = append(got, id); len(got) == 2 {
				close(started)
			}
			return nil
		})
	})
	wantInterrupted(t, err, syscall.SIGINT, "connection ids")
	if strings.Join(got, ",") != "a,b" {
		t.Errorf("ids before the interrupt: %q", got)
	}
}

// BenchmarkScanIDs reads 100,000 lines of `conn ls` plain output (16-byte
// ids in 82-byte lines), keeping every id, and reports the ids read per
// second, the heap each kept id costs, and the time as a ratio to a bare
// bufio.Scanner over the same bytes in the same run (the floor of any line
// reader).
func BenchmarkScanIDs(b *testing.B) {
	const n = 100_000
	var in bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, "%015d=\tuser-%d\ttenant-1\t2026-11-27T12:51:14Z\t2026-11-27T12:51:14Z\t0\t0\n", i, i%1000)
	}
	data := in.Bytes()
	baseline := func() time.Duration {
		start := time.Now()
		sc := bufio.NewScanner(bytes.NewReader(data))
		lines := 0
		for sc.Scan() {
			lines++
		}
		if lines != n {
			b.Fatalf("baseline read %d lines", lines)
		}
		return time.Since(start)
	}
	var base, scan time.Duration
	var retained uint64
	for b.Loop() {
		base += baseline()
		kept := make([]string, 0, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		err := scanIDs(context.Background(), bytes.NewReader(data), 0, func(_ int, id string) error {
			kept = append(kept, id)
			return nil
		})
		scan += time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if err != nil || len(kept) != n {
			b.Fatalf("scanIDs: %d ids, %v", len(kept), err)
		}
		retained += after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(kept)
	}
	b.ReportMetric(float64(n*b.N)/scan.Seconds(), "ids/s")
	b.ReportMetric(float64(retained)/float64(n*b.N), "retained-B/id")
	b.ReportMetric(scan.Seconds()/base.Seconds(), "x-bufio-baseline")
}

// TestPlainIDIsAlwaysValid: the fast path of scanIDs accepts only ids the
// full check accepts too (one rule, checkConnectionID).
func TestPlainIDIsAlwaysValid(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, r.IntN(store.MaxIDLength+3))
		for i := range b {
			b[i] = byte(r.IntN(256))
			if r.IntN(4) > 0 {
				b[i] = byte(0x20 + r.IntN(0x60)) // mostly printable ASCII
			}
		}
		if plainID(b) && checkConnectionID("id", string(b)) != nil {
			t.Fatalf("plainID accepts %q, which checkConnectionID refuses: %v", b, checkConnectionID("id", string(b)))
		}
	}
	if !plainID([]byte("L0SM9cOFvHcCIhw=")) {
		t.Error("plainID refuses an API Gateway id")
	}
}
