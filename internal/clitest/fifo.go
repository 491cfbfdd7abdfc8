package clitest

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pay-theory/streamer/internal/testenv"
)

// Mkfifo makes a named pipe (mkfifo(1)) in a temporary directory and
// returns its path: user input that blocks until a writer comes.
func Mkfifo(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mkfifo")
	if err != nil {
		testenv.Missing(t, "mkfifo is not installed", "install coreutils")
	}
	path := filepath.Join(t.TempDir(), "fifo")
	if out, err := exec.Command(bin, path).CombinedOutput(); err != nil {
		t.Fatalf("mkfifo: %v\n%s", err, out)
	}
	return path
}
