package auth

import (
	"context"
	"crypto/rsa"
	"fmt"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// KeySource gives the RSA public key that verifies a token, selected by the
// token header's "kid" (empty when the token has none). Errors match
// ErrUnknownKey (no key for that kid) or ErrKeySource (the keys could not be
// obtained: network, permissions, unparsable or weak key material).
// Implementations must be safe for concurrent use.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (*rsa.PublicKey, error)
}

type staticKey struct {
	key *rsa.PublicKey
	err error
}

// StaticKey is a KeySource with one key, used whatever the token's kid. A nil
// or weak key is reported by every PublicKey call as ErrKeySource (wrapping
// ErrBadKey / ErrWeakKey), so misconfiguration shows up at the first verify
// rather than as a panic.
func StaticKey(k *rsa.PublicKey) KeySource {
	s := staticKey{key: k}
	if k == nil {
		s.err = fmt.Errorf("%w: %w: no public key configured", ErrKeySource, ErrBadKey)
	} else if err := checkBits(k); err != nil {
		s.err = fmt.Errorf("%w: static key: %w", ErrKeySource, err)
	}
	return s
}

func (s staticKey) PublicKey(context.Context, string) (*rsa.PublicKey, error) {
	if s.err != nil {
		return nil, s.err
	}
	return s.key, nil
}

// SecretGetter is the part of the Secrets Manager API this package uses;
// *secretsmanager.Client satisfies it.
type SecretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

type secretsManagerKey struct {
	client SecretGetter
	arn    string
	key    atomic.Pointer[rsa.PublicKey]
	// sem serialises fetches (so a burst of cold-start connects makes one
	// call) while letting waiters give up when their ctx ends.
	sem chan struct{}
}

// SecretsManagerKey is a KeySource reading a PEM public key (PKIX or PKCS#1,
// in SecretString or SecretBinary) from the secret secretARN. The key is
// fetched on first use and cached for the life of the process (one Lambda
// cold start); a failed fetch is not cached, so the next call retries.
// The token's kid is ignored. Errors match ErrKeySource and name the ARN.
func SecretsManagerKey(client SecretGetter, secretARN string) KeySource {
	return &secretsManagerKey{client: client, arn: secretARN, sem: make(chan struct{}, 1)}
}

func (s *secretsManagerKey) PublicKey(ctx context.Context, _ string) (*rsa.PublicKey, error) {
	if k := s.key.Load(); k != nil {
		return k, nil
	}
	if s.client == nil || s.arn == "" {
		return nil, fmt.Errorf("%w: Secrets Manager source needs a client and a secret ARN (got ARN %q)", ErrKeySource, s.arn)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for secret %s: %w", ErrKeySource, s.arn, ctx.Err())
	}
	defer func() { <-s.sem }()
	if k := s.key.Load(); k != nil { // another caller fetched it while we waited
		return k, nil
	}
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &s.arn})
	if err != nil {
		return nil, fmt.Errorf("%w: reading secret %s (check the ARN and the function's secretsmanager:GetSecretValue permission): %w", ErrKeySource, s.arn, err)
	}
	var material []byte
	switch {
	case out.SecretString != nil:
		material = []byte(*out.SecretString)
	case out.SecretBinary != nil:
		material = out.SecretBinary
	default:
		return nil, fmt.Errorf("%w: secret %s has no value", ErrKeySource, s.arn)
	}
	k, err := ParsePublicKeyPEM(material)
	if err != nil {
		return nil, fmt.Errorf("%w: secret %s must hold an RSA public key PEM: %w", ErrKeySource, s.arn, err)
	}
	s.key.Store(k)
	return k, nil
}
