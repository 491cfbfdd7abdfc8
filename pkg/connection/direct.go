package connection

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/pay-theory/streamer/internal/sigv4"
)

// Client is the Management API client NewManagementClient returns: the AWS
// SDK's client (every method, unchanged) plus a direct PostToConnection
// and GetConnection the Manager uses on its hot paths (Send, Broadcast,
// Reconcile). The direct post sends the same wire
// request (SigV4 for execute-api, the same path encoding and content type;
// the signature is the SDK signer's, byte for byte: internal/sigv4)
// without the SDK's per-call middleware stack: measured at about a third of
// the SDK call's CPU (docs/decisions.md). It is
// used only for clients built here, which carry no middleware of their own;
// a client a user built (with tracing, say) is always called through the
// SDK.
type Client struct {
	*apigatewaymanagementapi.Client
	direct *directPoster
}

// directPoster is the optional fast path a ManagementAPI may offer the
// Manager.
type directPoster struct {
	hc     apigatewaymanagementapi.HTTPClient
	scheme string
	host   string // as dialled (with any port)
	// hostHeader is the Host header and the signed host: without the
	// scheme's default port, as the SDK sends it.
	hostHeader string
	// pathPrefix and rawPrefix are the endpoint's path (the stage) with
	// "/@connections/", unescaped and escaped.
	pathPrefix, rawPrefix string
	creds                 aws.CredentialsProvider
	signer                *sigv4.Signer
	// wire, when set, carries the requests instead of hc (see wire).
	wire *wire
}

// newDirectPoster is the fast path to endpoint; nil when endpoint is not a
// URL it can address (the SDK path then serves every call).
func newDirectPoster(hc apigatewaymanagementapi.HTTPClient, endpoint, region string, creds aws.CredentialsProvider) *directPoster {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil
	}
	hostHeader := u.Host
	if port := u.Port(); (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		hostHeader = strings.TrimSuffix(u.Host, ":"+port)
	}
	pathPrefix := strings.TrimRight(u.Path, "/") + "/@connections/"
	rawPrefix := strings.TrimRight(u.EscapedPath(), "/") + "/@connections/"
	if p, err := url.PathUnescape(rawPrefix); err != nil || p != pathPrefix {
		// A stage path whose escaping the request would not keep (say, an
		// escaped trailing slash): the SDK's path serves it.
		return nil
	}
	return &directPoster{hc: hc, scheme: u.Scheme, host: u.Host, hostHeader: hostHeader, pathPrefix: pathPrefix, rawPrefix: rawPrefix,
		creds: creds, signer: sigv4.New(region, "execute-api")}
}

// emptySHA256 is the SHA-256 of no body (a GET's payload hash).
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// postDirect posts payload (whose hex SHA-256 is hash) to id.
func (p *directPoster) postDirect(ctx context.Context, id string, payload []byte, hash string) error {
	return p.do(ctx, http.MethodPost, id, payload, hash)
}

// getDirect asks whether id is connected (GetConnection; the answer's body
// is not needed: 200 or an error).
func (p *directPoster) getDirect(ctx context.Context, id string) error {
	return p.do(ctx, http.MethodGet, id, nil, emptySHA256)
}

// do sends one signed request about id. Errors have the shapes classify
// reads from the SDK: a *smithyhttp.RequestSendError when no response
// came, else an *apiError with the status and the x-amzn-ErrorType code.
func (p *directPoster) do(ctx context.Context, method, id string, payload []byte, hash string) error {
	creds, err := p.creds.Retrieve(ctx)
	if err != nil {
		return &smithyhttp.RequestSendError{Err: fmt.Errorf("credentials: %w", err)}
	}
	// The path is built, not parsed: the endpoint's plus the id escaped
	// as the SDK escapes a path parameter.
	rawPath := string(sigv4.AppendEscaped(append(make([]byte, 0, len(p.rawPrefix)+3*len(id)), p.rawPrefix...), id))
	h := make(http.Header, 5)
	h["User-Agent"] = []string{"streamer"}
	sr := sigv4.Request{Method: method, Host: p.hostHeader, Path: rawPath, PayloadHash: hash}
	if payload != nil {
		h["Content-Type"] = []string{"application/octet-stream"}
		sr.ContentType, sr.ContentLength = "application/octet-stream", int64(len(payload))
	}
	p.signer.Sign(h, sr, creds, time.Now())
	if p.wire != nil {
		n := -1 // no body: no Content-Length (a GET)
		if payload != nil {
			n = len(payload)
		}
		req, err := appendRequestHead(make([]byte, 0, 640+len(payload)), method, rawPath, p.hostHeader, h, n)
		if err != nil {
			return &smithyhttp.RequestSendError{Err: err}
		}
		a, err := p.wire.do(ctx, append(req, payload...))
		if err != nil {
			return &smithyhttp.RequestSendError{Err: err}
		}
		return answerError(a.status, a.errType, a.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "", nil)
	if err != nil {
		return &smithyhttp.RequestSendError{Err: err}
	}
	// RawPath is what is sent; Path is its unescaped form, which keeps
	// RawPath in use.
	req.URL = &url.URL{Scheme: p.scheme, Host: p.host, Path: p.pathPrefix + id, RawPath: rawPath}
	req.Host = p.hostHeader
	if payload != nil {
		req.ContentLength = sr.ContentLength
		req.Body = io.NopCloser(bytes.NewReader(payload))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(payload)), nil }
		if len(payload) == 0 {
			req.Body, req.GetBody = http.NoBody, nil
		}
	}
	req.Header = h
	resp, err := p.hc.Do(req)
	if err != nil {
		return &smithyhttp.RequestSendError{Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, wireMaxDrain)) // keep the connection reusable
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, wireMaxErrorBody))
	return answerError(resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), body)
}

// answerError is nil for a 2xx answer, else the *apiError classify reads.
func answerError(status int, errType string, body []byte) error {
	if status >= 200 && status < 300 {
		return nil
	}
	e := &apiError{status: status, code: errType, body: body}
	// "GoneException:http://internal.amazon.com/..." carries a suffix.
	e.code, _, _ = strings.Cut(e.code, ":")
	if e.code == "" {
		e.code = "UnknownError" // the SDK's word for an answer without a type
	}
	return e
}

// apiError is an error answer of the direct post: what classify reads
// (HTTPStatusCode, smithy.APIError) without the SDK's typed exceptions.
type apiError struct {
	status int
	code   string
	body   []byte // the answer's JSON, read for its message only when shown
}

var _ smithy.APIError = (*apiError)(nil)

func (e *apiError) Error() string {
	return fmt.Sprintf("management API: HTTP %d %s: %s", e.status, e.code, e.ErrorMessage())
}
func (e *apiError) HTTPStatusCode() int { return e.status }
func (e *apiError) ErrorCode() string   { return e.code }

// ErrorMessage is the answer's "message": decoded on demand, since most
// answers (a 410 per zombie) are classified by status and code alone.
func (e *apiError) ErrorMessage() string {
	var msg struct {
		Message *string `json:"message"`
	}
	if json.Unmarshal(e.body, &msg) == nil && msg.Message != nil {
		return *msg.Message
	}
	return ""
}
func (e *apiError) ErrorFault() smithy.ErrorFault {
	if e.status >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}
