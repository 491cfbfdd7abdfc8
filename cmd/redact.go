package cmd

import (
	"errors"
	"io"
	"log/slog"
	"net/url"
	"regexp"
)

// Secrets never reach a message, a log line or a report: a WebSocket URL
// carries the client's JWT as ?Authorization=..., and the HTTP client's
// errors (*url.Error) quote the whole URL.

// redacted replaces a secret.
const redacted = "REDACTED"

var (
	// secretParam: a query parameter whose name says it holds a credential.
	secretParam = regexp.MustCompile(`(?i)([?&;](?:authorization|auth|token|access_token|id_token|refresh_token|jwt|bearer|api_key|apikey|key|secret|password|passwd|signature|sig|x-amz-security-token|x-amz-signature|x-amz-credential)=)[^&;#\s"'<>]*`)
	// opaqueParam: any query value long and opaque enough to be a token.
	opaqueParam = regexp.MustCompile(`([?&;][A-Za-z0-9_.\-]+=)[A-Za-z0-9_.\-~%+/=]{32,}`)
	// jwtLike: a JWT anywhere (its header always starts with {" => eyJ).
	jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*`)
	// userinfoPassword: scheme://user:password@host.
	userinfoPassword = regexp.MustCompile(`(://[^/\s:@"']+:)[^/\s@"']+@`)
)

// redactText scrubs credentials from free text: query values of
// credential-named parameters, long opaque query values, JWTs and URL
// passwords.
func redactText(s string) string {
	s = secretParam.ReplaceAllString(s, "${1}"+redacted)
	s = opaqueParam.ReplaceAllString(s, "${1}"+redacted)
	s = jwtLike.ReplaceAllString(s, redacted)
	return userinfoPassword.ReplaceAllString(s, "${1}"+redacted+"@")
}

// redactURL is a URL fit for a message: redactText on it (which keeps the
// scheme, host and path an operator needs to recognise it).
func redactURL(raw string) string { return redactText(raw) }

// wordedError is an error shown in other words than its own: its text
// with credentials scrubbed, or the CLI's explanation of it. errors.Is and
// errors.As still reach the original.
type wordedError struct {
	msg string
	err error
}

func (e *wordedError) Error() string { return e.msg }
func (e *wordedError) Unwrap() error { return e.err }

// redactErr scrubs credentials from err's text and from the URL of any
// *url.Error it wraps (so errors.As cannot hand the raw URL on either).
func redactErr(err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redactURL(ue.URL)
	}
	msg := err.Error()
	if r := redactText(msg); r != msg {
		return &wordedError{msg: r, err: err}
	}
	return err
}

// redactingWriter scrubs credentials from each write (a log handler writes
// one whole record per call).
type redactingWriter struct{ w io.Writer }

func (r redactingWriter) Write(p []byte) (int, error) {
	s := redactText(string(p))
	if _, err := io.WriteString(r.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}

// redactAttr is a slog ReplaceAttr that scrubs string and error values.
func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch v := a.Value.Any().(type) {
	case string:
		return slog.String(a.Key, redactText(v))
	case error:
		return slog.String(a.Key, redactText(v.Error()))
	}
	return a
}

// internalPrefix matches the package prefixes library errors start with
// ("store: ", "connection: ", ...), at the start of a message or of a
// wrapped part of it.
var internalPrefix = regexp.MustCompile(`(^|: |\()(?:store|connection|auth|localgw|localstack|dashboard): `)

// userText is how any error text reaches the user: credentials scrubbed and
// library package prefixes dropped (they name Go packages, not problems).
func userText(s string) string {
	return internalPrefix.ReplaceAllString(redactText(s), "$1")
}
