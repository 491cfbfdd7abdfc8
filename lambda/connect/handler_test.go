package connect_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/connect"
	"github.com/pay-theory/streamer/lambda/shared/lambdatest"
	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/dynamotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const issuer = "https://auth.example.com"

type env struct {
	h       *connect.Handler
	ep      *dynamotest.Endpoint
	logs    *lambdatest.Buffer
	metrics *lambdatest.Buffer
	spans   *tracetest.InMemoryExporter
	tracing *observability.Tracing
	key     *rsa.PrivateKey
	now     time.Time
}

// setup wires a Handler with a real verifier and the minidyn store, unless
// st replaces the store.
func setup(t *testing.T, st connect.Store) *env {
	t.Helper()
	return setupWith(t, st, dynamotest.Start)
}

func setupWith(t *testing.T, st connect.Store, start func(testing.TB) *dynamotest.Endpoint) *env {
	t.Helper()
	key, err := auth.GenerateKeyPair(0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Keys: auth.StaticKey(&key.PublicKey), Issuer: issuer})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{key: key, logs: &lambdatest.Buffer{}, metrics: &lambdatest.Buffer{}, spans: tracetest.NewInMemoryExporter(),
		now: time.Now().UTC().Truncate(time.Millisecond)}
	if st == nil {
		e.ep = start(t)
		st = e.ep.Store
	}
	e.tracing, err = observability.NewTracing(context.Background(), observability.TracingConfig{ServiceName: "connect", Exporter: e.spans})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.tracing.Shutdown(context.Background()) })
	e.h, err = connect.New(connect.Deps{
		Verifier: v,
		Store:    st,
		Logger:   observability.NewLogger(observability.LogConfig{Writer: e.logs, Function: "streamer-connect"}),
		Metrics:  observability.NewEMF(observability.EMFConfig{Writer: e.metrics, Environment: "test", Function: "connect"}),
		Tracer:   e.tracing.Tracer("test"),
		Now:      func() time.Time { return e.now },
	}, connect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) mint(t *testing.T, o auth.MintOptions) string {
	t.Helper()
	if o.Issuer == "" {
		o.Issuer = issuer
	}
	tok, err := auth.Mint(e.key, o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestValidQueryTokenSavesRecord(t *testing.T) {
	e := setup(t, nil)
	tok := e.mint(t, auth.MintOptions{UserID: "user-1", TenantID: "tenant-1", Permissions: []string{"read", "write"}})
	req := lambdatest.Event(t, "testdata/connect-query.json", map[string]string{"TOKEN": tok, "CONNECTION_ID": "R1kmxc2VNjMCFIA="})

	// The Lambda runtime puts the invocation's trace header in the context.
	ctx := context.WithValue(context.Background(), "x-amzn-trace-id", //nolint:staticcheck // aws-lambda-go's key
		"Root=1-65abb491-0a1b2c3d4e5f6a7b8c9d0e1f;Parent=53995c3f42cd8ad8;Sampled=1")
	resp, err := e.h.Handle(ctx, req)
	if err != nil || resp.StatusCode != 200 || resp.Body != connect.BodyConnected {
		t.Fatalf("Handle = %d %q, %v; want 200 %q", resp.StatusCode, resp.Body, err, connect.BodyConnected)
	}
	got, err := e.ep.Store.Get(context.Background(), "R1kmxc2VNjMCFIA=")
	if err != nil {
		t.Fatalf("record not saved: %v", err)
	}
	want := store.Connection{
		ConnectionID: "R1kmxc2VNjMCFIA=",
		UserID:       "user-1",
		TenantID:     "tenant-1",
		Endpoint:     "https://dl7ptocha9.execute-api.ap-northeast-1.amazonaws.com/prod",
		Metadata: store.Metadata{
			UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Safari/537.36",
			IPAddress: "49.105.91.154",
		},
		Permissions: []string{"read", "write"},
		TTL:         e.now.Add(24 * time.Hour).Unix(),
	}
	if got.ConnectionID != want.ConnectionID || got.UserID != want.UserID || got.TenantID != want.TenantID ||
		got.Endpoint != want.Endpoint || got.Metadata != want.Metadata || got.TTL != want.TTL ||
		strings.Join(got.Permissions, ",") != "read,write" || got.MessagesSent != 0 || got.MessagesReceived != 0 {
		t.Errorf("record = %+v\nwant    %+v", got, want)
	}
	if !got.ConnectedAt.Equal(e.now) || !got.LastPing.Equal(e.now) {
		t.Errorf("connected_at %v last_ping %v, want both %v", got.ConnectedAt, got.LastPing, e.now)
	}

	lines := lambdatest.Lines(t, e.logs.String())
	lambdatest.CheckCommon(t, lines)
	acc := lambdatest.Find(lines, "connection accepted")
	if len(acc) != 1 {
		t.Fatalf("want one 'connection accepted' line, got %v", lines)
	}
	l := acc[0]
	for k, v := range map[string]any{"level": "info", "user_id": "user-1", "tenant_id": "tenant-1", "operation": "connect",
		"correlation_id": "R1kmxEyVtjMFR2w=", "connection_id": "R1kmxc2VNjMCFIA=", "function": "streamer-connect", "cold_start": true} {
		if l[k] != v {
			t.Errorf("log %s = %v, want %v", k, l[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, l["timestamp"].(string)); err != nil {
		t.Errorf("timestamp %v is not ISO 8601: %v", l["timestamp"], err)
	}
	if _, ok := l["error"]; ok {
		t.Errorf("success line carries an error field: %v", l)
	}

	d := lambdatest.OneEMF(t, e.metrics.String())
	if d.Namespace != contract.DefaultMetricsNamespace || len(d.Dimensions) != 1 || strings.Join(d.Dimensions[0], ",") != "Environment" || d.Raw["Environment"] != "test" {
		t.Errorf("EMF namespace/dimensions = %s %v %v", d.Namespace, d.Dimensions, d.Raw["Environment"])
	}
	if v, _ := d.Value(contract.MetricConnectionsPerMinute); v != 1 {
		t.Errorf("ConnectionsPerMinute = %v, want 1", v)
	}
	if v, _ := d.Value(contract.MetricActiveConnections); v != 1 {
		t.Errorf("ActiveConnections = %v, want 1 (the counter after this connect)", v)
	}
	for _, k := range []string{"user_id", "tenant_id", "UserID", "TenantID"} {
		if _, ok := d.Raw[k]; ok {
			t.Errorf("EMF document carries %s: user and tenant ids never go into metrics", k)
		}
	}

	// The span joined the invocation's X-Ray trace, as a child of Lambda's segment.
	if err := e.tracing.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := e.spans.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("want 1 span, got %d", len(spans))
	}
	if got := spans[0].SpanContext.TraceID().String(); got != "65abb4910a1b2c3d4e5f6a7b8c9d0e1f" {
		t.Errorf("span trace id %s, want the X-Ray root 1-65abb491-0a1b2c3d4e5f6a7b8c9d0e1f", got)
	}
	if got := spans[0].Parent.SpanID().String(); got != "53995c3f42cd8ad8" {
		t.Errorf("span parent %s, want 53995c3f42cd8ad8", got)
	}
	attrs := map[string]string{}
	for _, a := range spans[0].Attributes {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["streamer.user_id"] != "user-1" || attrs["streamer.tenant_id"] != "tenant-1" || attrs["streamer.connection_id"] != "R1kmxc2VNjMCFIA=" {
		t.Errorf("span attributes = %v", attrs)
	}
}

func TestHeaderBearerTokenAndWarmStart(t *testing.T) {
	e := setup(t, nil)
	first := lambdatest.Event(t, "testdata/connect-query.json", map[string]string{
		"TOKEN": e.mint(t, auth.MintOptions{UserID: "u0", TenantID: "t0"}), "CONNECTION_ID": "first="})
	if resp, _ := e.h.Handle(context.Background(), first); resp.StatusCode != 200 {
		t.Fatalf("first connect = %d", resp.StatusCode)
	}
	req := lambdatest.Event(t, "testdata/connect-header.json", map[string]string{
		"TOKEN": e.mint(t, auth.MintOptions{UserID: "u2", TenantID: "t2"}), "CONNECTION_ID": "Zq0cJm8e3VJ6iC6o="})
	resp, err := e.h.Handle(context.Background(), req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Handle = %d, %v; want 200", resp.StatusCode, err)
	}
	got, err := e.ep.Store.Get(context.Background(), "Zq0cJm8e3VJ6iC6o=")
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != "u2" || got.TenantID != "t2" || got.Metadata.UserAgent != "wscat/6.1.0" || got.Metadata.IPAddress != "198.51.100.7" {
		t.Errorf("record = %+v", got)
	}
	acc := lambdatest.Find(lambdatest.Lines(t, e.logs.String()), "connection accepted")
	if len(acc) != 2 || acc[0]["cold_start"] != true || acc[1]["cold_start"] != false {
		t.Errorf("cold_start must be true on the first invocation only: %v", acc)
	}
	docs := lambdatest.EMF(t, e.metrics.String())
	if v, _ := docs[len(docs)-1].Value(contract.MetricActiveConnections); v != 2 {
		t.Errorf("ActiveConnections after two connects = %v, want 2", v)
	}
}

func TestAuthFailuresAre401(t *testing.T) {
	other, err := auth.GenerateKeyPair(0)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		token  func(e *env) string
		reason string
	}{
		{"expired", func(e *env) string {
			return e.mint(t, auth.MintOptions{UserID: "u", TenantID: "t", Expired: true})
		}, "expired"},
		{"invalid signature", func(e *env) string {
			tok, err := auth.Mint(other, auth.MintOptions{UserID: "u", TenantID: "t", Issuer: issuer})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, "bad_signature"},
		{"wrong issuer", func(e *env) string {
			return e.mint(t, auth.MintOptions{UserID: "u", TenantID: "t", Issuer: "https://evil.example.com"})
		}, "wrong_issuer"},
		{"garbage", func(*env) string { return "not.a.jwt" }, "malformed"},
		{"missing", func(*env) string { return "" }, "missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, nil)
			req := lambdatest.Event(t, "testdata/connect-query.json", map[string]string{"TOKEN": c.token(e), "CONNECTION_ID": "rejected="})
			if c.reason == "missing" {
				delete(req.QueryStringParameters, "Authorization")
				delete(req.MultiValueQueryStringParameters, "Authorization")
			}
			resp, err := e.h.Handle(context.Background(), req)
			if err != nil || resp.StatusCode != 401 || resp.Body != connect.BodyUnauthorized {
				t.Fatalf("Handle = %d %q, %v; want 401 %q", resp.StatusCode, resp.Body, err, connect.BodyUnauthorized)
			}
			if _, err := e.ep.Store.Get(context.Background(), "rejected="); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a rejected connect left a record (Get err %v)", err)
			}
			lines := lambdatest.Lines(t, e.logs.String())
			lambdatest.CheckCommon(t, lines)
			rej := lambdatest.Find(lines, "connect rejected: authentication failed")
			if len(rej) != 1 || rej[0]["reason"] != c.reason || rej[0]["level"] != "warn" || rej[0]["error"] == nil || rej[0]["user_id"] != "" {
				t.Errorf("rejection log = %v, want reason %s", rej, c.reason)
			}
			doc := lambdatest.OneEMF(t, e.metrics.String())
			if v, _ := doc.Value(contract.MetricAuthenticationFailures); v != 1 || doc.Raw["reason"] != c.reason {
				t.Errorf("AuthenticationFailures = %v reason %v", v, doc.Raw["reason"])
			}
			if _, ok := doc.Value(contract.MetricConnectionsPerMinute); ok {
				t.Error("a rejected connect counted as a connection")
			}
		})
	}
}

// failingStore fails Save (or only AddActive).
type failingStore struct {
	saveErr, addErr error
	saved           []store.Connection
}

func (f *failingStore) Save(_ context.Context, c store.Connection) error {
	if f.saveErr != nil {
		return f.saveErr
	}
	f.saved = append(f.saved, c)
	return nil
}

func (f *failingStore) AddActive(context.Context, int64) (int64, error) { return 7, f.addErr }

func TestStoreFailureIs500WithGenericBody(t *testing.T) {
	secret := errors.New("operation error DynamoDB: PutItem, https response error StatusCode: 500, table arn:aws:dynamodb:secret")
	e := setup(t, &failingStore{saveErr: secret})
	req := lambdatest.Event(t, "testdata/connect-query.json", map[string]string{
		"TOKEN": e.mint(t, auth.MintOptions{UserID: "u", TenantID: "t"}), "CONNECTION_ID": "c="})
	resp, err := e.h.Handle(context.Background(), req)
	if err != nil || resp.StatusCode != 500 || resp.Body != connect.BodyInternal {
		t.Fatalf("Handle = %d %q, %v; want 500 %q", resp.StatusCode, resp.Body, err, connect.BodyInternal)
	}
	lines := lambdatest.Find(lambdatest.Lines(t, e.logs.String()), "connect failed: cannot save the connection record")
	if len(lines) != 1 || lines[0]["error"] != secret.Error() || lines[0]["level"] != "error" || lines[0]["user_id"] != "u" {
		t.Errorf("store failure log = %v", lines)
	}
	if e.metrics.String() != "" {
		t.Errorf("no connection metric may be emitted for a failed save: %s", e.metrics.String())
	}
}

func TestCounterFailureIsNotFatal(t *testing.T) {
	fs := &failingStore{addErr: errors.New("throttled")}
	e := setup(t, fs)
	req := lambdatest.Event(t, "testdata/connect-query.json", map[string]string{
		"TOKEN": e.mint(t, auth.MintOptions{UserID: "u", TenantID: "t"}), "CONNECTION_ID": "c="})
	resp, _ := e.h.Handle(context.Background(), req)
	if resp.StatusCode != 200 || len(fs.saved) != 1 {
		t.Fatalf("status %d, saved %d; want 200 and one record", resp.StatusCode, len(fs.saved))
	}
	if n := len(lambdatest.Find(lambdatest.Lines(t, e.logs.String()), "active connection counter not updated")); n != 1 {
		t.Errorf("want one counter warning, got %d", n)
	}
	doc := lambdatest.OneEMF(t, e.metrics.String())
	if _, ok := doc.Value(contract.MetricActiveConnections); ok {
		t.Errorf("ActiveConnections emitted without a counter value: %v", doc.Raw)
	}
}

func TestOversizedClientValuesAreTruncated(t *testing.T) {
	fs := &failingStore{}
	e := setup(t, fs)
	req := lambdatest.Event(t, "testdata/connect-query.json", map[string]string{
		"TOKEN": e.mint(t, auth.MintOptions{UserID: "u", TenantID: "t"}), "CONNECTION_ID": "c="})
	req.Headers["User-Agent"] = strings.Repeat("é", 400) // 800 bytes
	if resp, _ := e.h.Handle(context.Background(), req); resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	ua := fs.saved[0].Metadata.UserAgent
	if len(ua) > store.MaxUserAgentLength || len(ua) < store.MaxUserAgentLength-1 || strings.ToValidUTF8(ua, "?") != ua {
		t.Errorf("user agent len %d (valid UTF-8: %v), want cut to %d bytes", len(ua), strings.ToValidUTF8(ua, "?") == ua, store.MaxUserAgentLength)
	}
}

func TestMissingConnectionIDIs500(t *testing.T) {
	e := setup(t, &failingStore{})
	req := lambdatest.Event(t, "testdata/connect-query.json", map[string]string{
		"TOKEN": e.mint(t, auth.MintOptions{UserID: "u", TenantID: "t"}), "CONNECTION_ID": ""})
	if resp, _ := e.h.Handle(context.Background(), req); resp.StatusCode != 500 || resp.Body != connect.BodyInternal {
		t.Fatalf("status %d %q, want 500", resp.StatusCode, resp.Body)
	}
}

func TestToken(t *testing.T) {
	req := lambdatest.Event(t, "testdata/connect-header.json", map[string]string{"TOKEN": "abc", "CONNECTION_ID": "x"})
	if got := connect.Token(req); got != "abc" {
		t.Errorf("header token = %q", got)
	}
	req.Headers = nil // only the multi-value form left
	if got := connect.Token(req); got != "abc" {
		t.Errorf("multi-value header token = %q", got)
	}
	req.QueryStringParameters = map[string]string{"Authorization": "bearer q"}
	if got := connect.Token(req); got != "q" {
		t.Errorf("query token with lower-case bearer = %q", got)
	}
}

func TestEndpointSchemeFromXForwardedProto(t *testing.T) {
	const host = "dl7ptocha9.execute-api.ap-northeast-1.amazonaws.com/prod"
	for _, c := range []struct {
		name    string
		headers map[string]string
		multi   map[string][]string
		want    string
	}{
		{"absent", nil, nil, "https://" + host},
		{"https", map[string]string{"X-Forwarded-Proto": "https"}, nil, "https://" + host},
		{"http (the local gateway)", map[string]string{"X-Forwarded-Proto": "http"}, nil, "http://" + host},
		{"any header case", map[string]string{"x-forwarded-proto": "HTTP"}, nil, "http://" + host},
		{"multi-value only", nil, map[string][]string{"X-Forwarded-Proto": {"http"}}, "http://" + host},
		{"unknown scheme", map[string]string{"X-Forwarded-Proto": "ftp"}, nil, "https://" + host},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, nil)
			id := "R1kmxc2VNjMCFIA="
			req := lambdatest.Event(t, "testdata/connect-query.json",
				map[string]string{"TOKEN": e.mint(t, auth.MintOptions{UserID: "u", TenantID: "t"}), "CONNECTION_ID": id})
			req.Headers, req.MultiValueHeaders = c.headers, c.multi
			if got := connect.Endpoint(req); got != c.want {
				t.Errorf("Endpoint = %q, want %q", got, c.want)
			}
			if resp, err := e.h.Handle(context.Background(), req); err != nil || resp.StatusCode != 200 {
				t.Fatalf("Handle = %d, %v", resp.StatusCode, err)
			}
			if rec, err := e.ep.Store.Get(context.Background(), id); err != nil || rec.Endpoint != c.want {
				t.Errorf("recorded endpoint %q (%v), want %q", rec.Endpoint, err, c.want)
			}
		})
	}
}

