package clitest

import (
	"os"
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

// WriteFiles writes files (slash-separated paths relative to root, and
// their contents) under root, creating directories; every file is
// executable, so fake programs and scripts run as they are.
func WriteFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for path, content := range files {
		p := filepath.Join(root, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}
