package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

func TestConcurrentWrites(t *testing.T) {
	var b Buffer
	w := NewWriter(&b)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = b.Write([]byte("ab\n")) }()
		go func() { defer wg.Done(); _, _ = w.Write([]byte("cd\n")); _ = b.String() }()
	}
	wg.Wait()
	got := b.String()
	if strings.Count(got, "ab\n") != 50 || strings.Count(got, "cd\n") != 50 || len(got) != 300 {
		t.Fatalf("got %q", got)
	}
}
