package auth

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"sync"
	"time"
)

const (
	// DefaultJWKSRefresh is how long a fetched key set is used before it is
	// fetched again (JWKSConfig.Refresh 0).
	DefaultJWKSRefresh = 10 * time.Minute
	// jwksUnknownKidGap rate-limits refetches triggered by an unknown kid, so
	// a flood of tokens with made-up kids cannot turn into a flood of
	// requests to the JWKS endpoint.
	jwksUnknownKidGap = 30 * time.Second
	// jwksRetryGap is the minimum gap between attempts after a failed fetch.
	jwksRetryGap = 5 * time.Second
	// jwksFetchTimeout bounds one fetch even with a caller's client or ctx
	// that has no deadline.
	jwksFetchTimeout = 10 * time.Second
	// jwksMaxBytes bounds the document size.
	jwksMaxBytes = 1 << 20
)

// JWKSConfig configures NewJWKS.
type JWKSConfig struct {
	// URL of the JSON Web Key Set (https, or http for local development).
	URL string
	// Refresh is how long a fetched set is trusted; 0 means 10 minutes.
	Refresh time.Duration
	// HTTPClient makes the requests; nil means a client with a 10s timeout
	// on http.DefaultTransport.
	HTTPClient *http.Client
	// Now is the clock used for Refresh and rate limiting; nil means time.Now.
	Now func() time.Time
}

type jwksState struct {
	keys        map[string]*rsa.PublicKey
	rejected    map[string]error // kid -> why its key was refused (weak, unparsable)
	loaded      bool
	lastSuccess time.Time
	lastAttempt time.Time
	lastErr     error
}

type jwks struct {
	url     string
	refresh time.Duration
	client  *http.Client
	now     func() time.Time

	mu    sync.RWMutex
	state jwksState
	// sem admits one fetch at a time; waiting on it honours ctx.
	sem chan struct{}
}

// NewJWKS returns a KeySource backed by a JSON Web Key Set at cfg.URL. Keys
// are selected by the token's kid (a token without kid is accepted only when
// the set holds exactly one key). The set is fetched lazily on first use —
// so cold start makes no request and every wait honours the caller's ctx —
// refetched once it is older than Refresh (the old set is kept if that
// fails), and refetched when a kid is unknown, at most once per 30 seconds.
// Only RSA signing keys ("kty":"RSA", "use" absent or "sig", "alg" absent or
// "RS256") of at least 2048 bits are used; a weak key is refused and its kid
// reports ErrUnknownKey wrapping ErrWeakKey.
//
// The URL comes from configuration only: a token's own jku/x5u/jwk headers
// are never followed.
func NewJWKS(cfg JWKSConfig) (KeySource, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%w: JWKS URL %q must be an absolute http(s) URL", ErrInvalidConfig, cfg.URL)
	}
	if cfg.Refresh < 0 {
		return nil, fmt.Errorf("%w: negative JWKS refresh interval %s", ErrInvalidConfig, cfg.Refresh)
	}
	s := &jwks{url: cfg.URL, refresh: cfg.Refresh, client: cfg.HTTPClient, now: cfg.Now, sem: make(chan struct{}, 1)}
	if s.refresh == 0 {
		s.refresh = DefaultJWKSRefresh
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: jwksFetchTimeout}
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

func (s *jwks) snapshot() jwksState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.state
}

func (s *jwks) PublicKey(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	// Refresh when never loaded or stale, but not more often than
	// jwksRetryGap after a failure.
	stale := func(st jwksState, now time.Time) bool {
		if st.lastErr != nil && now.Sub(st.lastAttempt) < jwksRetryGap {
			return false
		}
		return !st.loaded || now.Sub(st.lastSuccess) >= s.refresh
	}
	// On failure keep serving the previous set, if any: a JWKS blip must not
	// log everyone out.
	fetchErr := s.fetchIf(ctx, stale)
	st := s.snapshot()
	if !st.loaded && fetchErr != nil {
		return nil, fetchErr
	}
	if !st.loaded {
		return nil, st.lastErr
	}
	if k, ok, err := lookup(st, kid); ok {
		return k, err
	}
	// Unknown kid: the issuer may have rotated keys since our last fetch.
	unknown := func(st jwksState, now time.Time) bool {
		if _, ok, _ := lookup(st, kid); ok {
			return false // someone else's fetch already brought it
		}
		return now.Sub(st.lastAttempt) >= jwksUnknownKidGap
	}
	_ = s.fetchIf(ctx, unknown) // on failure fall through to "unknown key"
	if k, ok, err := lookup(s.snapshot(), kid); ok {
		return k, err
	}
	return nil, fmt.Errorf("%w: kid %q is not in the JWKS at %s", ErrUnknownKey, kid, s.url)
}

