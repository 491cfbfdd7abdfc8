package auth

import (
	"context"
	"crypto/rsa"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

type attackCase struct {
	name   string
	token  string
	want   error
	reason string
}

// attackTokens are tokens Verify (with newTestVerifier over StaticKey(main)
// at testT0) must reject, each with the one sentinel it must produce.
func attackTokens(t testing.TB) []attackCase {
	k := loadKeys()
	pubPEM, err := EncodePublicKeyPEM(&k.main.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	good := rs256(t, k.main, goodClaims())
	parts := strings.Split(good, ".")
	hdr := func(alg string) map[string]any { return map[string]any{"alg": alg, "typ": "JWT"} }

	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(goodClaims())).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	tampered := with("sub", "admin")
	// A signature of the right length but for other bytes.
	wrongSigBytes := rs256(t, k.main, with("jti", "other"))

	return []attackCase{
		{"empty", "", ErrMissingToken, "missing"},
		{"alg none", none, ErrAlgorithm, "algorithm"},
		{"alg none uppercase", b64(hdr("NONE")) + "." + parts[1] + ".", ErrAlgorithm, "algorithm"},
		{"alg missing", b64(map[string]any{"typ": "JWT"}) + "." + parts[1] + "." + parts[2], ErrAlgorithm, "algorithm"},
		{"alg not a string", b64(map[string]any{"alg": 256}) + "." + parts[1] + "." + parts[2], ErrAlgorithm, "algorithm"},
		{"alg unknown", b64(hdr("RS257")) + "." + parts[1] + "." + parts[2], ErrAlgorithm, "algorithm"},
		{"HS256 with public key as secret", signRaw(t, jwt.SigningMethodHS256, pubPEM, hdr("HS256"), goodClaims()), ErrAlgorithm, "algorithm"},
		{"RS384", signRaw(t, jwt.SigningMethodRS384, k.main, hdr("RS384"), goodClaims()), ErrAlgorithm, "algorithm"},
		{"RS512", signRaw(t, jwt.SigningMethodRS512, k.main, hdr("RS512"), goodClaims()), ErrAlgorithm, "algorithm"},
		{"PS256", signRaw(t, jwt.SigningMethodPS256, k.main, hdr("PS256"), goodClaims()), ErrAlgorithm, "algorithm"},
		{"ES256", signRaw(t, jwt.SigningMethodES256, k.ec, hdr("ES256"), goodClaims()), ErrAlgorithm, "algorithm"},
		{"RS256 header over RS384 signature", signRaw(t, jwt.SigningMethodRS384, k.main, hdr("RS256"), goodClaims()), ErrBadSignature, "bad_signature"},
		{"no exp", rs256(t, k.main, with("exp", nil)), ErrMissingClaim, "missing_claim"},
		{"exp zero", rs256(t, k.main, with("exp", 0)), ErrMissingClaim, "missing_claim"},
		{"exp as string", rs256(t, k.main, with("exp", "tomorrow")), ErrMalformed, "malformed"},
		{"expired", rs256(t, k.main, with("exp", testT0.Add(-time.Minute).Unix())), ErrExpired, "expired"},
		{"expired and wrong issuer", rs256(t, k.main, with("exp", testT0.Add(-time.Hour).Unix(), "iss", "evil")), ErrExpired, "expired"},
		{"nbf in the future", rs256(t, k.main, with("nbf", testT0.Add(time.Minute).Unix())), ErrNotYetValid, "not_yet_valid"},
		{"wrong iss", rs256(t, k.main, with("iss", "https://evil.test")), ErrWrongIssuer, "wrong_issuer"},
		{"missing iss", rs256(t, k.main, with("iss", nil)), ErrWrongIssuer, "wrong_issuer"},
		{"iss as array", rs256(t, k.main, with("iss", []string{testIssuer})), ErrMalformed, "malformed"},
		{"wrong aud", rs256(t, k.main, with("aud", []string{"other"})), ErrWrongAudience, "wrong_audience"},
		{"missing aud", rs256(t, k.main, with("aud", nil)), ErrWrongAudience, "wrong_audience"},
		{"aud as number", rs256(t, k.main, with("aud", 7)), ErrMalformed, "malformed"},
		{"missing sub", rs256(t, k.main, with("sub", nil)), ErrMissingClaim, "missing_claim"},
		{"empty sub", rs256(t, k.main, with("sub", "")), ErrMissingClaim, "missing_claim"},
		{"sub as number", rs256(t, k.main, with("sub", 42)), ErrMalformed, "malformed"},
		{"missing tenant_id", rs256(t, k.main, with("tenant_id", nil)), ErrMissingClaim, "missing_claim"},
		{"empty tenant_id", rs256(t, k.main, with("tenant_id", "")), ErrMissingClaim, "missing_claim"},
		{"tenant_id as object", rs256(t, k.main, with("tenant_id", map[string]any{"id": "t"})), ErrMalformed, "malformed"},
		{"permissions as string", rs256(t, k.main, with("permissions", "admin")), ErrMalformed, "malformed"},
		{"permissions with a number", rs256(t, k.main, with("permissions", []any{"read", 1})), ErrMalformed, "malformed"},
		{"tampered payload", parts[0] + "." + b64(tampered) + "." + parts[2], ErrBadSignature, "bad_signature"},
		{"tampered header", b64(map[string]any{"alg": "RS256", "typ": "JWT", "x": 1}) + "." + parts[1] + "." + parts[2], ErrBadSignature, "bad_signature"},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(wrongSigBytes, ".")[2], ErrBadSignature, "bad_signature"},
		{"truncated signature", good[:len(good)-10], ErrBadSignature, "bad_signature"},
		{"truncated to two segments", parts[0] + "." + parts[1], ErrMalformed, "malformed"},
		{"truncated mid header", good[:10], ErrMalformed, "malformed"},
		{"empty signature", parts[0] + "." + parts[1] + ".", ErrBadSignature, "bad_signature"},
		{"extra segments", good + ".e30", ErrMalformed, "malformed"},
		{"five segments (JWE shape)", good + ".a.b", ErrMalformed, "malformed"},
		{"oversized", rs256(t, k.main, with("pad", strings.Repeat("x", 9000))), ErrTokenTooLarge, "too_large"},
		{"garbage base64", "!!!.@@@.###", ErrMalformed, "malformed"},
		{"header not JSON", b64("not json") + "." + parts[1] + "." + parts[2], ErrMalformed, "malformed"},
		{"payload not JSON", parts[0] + "." + b64("[1,2") + "." + parts[2], ErrMalformed, "malformed"},
		{"payload is an array", parts[0] + "." + b64("[1]") + "." + parts[2], ErrMalformed, "malformed"},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], ErrMalformed, "malformed"},
		{"Bearer prefix not stripped", "Bearer " + good, ErrMalformed, "malformed"},
		{"whitespace around", " " + good + "\n", ErrMalformed, "malformed"},
		{"wrong key", rs256(t, k.other, goodClaims()), ErrBadSignature, "bad_signature"},
		{"jku naming the attacker's key", signRaw(t, jwt.SigningMethodRS256, k.other,
			map[string]any{"alg": "RS256", "jku": "https://evil.test/jwks.json", "x5u": "https://evil.test/cert.pem"}, goodClaims()), ErrBadSignature, "bad_signature"},
		{"embedded jwk header", signRaw(t, jwt.SigningMethodRS256, k.other,
			map[string]any{"alg": "RS256", "jwk": map[string]any{"kty": "RSA", "n": b64(k.other.N.Bytes()), "e": "AQAB"}}, goodClaims()), ErrBadSignature, "bad_signature"},
		{"crit header", signRaw(t, jwt.SigningMethodRS256, k.main, map[string]any{"alg": "RS256", "crit": []string{"exp"}}, goodClaims()), ErrMalformed, "malformed"},
		{"kid not a string", signRaw(t, jwt.SigningMethodRS256, k.main, map[string]any{"alg": "RS256", "kid": 7}, goodClaims()), ErrMalformed, "malformed"},
	}
}