func TestNewRequiresDependencies(t *testing.T) {
	if _, err := connect.New(connect.Deps{}, connect.Config{}); !errors.Is(err, connect.ErrMissingDependency) {
		t.Errorf("New with no deps = %v, want ErrMissingDependency", err)
	}
}

// TestValidTokenAgainstDynalite repeats the happy path on the second,
// independent DynamoDB-API implementation (STREAMER_TEST_DYNAMODB_ENDPOINT).
func TestValidTokenAgainstDynalite(t *testing.T) {
	e := setupWith(t, nil, dynamotest.Dynalite)
	tok := e.mint(t, auth.MintOptions{UserID: "user-d", TenantID: "tenant-d", Permissions: []string{"read"}})
	req := lambdatest.Event(t, "testdata/connect-query.json", map[string]string{"TOKEN": tok, "CONNECTION_ID": "DynaliteConn="})
	if resp, err := e.h.Handle(context.Background(), req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("Handle = %d, %v; want 200", resp.StatusCode, err)
	}
	got, err := e.ep.Store.Get(context.Background(), "DynaliteConn=")
	if err != nil || got.UserID != "user-d" || got.TenantID != "tenant-d" || !got.ConnectedAt.Equal(e.now) ||
		got.TTL != e.now.Add(24*time.Hour).Unix() || got.Metadata.IPAddress != "49.105.91.154" {
		t.Fatalf("record = %+v, %v", got, err)
	}
}

