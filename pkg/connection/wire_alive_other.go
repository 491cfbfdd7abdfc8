//go:build !unix || aix

package connection

import "net"

// alive cannot peek at a socket here: a connection idle longer than
// wireCheckAfter is not reused.
func alive(net.Conn) bool { return false }
