package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePublicKeyPEMForms(t *testing.T) {
	k := loadKeys()
	pub := &k.main.PublicKey
	pkix, err := EncodePublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkixName("issuer"), NotBefore: testT0, NotAfter: testT0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, k.main)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, in := range map[string][]byte{
		"PKIX":                       pkix,
		"PKCS#1":                     pkcs1,
		"certificate":                cert,
		"escaped newlines (env var)": []byte(strings.ReplaceAll(strings.TrimSpace(string(pkix)), "\n", `\n`)),
		"surrounding whitespace":     append(append([]byte("\n  "), pkix...), "\n\n"...),
	} {
		got, err := ParsePublicKeyPEM(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got.N.Cmp(pub.N) != 0 || got.E != pub.E {
			t.Errorf("%s: parsed a different key", name)
		}
	}
}

func pkixName(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

func TestParsePublicKeyPEMRejects(t *testing.T) {
	k := loadKeys()
	weakPKIX, _ := EncodePublicKeyPEM(&k.weak.PublicKey)
	weakPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.weak.PublicKey)})
	ecDER, _ := x509.MarshalPKIXPublicKey(&k.ec.PublicKey)
	privPEM, _ := EncodePrivateKeyPEM(k.main)
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"1024-bit PKIX":   {weakPKIX, ErrWeakKey},
		"1024-bit PKCS#1": {weakPKCS1, ErrWeakKey},
		"EC key":          {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER}), ErrBadKey},
		"private key":     {privPEM, ErrBadKey},
		"empty":           {nil, ErrBadKey},
		"not PEM":         {[]byte("hello"), ErrBadKey},
		"garbage DER":     {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}), ErrBadKey},
		"other block":     {pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: []byte{1}}), ErrBadKey},
	}
	for name, tc := range cases {
		if _, err := ParsePublicKeyPEM(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func TestParsePrivateKeyPEMForms(t *testing.T) {
	k := loadKeys()
	pkcs8, err := EncodePrivateKeyPEM(k.main)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(pkcs8, []byte("BEGIN PRIVATE KEY")) {
		t.Fatalf("EncodePrivateKeyPEM is not PKCS#8:\n%s", pkcs8)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.main)})
	for name, in := range map[string][]byte{"PKCS#8": pkcs8, "PKCS#1": pkcs1} {
		got, err := ParsePrivateKeyPEM(in)
		if err != nil || !got.Equal(k.main) {
			t.Errorf("%s: %v", name, err)
		}
	}
	weak := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.weak)})
	if _, err := ParsePrivateKeyPEM(weak); !errors.Is(err, ErrWeakKey) {
		t.Errorf("weak private key: %v", err)
	}
	pubPEM, _ := EncodePublicKeyPEM(&k.main.PublicKey)
	if _, err := ParsePrivateKeyPEM(pubPEM); !errors.Is(err, ErrBadKey) {
		t.Errorf("public key as private: %v", err)
	}
	enc := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}})
	if _, err := ParsePrivateKeyPEM(enc); !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted PEM: %v", err)
	}
}

func TestGenerateKeyPair(t *testing.T) {
	for _, bits := range []int{512, 1024, 2047} {
		if _, err := GenerateKeyPair(bits); !errors.Is(err, ErrWeakKey) {
			t.Errorf("%d bits: err = %v, want ErrWeakKey", bits, err)
		}
	}
	k, err := GenerateKeyPair(0)
	if err != nil || k.N.BitLen() != 2048 {
		t.Fatalf("default size: %v", err)
	}
	// Round trip through PEM and a token.
	privPEM, _ := EncodePrivateKeyPEM(k)
	pubPEM, _ := EncodePublicKeyPEM(&k.PublicKey)
	priv, err := ParsePrivateKeyPEM(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyPEM(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Mint(priv, MintOptions{UserID: "u", TenantID: "t", Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{Keys: StaticKey(pub), Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := EncodePrivateKeyPEM(nil); !errors.Is(err, ErrBadKey) {
		t.Errorf("nil private: %v", err)
	}
	if _, err := EncodePublicKeyPEM(nil); !errors.Is(err, ErrBadKey) {
		t.Errorf("nil public: %v", err)
	}
}

func TestWriteKeyPair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys", "nested")
	privPath, pubPath, err := WriteKeyPair(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if privPath != filepath.Join(dir, PrivateKeyFile) || pubPath != filepath.Join(dir, PublicKeyFile) {
		t.Fatalf("paths = %s, %s", privPath, pubPath)
	}
	mode := func(p string) fs.FileMode {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	if m := mode(dir); m != 0o700 {
		t.Errorf("dir mode = %o, want 700", m)
	}
	if m := mode(privPath); m != 0o600 {
		t.Errorf("private key mode = %o, want 600", m)
	}
	if m := mode(pubPath); m != 0o644 {
		t.Errorf("public key mode = %o, want 644", m)
	}
	priv, err := LoadPrivateKeyFile(privPath)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := os.ReadFile(pubPath)
	pub, err := ParsePublicKeyPEM(pubPEM)
	if err != nil || pub.N.Cmp(priv.N) != 0 {
		t.Fatalf("public file does not match the private key: %v", err)
	}

	// Refuses to overwrite, and says how to proceed.
	_, _, err = WriteKeyPair(dir, false)
	if !errors.Is(err, ErrKeyExists) || !strings.Contains(err.Error(), privPath) {
		t.Fatalf("second write: err = %v, want ErrKeyExists naming %s", err, privPath)
	}
	if again, _ := LoadPrivateKeyFile(privPath); !again.Equal(priv) {
		t.Fatal("refused write changed the key")
	}
	// Only the public half present also counts as existing.
	dir2 := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir2, PublicKeyFile), pubPEM, 0o644)
	if _, _, err := WriteKeyPair(dir2, false); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("existing public key: %v", err)
	}

	// force replaces both, keeping 0600 even if the old file was looser.
	_ = os.Chmod(privPath, 0o644)
	if _, _, err := WriteKeyPair(dir, true); err != nil {
		t.Fatal(err)
	}
	replaced, err := LoadPrivateKeyFile(privPath)
	if err != nil || replaced.Equal(priv) {
		t.Fatalf("force did not replace the key: %v", err)
	}
	if m := mode(privPath); m != 0o600 {
		t.Errorf("replaced private key mode = %o", m)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory has %d entries, want 2 (no temp files left)", len(entries))
	}
}

func TestEnsureKeyPair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "streamer")
	k1, created, err := EnsureKeyPair(dir)
	if err != nil || !created {
		t.Fatalf("first: created=%v err=%v", created, err)
	}
	k2, created, err := EnsureKeyPair(dir)
	if err != nil || created || !k2.Equal(k1) {
		t.Fatalf("second: created=%v err=%v same=%v", created, err, k2 != nil && k2.Equal(k1))
	}
	// A deleted public key is restored from the private one.
	_ = os.Remove(filepath.Join(dir, PublicKeyFile))
	if _, created, err := EnsureKeyPair(dir); err != nil || created {
		t.Fatalf("restore public: created=%v err=%v", created, err)
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if pub, err := ParsePublicKeyPEM(pubPEM); err != nil || pub.N.Cmp(k1.N) != 0 {
		t.Fatalf("restored public key: %v", err)
	}
	// A corrupt private key is an error, never silently replaced.
	_ = os.WriteFile(filepath.Join(dir, PrivateKeyFile), []byte("junk"), 0o600)
	if _, _, err := EnsureKeyPair(dir); !errors.Is(err, ErrBadKey) {
		t.Fatalf("corrupt key: %v", err)
	}
}

func TestLoadPrivateKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.pem")
	_, err := LoadPrivateKeyFile(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing: %v", err)
	}
	bad := filepath.Join(dir, "bad.pem")
	_ = os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	_, err = LoadPrivateKeyFile(bad)
	if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad: %v", err)
	}
}

