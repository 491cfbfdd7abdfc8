package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier defaults.
const (
	DefaultLeeway        = 30 * time.Second
	DefaultMaxTokenBytes = 8192
	// algRS256 is the only algorithm accepted.
	algRS256 = "RS256"
)

// VerifierConfig configures NewVerifier.
type VerifierConfig struct {
	// Keys supplies the verification key (required).
	Keys KeySource
	// Issuer must equal the token's iss (required).
	Issuer string
	// Audience, when set, must be one of the token's aud values.
	Audience string
	// Leeway tolerates clock skew on exp and nbf; 0 means 30s.
	Leeway time.Duration
	// MaxTokenBytes rejects longer tokens before any parsing; 0 means 8192.
	MaxTokenBytes int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier checks connection tokens. It is safe for concurrent use.
type Verifier struct {
	keys     KeySource
	maxBytes int
	parser   *jwt.Parser
}

// NewVerifier validates cfg and returns a Verifier. Errors match
// ErrInvalidConfig.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Keys == nil {
		return nil, fmt.Errorf("%w: VerifierConfig.Keys is required (StaticKey, SecretsManagerKey or NewJWKS)", ErrInvalidConfig)
	}
	if cfg.Issuer == "" {
		return nil, fmt.Errorf("%w: VerifierConfig.Issuer is required (the iss your tokens carry, e.g. JWT_ISSUER)", ErrInvalidConfig)
	}
	if cfg.Leeway < 0 || cfg.MaxTokenBytes < 0 {
		return nil, fmt.Errorf("%w: negative Leeway (%s) or MaxTokenBytes (%d)", ErrInvalidConfig, cfg.Leeway, cfg.MaxTokenBytes)
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	maxBytes := cfg.MaxTokenBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxTokenBytes
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{algRS256}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		// Strict base64 rejects non-zero padding bits, so a signature has
		// exactly one textual form (no malleable "same token, other string").
		jwt.WithStrictDecoding(),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &Verifier{keys: cfg.Keys, maxBytes: maxBytes, parser: jwt.NewParser(opts...)}, nil
}

// errKidType marks a "kid" header that is not a string.
var errKidType = errors.New("kid header is not a string")

// errCrit marks a token with a "crit" header: RFC 7515 §4.1.11 requires
// rejecting extensions we do not understand, and we understand none.
var errCrit = errors.New("crit header present; no critical extensions are supported")

// errAlg marks an algorithm refused by the key function (defence in depth
// behind WithValidMethods).
var errAlg = errors.New("algorithm is not RS256")

// Verify checks token (the bare compact JWS: callers strip any "Bearer "
// prefix) and returns its claims. Every error matches exactly one of
// ErrMissingToken, ErrTokenTooLarge, ErrMalformed, ErrAlgorithm,
// ErrBadSignature, ErrExpired, ErrNotYetValid, ErrWrongIssuer,
// ErrWrongAudience, ErrMissingClaim, ErrUnknownKey or ErrKeySource (the
// last is a server-side failure to obtain keys, not the client's fault).
// Error text is for logs; never send it to clients.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if token == "" {
		return Claims{}, ErrMissingToken
	}
	if len(token) > v.maxBytes {
		return Claims{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTokenTooLarge, len(token), v.maxBytes)
	}
	var keyErr error
	tok, err := v.parser.Parse(token, func(t *jwt.Token) (any, error) {
		if t.Method == nil || t.Method.Alg() != algRS256 {
			keyErr = errAlg
			return nil, keyErr
		}
		if _, ok := t.Header["crit"]; ok {
			keyErr = errCrit
			return nil, keyErr
		}
		// Only "kid" selects the key. jku, x5u, x5c and jwk are ignored on
		// purpose: a key named by the token itself proves nothing.
		var kid string
		if raw, ok := t.Header["kid"]; ok {
			if kid, ok = raw.(string); !ok {
				keyErr = errKidType
				return nil, keyErr
			}
		}
		k, err := v.keys.PublicKey(ctx, kid)
		if err != nil {
			keyErr = err
			return nil, err
		}
		return k, nil
	})
	if err != nil {
		return Claims{}, classify(tok, err, keyErr)
	}
	mc, ok := tok.Claims.(jwt.MapClaims)
	if !ok {
		return Claims{}, fmt.Errorf("%w: unexpected claims type %T", ErrMalformed, tok.Claims)
	}
	return extract(mc)
}

