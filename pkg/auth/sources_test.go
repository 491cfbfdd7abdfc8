package auth

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/golang-jwt/jwt/v5"
)

const testARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-public-key-AbCdEf"

// The real client must satisfy the consumer-owned interface.
var _ SecretGetter = (*secretsmanager.Client)(nil)

type fakeSecrets struct {
	mu      sync.Mutex
	calls   int
	answers []func() (*secretsmanager.GetSecretValueOutput, error) // last one repeats
	gotARN  string
	gate    chan struct{} // when set, each call waits for it
}

func (f *fakeSecrets) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.gotARN = aws.ToString(in.SecretId)
	i := min(f.calls-1, len(f.answers)-1)
	return f.answers[i]()
}

func (f *fakeSecrets) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func pemSecret(t testing.TB, k *rsa.PublicKey) func() (*secretsmanager.GetSecretValueOutput, error) {
	p, err := EncodePublicKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	return func() (*secretsmanager.GetSecretValueOutput, error) {
		return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(string(p))}, nil
	}
}

func TestSecretsManagerKeyCachedAcrossVerifies(t *testing.T) {
	k := loadKeys()
	fake := &fakeSecrets{answers: []func() (*secretsmanager.GetSecretValueOutput, error){pemSecret(t, &k.main.PublicKey)}}
	v := newTestVerifier(t, SecretsManagerKey(fake, testARN), func() time.Time { return testT0 })
	tok := rs256(t, k.main, goodClaims())
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range 20 {
		wg.Go(func() {
			for range 5 {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d verifies failed", failures.Load())
	}
	if fake.Calls() != 1 || fake.gotARN != testARN {
		t.Fatalf("GetSecretValue calls = %d (ARN %q), want 1 call for %q", fake.Calls(), fake.gotARN, testARN)
	}
}

func TestSecretsManagerKeyRetriesAfterFailure(t *testing.T) {
	k := loadKeys()
	fake := &fakeSecrets{answers: []func() (*secretsmanager.GetSecretValueOutput, error){
		func() (*secretsmanager.GetSecretValueOutput, error) { return nil, errors.New("throttled") },
		pemSecret(t, &k.main.PublicKey),
	}}
	v := newTestVerifier(t, SecretsManagerKey(fake, testARN), func() time.Time { return testT0 })
	tok := rs256(t, k.main, goodClaims())
	_, err := v.Verify(context.Background(), tok)
	if !errors.Is(err, ErrKeySource) || !strings.Contains(err.Error(), testARN) || !strings.Contains(err.Error(), "throttled") {
		t.Fatalf("first verify: err = %v, want ErrKeySource naming the ARN and the cause", err)
	}
	for range 3 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	}
	if fake.Calls() != 2 {
		t.Fatalf("calls = %d, want 2 (one failure, one success, then cached)", fake.Calls())
	}
}

func TestSecretsManagerKeyBadMaterial(t *testing.T) {
	k := loadKeys()
	weakPEM, err := EncodePublicKeyPEM(&k.weak.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := EncodePublicKeyPEM(&k.main.PublicKey)
	cases := []struct {
		name  string
		out   *secretsmanager.GetSecretValueOutput
		cause error
	}{
		{"weak key", &secretsmanager.GetSecretValueOutput{SecretString: aws.String(string(weakPEM))}, ErrWeakKey},
		{"not PEM", &secretsmanager.GetSecretValueOutput{SecretString: aws.String(`{"key":"nope"}`)}, ErrBadKey},
		{"empty secret", &secretsmanager.GetSecretValueOutput{}, ErrKeySource},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeSecrets{answers: []func() (*secretsmanager.GetSecretValueOutput, error){
				func() (*secretsmanager.GetSecretValueOutput, error) { return tc.out, nil },
			}}
			_, err := SecretsManagerKey(fake, testARN).PublicKey(context.Background(), "")
			if !errors.Is(err, ErrKeySource) || !errors.Is(err, tc.cause) || !strings.Contains(err.Error(), testARN) {
				t.Fatalf("err = %v, want ErrKeySource wrapping %v and naming the ARN", err, tc.cause)
			}
		})
	}
	// SecretBinary works as well as SecretString.
	fake := &fakeSecrets{answers: []func() (*secretsmanager.GetSecretValueOutput, error){
		func() (*secretsmanager.GetSecretValueOutput, error) {
			return &secretsmanager.GetSecretValueOutput{SecretBinary: pubPEM}, nil
		},
	}}
	got, err := SecretsManagerKey(fake, testARN).PublicKey(context.Background(), "")
	if err != nil || got.N.Cmp(k.main.N) != 0 {
		t.Fatalf("SecretBinary: %v", err)
	}
	if _, err := SecretsManagerKey(nil, "").PublicKey(context.Background(), ""); !errors.Is(err, ErrKeySource) {
		t.Fatalf("nil client: %v", err)
	}
}

func TestSecretsManagerKeyWaitHonoursContext(t *testing.T) {
	k := loadKeys()
	fake := &fakeSecrets{gate: make(chan struct{}), answers: []func() (*secretsmanager.GetSecretValueOutput, error){pemSecret(t, &k.main.PublicKey)}}
	src := SecretsManagerKey(fake, testARN)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for range 2 { // one blocks in the call, the other waiting for its turn
		go func() { _, err := src.PublicKey(ctx, ""); done <- err }()
	}
	cancel()
	for range 2 {
		if err := <-done; !errors.Is(err, ErrKeySource) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want ErrKeySource wrapping context.Canceled", err)
		}
	}
	close(fake.gate)
	if _, err := src.PublicKey(context.Background(), ""); err != nil {
		t.Fatalf("after cancellation the next call must retry: %v", err)
	}
}

