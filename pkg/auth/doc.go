// Package auth verifies and mints the RS256 JWTs clients present on $connect.
//
// # What Verify checks, in order
//
//  1. Presence and size. An empty token is ErrMissingToken. A token longer
//     than MaxTokenBytes (8 KiB by default) is ErrTokenTooLarge before any
//     base64 or JSON work, so an attacker cannot make us decode megabytes.
//  2. Shape. Exactly three base64url segments (strict: no padding, no
//     non-zero trailing bits, so one signature has exactly one spelling),
//     JSON header and payload; otherwise ErrMalformed. Verify takes the bare
//     token: callers strip a "Bearer " prefix themselves.
//  3. Algorithm. Only RS256 is accepted (ErrAlgorithm otherwise). Pinning
//     the algorithm on the server, instead of trusting the token's "alg",
//     defeats the classic attacks: "alg":"none", and HS256 signed with the
//     RSA public key as the HMAC secret (the public key is public, so anyone
//     could forge such a token if the verifier let the token pick HMAC).
//     RS384/RS512/PS256/ES256 are refused too: one algorithm, one code path.
//  4. Key. The key is chosen by the header's "kid" from a KeySource the
//     server configured (StaticKey, SecretsManagerKey, NewJWKS). The jku,
//     x5u, x5c and jwk headers are never used: a token that names its own
//     key can be signed with the attacker's key. Keys under 2048 bits are
//     refused when loaded (ErrWeakKey). A kid with no key is ErrUnknownKey;
//     a key source that cannot deliver (network, IAM, bad secret) is
//     ErrKeySource, which is the server's problem, not the client's.
//  5. Signature (ErrBadSignature).
//  6. Claims, only after the signature holds: exp is required
//     (ErrMissingClaim when absent, ErrExpired when past), nbf is honoured
//     when present (ErrNotYetValid), both with Leeway (30s default) for
//     clock skew; iss must equal the configured issuer (ErrWrongIssuer);
//     aud must contain the configured audience when one is configured
//     (ErrWrongAudience); sub and tenant_id must be non-empty strings
//     (ErrMissingClaim); permissions, when present, must be an array of
//     strings, and any registered claim of the wrong JSON type is
//     ErrMalformed.
//
// Every error Verify returns matches exactly one of those sentinels with
// errors.Is; Reason turns it into a metric label. The wrapped text carries
// golang-jwt's detail for logs and must never be sent to a client.
//
// Mint, GenerateKeyPair and the PEM and file helpers exist for the CLI
// (`streamer token`, `streamer local`) and for tests. Key files are read
// through ReadKeyFile: regular files (or symlinks to them) of at most
// MaxKeyFileBytes, so a wrong path such as /dev/zero or a FIFO fails at
// once (ErrNotRegularFile, ErrKeyFileTooLarge). KeyPermissionWarnings gives
// ssh-style warnings about a key that others can read or replace.
package auth
