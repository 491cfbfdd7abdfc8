package auth

import "errors"

// Verification errors. Every error Verify returns matches exactly one of
// these with errors.Is, so callers (and metrics) can tell them apart without
// ever showing the text to a client.
var (
	ErrMissingToken  = errors.New("auth: token missing")
	ErrTokenTooLarge = errors.New("auth: token too large")
	ErrMalformed     = errors.New("auth: token malformed")
	ErrAlgorithm     = errors.New("auth: signing algorithm not allowed")
	ErrBadSignature  = errors.New("auth: signature invalid")
	ErrExpired       = errors.New("auth: token expired")
	ErrNotYetValid   = errors.New("auth: token not valid yet")
	ErrWrongIssuer   = errors.New("auth: wrong issuer")
	ErrWrongAudience = errors.New("auth: wrong audience")
	ErrMissingClaim  = errors.New("auth: required claim missing")
	ErrUnknownKey    = errors.New("auth: no key for token")
)

// Key loading errors.
var (
	ErrWeakKey   = errors.New("auth: RSA key shorter than 2048 bits")
	ErrBadKey    = errors.New("auth: key cannot be parsed")
	ErrKeySource = errors.New("auth: key source unavailable")
)

// File and configuration errors.
var (
	// ErrKeyExists is returned by WriteKeyPair when a key file is already
	// present and force is false: overwriting a signing key silently would
	// invalidate every token minted with it.
	ErrKeyExists = errors.New("auth: key file already exists")
	// ErrInvalidConfig is returned by constructors (NewVerifier, NewJWKS)
	// for a configuration that can never work.
	ErrInvalidConfig = errors.New("auth: invalid configuration")
	// ErrNotRegularFile is returned by ReadKeyFile (and the loaders using
	// it) for a path that is a directory, a device, a FIFO or a socket:
	// reading /dev/zero would never end, and a FIFO would block.
	ErrNotRegularFile = errors.New("auth: not a regular file")
	// ErrKeyFileTooLarge is returned by ReadKeyFile for a file over
	// MaxKeyFileBytes: whatever it is, it is not a PEM key.
	ErrKeyFileTooLarge = errors.New("auth: key file too large")
)

// Reason returns a short, stable, low-cardinality label for a verification
// error, suitable for a metric dimension or a log field ("expired",
// "bad_signature", ...). Unknown errors map to "other".
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrMissingToken):
		return "missing"
	case errors.Is(err, ErrTokenTooLarge):
		return "too_large"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrAlgorithm):
		return "algorithm"
	case errors.Is(err, ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, ErrExpired):
		return "expired"
	case errors.Is(err, ErrNotYetValid):
		return "not_yet_valid"
	case errors.Is(err, ErrWrongIssuer):
		return "wrong_issuer"
	case errors.Is(err, ErrWrongAudience):
		return "wrong_audience"
	case errors.Is(err, ErrMissingClaim):
		return "missing_claim"
	case errors.Is(err, ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, ErrKeySource):
		// Not the client's fault: the key could not be fetched or parsed.
		return "key_source"
	default:
		return "other"
	}
}