// TestSecretsManagerKeyRealClient drives the real AWS SDK client against a
// loopback server speaking the Secrets Manager JSON 1.1 protocol.
func TestSecretsManagerKeyRealClient(t *testing.T) {
	k := loadKeys()
	pubPEM, _ := EncodePublicKeyPEM(&k.main.PublicKey)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		var in struct{ SecretId string }
		_ = json.Unmarshal(body, &in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256") {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"__type":"InvalidRequestException","message":"unexpected request"}`)
			return
		}
		if in.SecretId != testARN {
			w.Header().Set("X-Amzn-Errortype", "ResourceNotFoundException")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ARN": testARN, "Name": "jwt-public-key", "SecretString": string(pubPEM), "VersionId": "v1"})
	}))
	defer srv.Close()
	client := secretsmanager.New(secretsmanager.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		HTTPClient:       srv.Client(),
		RetryMaxAttempts: 1,
	})
	v := newTestVerifier(t, SecretsManagerKey(client, testARN), func() time.Time { return testT0 })
	for range 3 {
		if _, err := v.Verify(context.Background(), rs256(t, k.main, goodClaims())); err != nil {
			t.Fatalf("Verify through the real client: %v", err)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("server hits = %d, want 1", hits.Load())
	}
	_, err := SecretsManagerKey(client, testARN+"-missing").PublicKey(context.Background(), "")
	if !errors.Is(err, ErrKeySource) || !strings.Contains(err.Error(), "ResourceNotFoundException") {
		t.Fatalf("missing secret: err = %v", err)
	}
	srv.Client().CloseIdleConnections()
}

// jwksServer serves a mutable key set and counts fetches.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	doc    string
	status int
	hits   atomic.Int32
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{status: http.StatusOK, doc: `{"keys":[]}`}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, doc := s.status, s.doc
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, doc)
	}))
	t.Cleanup(func() {
		s.Client().CloseIdleConnections()
		s.Close()
	})
	return s
}

func (s *jwksServer) set(status int, doc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.doc = status, doc
}

func jwkJSON(kid string, k *rsa.PublicKey, extra map[string]any) map[string]any {
	m := map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	for key, v := range extra {
		m[key] = v
	}
	return m
}

func keySet(keys ...map[string]any) string {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return string(b)
}

