package auth_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pay-theory/streamer/pkg/auth"
)

func ExampleVerifier_Verify() {
	key, err := auth.GenerateKeyPair(0)
	if err != nil {
		panic(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{
		Keys:   auth.StaticKey(&key.PublicKey),
		Issuer: "https://auth.example.com",
	})
	if err != nil {
		panic(err)
	}
	token, _ := auth.Mint(key, auth.MintOptions{UserID: "u-1", TenantID: "t-1", Issuer: "https://auth.example.com", TTL: time.Hour})
	claims, err := v.Verify(context.Background(), token)
	fmt.Println(claims.UserID, claims.TenantID, err)

	expired, _ := auth.Mint(key, auth.MintOptions{UserID: "u-1", TenantID: "t-1", Issuer: "https://auth.example.com", Expired: true})
	_, err = v.Verify(context.Background(), expired)
	fmt.Println(errors.Is(err, auth.ErrExpired), auth.Reason(err))
	// Output:
	// u-1 t-1 <nil>
	// true expired
}
