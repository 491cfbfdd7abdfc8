package auth

import (
	"context"
	"testing"
	"time"
)

// FuzzVerify: whatever the input, Verify must not panic, and it returns
// either valid claims or an error matching exactly one of our sentinels
// (none of golang-jwt's).
//
//	go test -run '^$' -fuzz '^FuzzVerify$' -fuzztime 20s ./pkg/auth
func FuzzVerify(f *testing.F) {
	k := loadKeys()
	f.Add(rs256(f, k.main, goodClaims()))
	for _, tc := range attackTokens(f) {
		f.Add(tc.token)
	}
	v := newTestVerifier(f, StaticKey(&k.main.PublicKey), func() time.Time { return testT0 })
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(context.Background(), token)
		if err != nil {
			if problem := checkOneSentinel(err); problem != nil {
				t.Fatal(problem)
			}
			if Reason(err) == "other" || Reason(err) == "" {
				t.Fatalf("Reason(%v) = %q", err, Reason(err))
			}
			return
		}
		if c.UserID == "" || c.TenantID == "" || c.Issuer != testIssuer || c.ExpiresAt.IsZero() {
			t.Fatalf("accepted a token with incomplete claims: %+v", c)
		}
	})
}

// FuzzVerifyMutation: a valid token with any single byte changed never
// verifies (strict base64 leaves no slack in the signature's last
// character).
//
//	go test -run '^$' -fuzz '^FuzzVerifyMutation$' -fuzztime 20s ./pkg/auth
func FuzzVerifyMutation(f *testing.F) {
	k := loadKeys()
	good := rs256(f, k.main, goodClaims())
	v := newTestVerifier(f, StaticKey(&k.main.PublicKey), func() time.Time { return testT0 })
	if _, err := v.Verify(context.Background(), good); err != nil {
		f.Fatalf("the unmutated token must verify: %v", err)
	}
	for _, pos := range []uint{0, 1, 10, uint(len(good) / 2), uint(len(good) - 2), uint(len(good) - 1)} {
		for _, b := range []byte{'A', 'B', 'a', '.', '_', '-', '0', 0} {
			f.Add(pos, b)
		}
	}
	f.Fuzz(func(t *testing.T, pos uint, b byte) {
		i := int(pos % uint(len(good)))
		if good[i] == b {
			return
		}
		mutated := []byte(good)
		mutated[i] = b
		if c, err := v.Verify(context.Background(), string(mutated)); err == nil {
			t.Fatalf("byte %d changed %q -> %q and the token still verified: %+v", i, good[i], b, c)
		} else if problem := checkOneSentinel(err); problem != nil {
			t.Fatal(problem)
		}
	})
}