func kidToken(t testing.TB, key *rsa.PrivateKey, kid string) string {
	h := map[string]any{"alg": "RS256", "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	return signRaw(t, jwt.SigningMethodRS256, key, h, goodClaims())
}

func newTestJWKS(t *testing.T, srv *jwksServer, clock *fakeClock) KeySource {
	t.Helper()
	src, err := NewJWKS(JWKSConfig{URL: srv.URL + "/.well-known/jwks.json", HTTPClient: srv.Client(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestJWKSSelectsByKid(t *testing.T) {
	k := loadKeys()
	srv := newJWKSServer(t)
	srv.set(200, keySet(
		jwkJSON("a", &k.main.PublicKey, nil),
		jwkJSON("b", &k.other.PublicKey, nil),
		jwkJSON("enc", &k.third.PublicKey, map[string]any{"use": "enc"}),
		jwkJSON("ps", &k.third.PublicKey, map[string]any{"alg": "PS256"}),
		map[string]any{"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
	))
	clock := newClock(testT0)
	src := newTestJWKS(t, srv, clock)
	if srv.hits.Load() != 0 {
		t.Fatal("NewJWKS must not fetch eagerly")
	}
	v := newTestVerifier(t, src, clock.Now)
	ctx := context.Background()
	for _, tc := range []struct {
		key  *rsa.PrivateKey
		kid  string
		want error
	}{
		{k.main, "a", nil},
		{k.other, "b", nil},
		{k.other, "a", ErrBadSignature}, // kid names a key that did not sign it
		{k.main, "", ErrUnknownKey},     // no kid with two keys is ambiguous
		{k.third, "enc", ErrUnknownKey}, // encryption keys are ignored
		{k.third, "ps", ErrUnknownKey},  // keys for another alg are ignored
		{k.main, "ec", ErrUnknownKey},
	} {
		_, err := v.Verify(ctx, kidToken(t, tc.key, tc.kid))
		if (tc.want == nil && err != nil) || !errors.Is(err, tc.want) {
			t.Errorf("kid %q: err = %v, want %v", tc.kid, err, tc.want)
		}
	}
	// Unknown kids within 30s of the last fetch cost no request.
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
}

func TestJWKSSingleKeyWithoutKid(t *testing.T) {
	k := loadKeys()
	srv := newJWKSServer(t)
	srv.set(200, keySet(jwkJSON("only", &k.main.PublicKey, nil)))
	clock := newClock(testT0)
	v := newTestVerifier(t, newTestJWKS(t, srv, clock), clock.Now)
	if _, err := v.Verify(context.Background(), kidToken(t, k.main, "")); err != nil {
		t.Fatalf("no kid, one key: %v", err)
	}
}

func TestJWKSRefreshAndRotation(t *testing.T) {
	k := loadKeys()
	srv := newJWKSServer(t)
	srv.set(200, keySet(jwkJSON("old", &k.main.PublicKey, nil)))
	clock := newClock(testT0)
	src := newTestJWKS(t, srv, clock)
	v := newTestVerifier(t, src, clock.Now)
	ctx := context.Background()
	mustVerify := func(tok string) {
		t.Helper()
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	mustVerify(kidToken(t, k.main, "old"))

	// The issuer rotates: "new" appears. A token with the new kid triggers
	// a refetch, but only once 30s have passed since the last one.
	srv.set(200, keySet(jwkJSON("old", &k.main.PublicKey, nil), jwkJSON("new", &k.other.PublicKey, nil)))
	clock.Advance(10 * time.Second)
	if _, err := v.Verify(ctx, kidToken(t, k.other, "new")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("within the rate limit: err = %v, want ErrUnknownKey", err)
	}
	if srv.hits.Load() != 1 {
		t.Fatalf("fetches = %d, want 1 (rate limited)", srv.hits.Load())
	}
	clock.Advance(25 * time.Second)
	mustVerify(kidToken(t, k.other, "new"))
	if srv.hits.Load() != 2 {
		t.Fatalf("fetches = %d, want 2", srv.hits.Load())
	}
	// A flood of made-up kids makes at most one request per 30s.
	for i := range 50 {
		_, _ = v.Verify(ctx, kidToken(t, k.other, "made-up-"+itoa(i)))
	}
	if srv.hits.Load() != 2 {
		t.Fatalf("fetches after a flood of unknown kids = %d, want 2", srv.hits.Load())
	}

	// "old" is retired; after the refresh interval it stops verifying.
	srv.set(200, keySet(jwkJSON("new", &k.other.PublicKey, nil)))
	clock.Advance(DefaultJWKSRefresh - time.Second)
	mustVerify(kidToken(t, k.main, "old")) // still cached
	clock.Advance(time.Second)
	mustVerify(kidToken(t, k.other, "new")) // refresh happens here
	if srv.hits.Load() != 3 {
		t.Fatalf("fetches = %d, want 3", srv.hits.Load())
	}
	if _, err := v.Verify(ctx, kidToken(t, k.main, "old")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("retired key: err = %v, want ErrUnknownKey", err)
	}
}

func TestJWKSWeakAndBadKeys(t *testing.T) {
	k := loadKeys()
	srv := newJWKSServer(t)
	srv.set(200, keySet(
		jwkJSON("good", &k.main.PublicKey, nil),
		jwkJSON("weak", &k.weak.PublicKey, nil),
		jwkJSON("bad-e", &k.other.PublicKey, map[string]any{"e": "!!"}),
		jwkJSON("dup", &k.other.PublicKey, nil),
		jwkJSON("dup", &k.third.PublicKey, nil),
	))
	clock := newClock(testT0)
	src := newTestJWKS(t, srv, clock)
	ctx := context.Background()
	if _, err := src.PublicKey(ctx, "good"); err != nil {
		t.Fatal(err)
	}
	_, err := src.PublicKey(ctx, "weak")
	if !errors.Is(err, ErrUnknownKey) || !errors.Is(err, ErrWeakKey) {
		t.Fatalf("weak key: err = %v, want ErrUnknownKey wrapping ErrWeakKey", err)
	}
	if _, err := src.PublicKey(ctx, "bad-e"); !errors.Is(err, ErrBadKey) {
		t.Fatalf("bad exponent: err = %v", err)
	}
	if _, err := src.PublicKey(ctx, "dup"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("duplicate kid: err = %v", err)
	}
	// Through Verify, a weak key is simply "no key" (one sentinel).
	v := newTestVerifier(t, src, clock.Now)
	_, err = v.Verify(ctx, kidToken(t, k.weak, "weak"))
	if !errors.Is(err, ErrUnknownKey) || checkOneSentinel(err) != nil {
		t.Fatalf("Verify with weak kid: %v", err)
	}
}

func TestJWKSServerDown(t *testing.T) {
	k := loadKeys()
	ctx := context.Background()
	clock := newClock(testT0)

	t.Run("HTTP error before any load", func(t *testing.T) {
		srv := newJWKSServer(t)
		srv.set(http.StatusInternalServerError, "oops")
		src := newTestJWKS(t, srv, clock)
		v := newTestVerifier(t, src, clock.Now)
		_, err := v.Verify(ctx, kidToken(t, k.main, "a"))
		if !errors.Is(err, ErrKeySource) || Reason(err) != "key_source" || !strings.Contains(err.Error(), "500") {
			t.Fatalf("err = %v", err)
		}
		// Failures are retried, but not more than once per 5s.
		_, _ = v.Verify(ctx, kidToken(t, k.main, "a"))
		if srv.hits.Load() != 1 {
			t.Fatalf("fetches = %d, want 1", srv.hits.Load())
		}
		srv.set(200, keySet(jwkJSON("a", &k.main.PublicKey, nil)))
		clock.Advance(5 * time.Second)
		if _, err := v.Verify(ctx, kidToken(t, k.main, "a")); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	})
	t.Run("bad documents", func(t *testing.T) {
		for _, doc := range []string{"not json", `{"nokeys":[]}`, `{"keys":"x"}`, `{"keys":[` + strings.Repeat(`{"kty":"oct"},`, 80000) + `{}]}`} {
			srv := newJWKSServer(t)
			srv.set(200, doc)
			_, err := newTestJWKS(t, srv, clock).PublicKey(ctx, "a")
			if !errors.Is(err, ErrKeySource) {
				t.Errorf("doc %.30q: err = %v, want ErrKeySource", doc, err)
			}
		}
	})
	t.Run("stale keys survive an outage", func(t *testing.T) {
		srv := newJWKSServer(t)
		srv.set(200, keySet(jwkJSON("a", &k.main.PublicKey, nil)))
		src := newTestJWKS(t, srv, clock)
		v := newTestVerifier(t, src, clock.Now)
		if _, err := v.Verify(ctx, kidToken(t, k.main, "a")); err != nil {
			t.Fatal(err)
		}
		srv.Close() // connection refused from now on
		clock.Advance(DefaultJWKSRefresh + time.Minute)
		if _, err := v.Verify(ctx, kidToken(t, k.main, "a")); err != nil {
			t.Fatalf("with the JWKS down, cached keys must still verify: %v", err)
		}
		if _, err := v.Verify(ctx, kidToken(t, k.main, "zzz")); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("unknown kid while down: %v", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		srv := newJWKSServer(t)
		src := newTestJWKS(t, srv, clock)
		srv.Close()
		_, err := src.PublicKey(ctx, "a")
		if !errors.Is(err, ErrKeySource) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("slow server honours ctx", func(t *testing.T) {
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer slow.Close()
		defer close(release)
		src, err := NewJWKS(JWKSConfig{URL: slow.URL, HTTPClient: slow.Client(), Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := src.PublicKey(cctx, "a"); !errors.Is(err, ErrKeySource) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrKeySource wrapping DeadlineExceeded", err)
		}
	})
}

func TestJWKSConcurrentColdStartFetchesOnce(t *testing.T) {
	k := loadKeys()
	srv := newJWKSServer(t)
	srv.set(200, keySet(jwkJSON("a", &k.main.PublicKey, nil)))
	clock := newClock(testT0)
	v := newTestVerifier(t, newTestJWKS(t, srv, clock), clock.Now)
	tok := kidToken(t, k.main, "a")
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range 16 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	if failures.Load() != 0 || srv.hits.Load() != 1 {
		t.Fatalf("failures = %d, fetches = %d; want 0 and 1", failures.Load(), srv.hits.Load())
	}
}

func TestNewJWKSConfig(t *testing.T) {
	for _, u := range []string{"", "jwks.json", "ftp://x/jwks", "https://", "://bad"} {
		if _, err := NewJWKS(JWKSConfig{URL: u}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("URL %q: err = %v, want ErrInvalidConfig", u, err)
		}
	}
	if _, err := NewJWKS(JWKSConfig{URL: "https://issuer.test/jwks", Refresh: -time.Second}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("negative refresh: %v", err)
	}
	if _, err := NewJWKS(JWKSConfig{URL: "https://issuer.test/.well-known/jwks.json"}); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
