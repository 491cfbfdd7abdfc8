package localgw

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync/atomic"
)

// coder/websocket limits whole messages (SetReadLimit) but never exposes frame
// boundaries, so API Gateway's 32 KB frame limit is enforced by watching the
// raw bytes the client sends: frameSniffer parses every client frame header
// as it passes through the hijacked connection and flags a data frame whose
// payload exceeds MaxFrameBytes. The read loop checks the flag after each
// message and closes with 1009. The oversize frame itself is still read (it is
// under the 128 KB message limit, or the message limit fires first), but it
// is never routed.
type frameSniffer struct {
	limit    uint64
	oversize atomic.Bool

	// parser state, touched only by the single reading goroutine
	hdr     [14]byte
	hdrLen  int    // header bytes collected so far
	need    int    // header bytes needed, known once the length byte is seen
	payload uint64 // payload bytes still to skip
}

func newFrameSniffer(limit int) *frameSniffer {
	return &frameSniffer{limit: uint64(limit), need: 2}
}

// feed parses p, which continues the client-to-server byte stream.
func (s *frameSniffer) feed(p []byte) {
	for len(p) > 0 {
		if s.payload > 0 {
			n := uint64(len(p))
			if n > s.payload {
				n = s.payload
			}
			s.payload -= n
			p = p[n:]
			continue
		}
		s.hdr[s.hdrLen] = p[0]
		s.hdrLen++
		p = p[1:]
		if s.hdrLen == 2 {
			s.need = 2
			switch s.hdr[1] & 0x7f {
			case 126:
				s.need += 2
			case 127:
				s.need += 8
			}
			if s.hdr[1]&0x80 != 0 { // masked (always, from a client)
				s.need += 4
			}
		}
		if s.hdrLen < 2 || s.hdrLen < s.need {
			continue
		}
		var length uint64
		switch l7 := s.hdr[1] & 0x7f; l7 {
		case 126:
			length = uint64(s.hdr[2])<<8 | uint64(s.hdr[3])
		case 127:
			for i := 2; i < 10; i++ {
				length = length<<8 | uint64(s.hdr[i])
			}
		default:
			length = uint64(l7)
		}
		opcode := s.hdr[0] & 0x0f
		if opcode <= 0x2 && length > s.limit { // continuation, text, binary
			s.oversize.Store(true)
		}
		s.payload = length
		s.hdrLen, s.need = 0, 2
	}
}

// sniffConn passes reads through the sniffer.
type sniffConn struct {
	net.Conn
	s *frameSniffer
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.s.feed(p[:n])
	}
	return n, err
}

// sniffWriter hands coder/websocket a hijacked connection wrapped in a
// sniffConn, with a reader and writer smaller than net/http's 4 KB ones
// (see connReadBuffer). Bytes net/http already buffered are fed to the
// sniffer and carried into the new reader first, because websocket.Accept
// reads them before the connection.
type sniffWriter struct {
	http.ResponseWriter
	c *conn
}

func (w *sniffWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	raw, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c := w.c
	c.mu.Lock()
	c.raw = raw
	c.mu.Unlock()
	sc := &sniffConn{Conn: raw, s: &c.sniffer}
	var src io.Reader = sc
	n := brw.Reader.Buffered()
	if n > 0 {
		b, _ := brw.Reader.Peek(n)
		b = bytes.Clone(b)
		c.sniffer.feed(b)
		src = io.MultiReader(bytes.NewReader(b), sc)
	}
	br := bufio.NewReaderSize(src, max(connReadBuffer, n))
	if n > 0 {
		// Pull the carried bytes into br's buffer now: coder/websocket
		// resets br's source to the connection and keeps only what is
		// buffered.
		if _, err := br.Peek(n); err != nil {
			_ = raw.Close()
			return nil, nil, err
		}
	}
	return sc, bufio.NewReadWriter(br, bufio.NewWriterSize(sc, connWriteBuffer)), nil
}

func (w *sniffWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
