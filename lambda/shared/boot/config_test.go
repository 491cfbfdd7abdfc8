package boot_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/shared/boot"
	"github.com/pay-theory/streamer/lambda/shared/lambdatest"
	"github.com/pay-theory/streamer/pkg/auth"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadNamesEveryMissingVariable(t *testing.T) {
	cases := []struct {
		fn      string
		env     map[string]string
		missing []string
	}{
		{contract.FunctionConnect, map[string]string{}, []string{"CONNECTIONS_TABLE", "JWT_ISSUER", "JWT_PUBLIC_KEY, JWT_PUBLIC_KEY_SECRET_ARN or JWT_JWKS_URL"}},
		{contract.FunctionConnect, map[string]string{"CONNECTIONS_TABLE": "t", "JWT_ISSUER": "i"}, []string{"JWT_PUBLIC_KEY, JWT_PUBLIC_KEY_SECRET_ARN or JWT_JWKS_URL"}},
		{contract.FunctionConnect, map[string]string{"CONNECTIONS_TABLE": "t", "JWT_JWKS_URL": "https://idp.example.com/jwks.json"}, []string{"JWT_ISSUER"}},
		{contract.FunctionConnect, map[string]string{"CONNECTIONS_TABLE": "t", "JWT_PUBLIC_KEY_SECRET_ARN": "arn"}, []string{"JWT_ISSUER"}},
		{contract.FunctionDisconnect, map[string]string{}, []string{"CONNECTIONS_TABLE"}},
		{contract.FunctionDefault, map[string]string{"CONNECTIONS_TABLE": "  "}, []string{"CONNECTIONS_TABLE"}},
		{contract.FunctionReaper, map[string]string{}, []string{"CONNECTIONS_TABLE", "MANAGEMENT_ENDPOINT"}},
	}
	for _, c := range cases {
		_, err := boot.Load(c.fn, env(c.env))
		var me *boot.MissingError
		if !errors.As(err, &me) || !errors.Is(err, boot.ErrConfig) {
			t.Errorf("%s %v: err = %v, want *MissingError", c.fn, c.env, err)
			continue
		}
		sortOrder := func(s []string) string { return strings.Join(s, "|") }
		got := map[string]bool{}
		for _, v := range me.Variables {
			got[v] = true
		}
		for _, v := range c.missing {
			if !got[v] || !strings.Contains(err.Error(), v) {
				t.Errorf("%s: missing %s not named in %v / %q", c.fn, v, sortOrder(me.Variables), err)
			}
		}
		if len(me.Variables) != len(c.missing) {
			t.Errorf("%s: missing = %v, want %v", c.fn, me.Variables, c.missing)
		}
	}
}

