package cmd

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"

	"github.com/pay-theory/streamer/pkg/auth"
)

// RealAuth adapts pkg/auth to AuthKit.
func RealAuth() AuthKit { return realAuth{} }

type realAuth struct{}

func (realAuth) Mint(key *rsa.PrivateKey, s MintSpec) (string, error) {
	return auth.Mint(key, auth.MintOptions{
		UserID: s.UserID, TenantID: s.TenantID, Permissions: s.Permissions, Issuer: s.Issuer,
		Audience: s.Audience, TTL: s.TTL, Expired: s.Expired, Now: s.Now,
	})
}

func (realAuth) Verify(ctx context.Context, pub *rsa.PublicKey, issuer, audience, token string) (auth.Claims, error) {
	v, err := auth.NewVerifier(auth.VerifierConfig{Keys: auth.StaticKey(pub), Issuer: issuer, Audience: audience})
	if err != nil {
		return auth.Claims{}, err
	}
	return v.Verify(ctx, token)
}

func (realAuth) GenerateKey() (*rsa.PrivateKey, error) { return auth.GenerateKeyPair(0) }

func (realAuth) WriteKeyPair(dir string, force bool) (string, string, error) {
	priv, pub, err := auth.WriteKeyPair(dir, force)
	if errors.Is(err, auth.ErrKeyExists) {
		err = fmt.Errorf("%w: %w", ErrKeyExists, err)
	}
	return priv, pub, err
}

func (realAuth) LoadPrivateKey(path string) (*rsa.PrivateKey, error) {
	return auth.LoadPrivateKeyFile(path)
}

func (realAuth) LoadPublicKey(path string) (*rsa.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := auth.ParsePublicKeyPEM(data)
	if err != nil {
		// A private key file works too: its public half verifies.
		if pk, perr := auth.ParsePrivateKeyPEM(data); perr == nil {
			return &pk.PublicKey, nil
		}
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}
