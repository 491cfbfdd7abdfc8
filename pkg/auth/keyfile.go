package auth

import (
	"crypto/rsa"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxKeyFileBytes bounds what ReadKeyFile reads. A PEM RSA key is under
// 4 KB even at 8192 bits; 64 KB leaves room for a certificate chain while
// keeping a wrong path (a log file, /dev/zero) from exhausting memory.
const MaxKeyFileBytes = 64 << 10

// ReadKeyFile returns the contents of the key file at path: a regular file,
// or a symlink to one, of at most MaxKeyFileBytes. Anything else (a
// directory, a device such as /dev/zero, a FIFO, a socket) fails with
// ErrNotRegularFile without being read, and a larger file with
// ErrKeyFileTooLarge. Errors name the path and keep the os error
// (fs.ErrNotExist, fs.ErrPermission) for errors.Is.
func ReadKeyFile(path string) ([]byte, error) {
	// Stat before opening: opening a device or a FIFO can block or have
	// side effects, and the mode is what the error has to explain.
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("auth: reading key file %s: %w", path, err)
	}
	if err := checkKeyFileInfo(path, st); err != nil {
		return nil, err
	}
	// O_NONBLOCK: should path be swapped for a FIFO after the Stat, the
	// open still returns at once, and the Stat of the open file refuses it.
	// It changes nothing for a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("auth: reading key file %s: %w", path, err)
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("auth: reading key file %s: %w", path, err)
	}
	if err := checkKeyFileInfo(path, st); err != nil {
		return nil, err
	}
	// The limit also holds for a file that grows while it is read.
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("auth: reading key file %s: %w", path, err)
	}
	if len(data) > MaxKeyFileBytes {
		return nil, tooLarge(path)
	}
	return data, nil
}

// checkKeyFileInfo refuses what ReadKeyFile must not read.
func checkKeyFileInfo(path string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is %s; name the PEM key file itself (a symlink to one is fine)", ErrNotRegularFile, path, fileKind(st.Mode()))
	}
	if st.Size() > MaxKeyFileBytes {
		return tooLarge(path)
	}
	return nil
}

func tooLarge(path string) error {
	return fmt.Errorf("%w: %s is over %d KB, and a PEM RSA key is a few KB; check that it is the key file", ErrKeyFileTooLarge, path, MaxKeyFileBytes>>10)
}

// fileKind describes a non-regular file for an error message.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	default:
		return "not a regular file"
	}
}

// LoadPrivateKeyFile reads (through ReadKeyFile) and parses a PEM private
// key file. Errors name the path and keep the cause (fs.ErrNotExist,
// ErrNotRegularFile, ErrKeyFileTooLarge, ErrBadKey, ErrWeakKey) for
// errors.Is.
func LoadPrivateKeyFile(path string) (*rsa.PrivateKey, error) {
	data, err := ReadKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("auth: private key %s: %w", path, err)
	}
	return k, nil
}
