package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// MinRSABits is the smallest RSA modulus accepted anywhere in this package
// (NIST SP 800-57: 1024-bit RSA has been disallowed since 2013).
const MinRSABits = 2048

// Default file names for a key pair written by WriteKeyPair.
const (
	PrivateKeyFile = "jwt-private.pem"
	PublicKeyFile  = "jwt-public.pem"
)

// GenerateKeyPair returns a new RSA key of the given size; bits 0 means 2048.
// Sizes under 2048 fail with ErrWeakKey.
func GenerateKeyPair(bits int) (*rsa.PrivateKey, error) {
	if bits == 0 {
		bits = MinRSABits
	}
	if bits < MinRSABits {
		return nil, fmt.Errorf("%w: %d bits requested, need at least %d", ErrWeakKey, bits, MinRSABits)
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("auth: generating %d-bit RSA key: %w", bits, err)
	}
	return k, nil
}

// EncodePrivateKeyPEM encodes k as a PKCS#8 "PRIVATE KEY" PEM block.
func EncodePrivateKeyPEM(k *rsa.PrivateKey) ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: nil private key", ErrBadKey)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// EncodePublicKeyPEM encodes k as a PKIX "PUBLIC KEY" PEM block, the form
// JWT_PUBLIC_KEY and most tooling expect.
func EncodePublicKeyPEM(k *rsa.PublicKey) ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: nil public key", ErrBadKey)
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// What each parser accepts, for its errors: a private key handed to the
// public key parser (or the reverse) must say which one was expected.
const (
	wantPublicPEM  = "-----BEGIN PUBLIC KEY-----, -----BEGIN RSA PUBLIC KEY----- or -----BEGIN CERTIFICATE-----"
	wantPrivatePEM = "-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----"
)

// decodePEM returns the first PEM block in data; want (wantPublicPEM or
// wantPrivatePEM) is named when there is none. PEM pasted into an
// environment variable or a console field often arrives with its newlines
// as the two characters `\n`; those are turned back into newlines.
func decodePEM(data []byte, want string) (*pem.Block, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty input, expected a PEM block starting %s", ErrBadKey, want)
	}
	block, _ := pem.Decode(data)
	if block == nil && bytes.Contains(data, []byte(`\n`)) {
		block, _ = pem.Decode(bytes.ReplaceAll(data, []byte(`\n`), []byte("\n")))
	}
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found (expected %s)", ErrBadKey, want)
	}
	if _, encrypted := block.Headers["Proc-Type"]; encrypted {
		return nil, fmt.Errorf("%w: encrypted PEM is not supported; decrypt the key first", ErrBadKey)
	}
	return block, nil
}

// checkBits enforces MinRSABits.
func checkBits(k *rsa.PublicKey) error {
	if k == nil || k.N == nil {
		return fmt.Errorf("%w: missing modulus", ErrBadKey)
	}
	if n := k.N.BitLen(); n < MinRSABits {
		return fmt.Errorf("%w: key has %d bits", ErrWeakKey, n)
	}
	return nil
}

// ParsePublicKeyPEM parses an RSA public key from PEM: PKIX ("PUBLIC KEY"),
// PKCS#1 ("RSA PUBLIC KEY") or the key of a "CERTIFICATE". Errors match
// ErrBadKey, or ErrWeakKey for keys under 2048 bits.
func ParsePublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	block, err := decodePEM(data, wantPublicPEM)
	if err != nil {
		return nil, err
	}
	var pub any
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY":
		return nil, fmt.Errorf("%w: got a private key where a public key was expected; never deploy the private key", ErrBadKey)
	default:
		return nil, fmt.Errorf("%w: unsupported PEM block %q (expected %s)", ErrBadKey, block.Type, wantPublicPEM)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: key is %T, want RSA", ErrBadKey, pub)
	}
	if err := checkBits(rk); err != nil {
		return nil, err
	}
	return rk, nil
}

