// Package freeport finds loopback TCP addresses nothing listens on, for
// tests that start servers on them or need an address that refuses.
package freeport

import (
	"net"
	"testing"
)

// Addr returns a 127.0.0.1:PORT address that was free a moment ago.
func Addr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Port returns the port of Addr.
func Port(t testing.TB) int {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	return a.Port
}
