package auth

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readKeyFileWithin runs ReadKeyFile on path, failing the test instead of
// hanging when it blocks (a FIFO opened for reading waits for a writer).
// On that failure it opens the FIFO's write end, so the blocked read ends
// and leaks no goroutine.
func readKeyFileWithin(t *testing.T, path string) ([]byte, error) {
	t.Helper()
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := ReadKeyFile(path)
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-time.After(10 * time.Second): // liveness bound, not a timing assertion
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = w.Close()
		}
		<-done
		t.Fatalf("ReadKeyFile(%s) blocked", path)
		return nil, nil
	}
}

func TestReadKeyFileRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	nullLink := filepath.Join(dir, "null.pem")
	if err := os.Symlink(os.DevNull, nullLink); err != nil {
		t.Fatal(err)
	}
	devZeroLink := filepath.Join(dir, "devzero.pem")
	if err := os.Symlink("/dev/zero", devZeroLink); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.pem")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	subdir := filepath.Join(dir, "keys")
	if err := os.Mkdir(subdir, 0o700); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ path, kind string }{
		{"/dev/zero", "a character device"},
		{devZeroLink, "a character device"},
		{nullLink, "a character device"}, // /dev/null
		{fifo, "a named pipe (FIFO)"},
		{sock, "a socket"},
		{subdir, "a directory"},
	} {
		data, err := readKeyFileWithin(t, tc.path)
		if !errors.Is(err, ErrNotRegularFile) || errors.Is(err, ErrKeyFileTooLarge) || data != nil {
			t.Errorf("%s: %d bytes, err = %v; want ErrNotRegularFile", tc.path, len(data), err)
			continue
		}
		for _, want := range []string{tc.path + " is " + tc.kind, "name the PEM key file itself"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q does not say %q", tc.path, err, want)
			}
		}
		// The loader passes the same error on.
		if _, err := LoadPrivateKeyFile(tc.path); !errors.Is(err, ErrNotRegularFile) {
			t.Errorf("LoadPrivateKeyFile(%s): %v", tc.path, err)
		}
	}
}

func TestReadKeyFileSizeBound(t *testing.T) {
	dir := t.TempDir()
	atLimit := filepath.Join(dir, "limit.pem")
	content := bytes.Repeat([]byte("k"), MaxKeyFileBytes)
	if err := os.WriteFile(atLimit, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadKeyFile(atLimit); err != nil || !bytes.Equal(got, content) {
		t.Errorf("file of exactly MaxKeyFileBytes: %d bytes, err %v", len(got), err)
	}
	over := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(over, append(content, 'k'), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadKeyFile(over)
	if !errors.Is(err, ErrKeyFileTooLarge) || errors.Is(err, ErrNotRegularFile) || got != nil {
		t.Fatalf("file one byte over: %d bytes, err %v; want ErrKeyFileTooLarge", len(got), err)
	}
	for _, want := range []string{over, "64 KB", "check that it is the key file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if _, err := LoadPrivateKeyFile(over); !errors.Is(err, ErrKeyFileTooLarge) {
		t.Errorf("LoadPrivateKeyFile: %v", err)
	}
}

func TestReadKeyFileFollowsSymlinkToRegularFile(t *testing.T) {
	k := loadKeys()
	dir := t.TempDir()
	pemBytes, _ := EncodePrivateKeyPEM(k.main)
	real := filepath.Join(dir, "real.pem")
	if err := os.WriteFile(real, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, PrivateKeyFile)
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	got, err := LoadPrivateKeyFile(link)
	if err != nil || !got.Equal(k.main) {
		t.Fatalf("through a symlink: %v", err)
	}
	// A dangling link is a missing file, as the loaders always reported it.
	dangling := filepath.Join(dir, "dangling.pem")
	_ = os.Symlink(filepath.Join(dir, "gone.pem"), dangling)
	if _, err := ReadKeyFile(dangling); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), dangling) {
		t.Fatalf("dangling symlink: %v", err)
	}
}

// TestKeyLoadersSayWhatTheyExpected: text that is not PEM at all, or the
// wrong half of the pair, gets an error naming what that loader wanted.
func TestKeyLoadersSayWhatTheyExpected(t *testing.T) {
	k := loadKeys()
	pubPEM, _ := EncodePublicKeyPEM(&k.main.PublicKey)
	privPEM, _ := EncodePrivateKeyPEM(k.main)
	private := func(b []byte) error { _, err := ParsePrivateKeyPEM(b); return err }
	public := func(b []byte) error { _, err := ParsePublicKeyPEM(b); return err }
	for _, tc := range []struct {
		name          string
		parse         func([]byte) error
		in            []byte
		want, notWant string
	}{
		{"garbage as private", private, []byte("garbage"), "expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----", "PUBLIC"},
		{"empty as private", private, nil, "-----BEGIN PRIVATE KEY-----", "PUBLIC"},
		{"public as private", private, pubPEM, `got a "PUBLIC KEY" PEM block, which holds no private key`, "unsupported"},
		{"garbage as public", public, []byte("garbage"), "expected -----BEGIN PUBLIC KEY-----, -----BEGIN RSA PUBLIC KEY----- or -----BEGIN CERTIFICATE-----", "PRIVATE"},
		{"empty as public", public, nil, "-----BEGIN PUBLIC KEY-----", "PRIVATE"},
		{"private as public", public, privPEM, "got a private key where a public key was expected", "unsupported"},
	} {
		err := tc.parse(tc.in)
		if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.notWant) {
			t.Errorf("%s: %v\nwant ErrBadKey saying %q, not %q", tc.name, err, tc.want, tc.notWant)
		}
	}

	// Through the file loader: the path, and the private key's expectation.
	path := filepath.Join(t.TempDir(), PrivateKeyFile)
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadPrivateKeyFile(path)
	if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), "private key "+path) ||
		!strings.Contains(err.Error(), "-----BEGIN PRIVATE KEY-----") || strings.Contains(err.Error(), "PUBLIC") {
		t.Fatalf("LoadPrivateKeyFile of a non-PEM file: %v", err)
	}
}

// TestEnsureKeyPairRefusesDevZero: `streamer local` loads its key through
// EnsureKeyPair; a key path linked to /dev/zero must fail, not be read
// forever, and must not be replaced by a new pair.
func TestEnsureKeyPairRefusesDevZero(t *testing.T) {
	dir := t.TempDir()
	priv := filepath.Join(dir, PrivateKeyFile)
	if err := os.Symlink("/dev/zero", priv); err != nil {
		t.Fatal(err)
	}
	_, created, err := EnsureKeyPair(dir)
	if !errors.Is(err, ErrNotRegularFile) || created || !strings.Contains(err.Error(), priv) {
		t.Fatalf("created=%v err=%v; want ErrNotRegularFile naming %s", created, err, priv)
	}
	if target, err := os.Readlink(priv); err != nil || target != "/dev/zero" {
		t.Fatalf("the link was replaced: %q %v", target, err)
	}
}