// ParsePrivateKeyPEM parses an RSA private key from PEM: PKCS#8
// ("PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"). Errors match ErrBadKey, or
// ErrWeakKey for keys under 2048 bits.
func ParsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	block, err := decodePEM(data, wantPrivatePEM)
	if err != nil {
		return nil, err
	}
	var priv any
	switch block.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("%w: got a %q PEM block, which holds no private key (expected %s); sign with the private half of the pair", ErrBadKey, block.Type, wantPrivatePEM)
	default:
		return nil, fmt.Errorf("%w: unsupported PEM block %q (expected %s)", ErrBadKey, block.Type, wantPrivatePEM)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	rk, ok := priv.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: key is %T, want RSA", ErrBadKey, priv)
	}
	if err := checkBits(&rk.PublicKey); err != nil {
		return nil, err
	}
	return rk, nil
}

// WriteKeyPair generates a 2048-bit key pair and writes it to dir as
// PrivateKeyFile (mode 0600) and PublicKeyFile (mode 0644), creating dir with
// mode 0700 when missing. When either file exists and force is false it
// writes nothing and fails with ErrKeyExists. Each file is written to a
// temporary name and renamed, so a crash never leaves a half-written key.
func WriteKeyPair(dir string, force bool) (privPath, pubPath string, err error) {
	_, privPath, pubPath, err = writeKeyPair(dir, force)
	return privPath, pubPath, err
}

// writeKeyPair is WriteKeyPair also returning the key it generated.
func writeKeyPair(dir string, force bool) (*rsa.PrivateKey, string, string, error) {
	privPath := filepath.Join(dir, PrivateKeyFile)
	pubPath := filepath.Join(dir, PublicKeyFile)
	if !force {
		for _, p := range []string{privPath, pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return nil, "", "", fmt.Errorf("%w: %s (pass force to replace it; tokens signed with the old key will stop verifying)", ErrKeyExists, p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, "", "", fmt.Errorf("auth: checking %s: %w", p, err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", "", fmt.Errorf("auth: creating key directory %s: %w", dir, err)
	}
	k, err := GenerateKeyPair(MinRSABits)
	if err != nil {
		return nil, "", "", err
	}
	privPEM, err := EncodePrivateKeyPEM(k)
	if err != nil {
		return nil, "", "", err
	}
	pubPEM, err := EncodePublicKeyPEM(&k.PublicKey)
	if err != nil {
		return nil, "", "", err
	}
	// Private first: a public key without its private half is useless,
	// whereas the public key can always be re-derived.
	if err := writeFileAtomic(privPath, privPEM, 0o600); err != nil {
		return nil, "", "", err
	}
	if err := writeFileAtomic(pubPath, pubPEM, 0o644); err != nil {
		return nil, "", "", err
	}
	return k, privPath, pubPath, nil
}

// EnsureKeyPair loads the private key from dir, or creates a new pair there
// when no private key exists (created reports which). A missing public key
// next to an existing private key is rewritten from it.
func EnsureKeyPair(dir string) (priv *rsa.PrivateKey, created bool, err error) {
	privPath := filepath.Join(dir, PrivateKeyFile)
	pubPath := filepath.Join(dir, PublicKeyFile)
	_, statErr := os.Stat(privPath)
	switch {
	case statErr == nil:
		k, err := LoadPrivateKeyFile(privPath)
		if err != nil {
			return nil, false, err
		}
		if _, err := os.Stat(pubPath); errors.Is(err, fs.ErrNotExist) {
			pubPEM, err := EncodePublicKeyPEM(&k.PublicKey)
			if err != nil {
				return nil, false, err
			}
			if err := writeFileAtomic(pubPath, pubPEM, 0o644); err != nil {
				return nil, false, err
			}
		}
		return k, false, nil
	case errors.Is(statErr, fs.ErrNotExist):
		// A lone public key without its private half is useless: replace it.
		k, _, _, err := writeKeyPair(dir, true)
		if err != nil {
			return nil, false, err
		}
		return k, true, nil
	default:
		return nil, false, fmt.Errorf("auth: checking %s: %w", privPath, statErr)
	}
}

// writeFileAtomic writes data to a temporary file in path's directory with
// the given mode and renames it over path.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("auth: writing %s: %w", path, err)
		}
	}()
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
