package cmd

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pay-theory/streamer/pkg/store"
)

// Arguments are checked in RunE, before any file, network or AWS call, so a
// typo costs nothing and exits 2 with what is wrong and what to do.

const idExample = "API Gateway ids look like L0SM9cOFvHcCIhw="

// checkConnectionID refuses what cannot be a connection id. what names the
// argument in the message ("connection id", "--ids entry 3").
func checkConnectionID(what, id string) error {
	hint := "list live connections with `streamer conn ls`"
	switch {
	case strings.TrimSpace(id) == "":
		return &UsageError{Err: fmt.Errorf("%s is blank: give a connection id (%s); %s", what, idExample, hint)}
	case len(id) > store.MaxIDLength:
		return &UsageError{Err: fmt.Errorf("%s is %d bytes, longer than any connection id (at most %d; %s); %s", what, len(id), store.MaxIDLength, idExample, hint)}
	case strings.HasPrefix(id, "#"):
		return &UsageError{Err: fmt.Errorf("%s %q starts with \"#\", which no connection id does (the table keeps internal items under such keys); %s", what, id, hint)}
	case !utf8.ValidString(id):
		return &UsageError{Err: fmt.Errorf("%s is not valid UTF-8; %s", what, hint)}
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return &UsageError{Err: fmt.Errorf("%s %q holds a control character (tab, newline, ...); copy the id alone, e.g. with `streamer conn ls | cut -f1`", what, id)}
	case strings.TrimSpace(id) != id:
		return &UsageError{Err: fmt.Errorf("%s %q has leading or trailing spaces; connection ids have none (%s)", what, id, idExample)}
	}
	return nil
}

// checkOwnerID checks a --tenant or --user value (empty means "not given"
// and is the caller's business).
func checkOwnerID(flag, v string) error {
	switch {
	case v == "":
		return nil
	case strings.TrimSpace(v) == "":
		return &UsageError{Err: fmt.Errorf("%s is blank: give an id, or leave the flag out", flag)}
	case len(v) > store.MaxIDLength:
		return &UsageError{Err: fmt.Errorf("%s is %d bytes, longer than the %d-byte limit on stored ids, so it cannot match any connection", flag, len(v), store.MaxIDLength)}
	case !utf8.ValidString(v):
		return &UsageError{Err: fmt.Errorf("%s is not valid UTF-8", flag)}
	}
	return nil
}

// checkOutput refuses an -o value the command does not know, before it does
// anything. allowed lists the accepted values; "" is always accepted.
func checkOutput(flag string, allowed ...string) error {
	if flag == "" {
		return nil
	}
	for _, a := range allowed {
		if flag == a {
			return nil
		}
	}
	return &UsageError{Err: fmt.Errorf("unknown --output %q: use %s", flag, orList(allowed))}
}

// dataFormats are the -o values of commands that print data.
var dataFormats = []string{FormatTable, FormatJSON, FormatPlain}

func orList(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
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
	return &UsageError{Err: &redactedError{msg: field + " " + ve.Reason, err: err}}
}

// checkTargetArgs is the usage check of the commands that act on one
// connection (send, conn inspect, conn kick): its id and the -o format,
// before any I/O.
func checkTargetArgs(connectionID, output string) error {
	if err := checkConnectionID("connection id", connectionID); err != nil {
		return err
	}
	return checkOutput(output, dataFormats...)
}
