package connection

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
)

// The direct post is the SDK's request without the SDK: the same method,
// escaped path (the SigV4 canonical URI), body, content type and signed
// headers, for ids that need escaping.
func TestDirectPostSendsTheSDKsRequest(t *testing.T) {
	type seen struct {
		method, path, ctype, body, auth string
	}
	var mu sync.Mutex
	var got []seen
	g := newFakeGateway(t)
	inner := g.srv.Config.Handler
	g.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.EscapedPath(), r.Header.Get("Content-Type"), "", r.Header.Get("Authorization")})
		mu.Unlock()
		inner.ServeHTTP(w, r)
	})
	c := NewManagementClient(g.endpoint(), ClientOptions{})
	defer CloseIdleConnections(c)
	ctx := context.Background()
	for _, id := range []string{"L0SM9cOFvHcCIhw=", "a+b/c=", "x_y-z="} {
		if _, err := c.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: []byte("hi")}); err != nil {
			t.Fatal(err)
		}
		if err := c.direct.postDirect(ctx, id, []byte("hi"), newPayload([]byte("hi")).hash); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < len(got); i += 2 {
		sdk, direct := got[i], got[i+1]
		if sdk.method != direct.method || sdk.path != direct.path || sdk.ctype != direct.ctype {
			t.Errorf("SDK %+v, direct %+v", sdk, direct)
		}
		if !strings.HasPrefix(direct.auth, "AWS4-HMAC-SHA256 Credential=local/") || !strings.Contains(direct.auth, "/execute-api/aws4_request") ||
			!strings.Contains(direct.auth, "SignedHeaders=") {
			t.Errorf("direct Authorization %q", direct.auth)
		}
	}
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
