package cmd

import (
	"context"
	"crypto/rsa"
	"fmt"

	"github.com/pay-theory/streamer/pkg/auth"
)

// RealAuth adapts pkg/auth to AuthKit.
func RealAuth() AuthKit { return pendingAuth{} }

// pendingAuth stands in until pkg/auth's key and mint functions land.
type pendingAuth struct{}

func (pendingAuth) err() error {
	return fmt.Errorf("token support: %w yet (pkg/auth has not landed)", ErrNotWired)
}
func (p pendingAuth) Mint(*rsa.PrivateKey, MintSpec) (string, error) { return "", p.err() }
func (p pendingAuth) Verify(context.Context, *rsa.PublicKey, string, string, string) (auth.Claims, error) {
	return auth.Claims{}, p.err()
}
func (p pendingAuth) GenerateKey() (*rsa.PrivateKey, error)             { return nil, p.err() }
func (p pendingAuth) WriteKeyPair(string, bool) (string, string, error) { return "", "", p.err() }
func (p pendingAuth) LoadPrivateKey(string) (*rsa.PrivateKey, error)    { return nil, p.err() }
func (p pendingAuth) LoadPublicKey(string) (*rsa.PublicKey, error)      { return nil, p.err() }
