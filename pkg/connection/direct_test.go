package connection

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
)

// The direct post is the SDK's request without the SDK: the same method,
// escaped path (the SigV4 canonical URI), body and content type, for ids
// that need escaping, and a signature the SDK's signer agrees with: the
// gateway re-signs each direct request it receives with v4.Signer (same
// credentials, time and signed headers) and compares.
func TestDirectPostSendsTheSDKsRequest(t *testing.T) {
	type seen struct {
		method, path, ctype, body, auth, resigned string
	}
	var mu sync.Mutex
	var got []seen
	g := newFakeGateway(t)
	inner := g.srv.Config.Handler
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "IQoJb3JpZ2luX2VjEExample=="}
	g.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		resigned := resign(t, r, body, creds)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.EscapedPath(), r.Header.Get("Content-Type"), string(body), r.Header.Get("Authorization"), resigned})
		mu.Unlock()
		inner.ServeHTTP(w, r)
	})
	c := NewManagementClient(g.endpoint(), ClientOptions{Credentials: credentials.StaticCredentialsProvider{Value: creds}, Region: "eu-west-3"})
	defer CloseIdleConnections(c)
	ctx := context.Background()
	sum := sha256.Sum256([]byte("hi"))
	hash := hex.EncodeToString(sum[:])
	for _, id := range []string{"L0SM9cOFvHcCIhw=", "a+b/c=", "x_y-z=", "%41 é"} {
		if _, err := c.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: []byte("hi")}); err != nil {
			t.Fatal(err)
		}
		if err := c.direct.postDirect(ctx, id, []byte("hi"), hash); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)}); err != nil {
			t.Fatal(err)
		}
		if err := c.direct.getDirect(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 16 {
		t.Fatalf("%d requests, want 16", len(got))
	}
	for i := 0; i < len(got); i += 2 {
		sdk, direct := got[i], got[i+1]
		if sdk.method != direct.method || sdk.path != direct.path || sdk.ctype != direct.ctype || sdk.body != direct.body {
			t.Errorf("SDK %+v, direct %+v", sdk, direct)
		}
		if !strings.HasPrefix(direct.path, "/test/@connections/") {
			t.Errorf("direct path %q", direct.path)
		}
		if direct.auth == "" || direct.auth != direct.resigned {
			t.Errorf("%s %s: direct Authorization\n %q\nthe SDK's signer says\n %q", direct.method, direct.path, direct.auth, direct.resigned)
		}
	}
}

// resign signs a request the way a verifier does: the received method,
// path, host and the headers the request says it signed, with the SDK's
// signer at the request's own X-Amz-Date.
func resign(t *testing.T, r *http.Request, body []byte, creds aws.Credentials) string {
	auth := r.Header.Get("Authorization")
	_, signedList, _ := strings.Cut(auth, "SignedHeaders=")
	signedList, _, _ = strings.Cut(signedList, ",")
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "no X-Amz-Date: " + err.Error()
	}
	req, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.EscapedPath(), nil)
	if err != nil {
		t.Error(err)
		return ""
	}
	req.ContentLength = int64(len(body))
	for _, k := range strings.Split(signedList, ";") {
		switch k {
		case "host", "content-length", "x-amz-date", "x-amz-security-token":
		default:
			req.Header[http.CanonicalHeaderKey(k)] = r.Header.Values(k)
		}
	}
	sum := sha256.Sum256(body)
	_, scope, _ := strings.Cut(auth, "Credential=")
	region := strings.Split(scope, "/")[2]
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "execute-api", region, when); err != nil {
		t.Error(err)
	}
	return req.Header.Get("Authorization")
}

// A user's own SDK client (which may carry tracing middleware) is called
// through the SDK, and the outcomes are the same as the direct path's.
func TestManagerUsesAUsersSDKClientAsIs(t *testing.T) {
	for _, tc := range []struct {
		reply reply
		want  error
	}{{reply{}, nil}, {gone, ErrConnectionStale}, {forbidden, ErrForbidden}, {tooLarge, ErrPayloadTooLarge}, {internal, ErrServerError}} {
		g := newFakeGateway(t)
		g.on("", tc.reply)
		var calls int
		var mu sync.Mutex
		sdk := NewManagementClient(g.endpoint(), ClientOptions{}).Client
		counting := apigatewaymanagementapi.New(sdk.Options(), func(o *apigatewaymanagementapi.Options) {
			o.HTTPClient = countingClient{o.HTTPClient, func() { mu.Lock(); calls++; mu.Unlock() }}
		})
		m, err := New(counting, newMemStore("abc="), Config{Logger: quietLogger(), FlushInterval: -1, MaxAttempts: 1, Clock: newFakeClock(true)})
		if err != nil {
			t.Fatal(err)
		}
		err = m.Send(context.Background(), "abc=", "hi")
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%+v: err %v, want %v", tc.reply, err, tc.want)
		}
		mu.Lock()
		if calls != 1 {
			t.Errorf("%+v: the user's client saw %d requests, want 1 (no direct path for it)", tc.reply, calls)
		}
		mu.Unlock()
		_ = m.Shutdown(context.Background())
		CloseIdleConnections(counting)
	}
}

type countingClient struct {
	apigatewaymanagementapi.HTTPClient
	inc func()
}

func (c countingClient) Do(r *http.Request) (*http.Response, error) {
	c.inc()
	return c.HTTPClient.Do(r)
}

// Endpoints the direct path cannot address exactly are left to the SDK.
func TestDirectPathOnlyForEndpointsItCanAddress(t *testing.T) {
	for endpoint, want := range map[string]bool{
		"https://abc.execute-api.us-east-1.amazonaws.com/prod": true,
		"https://abc.execute-api.us-east-1.amazonaws.com:443/": true,
		"http://127.0.0.1:4510/local":                          true,
		"https://h/prod%2F":                                    false, // an escaped slash the stage path would lose
		"https://h/prod?x=1":                                   false,
		"ftp://h/prod":                                         false,
		"https://user:pw@h/prod":                               false,
	} {
		c := NewManagementClient(endpoint, ClientOptions{Region: "us-east-1"})
		if got := c.direct != nil; got != want {
			t.Errorf("%s: direct path %v, want %v", endpoint, got, want)
		}
		if c.direct != nil && strings.HasSuffix(c.direct.hostHeader, ":443") {
			t.Errorf("%s: Host header %q keeps the default port", endpoint, c.direct.hostHeader)
		}
		CloseIdleConnections(c)
	}
}