// withVerifier rebuilds e.h around v (same store, logs, metrics, clock).
func (e *env) withVerifier(t *testing.T, v connect.TokenVerifier) {
	t.Helper()
	h, err := connect.New(connect.Deps{
		Verifier: v,
		Store:    e.ep.Store,
		Logger:   observability.NewLogger(observability.LogConfig{Writer: e.logs, Function: "streamer-connect"}),
		Metrics:  observability.NewEMF(observability.EMFConfig{Writer: e.metrics, Environment: "test", Function: "connect"}),
		Tracer:   e.tracing.Tracer("test"),
		Now:      func() time.Time { return e.now },
	}, connect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
}

// TestKeySourceFailureIs500: when the verification keys cannot be had the
// server is at fault: 500 with the generic body, reason key_source in the
// log, KeySourceErrors (not AuthenticationFailures) in the metrics.
func TestKeySourceFailureIs500(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	slowRelease := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-slowRelease:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(slowRelease) })

	cases := []struct {
		name string
		url  string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"JWKS endpoint down", down.URL, func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }},
		{"deadline while waiting for JWKS", slow.URL, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, nil)
			keys, err := auth.NewJWKS(auth.JWKSConfig{URL: c.url})
			if err != nil {
				t.Fatal(err)
			}
			v, err := auth.NewVerifier(auth.VerifierConfig{Keys: keys, Issuer: issuer})
			if err != nil {
				t.Fatal(err)
			}
			e.withVerifier(t, v)
			req := lambdatest.Event(t, "testdata/connect-query.json", map[string]string{
				"TOKEN": e.mint(t, auth.MintOptions{UserID: "u", TenantID: "t"}), "CONNECTION_ID": "keysdown="})
			ctx, cancel := c.ctx()
			defer cancel()
			resp, err := e.h.Handle(ctx, req)
			if err != nil || resp.StatusCode != 500 || resp.Body != connect.BodyInternal {
				t.Fatalf("Handle = %d %q, %v; want 500 %q", resp.StatusCode, resp.Body, err, connect.BodyInternal)
			}
			if _, err := e.ep.Store.Get(context.Background(), "keysdown="); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("record saved without verification (Get err %v)", err)
			}
			lines := lambdatest.Lines(t, e.logs.String())
			lambdatest.CheckCommon(t, lines)
			if n := len(lambdatest.Find(lines, "connect rejected: authentication failed")); n != 0 {
				t.Errorf("a key source failure was logged as an authentication failure: %v", lines)
			}
			got := lambdatest.Find(lines, "connect failed: token verification keys unavailable")
			if len(got) != 1 || got[0]["reason"] != "key_source" || got[0]["level"] != "error" || got[0]["error"] == nil {
				t.Errorf("key source log = %v", got)
			}
			doc := lambdatest.OneEMF(t, e.metrics.String())
			if v, _ := doc.Value(contract.MetricKeySourceErrors); v != 1 || doc.Raw["reason"] != "key_source" {
				t.Errorf("KeySourceErrors = %v reason %v; doc %v", v, doc.Raw["reason"], doc.Raw)
			}
			if _, ok := doc.Value(contract.MetricAuthenticationFailures); ok {
				t.Errorf("a key source failure counted as an authentication failure: %v", doc.Raw)
			}
		})
	}
}