// lookup finds kid in st; ok is false when the kid is absent altogether.
func lookup(st jwksState, kid string) (*rsa.PublicKey, bool, error) {
	if kid == "" {
		if len(st.keys) == 1 && len(st.rejected) == 0 {
			for _, k := range st.keys {
				return k, true, nil
			}
		}
		return nil, true, fmt.Errorf("%w: token has no kid and the JWKS holds %d keys", ErrUnknownKey, len(st.keys)+len(st.rejected))
	}
	if k, ok := st.keys[kid]; ok {
		return k, true, nil
	}
	if why, ok := st.rejected[kid]; ok {
		return nil, true, fmt.Errorf("%w: kid %q was refused: %w", ErrUnknownKey, kid, why)
	}
	return nil, false, nil
}

// fetchIf fetches the set when need(current state, now) holds, one fetch at
// a time. The condition is re-evaluated after waiting, so callers queued
// behind a fetch reuse its result.
func (s *jwks) fetchIf(ctx context.Context, need func(jwksState, time.Time) bool) error {
	if !need(s.snapshot(), s.now()) {
		return nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for JWKS %s: %w", ErrKeySource, s.url, ctx.Err())
	}
	defer func() { <-s.sem }()
	now := s.now()
	if !need(s.snapshot(), now) {
		return nil
	}
	keys, rejected, err := s.fetch(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.lastAttempt = now
	s.state.lastErr = err
	if err != nil {
		return err
	}
	s.state.keys, s.state.rejected = keys, rejected
	s.state.loaded = true
	s.state.lastSuccess = now
	return nil
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func (s *jwks) fetch(ctx context.Context) (map[string]*rsa.PublicKey, map[string]error, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: JWKS %s: %w", ErrKeySource, s.url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: fetching JWKS %s: %w", ErrKeySource, s.url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, nil, fmt.Errorf("%w: fetching JWKS %s: HTTP %s", ErrKeySource, s.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reading JWKS %s: %w", ErrKeySource, s.url, err)
	}
	if len(body) > jwksMaxBytes {
		return nil, nil, fmt.Errorf("%w: JWKS %s is larger than %d bytes", ErrKeySource, s.url, jwksMaxBytes)
	}
	var doc struct {
		Keys *[]jwk `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("%w: JWKS %s is not valid JSON: %w", ErrKeySource, s.url, err)
	}
	if doc.Keys == nil {
		return nil, nil, fmt.Errorf("%w: JWKS %s has no \"keys\" array", ErrKeySource, s.url)
	}
	keys := make(map[string]*rsa.PublicKey)
	rejected := make(map[string]error)
	for _, k := range *doc.Keys {
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "RS256") {
			continue // not a key we could ever verify with; ignore it
		}
		pub, err := jwkToRSA(k)
		if err != nil {
			rejected[k.Kid] = err
			continue
		}
		if _, dup := keys[k.Kid]; dup {
			// Two keys under one kid is ambiguous; refuse both rather than guess.
			delete(keys, k.Kid)
			rejected[k.Kid] = fmt.Errorf("%w: duplicate kid", ErrBadKey)
			continue
		}
		if _, dup := rejected[k.Kid]; dup {
			continue
		}
		keys[k.Kid] = pub
	}
	return keys, rejected, nil
}

func jwkToRSA(k jwk) (*rsa.PublicKey, error) {
	nb, err := base64.RawURLEncoding.DecodeString(k.N)
	if err != nil || len(nb) == 0 {
		return nil, fmt.Errorf("%w: bad modulus \"n\"", ErrBadKey)
	}
	eb, err := base64.RawURLEncoding.DecodeString(k.E)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return nil, fmt.Errorf("%w: bad exponent \"e\"", ErrBadKey)
	}
	e := new(big.Int).SetBytes(eb)
	if e.Int64() < 3 || e.Int64()%2 == 0 {
		return nil, fmt.Errorf("%w: bad exponent %d", ErrBadKey, e.Int64())
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: int(e.Int64())}
	if err := checkBits(pub); err != nil {
		return nil, err
	}
	return pub, nil
}
