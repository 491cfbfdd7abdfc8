package connection

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
)

// ManagementAPI is the part of the API Gateway Management API the Manager
// uses, with the aws-sdk-go-v2 signatures: *apigatewaymanagementapi.Client
// implements it, and so can a test double or an in-process gateway.
type ManagementAPI interface {
	PostToConnection(ctx context.Context, params *apigatewaymanagementapi.PostToConnectionInput, optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.PostToConnectionOutput, error)
	GetConnection(ctx context.Context, params *apigatewaymanagementapi.GetConnectionInput, optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.GetConnectionOutput, error)
	DeleteConnection(ctx context.Context, params *apigatewaymanagementapi.DeleteConnectionInput, optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.DeleteConnectionOutput, error)
}

// DefaultMaxConns bounds the connections the dedicated transport opens to
// the endpoint (and keeps idle for reuse): as many as the default
// concurrency limit can have in flight, so the limit, not the transport,
// decides.
const DefaultMaxConns = DefaultMaxInFlight

// ClientOptions configures NewManagementClient. The zero value is valid.
type ClientOptions struct {
	// Region signs requests. "" => the region in an execute-api host name
	// (abc.execute-api.eu-west-1.amazonaws.com), else AWS_REGION /
	// AWS_DEFAULT_REGION, else us-east-1. A wrong region makes AWS answer 403.
	Region string
	// Credentials sign requests. nil => static dummy credentials when the
	// endpoint is loopback (localhost, 127.0.0.0/8, ::1: the local gateway
	// does not check signatures), else the SDK default chain (environment,
	// shared config, the Lambda role...), loaded lazily on the first request
	// so a misconfiguration surfaces as that request's error.
	Credentials aws.CredentialsProvider
	// HTTPClient replaces the dedicated transport entirely (MaxConns is then ignored).
	HTTPClient *http.Client
	// MaxConns caps connections to the endpoint; 0 => DefaultMaxConns.
	MaxConns int
}

// NewManagementClient returns an API Gateway Management API client for
// endpoint (http://127.0.0.1:4510/local or
// https://abc.execute-api.us-east-1.amazonaws.com/prod: the stage is part of
// the base path). The SDK's own retryer is off (one attempt is one HTTP
// request): the Manager retries with its own policy, breaker and metrics.
// Requests go through a dedicated keep-alive transport with at most MaxConns
// connections, so a broadcast reuses warm connections instead of paying a
// TCP+TLS handshake per message.
func NewManagementClient(endpoint string, opts ClientOptions) *Client {
	endpoint = strings.TrimRight(endpoint, "/")
	loopback := IsLoopbackEndpoint(endpoint)
	region := opts.Region
	if region == "" {
		region = regionFor(endpoint)
	}
	creds := opts.Credentials
	if creds == nil {
		if loopback {
			creds = credentials.NewStaticCredentialsProvider("local", "local", "")
		} else {
			creds = aws.NewCredentialsCache(&lazyDefaultCredentials{region: region})
		}
	}
	var hc apigatewaymanagementapi.HTTPClient = opts.HTTPClient
	if opts.HTTPClient == nil {
		hc = &http.Client{Transport: NewTransport(opts.MaxConns)}
	}
	c := apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		BaseEndpoint:     aws.String(endpoint),
		Region:           region,
		Credentials:      creds,
		HTTPClient:       hc,
		Retryer:          aws.NopRetryer{},
		RetryMaxAttempts: 1,
	})
	// The SDK wraps credentials in a cache; the direct post reads the same.
	d := newDirectPoster(hc, endpoint, region, c.Options().Credentials)
	if d != nil && opts.HTTPClient == nil && !proxied(endpoint, http.ProxyFromEnvironment) {
		maxConns := opts.MaxConns
		if maxConns <= 0 {
			maxConns = DefaultMaxConns
		}
		d.wire = newWire(d.scheme, d.host, maxConns)
	}
	return &Client{Client: c, direct: d}
}

// proxied reports whether proxy (http.ProxyFromEnvironment: HTTPS_PROXY,
// HTTP_PROXY, NO_PROXY) sends requests to endpoint through a proxy, which
// only net/http's transport speaks to.
func proxied(endpoint string, proxy func(*http.Request) (*url.URL, error)) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return true
	}
	p, err := proxy(&http.Request{URL: u})
	return err != nil || p != nil
}

// NewTransport is the dedicated transport NewManagementClient uses:
// keep-alive, at most maxConns (0 => DefaultMaxConns) connections per host,
// all of them allowed to stay idle for reuse. HTTP/1.1 keeps the connection
// cap meaningful (one request per connection at a time).
func NewTransport(maxConns int) *http.Transport {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          maxConns,
		MaxIdleConnsPerHost:   maxConns,
		MaxConnsPerHost:       maxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// CloseIdleConnections closes the idle keep-alive connections of api's HTTP
// client (and of the direct path's, for NewManagementClient's) when api is
// an SDK client (a no-op otherwise). Tests call it so no
// connection goroutine outlives them; Lambdas never need it.
func CloseIdleConnections(api ManagementAPI) {
	if c, ok := api.(*Client); ok && c.direct != nil && c.direct.wire != nil {
		c.direct.wire.closeIdle()
	}
	c, ok := api.(interface {
		Options() apigatewaymanagementapi.Options
	})
	if !ok {
		return
	}
	if ci, ok := c.Options().HTTPClient.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

type lazyDefaultCredentials struct {
	region string
	once   sync.Once
	prov   aws.CredentialsProvider
	err    error
}

func (l *lazyDefaultCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	l.once.Do(func() {
		cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(l.region))
		l.prov, l.err = cfg.Credentials, err
	})
	if l.err != nil {
		return aws.Credentials{}, l.err
	}
	if l.prov == nil {
		return aws.Credentials{}, errNoCredentials
	}
	return l.prov.Retrieve(ctx)
}

var errNoCredentials = &credentialsError{}

type credentialsError struct{}

func (*credentialsError) Error() string {
	return "no AWS credentials found in the default chain: set AWS_PROFILE or AWS_ACCESS_KEY_ID, or pass ClientOptions.Credentials"
}

// IsLoopbackEndpoint reports whether endpoint's host is localhost or a
// loopback address (127.0.0.0/8, ::1): a local gateway, which checks no
// signatures.
func IsLoopbackEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// RegionFromEndpoint returns the region in an execute-api endpoint's host
// name ({api-id}.execute-api.{region}.amazonaws.com); "" when it is not
// one.
func RegionFromEndpoint(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	parts := strings.Split(u.Hostname(), ".")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "execute-api" {
			return parts[i+1]
		}
	}
	return ""
}

// regionFor is the signing region when ClientOptions.Region is empty.
func regionFor(endpoint string) string {
	if r := RegionFromEndpoint(endpoint); r != "" {
		return r
	}
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return "us-east-1"
}
