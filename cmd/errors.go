package cmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/store"
)

// The CLI explains failures in its own words, deciding by type (errors.Is
// and errors.As on the libraries' sentinels and error types), never by an
// error's text: what could not be reached, at which URL, and what to do.

// Names of the services in "cannot reach the ... at URL" messages.
const (
	managementAPI = "management API"
	dynamoDBAPI   = "DynamoDB API"
	wsEndpoint    = "WebSocket endpoint"
)

// UnreachableError is a service that did not answer at its URL: refused,
// no such host, or silent until the deadline. Its text names the service,
// the URL (credentials redacted) and what to do.
type UnreachableError struct {
	Service string // managementAPI, dynamoDBAPI or wsEndpoint
	URL     string
	Err     error
}

func (e *UnreachableError) Error() string {
	flag := "--endpoint"
	switch e.Service {
	case wsEndpoint:
		flag = "--ws-url"
	case dynamoDBAPI:
		flag = "--endpoint/--dynamodb-endpoint"
	}
	return fmt.Sprintf("cannot reach the %s at %s: %v\nhint: is `streamer local` running? start it, or point %s at your stack", e.Service, e.URL, e.Err, flag)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// explainNetErr turns "could not reach" failures into an *UnreachableError
// (what names the service); other errors pass through. Credentials in the
// URL or the error's text (a WebSocket URL's ?Authorization= token) are
// redacted either way.
func explainNetErr(what, url string, err error) error {
	if err == nil {
		return nil
	}
	err = redactErr(err)
	if !unreachable(err) {
		return err
	}
	return &UnreachableError{Service: what, URL: redactURL(url), Err: err}
}

// unreachable reports whether err says the other end never answered: a
// dial or DNS failure, a deadline, or the libraries' own words for it
// (store.ErrUnavailable, connection.ErrNetwork).
func unreachable(err error) bool {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &opErr) || errors.As(err, &dnsErr) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, store.ErrUnavailable) || errors.Is(err, connection.ErrNetwork)
}

// storeURL names the DynamoDB endpoint the store talks to.
func storeURL(cfg Config) string {
	if cfg.DynamoDBEndpoint != "" {
		return cfg.DynamoDBEndpoint
	}
	return "DynamoDB in " + cfg.Region
}

// storeErr explains a store failure: refused input as a usage error, a
// missing table with the flag that names it, an unreachable endpoint with
// its URL.
func storeErr(cfg Config, err error) error {
	if err == nil {
		return nil
	}
	if ue := storeValidation(err); ue != nil {
		return ue
	}
	url := storeURL(cfg)
	if errors.Is(err, store.ErrTableNotFound) {
		// The store's own words (create the table first) are for library
		// users; here the flag is what is wrong.
		return &wordedError{msg: fmt.Sprintf("table %s not found at %s\nhint: pass --table / STREAMER_TABLE with the deployed table's name", cfg.Table, url), err: err}
	}
	return explainNetErr(dynamoDBAPI, url, err)
}

// explainSendErr names the service a failed send could not reach: the
// Manager reads the store before posting, so either may be the one down.
func explainSendErr(cfg Config, err error) error {
	if errors.Is(err, connection.ErrStoreUnavailable) || errors.Is(err, store.ErrUnavailable) {
		return storeErr(cfg, err)
	}
	return explainNetErr(managementAPI, cfg.Endpoint, err)
}

// storeValidation rewords the store's validation errors (which name record
// fields, like "connection_id is required") for the command line as usage
// errors; it returns nil when err is not one.
func storeValidation(err error) error {
	var ve *store.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	field := map[string]string{
		"connection_id": "connection id", "tenant_id": "--tenant", "user_id": "--user",
		"page_size": "--page-size", "cursor": "listing cursor", "query": "listing",
	}[ve.Field]
	if field == "" {
		field = strings.ReplaceAll(ve.Field, "_", " ")
	}
	return &UsageError{Err: &wordedError{msg: field + " " + ve.Reason, err: err}}
}