func TestVerifyAcceptsGoodToken(t *testing.T) {
	k := loadKeys()
	v := newTestVerifier(t, StaticKey(&k.main.PublicKey), func() time.Time { return testT0 })
	c, err := v.Verify(context.Background(), rs256(t, k.main, with("nbf", testT0.Unix())))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := Claims{
		UserID: "user-1", TenantID: "tenant-1", Permissions: []string{"read", "write"},
		Issuer: testIssuer, Audience: []string{testAudience},
		ExpiresAt: testT0.Add(time.Hour), IssuedAt: testT0, NotBefore: testT0, ID: "id-1",
	}
	if c.UserID != want.UserID || c.TenantID != want.TenantID || !slices.Equal(c.Permissions, want.Permissions) ||
		c.Issuer != want.Issuer || !slices.Equal(c.Audience, want.Audience) || !c.ExpiresAt.Equal(want.ExpiresAt) ||
		!c.IssuedAt.Equal(want.IssuedAt) || !c.NotBefore.Equal(want.NotBefore) || c.ID != want.ID {
		t.Fatalf("claims = %+v, want %+v", c, want)
	}
}

func TestVerifyOptionalClaims(t *testing.T) {
	k := loadKeys()
	now := func() time.Time { return testT0 }
	// No audience configured: aud is not required and a single-string aud is fine.
	v, err := NewVerifier(VerifierConfig{Keys: StaticKey(&k.main.PublicKey), Issuer: testIssuer, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for name, claims := range map[string]map[string]any{
		"no aud":            with("aud", nil),
		"aud string":        with("aud", "anything"),
		"no permissions":    with("permissions", nil),
		"null permissions":  with("permissions", []any(nil)),
		"empty permissions": with("permissions", []string{}),
		"no iat no jti":     with("iat", nil, "jti", nil),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(context.Background(), rs256(t, k.main, claims)); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
	// Audience configured: a single-string aud equal to it is accepted.
	v2 := newTestVerifier(t, StaticKey(&k.main.PublicKey), now)
	c, err := v2.Verify(context.Background(), rs256(t, k.main, with("aud", testAudience)))
	if err != nil || !slices.Equal(c.Audience, []string{testAudience}) {
		t.Fatalf("single-string aud: %v %v", c.Audience, err)
	}
	// One of several audiences is enough.
	if _, err := v2.Verify(context.Background(), rs256(t, k.main, with("aud", []string{"x", testAudience}))); err != nil {
		t.Fatalf("multi aud: %v", err)
	}
}

func TestVerifyRejectsAttackTokens(t *testing.T) {
	k := loadKeys()
	v := newTestVerifier(t, StaticKey(&k.main.PublicKey), func() time.Time { return testT0 })
	for _, tc := range attackTokens(t) {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tc.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", c)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if problem := checkOneSentinel(err); problem != nil {
				t.Fatal(problem)
			}
			if got := Reason(err); got != tc.reason {
				t.Fatalf("Reason = %q, want %q (err %v)", got, tc.reason, err)
			}
			if c.UserID != "" || c.TenantID != "" {
				t.Fatalf("claims returned with an error: %+v", c)
			}
		})
	}
}

