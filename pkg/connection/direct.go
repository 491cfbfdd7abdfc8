package connection

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	smithy "github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/httpbinding"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Client is the Management API client NewManagementClient returns: the AWS
// SDK's client (every method, unchanged) plus a direct PostToConnection
// and GetConnection the Manager uses on its hot paths (Send, Broadcast,
// Reconcile). The direct post sends the same wire
// request (SigV4 for execute-api, the same path encoding and content type)
// with the SDK's own signer, without the SDK's per-call middleware stack:
// measured at about a third of the SDK call's CPU (docs/decisions.md). It is
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
	hc       apigatewaymanagementapi.HTTPClient
	base     string // endpoint with the stage, no trailing slash
	region   string
	creds    aws.CredentialsProvider
	signer   *v4.Signer
	clockNow func() time.Time
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
	u := p.base + "/@connections/" + httpbinding.EscapePath(id, true)
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return &smithyhttp.RequestSendError{Err: err}
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("User-Agent", "streamer")
	creds, err := p.creds.Retrieve(ctx)
	if err != nil {
		return &smithyhttp.RequestSendError{Err: fmt.Errorf("credentials: %w", err)}
	}
	if err := p.signer.SignHTTP(ctx, creds, req, hash, "execute-api", p.region, p.clockNow()); err != nil {
		return &smithyhttp.RequestSendError{Err: err}
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return &smithyhttp.RequestSendError{Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection reusable
		return nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	e := &apiError{status: resp.StatusCode, code: resp.Header.Get("X-Amzn-Errortype")}
	// "GoneException:http://internal.amazon.com/..." carries a suffix.
	e.code, _, _ = strings.Cut(e.code, ":")
	if e.code == "" {
		e.code = "UnknownError" // the SDK's word for an answer without a type
	}
	var msg struct {
		Message *string `json:"message"`
	}
	if json.Unmarshal(raw, &msg) == nil && msg.Message != nil {
		e.message = *msg.Message
	}
	return e
}

// apiError is an error answer of the direct post: what classify reads
// (HTTPStatusCode, smithy.APIError) without the SDK's typed exceptions.
type apiError struct {
	status        int
	code, message string
}

var _ smithy.APIError = (*apiError)(nil)

func (e *apiError) Error() string {
	return fmt.Sprintf("management API: HTTP %d %s: %s", e.status, e.code, e.message)
}
func (e *apiError) HTTPStatusCode() int  { return e.status }
func (e *apiError) ErrorCode() string    { return e.code }
func (e *apiError) ErrorMessage() string { return e.message }
func (e *apiError) ErrorFault() smithy.ErrorFault {
	if e.status >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}
