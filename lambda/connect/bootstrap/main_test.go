package main

import (
	"context"
	"crypto/rsa"
	"net/http/httptest"
	"testing"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/boot/boottest"
	"github.com/pay-theory/streamer/lambda/shared/lambdatest"
	"github.com/pay-theory/streamer/pkg/auth"
)

const issuer = "https://auth.example.com"

// TestDynamoDBCallsMatchContract runs this entry point's real cold start and
// build through every $connect path against a recording DynamoDB-API
// endpoint: together the paths call exactly the operations the deployed role
// grants (contract.DynamoDBActions).
func TestDynamoDBCallsMatchContract(t *testing.T) {
	db := boottest.StartDynamoDB(t)
	key, err := auth.GenerateKeyPair(0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := auth.GenerateKeyPair(0)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := auth.EncodePublicKeyPEM(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	vars := func(table string) map[string]string {
		return map[string]string{
			contract.EnvConnectionsTable: table,
			contract.EnvJWTPublicKey:     string(pub),
			contract.EnvJWTIssuer:        issuer,
			contract.EnvEnvironment:      "test",
		}
	}
	mint := func(signer *rsa.PrivateKey, o auth.MintOptions) string {
		t.Helper()
		o.Issuer, o.UserID, o.TenantID = issuer, "user-1", "tenant-1"
		tok, err := auth.Mint(signer, o)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	h := db.Wire(t, contract.FunctionConnect, vars(db.Table), nil, build)
	storeFails := db.Wire(t, contract.FunctionConnect, vars("no-such-table"), nil, build)
	// A JWKS endpoint that is down: the keys cannot be had (500, no store call).
	down := httptest.NewServer(nil)
	down.Close()
	jwks := vars(db.Table)
	delete(jwks, contract.EnvJWTPublicKey)
	jwks[contract.EnvJWTJWKSURL] = down.URL + "/.well-known/jwks.json"
	keysDown := db.Wire(t, contract.FunctionConnect, jwks, nil, build)

	for _, c := range []struct {
		name      string
		h         boottest.Handler
		token, id string
		status    int
	}{
		{"valid token", h, mint(key, auth.MintOptions{}), "R1kmxc2VNjMCFIA=", 200},
		{"expired token", h, mint(key, auth.MintOptions{Expired: true}), "R1kmxc2VNjMCFIB=", 401},
		{"bad signature", h, mint(other, auth.MintOptions{}), "R1kmxc2VNjMCFIC=", 401},
		{"no token", h, "", "R1kmxc2VNjMCFID=", 401},
		{"store fails", storeFails, mint(key, auth.MintOptions{}), "R1kmxc2VNjMCFIE=", 500},
		{"keys unavailable", keysDown, mint(key, auth.MintOptions{}), "R1kmxc2VNjMCFIF=", 500},
		{"no connection id", h, mint(key, auth.MintOptions{}), "", 500},
	} {
		req := lambdatest.Event(t, "../testdata/connect-query.json", map[string]string{"TOKEN": c.token, "CONNECTION_ID": c.id})
		resp, err := c.h(context.Background(), req)
		if err != nil || resp.StatusCode != c.status {
			t.Fatalf("%s: %d %q, %v; want %d", c.name, resp.StatusCode, resp.Body, err, c.status)
		}
		t.Logf("%s: %d, DynamoDB %v", c.name, resp.StatusCode, db.Take())
	}
	if _, err := db.Store.Get(context.Background(), "R1kmxc2VNjMCFIA="); err != nil {
		t.Errorf("the accepted connection has no record: %v", err)
	}
	db.RequireContract(t, contract.FunctionConnect)
}
