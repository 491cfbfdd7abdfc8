package e2e_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pay-theory/streamer/internal/clitest"
)

// Bounds of runBounded: liveness and safety nets, not performance figures.
const (
	// keyRunTimeout: a refused key file fails at once; a blocked open of a
	// FIFO would otherwise wait for a writer for ever.
	keyRunTimeout = 30 * time.Second
	// keyRunDataKB caps the process's data segment (ulimit -d): an
	// unbounded read of /dev/zero then dies within a second instead of
	// eating the shared machine's memory. The CLI needs well under 128 MB.
	keyRunDataKB = 512 << 10
)

// runBounded runs the binary as run does, with its memory capped and
// killed after keyRunTimeout, failing the test when it is.
func runBounded(t *testing.T, env []string, args ...string) clitest.Result {
	t.Helper()
	// sh sets the limit and execs the binary itself, so the timeout's kill
	// reaches the binary, not a shell around it.
	return clitest.Cmd{Env: env, Timeout: keyRunTimeout}.Run(t, "sh",
		append([]string{"-c", `ulimit -d "$1" && shift && exec "$@"`, "sh", strconv.Itoa(keyRunDataKB), bin}, args...)...)
}

// TestKeyFilesThatAreNotFiles: a key path that is a device, a FIFO or a
// directory fails promptly with exit 1 and an error naming the path, what
// it is and what to do: never a Go out-of-memory crash, never a hang.
func TestKeyFilesThatAreNotFiles(t *testing.T) {
	env := clitest.CleanEnv(t)
	dir := t.TempDir()
	mkdir := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A key directory whose private key is a symlink to /dev/zero (the
	// issue's reproduction), one whose private key is a FIFO, and both as
	// --key files.
	zeroDir := mkdir("zero")
	zeroKey := filepath.Join(zeroDir, "jwt-private.pem")
	if err := os.Symlink("/dev/zero", zeroKey); err != nil {
		t.Fatal(err)
	}
	fifoDir := mkdir("fifo")
	fifoKey := filepath.Join(fifoDir, "jwt-private.pem")
	if err := syscall.Mkfifo(fifoKey, 0o600); err != nil {
		t.Fatal(err)
	}
	dirKey := mkdir("a-directory.pem")
	mint := []string{"token", "mint", "--user", "u", "--tenant", "t"}

	for _, tc := range []struct {
		name       string
		args       []string
		path, kind string
	}{
		{"mint --key-dir with /dev/zero", append(mint, "--key-dir", zeroDir), zeroKey, "a character device"},
		{"mint --key /dev/zero link", append(mint, "--key", zeroKey), zeroKey, "a character device"},
		{"mint --key /dev/zero", append(mint, "--key", "/dev/zero"), "/dev/zero", "a character device"},
		{"mint --key-dir with a FIFO", append(mint, "--key-dir", fifoDir), fifoKey, "a named pipe (FIFO)"},
		{"mint --key FIFO", append(mint, "--key", fifoKey), fifoKey, "a named pipe (FIFO)"},
		{"mint --key directory", append(mint, "--key", dirKey), dirKey, "a directory"},
		{"local --key-dir with /dev/zero", []string{"local", "--listen", "127.0.0.1:0", "--key-dir", zeroDir}, zeroKey, "a character device"},
		{"local --key-dir with a FIFO", []string{"local", "--listen", "127.0.0.1:0", "--key-dir", fifoDir}, fifoKey, "a named pipe (FIFO)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBounded(t, env, tc.args...)
			want := "not a regular file: " + tc.path + " is " + tc.kind + "; name the PEM key file itself (a symlink to one is fine)"
			if r.Code != 1 || !strings.Contains(r.Stderr, want) {
				t.Errorf("exit %d, want 1 and %q\n%s", r.Code, want, r)
			}
			if r.Stdout != "" || strings.Contains(r.Stderr, "fatal error") || strings.Contains(r.Stderr, "goroutine ") {
				t.Errorf("output beyond the one error:\n%s", r)
			}
		})
	}
	// Refused, not replaced: `streamer local` must not write a new pair
	// over a key path it could not read.
	if target, err := os.Readlink(zeroKey); err != nil || target != "/dev/zero" {
		t.Errorf("%s now links to %q (%v)", zeroKey, target, err)
	}
}

// TestKeyFileTooLargeOrNotPEM: a big regular file is refused before it is
// parsed, and a file that is not PEM is reported against what the private
// key loader expects, not "-----BEGIN PUBLIC KEY-----".
func TestKeyFileTooLargeOrNotPEM(t *testing.T) {
	env := clitest.CleanEnv(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, bytes.Repeat([]byte("A"), 64<<10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notPEM, []byte("this is not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mint := []string{"token", "mint", "--user", "u", "--tenant", "t", "--key"}

	r := runBounded(t, env, append(mint, big)...)
	if want := "key file too large: " + big + " is over 64 KB"; r.Code != 1 || !strings.Contains(r.Stderr, want) {
		t.Errorf("too large: exit %d, want 1 and %q\n%s", r.Code, want, r)
	}

	r = runBounded(t, env, append(mint, notPEM)...)
	want := "no PEM block found (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)"
	if r.Code != 1 || !strings.Contains(r.Stderr, want) || strings.Contains(r.Stderr, "PUBLIC KEY") || !strings.Contains(r.Stderr, notPEM) {
		t.Errorf("not PEM: exit %d, want 1 and %q naming %s\n%s", r.Code, want, notPEM, r)
	}
}