func TestVerifyLeewayBoundaries(t *testing.T) {
	k := loadKeys()
	clock := newClock(testT0)
	const leeway = 30 * time.Second
	v, err := NewVerifier(VerifierConfig{Keys: StaticKey(&k.main.PublicKey), Issuer: testIssuer, Leeway: leeway, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	exp := testT0.Add(time.Hour)
	nbf := testT0.Add(10 * time.Minute)
	tok := rs256(t, k.main, with("exp", exp.Unix(), "nbf", nbf.Unix()))
	cases := []struct {
		at   time.Time
		want error
	}{
		{nbf.Add(-leeway - time.Nanosecond), ErrNotYetValid},
		{nbf.Add(-leeway), nil},
		{nbf, nil},
		{exp, nil},
		{exp.Add(leeway - time.Nanosecond), nil},
		{exp.Add(leeway), ErrExpired},
		{exp.Add(time.Hour), ErrExpired},
	}
	for _, tc := range cases {
		clock.Set(tc.at)
		_, err := v.Verify(context.Background(), tok)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("at %s: err = %v, want %v", tc.at.Format(time.RFC3339Nano), err, tc.want)
		}
	}

	// The default leeway is 30s.
	d, err := NewVerifier(VerifierConfig{Keys: StaticKey(&k.main.PublicKey), Issuer: testIssuer, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(exp.Add(DefaultLeeway - time.Second))
	if _, err := d.Verify(context.Background(), tok); err != nil {
		t.Errorf("default leeway: %v", err)
	}
	clock.Set(exp.Add(DefaultLeeway))
	if _, err := d.Verify(context.Background(), tok); !errors.Is(err, ErrExpired) {
		t.Errorf("default leeway: err = %v, want ErrExpired", err)
	}
}

func TestVerifyMaxTokenBytes(t *testing.T) {
	k := loadKeys()
	tok := rs256(t, k.main, goodClaims())
	at := func() time.Time { return testT0 }
	exact, err := NewVerifier(VerifierConfig{Keys: StaticKey(&k.main.PublicKey), Issuer: testIssuer, MaxTokenBytes: len(tok), Now: at})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exact.Verify(context.Background(), tok); err != nil {
		t.Fatalf("token of exactly MaxTokenBytes: %v", err)
	}
	smaller, err := NewVerifier(VerifierConfig{Keys: StaticKey(&k.main.PublicKey), Issuer: testIssuer, MaxTokenBytes: len(tok) - 1, Now: at})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := smaller.Verify(context.Background(), tok); !errors.Is(err, ErrTokenTooLarge) {
		t.Fatalf("one byte over: err = %v", err)
	}
	// The size check happens before the key source is asked: a huge token
	// costs no key lookup.
	calls := 0
	counting := keySourceFunc(func(context.Context, string) (*rsa.PublicKey, error) {
		calls++
		return &k.main.PublicKey, nil
	})
	big := newTestVerifier(t, counting, at)
	if _, err := big.Verify(context.Background(), strings.Repeat("a", DefaultMaxTokenBytes+1)); !errors.Is(err, ErrTokenTooLarge) || calls != 0 {
		t.Fatalf("oversized: err = %v, key lookups = %d", err, calls)
	}
}

type keySourceFunc func(ctx context.Context, kid string) (*rsa.PublicKey, error)

func (f keySourceFunc) PublicKey(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	return f(ctx, kid)
}

func TestVerifyKeySourceErrors(t *testing.T) {
	k := loadKeys()
	at := func() time.Time { return testT0 }
	tok := rs256(t, k.main, goodClaims())
	cases := []struct {
		name   string
		src    KeySource
		want   error
		reason string
	}{
		{"unknown kid", keySourceFunc(func(context.Context, string) (*rsa.PublicKey, error) {
			return nil, ErrUnknownKey
		}), ErrUnknownKey, "unknown_key"},
		{"source down", keySourceFunc(func(context.Context, string) (*rsa.PublicKey, error) {
			return nil, errors.New("connection refused")
		}), ErrKeySource, "key_source"},
		{"nil static key", StaticKey(nil), ErrKeySource, "key_source"},
		{"weak static key", StaticKey(&k.weak.PublicKey), ErrKeySource, "key_source"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newTestVerifier(t, tc.src, at).Verify(context.Background(), tok)
			if !errors.Is(err, tc.want) || Reason(err) != tc.reason {
				t.Fatalf("err = %v (reason %q), want %v (%q)", err, Reason(err), tc.want, tc.reason)
			}
			if p := checkOneSentinel(err); p != nil {
				t.Fatal(p)
			}
		})
	}
	// The kid header reaches the key source; no kid means "".
	var got []string
	rec := keySourceFunc(func(_ context.Context, kid string) (*rsa.PublicKey, error) {
		got = append(got, kid)
		return &k.main.PublicKey, nil
	})
	v := newTestVerifier(t, rec, at)
	withKid := signRaw(t, jwt.SigningMethodRS256, k.main, map[string]any{"alg": "RS256", "kid": "k-7"}, goodClaims())
	for _, tok := range []string{tok, withKid} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, []string{"", "k-7"}) {
		t.Fatalf("kids seen by the key source = %q", got)
	}
}

func TestNewVerifierConfig(t *testing.T) {
	k := loadKeys()
	src := StaticKey(&k.main.PublicKey)
	for name, cfg := range map[string]VerifierConfig{
		"no keys":         {Issuer: testIssuer},
		"no issuer":       {Keys: src},
		"negative leeway": {Keys: src, Issuer: testIssuer, Leeway: -time.Second},
		"negative size":   {Keys: src, Issuer: testIssuer, MaxTokenBytes: -1},
	} {
		if _, err := NewVerifier(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestVerifyConcurrent(t *testing.T) {
	k := loadKeys()
	v := newTestVerifier(t, StaticKey(&k.main.PublicKey), func() time.Time { return testT0 })
	good := rs256(t, k.main, goodClaims())
	bad := rs256(t, k.other, goodClaims())
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			for range 4 {
				if _, err := v.Verify(context.Background(), good); err != nil {
					errs <- err
				}
				if _, err := v.Verify(context.Background(), bad); !errors.Is(err, ErrBadSignature) {
					errs <- errors.New("bad token: " + itoa(i))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestReasonLabels(t *testing.T) {
	if Reason(nil) != "" || Reason(errors.New("x")) != "other" || Reason(ErrKeySource) != "key_source" {
		t.Fatalf("Reason: %q %q %q", Reason(nil), Reason(errors.New("x")), Reason(ErrKeySource))
	}
}

func BenchmarkVerify(b *testing.B) {
	k := loadKeys()
	v := newTestVerifier(b, StaticKey(&k.main.PublicKey), func() time.Time { return testT0 })
	tok := rs256(b, k.main, goodClaims())
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(tok)))
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyRejectAlgNone(b *testing.B) {
	k := loadKeys()
	v := newTestVerifier(b, StaticKey(&k.main.PublicKey), func() time.Time { return testT0 })
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(goodClaims())).SignedString(jwt.UnsafeAllowNoneSignatureType)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrAlgorithm) {
			b.Fatal(err)
		}
	}
}

// TestVerifyRejectsSignatureMalleability: the last base64url character of
// a 256-byte signature carries 2 significant bits and 4 padding bits.
// Lenient decoding would accept a second spelling of the same signature;
// strict decoding must refuse it.
func TestVerifyRejectsSignatureMalleability(t *testing.T) {
	k := loadKeys()
	v := newTestVerifier(t, StaticKey(&k.main.PublicKey), func() time.Time { return testT0 })
	good := rs256(t, k.main, goodClaims())
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, good[len(good)-1])
	alt := good[:len(good)-1] + string(alphabet[last^1]) // flips a padding bit only
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), alt); !errors.Is(err, ErrMalformed) {
		t.Fatalf("same signature, other spelling: err = %v, want ErrMalformed", err)
	}
}
