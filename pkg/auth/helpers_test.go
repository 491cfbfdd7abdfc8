package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testIssuer   = "https://issuer.test"
	testAudience = "streamer"
)

// testT0 is the fake "now" of most tests: whole seconds, because JWT dates are.
var testT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// keys are generated once per test binary: RSA generation is slow under -race.
type testKeys struct {
	main, other, third *rsa.PrivateKey
	weak               *rsa.PrivateKey // 1024 bits
	ec                 *ecdsa.PrivateKey
}

var loadKeys = sync.OnceValue(func() testKeys {
	gen := func(bits int) *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		return k
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return testKeys{main: gen(2048), other: gen(2048), third: gen(2048), weak: gen(1024), ec: ec}
})

// fakeClock is a settable clock safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// goodClaims are claims that verify against newTestVerifier at testT0.
func goodClaims() map[string]any {
	return map[string]any{
		"sub":         "user-1",
		"tenant_id":   "tenant-1",
		"permissions": []string{"read", "write"},
		"iss":         testIssuer,
		"aud":         []string{testAudience},
		"iat":         testT0.Unix(),
		"exp":         testT0.Add(time.Hour).Unix(),
		"jti":         "id-1",
	}
}

// with returns goodClaims changed by kv pairs; a nil value deletes.
func with(kv ...any) map[string]any {
	c := goodClaims()
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func b64(v any) string {
	var raw []byte
	switch x := v.(type) {
	case string:
		raw = []byte(x)
	case []byte:
		raw = x
	default:
		var err error
		if raw, err = json.Marshal(v); err != nil {
			panic(err)
		}
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// signRaw builds a compact JWS with exactly the given header and claims,
// signed with method and key, so tests control every byte.
func signRaw(t testing.TB, method jwt.SigningMethod, key any, header, claims map[string]any) string {
	t.Helper()
	signing := b64(header) + "." + b64(claims)
	sig, err := method.Sign(signing, key)
	if err != nil {
		t.Fatalf("signing with %s: %v", method.Alg(), err)
	}
	return signing + "." + b64(sig)
}

func rs256(t testing.TB, key *rsa.PrivateKey, claims map[string]any) string {
	return signRaw(t, jwt.SigningMethodRS256, key, map[string]any{"alg": "RS256", "typ": "JWT"}, claims)
}

func newTestVerifier(t testing.TB, keys KeySource, clock func() time.Time) *Verifier {
	t.Helper()
	v, err := NewVerifier(VerifierConfig{Keys: keys, Issuer: testIssuer, Audience: testAudience, Now: clock})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// verifySentinels lists every error Verify may return.
var verifySentinels = []error{
	ErrMissingToken, ErrTokenTooLarge, ErrMalformed, ErrAlgorithm, ErrBadSignature,
	ErrExpired, ErrNotYetValid, ErrWrongIssuer, ErrWrongAudience, ErrMissingClaim,
	ErrUnknownKey, ErrKeySource,
}

// foreignSentinels must never leak through our errors.
var foreignSentinels = []error{
	jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable, jwt.ErrTokenSignatureInvalid,
	jwt.ErrTokenInvalidClaims, jwt.ErrTokenExpired, jwt.ErrTokenNotValidYet,
	jwt.ErrTokenInvalidIssuer, jwt.ErrTokenInvalidAudience, jwt.ErrTokenRequiredClaimMissing,
	jwt.ErrInvalidType, jwt.ErrInvalidKey, jwt.ErrInvalidKeyType,
	ErrWeakKey, ErrBadKey,
}

// checkOneSentinel reports a problem unless err matches exactly one of our
// verification sentinels and none of golang-jwt's.
func checkOneSentinel(err error) error {
	var got []error
	for _, s := range verifySentinels {
		if errors.Is(err, s) {
			got = append(got, s)
		}
	}
	if len(got) != 1 {
		return errors.New("matches " + itoa(len(got)) + " sentinels: " + err.Error())
	}
	for _, s := range foreignSentinels {
		if errors.Is(err, s) {
			return errors.New("leaks foreign sentinel " + s.Error() + ": " + err.Error())
		}
	}
	return nil
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
