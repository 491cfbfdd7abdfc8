package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultTokenTTL is the lifetime Mint gives a token when MintOptions.TTL is 0.
const DefaultTokenTTL = time.Hour

// MintOptions are the claims and lifetime of a token made by Mint.
//
// Mint is a tool for the CLI, local development and tests, so it is
// deliberately permissive: empty UserID / TenantID / Issuer simply omit
// sub / tenant_id / iss (Verify will then reject the token), which is how
// tests build tokens with missing claims.
type MintOptions struct {
	UserID      string   // sub (omitted when empty)
	TenantID    string   // tenant_id (omitted when empty)
	Permissions []string // permissions (omitted when nil)
	Issuer      string   // iss (omitted when empty)
	Audience    []string // aud (omitted when empty)
	// TTL is the lifetime: exp = now + TTL. 0 means DefaultTokenTTL.
	TTL time.Duration
	// Expired makes a token whose exp is already one minute in the past
	// (iat = exp - TTL), for testing rejection paths.
	Expired bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// KeyID, when set, becomes the "kid" header so a JWKS verifier can
	// select the key.
	KeyID string
	// Extra claims are applied last and override the ones above (for
	// example "nbf", or a wrongly typed "permissions" in a test). A nil
	// value removes the claim.
	Extra map[string]any
}

// Mint signs a token with RS256. It sets iat, exp and a random jti; nbf is
// only present when Extra sets it.
func Mint(key *rsa.PrivateKey, opts MintOptions) (string, error) {
	if key == nil {
		return "", fmt.Errorf("%w: nil signing key", ErrBadKey)
	}
	if err := checkBits(&key.PublicKey); err != nil {
		return "", err
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 {
		return "", fmt.Errorf("%w: negative TTL %s (use Expired for an expired token)", ErrInvalidConfig, ttl)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	t := now()
	iat, exp := t, t.Add(ttl)
	if opts.Expired {
		exp = t.Add(-time.Minute)
		iat = exp.Add(-ttl)
	}

	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("auth: generating token id: %w", err)
	}
	claims := jwt.MapClaims{
		"iat": jwt.NewNumericDate(iat),
		"exp": jwt.NewNumericDate(exp),
		"jti": hex.EncodeToString(jti[:]),
	}
	setIf := func(name, v string) {
		if v != "" {
			claims[name] = v
		}
	}
	setIf("sub", opts.UserID)
	setIf("tenant_id", opts.TenantID)
	setIf("iss", opts.Issuer)
	if opts.Permissions != nil {
		claims["permissions"] = opts.Permissions
	}
	if len(opts.Audience) > 0 {
		claims["aud"] = opts.Audience
	}
	for k, v := range opts.Extra {
		if v == nil {
			delete(claims, k)
			continue
		}
		claims[k] = v
	}

	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	if opts.KeyID != "" {
		tok.Header["kid"] = opts.KeyID
	}
	s, err := tok.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("auth: signing token: %w", err)
	}
	return s, nil
}
