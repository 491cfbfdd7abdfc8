//go:build unix && !aix

package connection

import (
	"net"
	"syscall"
)

// alive reports whether an idle connection can carry another request:
// nothing is waiting to be read on it (a server that closed it left an
// EOF or a TLS alert there). One non-blocking MSG_PEEK.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	fit := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		// Nothing to read is EAGAIN; an EOF is 0 bytes and no error.
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		fit = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait for readiness
	})
	return err == nil && fit
}