// classify maps a golang-jwt error to exactly one of our sentinels. Only our
// sentinel is wrapped (%w); the library's text is kept as detail (%v) so
// errors.Is never matches two of ours or any of theirs.
func classify(tok *jwt.Token, err, keyErr error) error {
	wrap := func(sentinel error) error { return fmt.Errorf("%w: %v", sentinel, err) }

	// An algorithm other than RS256 wins over everything else we could say:
	// once the header names it, nothing else about the token matters.
	if tok != nil && tok.Header != nil {
		if alg, _ := tok.Header["alg"].(string); alg != algRS256 {
			return wrap(ErrAlgorithm)
		}
	}
	if keyErr != nil {
		switch {
		case errors.Is(keyErr, errAlg):
			return wrap(ErrAlgorithm)
		case errors.Is(keyErr, errKidType), errors.Is(keyErr, errCrit):
			return wrap(ErrMalformed)
		case errors.Is(keyErr, ErrUnknownKey):
			return fmt.Errorf("%w: %v", ErrUnknownKey, keyErr)
		default:
			return fmt.Errorf("%w: %v", ErrKeySource, keyErr)
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return wrap(ErrMalformed)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// Raised before the key function only for an unknown or missing alg.
		return wrap(ErrAlgorithm)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return wrap(ErrBadSignature)
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		// The signature is good; say which claim is wrong, in a fixed order
		// so a token with several problems always gets the same answer.
		mc, _ := tok.Claims.(jwt.MapClaims)
		if _, xerr := extract(mc); errors.Is(xerr, ErrMalformed) {
			return xerr
		}
		if errors.Is(err, jwt.ErrInvalidType) {
			return wrap(ErrMalformed)
		}
		missing := errors.Is(err, jwt.ErrTokenRequiredClaimMissing)
		if exp, _ := mc.GetExpirationTime(); missing && exp == nil {
			return fmt.Errorf("%w: exp: %v", ErrMissingClaim, err)
		}
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return wrap(ErrExpired)
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			return wrap(ErrNotYetValid)
		}
		if iss, _ := mc.GetIssuer(); errors.Is(err, jwt.ErrTokenInvalidIssuer) || (missing && iss == "") {
			return wrap(ErrWrongIssuer)
		}
		if aud, _ := mc.GetAudience(); errors.Is(err, jwt.ErrTokenInvalidAudience) || (missing && len(aud) == 0) || (missing && len(aud) == 1 && aud[0] == "") {
			return wrap(ErrWrongAudience)
		}
		return wrap(ErrMalformed)
	default:
		return wrap(ErrMalformed)
	}
}

// extract builds Claims from verified map claims, enforcing types (a wrong
// type is ErrMalformed) and the required non-empty sub and tenant_id
// (ErrMissingClaim).
func extract(mc jwt.MapClaims) (Claims, error) {
	var c Claims
	str := func(name string, required bool) (string, error) {
		raw, ok := mc[name]
		if !ok || raw == nil {
			if required {
				return "", fmt.Errorf("%w: %s", ErrMissingClaim, name)
			}
			return "", nil
		}
		s, ok := raw.(string)
		if !ok {
			return "", fmt.Errorf("%w: claim %s is %T, want a string", ErrMalformed, name, raw)
		}
		if s == "" && required {
			return "", fmt.Errorf("%w: %s is empty", ErrMissingClaim, name)
		}
		return s, nil
	}
	date := func(name string, get func() (*jwt.NumericDate, error)) (time.Time, error) {
		d, err := get()
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: claim %s: %v", ErrMalformed, name, err)
		}
		if d == nil {
			return time.Time{}, nil
		}
		return d.Time, nil
	}
	var err error
	// Type errors first, so a token is called malformed before it is
	// called incomplete.
	if c.Issuer, err = str("iss", false); err != nil {
		return Claims{}, err
	}
	if c.ID, err = str("jti", false); err != nil {
		return Claims{}, err
	}
	if c.ExpiresAt, err = date("exp", mc.GetExpirationTime); err != nil {
		return Claims{}, err
	}
	if c.IssuedAt, err = date("iat", mc.GetIssuedAt); err != nil {
		return Claims{}, err
	}
	if c.NotBefore, err = date("nbf", mc.GetNotBefore); err != nil {
		return Claims{}, err
	}
	if c.Audience, err = stringList(mc, "aud", true); err != nil {
		return Claims{}, err
	}
	if c.Permissions, err = stringList(mc, "permissions", false); err != nil {
		return Claims{}, err
	}
	for _, name := range []string{"sub", "tenant_id"} {
		if raw, ok := mc[name]; ok && raw != nil {
			if _, isStr := raw.(string); !isStr {
				return Claims{}, fmt.Errorf("%w: claim %s is %T, want a string", ErrMalformed, name, raw)
			}
		}
	}
	if c.UserID, err = str("sub", true); err != nil {
		return Claims{}, err
	}
	if c.TenantID, err = str("tenant_id", true); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// stringList reads an array-of-strings claim (or, when single is true, a
// lone string as RFC 7519 allows for aud). Absent or null gives nil.
func stringList(mc jwt.MapClaims, name string, single bool) ([]string, error) {
	raw, ok := mc[name]
	if !ok || raw == nil {
		return nil, nil
	}
	switch v := raw.(type) {
	case string:
		if single {
			return []string{v}, nil
		}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%w: claim %s holds a %T, want strings only", ErrMalformed, name, e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: claim %s is %T, want an array of strings", ErrMalformed, name, raw)
}