func TestLoadDefaultsAndValues(t *testing.T) {
	c, err := boot.Load(contract.FunctionConnect, env(map[string]string{
		"CONNECTIONS_TABLE": "conns", "JWT_ISSUER": "iss", "JWT_PUBLIC_KEY": `-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----`,
		"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9", "LOG_LEVEL": "DEBUG",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Table != "conns" || c.Environment != "dev" || c.MetricsNamespace != contract.DefaultMetricsNamespace ||
		c.FunctionName != "connect" || c.DynamoDBEndpoint != "http://127.0.0.1:9" || c.LogLevel.String() != "DEBUG" {
		t.Errorf("config = %+v", c)
	}
	if !strings.Contains(c.JWTPublicKeyPEM, "\nAAAA\n") {
		t.Errorf("escaped newlines not restored: %q", c.JWTPublicKeyPEM)
	}
	c, err = boot.Load(contract.FunctionDefault, env(map[string]string{"CONNECTIONS_TABLE": "x", "AWS_LAMBDA_FUNCTION_NAME": "prod-default", "ENVIRONMENT": "prod"}))
	if err != nil || c.FunctionName != "prod-default" || c.Environment != "prod" {
		t.Errorf("config = %+v, %v", c, err)
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	base := map[string]string{"CONNECTIONS_TABLE": "t", "JWT_ISSUER": "i", "JWT_PUBLIC_KEY": "pem"}
	bad := map[string]string{"LOG_LEVEL": "verbose"}
	for k, v := range base {
		bad[k] = v
	}
	_, err := boot.Load(contract.FunctionConnect, env(bad))
	var ie *boot.InvalidError
	if !errors.As(err, &ie) || ie.Variable != "LOG_LEVEL" {
		t.Errorf("bad LOG_LEVEL: %v", err)
	}
	// Two or more key sources are ambiguous: refused, naming the ones set.
	sources := map[string]string{"JWT_PUBLIC_KEY": "pem", "JWT_PUBLIC_KEY_SECRET_ARN": "arn", "JWT_JWKS_URL": "https://idp.example.com/jwks.json"}
	for _, set := range [][]string{
		{"JWT_PUBLIC_KEY", "JWT_PUBLIC_KEY_SECRET_ARN"},
		{"JWT_PUBLIC_KEY", "JWT_JWKS_URL"},
		{"JWT_PUBLIC_KEY_SECRET_ARN", "JWT_JWKS_URL"},
		{"JWT_PUBLIC_KEY", "JWT_PUBLIC_KEY_SECRET_ARN", "JWT_JWKS_URL"},
	} {
		m := map[string]string{"CONNECTIONS_TABLE": "t", "JWT_ISSUER": "i"}
		for _, k := range set {
			m[k] = sources[k]
		}
		_, err := boot.Load(contract.FunctionConnect, env(m))
		if !errors.As(err, &ie) || !errors.Is(err, boot.ErrConfig) {
			t.Errorf("%v set: err = %v, want *InvalidError", set, err)
			continue
		}
		for _, k := range set {
			if !strings.Contains(ie.Variable, k) || !strings.Contains(err.Error(), k) {
				t.Errorf("%v set: error %q (variable %q) does not name %s", set, err, ie.Variable, k)
			}
		}
	}
	// Exactly one of them is fine.
	for k, v := range sources {
		m := map[string]string{"CONNECTIONS_TABLE": "t", "JWT_ISSUER": "i", k: v}
		if _, err := boot.Load(contract.FunctionConnect, env(m)); err != nil {
			t.Errorf("only %s set: %v", k, err)
		}
	}
	if _, err := boot.Load("nope", env(base)); !errors.Is(err, boot.ErrConfig) {
		t.Errorf("unknown function: %v", err)
	}
}

// The reaper's management endpoint: an http(s) URL whose path is a stage;
// no other function reads it.
func TestLoadManagementEndpoint(t *testing.T) {
	for _, ok := range []string{"https://abc123.execute-api.eu-west-1.amazonaws.com/prod", "http://127.0.0.1:4510/local/", " https://x.example.com/v1_2-beta "} {
		c, err := boot.Load(contract.FunctionReaper, env(map[string]string{"CONNECTIONS_TABLE": "t", "MANAGEMENT_ENDPOINT": ok}))
		if err != nil || c.ManagementEndpoint != strings.TrimSpace(ok) {
			t.Errorf("MANAGEMENT_ENDPOINT=%q: %+v, %v", ok, c.ManagementEndpoint, err)
		}
	}
	for _, bad := range []string{"abc123.execute-api.eu-west-1.amazonaws.com/prod", "wss://abc123.execute-api.eu-west-1.amazonaws.com/prod",
		"https://abc123.execute-api.eu-west-1.amazonaws.com", "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/@connections",
		"https://user:pw@abc123.execute-api.eu-west-1.amazonaws.com/prod", "https://h/prod?x=1", "https://h/pr od"} {
		_, err := boot.Load(contract.FunctionReaper, env(map[string]string{"CONNECTIONS_TABLE": "t", "MANAGEMENT_ENDPOINT": bad}))
		var ie *boot.InvalidError
		if !errors.As(err, &ie) || ie.Variable != contract.EnvManagementEndpoint || !errors.Is(err, boot.ErrConfig) {
			t.Errorf("MANAGEMENT_ENDPOINT=%q: err = %v, want an *InvalidError naming it", bad, err)
		}
	}
	c, err := boot.Load(contract.FunctionDefault, env(map[string]string{"CONNECTIONS_TABLE": "t", "MANAGEMENT_ENDPOINT": "https://h/prod"}))
	if err != nil || c.ManagementEndpoint != "" {
		t.Errorf("default read MANAGEMENT_ENDPOINT: %q, %v", c.ManagementEndpoint, err)
	}
}

func TestNewVerifierFromPEM(t *testing.T) {
	key, err := auth.GenerateKeyPair(0)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := auth.EncodePublicKeyPEM(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := boot.Load(contract.FunctionConnect, env(map[string]string{"CONNECTIONS_TABLE": "t", "JWT_ISSUER": "iss", "JWT_PUBLIC_KEY": string(pub)}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := boot.NewVerifier(context.Background(), cfg, aws.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.Mint(key, auth.MintOptions{UserID: "u", TenantID: "t", Issuer: "iss"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(context.Background(), tok); err != nil || c.UserID != "u" {
		t.Errorf("Verify = %+v, %v", c, err)
	}
	cfg.JWTPublicKeyPEM = "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"
	_, err = boot.NewVerifier(context.Background(), cfg, aws.Config{})
	var ie *boot.InvalidError
	if !errors.As(err, &ie) || ie.Variable != "JWT_PUBLIC_KEY" {
		t.Errorf("bad PEM: %v", err)
	}
}

// TestNewVerifierFromJWKS: JWT_JWKS_URL alone builds a verifier that takes
// its key from the set, fetched on the first token (not at cold start).
func TestNewVerifierFromJWKS(t *testing.T) {
	key, err := auth.GenerateKeyPair(0)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	set, err := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
		"n": b64(key.PublicKey.N.Bytes()), "e": b64(big.NewInt(int64(key.PublicKey.E)).Bytes()),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	}))
	defer srv.Close()

	cfg, err := boot.Load(contract.FunctionConnect, env(map[string]string{"CONNECTIONS_TABLE": "t", "JWT_ISSUER": "iss", "JWT_JWKS_URL": srv.URL + "/.well-known/jwks.json"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.JWTJWKSURL != srv.URL+"/.well-known/jwks.json" {
		t.Fatalf("JWTJWKSURL = %q", cfg.JWTJWKSURL)
	}
	v, err := boot.NewVerifier(context.Background(), cfg, aws.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if n := fetches.Load(); n != 0 {
		t.Errorf("cold start fetched the JWKS %d times; want lazily on the first token", n)
	}
	tok, err := auth.Mint(key, auth.MintOptions{UserID: "u", TenantID: "t", Issuer: "iss", KeyID: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(context.Background(), tok); err != nil || c.UserID != "u" {
		t.Errorf("Verify = %+v, %v", c, err)
	}
	if fetches.Load() != 1 {
		t.Errorf("JWKS fetched %d times, want 1", fetches.Load())
	}
	srv.Close()
	// A kid the set lacks is refused (the refetch it triggers is rate limited).
	other, err := auth.Mint(key, auth.MintOptions{UserID: "u", TenantID: "t", Issuer: "iss", KeyID: "unknown"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), other); err == nil {
		t.Error("token with an unknown kid verified")
	}

	cfg.JWTJWKSURL = "ftp://idp.example.com/jwks"
	_, err = boot.NewVerifier(context.Background(), cfg, aws.Config{})
	var ie *boot.InvalidError
	if !errors.As(err, &ie) || ie.Variable != "JWT_JWKS_URL" || !errors.Is(err, boot.ErrConfig) {
		t.Errorf("bad JWKS URL: %v", err)
	}
}

func TestLogInitErrorIsOneJSONLineNamingTheVariable(t *testing.T) {
	cfg, err := boot.Load(contract.FunctionConnect, env(map[string]string{"JWT_ISSUER": "i", "JWT_PUBLIC_KEY": "k"}))
	buf := &lambdatest.Buffer{}
	boot.LogInitError(boot.NewLogger(cfg, buf), err)
	lines := lambdatest.Lines(t, buf.String())
	if len(lines) != 1 {
		t.Fatalf("want one line, got %d", len(lines))
	}
	l := lines[0]
	if l["level"] != "error" || l["function"] != "connect" || !strings.Contains(l["error"].(string), "CONNECTIONS_TABLE") {
		t.Errorf("line = %v", l)
	}
	if m, _ := l["missing"].([]any); len(m) != 1 || m[0] != "CONNECTIONS_TABLE" {
		t.Errorf("missing = %v", l["missing"])
	}
}

func TestDynamoDBChecksumOnlyRelaxedForCustomEndpoints(t *testing.T) {
	awsCfg := aws.Config{Region: "us-east-1"}
	if c := boot.NewDynamoDB(awsCfg, boot.Config{}); c.Options().DisableValidateResponseChecksum {
		t.Error("checksum validation off against AWS")
	}
	if c := boot.NewDynamoDB(awsCfg, boot.Config{DynamoDBEndpoint: "http://127.0.0.1:1"}); !c.Options().DisableValidateResponseChecksum {
		t.Error("checksum validation on against an emulator endpoint")
	}
}
