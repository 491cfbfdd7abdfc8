package localgw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Integration is what a route invokes: the equivalent of an API Gateway
// Lambda proxy integration.
type Integration interface {
	Invoke(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)
}

// HandlerFunc adapts an in-process handler (for example the real lambda
// handlers' Handle method) to an Integration.
type HandlerFunc func(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)

// Invoke calls f.
func (f HandlerFunc) Invoke(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	return f(ctx, req)
}

// Integration errors. The gateway answers all of them as API Gateway does an
// integration failure: 502 at $connect, an "Internal server error" frame for
// a message; a timeout gets 504 at $connect and an "Endpoint request timed
// out" frame for a message.
var (
	// ErrIntegrationPanic wraps a panic recovered from an in-process handler.
	ErrIntegrationPanic = errors.New("localgw: integration panicked")
	// ErrIntegrationTimeout is an integration that did not answer within
	// Config.IntegrationTimeout (API Gateway's 29 s).
	ErrIntegrationTimeout = errors.New("localgw: integration timed out")
	// ErrInvoke is an invoke endpoint that could not be reached or answered
	// something other than a function result.
	ErrInvoke = errors.New("localgw: lambda invoke failed")
)

// FunctionError is a Lambda function error: the function returned an error
// or crashed (X-Amz-Function-Error, or an errorMessage/errorType body).
type FunctionError struct {
	Type    string // errorType, or the X-Amz-Function-Error value ("Unhandled")
	Message string // errorMessage
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("localgw: lambda function error %s: %s", e.Type, e.Message)
}

// maxInvokeResponse is Lambda's synchronous response payload limit (6 MB).
const maxInvokeResponse = 6 << 20

// LambdaInvoke returns an Integration that POSTs the event JSON to a Lambda
// Invoke URL, for example the Runtime Interface Emulator's
// http://127.0.0.1:P/2015-03-31/functions/function/invocations. client nil
// => http.DefaultClient (the call is bounded by the gateway's integration
// timeout through ctx).
//
// A function error (X-Amz-Function-Error header, or a body with errorMessage
// and no statusCode) is returned as *FunctionError; API Gateway answers it as
// a 500. A null or empty result counts as 200 with no body, as API Gateway
// WebSocket routes treat it.
func LambdaInvoke(url string, client *http.Client) Integration {
	if client == nil {
		client = http.DefaultClient
	}
	return &lambdaInvoke{url: url, client: client}
}

type lambdaInvoke struct {
	url    string
	client *http.Client
}

func (l *lambdaInvoke) Invoke(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	var out events.APIGatewayProxyResponse
	payload, err := json.Marshal(ev)
	if err != nil {
		return out, fmt.Errorf("%w: encode event: %v", ErrInvoke, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url, bytes.NewReader(payload))
	if err != nil {
		return out, fmt.Errorf("%w: %v (check the invoke URL %q)", ErrInvoke, err, l.url)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return out, fmt.Errorf("%w: %v (is the function's invoke endpoint %s running?)", ErrInvoke, err, l.url)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxInvokeResponse+1))
	if err != nil {
		return out, fmt.Errorf("%w: read response: %v", ErrInvoke, err)
	}
	if len(body) > maxInvokeResponse {
		return out, fmt.Errorf("%w: response exceeds Lambda's 6 MB limit", ErrInvoke)
	}
	if fe := resp.Header.Get("X-Amz-Function-Error"); fe != "" {
		return out, functionError(fe, body)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return out, fmt.Errorf("%w: invoke endpoint answered %d: %s", ErrInvoke, resp.StatusCode, truncate(string(body), 200))
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		out.StatusCode = http.StatusOK
		return out, nil
	}
	var probe struct {
		StatusCode   *int    `json:"statusCode"`
		ErrorMessage *string `json:"errorMessage"`
		ErrorType    string  `json:"errorType"`
	}
	if err := json.Unmarshal(trimmed, &probe); err != nil {
		// A function returning a non-object (a bare string) is a malformed
		// proxy response: API Gateway answers 500 too.
		return out, fmt.Errorf("%w: function returned a malformed proxy response: %s", ErrInvoke, truncate(string(trimmed), 200))
	}
	if probe.StatusCode == nil && probe.ErrorMessage != nil {
		return out, &FunctionError{Type: probe.ErrorType, Message: *probe.ErrorMessage}
	}
	if err := json.Unmarshal(trimmed, &out); err != nil {
		return out, fmt.Errorf("%w: decode proxy response: %v", ErrInvoke, err)
	}
	if probe.StatusCode == nil {
		out.StatusCode = http.StatusOK
	}
	return out, nil
}

func functionError(header string, body []byte) error {
	fe := &FunctionError{Type: header}
	var b struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}
	if json.Unmarshal(body, &b) == nil {
		if b.ErrorType != "" {
			fe.Type = b.ErrorType
		}
		fe.Message = b.ErrorMessage
	} else {
		fe.Message = truncate(string(body), 200)
	}
	return fe
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// invoke runs an integration within Config.IntegrationTimeout, counting
// failures. It returns at the timeout even when the integration ignores its
// ctx (as API Gateway stops waiting for a Lambda that runs on): the late
// result is discarded, never delivered.
func (g *Gateway) invoke(ctx context.Context, in Integration, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.IntegrationTimeout)
	defer cancel()
	type result struct {
		resp events.APIGatewayProxyResponse
		err  error
	}
	done := make(chan result, 1) // the integration never blocks on it
	go func() {
		resp, err := safeInvoke(ctx, in, ev)
		done <- result{resp, err}
	}()
	var r result
	got := false
	select {
	case r, got = <-done:
	case <-ctx.Done():
	}
	// A result that came with (or after) the deadline is late too.
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		g.metrics.integrationErrors.Add(1)
		g.metrics.integrationTimeouts.Add(1)
		return events.APIGatewayProxyResponse{}, fmt.Errorf("%w after %s", ErrIntegrationTimeout, g.cfg.IntegrationTimeout)
	}
	if !got {
		r.err = ctx.Err() // the gateway's hard stop cancelled it
	}
	if r.err != nil {
		g.metrics.integrationErrors.Add(1)
	}
	return r.resp, r.err
}

// safeInvoke runs an integration, turning a panic into ErrIntegrationPanic so
// one broken handler cannot take the gateway down.
func safeInvoke(ctx context.Context, in Integration, ev events.APIGatewayWebsocketProxyRequest) (resp events.APIGatewayProxyResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrIntegrationPanic, p, debug.Stack())
			resp = events.APIGatewayProxyResponse{}
		}
	}()
	return in.Invoke(ctx, ev)
}
