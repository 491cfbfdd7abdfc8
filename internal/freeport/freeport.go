// Package freeport finds loopback TCP addresses for tests: free ones to
// start servers on (or that refuse), and silent ones that accept and never
// answer.
package freeport

import (
	"net"
	"sync"
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

// Silent returns the address of a loopback listener that accepts
// connections and never answers, so only a deadline ends a request to it.
// Cleanup closes the listener and every connection it accepted.
func Silent(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}
