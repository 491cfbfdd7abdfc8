package cmd

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/store"
)

// Arguments are checked in RunE, before any file, network or AWS call, so a
// typo costs nothing and exits 2 with what is wrong and what to do.

const idExample = "API Gateway ids look like L0SM9cOFvHcCIhw="

// idAsFlag explains a flag error that was a connection id: ids are
// URL-safe base64, so one in 64 starts with "-" and reads as flags
// ("unknown shorthand flag: 'Q' in -QrQlda4YyxJ0B0="). Other errors are
// returned as they are.
func idAsFlag(c *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return err
	}
	tok := "--" + ne.GetSpecifiedName()
	if s := ne.GetSpecifiedShortnames(); s != "" {
		tok = "-" + s
	}
	if !localgw.WellFormedID(tok) {
		return err
	}
	return fmt.Errorf("%w\n%s looks like a connection id: an id that starts with \"-\" goes after \"--\" (flags before it), as in: %s -- %s",
		err, tok, c.CommandPath(), tok)
}

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
	case strings.IndexFunc(id, invisible) >= 0:
		return &UsageError{Err: fmt.Errorf("%s %q holds a control character (tab, newline, a bidi override, ...); copy the id alone, e.g. with `streamer conn ls | cut -f1`", what, id)}
	case strings.TrimSpace(id) != id:
		return &UsageError{Err: fmt.Errorf("%s %q has leading or trailing spaces; connection ids have none (%s)", what, id, idExample)}
	}
	return nil
}

// invisible reports the runes no connection id holds and a terminal would
// act on rather than show: control characters (C0, DEL, C1) and Unicode
// format characters (bidi overrides, zero-width characters).
func invisible(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

// checkOwnerID checks a --tenant or --user value (empty means "not given"
// and is the caller's business).
func checkOwnerID(flag, v string) error {
	switch {
	case v == "":
		return nil
	case strings.TrimSpace(v) == "":
		return &UsageError{Err: fmt.Errorf("%s is blank: give an id, or leave the flag out", flag)}
	case len(v) > store.MaxIDLength:
		return &UsageError{Err: fmt.Errorf("%s is %d bytes, longer than the %d-byte limit on stored ids (no connection can have it)", flag, len(v), store.MaxIDLength)}
	case !utf8.ValidString(v):
		return &UsageError{Err: fmt.Errorf("%s is not valid UTF-8", flag)}
	}
	return nil
}

// checkOwnerFlags checks the --tenant and --user values a command was given
// (either may be empty).
func checkOwnerFlags(tenantID, userID string) error {
	if err := checkOwnerID("--tenant", tenantID); err != nil {
		return err
	}
	return checkOwnerID("--user", userID)
}

// checkClaims refuses token claims $connect would refuse or could not
// store: an empty or blank sub or tenant_id (missing_claim), ids over the
// store's limits, empty permissions or audiences.
func checkClaims(user, tenant string, perms, audience []string) error {
	for _, c := range []struct{ flag, v string }{{"--user", user}, {"--tenant", tenant}} {
		if strings.TrimSpace(c.v) == "" {
			return &UsageError{Err: fmt.Errorf("%s is blank: $connect refuses a token without it; give an id, or leave the flag out for the default", c.flag)}
		}
		if err := checkOwnerID(c.flag, c.v); err != nil {
			return err
		}
	}
	if err := checkPermissions("--perm", perms); err != nil {
		return err
	}
	for i, a := range audience {
		if strings.TrimSpace(a) == "" {
			return &UsageError{Err: fmt.Errorf("--audience %d is blank: give the audience $connect expects, or leave it out", i+1)}
		}
	}
	return nil
}

// checkPermissions refuses a permissions claim the connection record could
// not hold; flag names the flag that gave them (--perm, --permissions).
func checkPermissions(flag string, perms []string) error {
	if len(perms) > store.MaxPermissions {
		return &UsageError{Err: fmt.Errorf("%d %s values, more than the %d a connection record holds", len(perms), flag, store.MaxPermissions)}
	}
	for i, p := range perms {
		switch {
		case strings.TrimSpace(p) == "":
			return &UsageError{Err: fmt.Errorf("%s %d is blank: give a permission name, or leave it out", flag, i+1)}
		case len(p) > store.MaxPermissionLength:
			return &UsageError{Err: fmt.Errorf("%s %d is %d bytes, longer than the %d-byte limit of a stored permission", flag, i+1, len(p), store.MaxPermissionLength)}
		}
	}
	return nil
}