func TestMint(t *testing.T) {
	k := loadKeys()
	now := func() time.Time { return testT0 }
	v := newTestVerifier(t, StaticKey(&k.main.PublicKey), now)
	tok, err := Mint(k.main, MintOptions{
		UserID: "u1", TenantID: "t1", Permissions: []string{"p"}, Issuer: testIssuer,
		Audience: []string{testAudience}, TTL: 5 * time.Minute, Now: now, KeyID: "key-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != "u1" || c.TenantID != "t1" || len(c.Permissions) != 1 || !c.IssuedAt.Equal(testT0) ||
		!c.ExpiresAt.Equal(testT0.Add(5*time.Minute)) || !c.NotBefore.IsZero() || len(c.ID) != 32 {
		t.Fatalf("claims = %+v", c)
	}
	var hdr map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	_ = json.Unmarshal(raw, &hdr)
	if hdr["alg"] != "RS256" || hdr["kid"] != "key-1" {
		t.Fatalf("header = %v", hdr)
	}

	// Default TTL is one hour.
	tok, _ = Mint(k.main, MintOptions{UserID: "u", TenantID: "t", Issuer: testIssuer, Audience: []string{testAudience}, Now: now})
	if c, err := v.Verify(context.Background(), tok); err != nil || !c.ExpiresAt.Equal(testT0.Add(time.Hour)) {
		t.Fatalf("default TTL: %v %v", c.ExpiresAt, err)
	}

	// Expired: exp a minute ago, iat before it.
	tok, _ = Mint(k.main, MintOptions{UserID: "u", TenantID: "t", Issuer: testIssuer, Audience: []string{testAudience}, Now: now, Expired: true})
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	lenient, _ := NewVerifier(VerifierConfig{Keys: StaticKey(&k.main.PublicKey), Issuer: testIssuer, Leeway: 2 * time.Minute, Now: now})
	if c, err := lenient.Verify(context.Background(), tok); err != nil ||
		!c.ExpiresAt.Equal(testT0.Add(-time.Minute)) || !c.IssuedAt.Equal(testT0.Add(-time.Minute-time.Hour)) {
		t.Fatalf("expired token claims: %+v %v", c, err)
	}

	// Extra sets nbf, overrides, and deletes.
	tok, _ = Mint(k.main, MintOptions{UserID: "u", TenantID: "t", Issuer: testIssuer, Audience: []string{testAudience}, Now: now,
		Extra: map[string]any{"nbf": testT0.Add(time.Hour).Unix(), "tenant_id": nil}})
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("nbf via Extra: %v", err)
	}
	tok, _ = Mint(k.main, MintOptions{UserID: "u", TenantID: "t", Issuer: testIssuer, Audience: []string{testAudience}, Now: now,
		Extra: map[string]any{"tenant_id": nil}})
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrMissingClaim) {
		t.Fatalf("tenant_id deleted via Extra: %v", err)
	}

	if _, err := Mint(k.weak, MintOptions{}); !errors.Is(err, ErrWeakKey) {
		t.Fatalf("weak key: %v", err)
	}
	if _, err := Mint(nil, MintOptions{}); !errors.Is(err, ErrBadKey) {
		t.Fatalf("nil key: %v", err)
	}
}
