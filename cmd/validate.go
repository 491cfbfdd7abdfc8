package cmd

import (
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
