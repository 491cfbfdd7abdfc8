package boot_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/boot"
	"github.com/pay-theory/streamer/pkg/auth"
)

// secretsServer speaks the Secrets Manager JSON protocol (GetSecretValue)
// for one secret, so the real SDK client is exercised end to end.
func secretsServer(t *testing.T, arn, pem string, calls *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
			http.Error(w, "unexpected target "+r.Header.Get("X-Amz-Target"), http.StatusBadRequest)
			return
		}
		var in struct{ SecretId string }
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if in.SecretId != arn {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"__type":"ResourceNotFoundException","Message":"Secrets Manager can't find the specified secret."}`))
			return
		}
		out, _ := json.Marshal(map[string]any{"ARN": arn, "Name": "jwt-public-key", "SecretString": pem, "VersionId": "v1"})
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestNewVerifierFromSecretsManager(t *testing.T) {
	key, err := auth.GenerateKeyPair(0)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := auth.EncodePublicKeyPEM(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-public-key-AbCdEf"
	var calls atomic.Int32
	srv := secretsServer(t, arn, string(pub), &calls)
	awsCfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""), HTTPClient: srv.Client()}

	cfg, err := boot.Load(contract.FunctionConnect, env(map[string]string{"CONNECTIONS_TABLE": "t", "JWT_ISSUER": "iss", "JWT_PUBLIC_KEY_SECRET_ARN": arn}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := boot.NewVerifier(context.Background(), cfg, awsCfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	tok, err := auth.Mint(key, auth.MintOptions{UserID: "u", TenantID: "t", Issuer: "iss"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("Secrets Manager called %d times, want once per cold start", n)
	}

	// A wrong ARN fails the cold start, naming the variable.
	cfg.JWTPublicKeySecretARN = arn + "-nope"
	_, err = boot.NewVerifier(context.Background(), cfg, awsCfg)
	var ie *boot.InvalidError
	if !errors.As(err, &ie) || ie.Variable != contract.EnvJWTPublicKeySecretARN || !errors.Is(err, auth.ErrKeySource) {
		t.Errorf("wrong ARN: %v", err)
	}
}