// TestClaimsOverStoreLimitsAre401: a validly signed token whose claims the
// record cannot hold is an unusable token: 401 invalid_claims and an
// authentication failure, not a 500.
func TestClaimsOverStoreLimitsAre401(t *testing.T) {
	tooMany := make([]string, store.MaxPermissions+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("perm-%d", i)
	}
	cases := map[string]auth.MintOptions{
		"too many permissions": {UserID: "u", TenantID: "t", Permissions: tooMany},
		"permission too long":  {UserID: "u", TenantID: "t", Permissions: []string{strings.Repeat("p", store.MaxPermissionLength+1)}},
		"sub too long":         {UserID: strings.Repeat("u", store.MaxIDLength+1), TenantID: "t"},
		"tenant too long":      {UserID: "u", TenantID: strings.Repeat("t", store.MaxIDLength+1)},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			e := setup(t, nil)
			req := lambdatest.Event(t, "testdata/connect-query.json", map[string]string{"TOKEN": e.mint(t, o), "CONNECTION_ID": "claims="})
			resp, err := e.h.Handle(context.Background(), req)
			if err != nil || resp.StatusCode != 401 || resp.Body != connect.BodyUnauthorized {
				t.Fatalf("Handle = %d %q, %v; want 401 %q", resp.StatusCode, resp.Body, err, connect.BodyUnauthorized)
			}
			if _, err := e.ep.Store.Get(context.Background(), "claims="); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a rejected connect left a record (Get err %v)", err)
			}
			rej := lambdatest.Find(lambdatest.Lines(t, e.logs.String()), "connect rejected: authentication failed")
			if len(rej) != 1 || rej[0]["reason"] != connect.ReasonInvalidClaims || rej[0]["level"] != "warn" || rej[0]["error"] == nil {
				t.Errorf("rejection log = %v, want reason %s", rej, connect.ReasonInvalidClaims)
			}
			doc := lambdatest.OneEMF(t, e.metrics.String())
			if v, _ := doc.Value(contract.MetricAuthenticationFailures); v != 1 || doc.Raw["reason"] != connect.ReasonInvalidClaims {
				t.Errorf("AuthenticationFailures = %v reason %v", v, doc.Raw["reason"])
			}
		})
	}
	// A bad value the gateway supplied is still the server's problem.
	e := setup(t, nil)
	req := lambdatest.Event(t, "testdata/connect-query.json", map[string]string{
		"TOKEN": e.mint(t, auth.MintOptions{UserID: "u", TenantID: "t"}), "CONNECTION_ID": "#stats"})
	if resp, _ := e.h.Handle(context.Background(), req); resp.StatusCode != 500 {
		t.Errorf("reserved connection id from the gateway: status %d, want 500", resp.StatusCode)
	}
}
