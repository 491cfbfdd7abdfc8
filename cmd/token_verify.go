package cmd

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/spf13/cobra"
)

// maxTokenBytes bounds a token read from stdin: a JWT with the claims
// streamer mints is well under 2 KB.
const maxTokenBytes = 64 << 10

// TokenVerifyOptions are the inputs of `streamer token verify`.
type TokenVerifyOptions struct {
	F             *Factory
	Token         string // or "-" for stdin
	Audience      string
	PublicKeyFile string
	Output        string
}

// NewCmdTokenVerify builds `streamer token verify`.
func NewCmdTokenVerify(f *Factory, runF func(*TokenVerifyOptions) error) *cobra.Command {
	opts := &TokenVerifyOptions{F: f}
	c := &cobra.Command{
		Use:   "verify TOKEN|-",
		Short: "Check a token the way $connect does; exit 0 only when it is valid",
		Long: `Verify a token's signature (public key from --key-dir or --public-key), expiry,
issuer and audience, and print its claims with the verdict and, when invalid, why.

JSON output (-o json): {"valid": bool, "reason": "expired|bad_signature|wrong_issuer|...|""",
"error": string, "claims": {"sub","tenant_id","permissions","iss","aud","exp","iat","nbf","jti"}}.
Times are RFC 3339; claims are shown even for an invalid token (decoded, not trusted).`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Token = args[0]
			return runWith(c.Context(), opts, runF, tokenVerifyRun)
		},
	}
	c.Flags().StringVar(&opts.Audience, "audience", "", "expected aud (default: the --stack's, else not checked)")
	c.Flags().StringVar(&opts.PublicKeyFile, "public-key", "", "public key PEM file (default: <key-dir>/"+PublicKeyFile+")")
	addOutputFlag(c, &opts.Output, outputFlagHelp, dataFormats...)
	return c
}

// tokenClaimsJSON is the documented JSON form of a token's claims.
type tokenClaimsJSON struct {
	Subject     string   `json:"sub"`
	TenantID    string   `json:"tenant_id"`
	Permissions []string `json:"permissions"`
	Issuer      string   `json:"iss"`
	Audience    []string `json:"aud"`
	ExpiresAt   string   `json:"exp,omitempty"`
	IssuedAt    string   `json:"iat,omitempty"`
	NotBefore   string   `json:"nbf,omitempty"`
	ID          string   `json:"jti,omitempty"`
}

// tokenVerdictJSON is the documented -o json form of token verify.
type tokenVerdictJSON struct {
	Valid  bool            `json:"valid"`
	Reason string          `json:"reason"`
	Error  string          `json:"error"`
	Claims tokenClaimsJSON `json:"claims"`
}

func tokenVerifyRun(ctx context.Context, opts *TokenVerifyOptions) error {
	f := opts.F
	format := resolveFormat(opts.Output, f.IO.OutTTY)
	tok := opts.Token
	if tok == "-" {
		b, err := readInput(ctx, "-", f.IO.In, "the token from stdin", maxTokenBytes)
		if err != nil {
			return err
		}
		if len(b) > maxTokenBytes {
			return &UsageError{Err: fmt.Errorf("stdin holds more than %d KB, more than any token; pipe the token alone", maxTokenBytes>>10)}
		}
		tok = string(b)
	}
	tok = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(tok), "Bearer "))
	if tok == "" {
		return &UsageError{Err: errors.New("no token given: pass it as an argument or `-` to read stdin")}
	}
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	pub, err := f.PublicKey(opts.PublicKeyFile)
	if err != nil {
		return err
	}
	aud := opts.Audience
	if aud == "" { // the stack's $connect requires it (--stack)
		aud = cfg.Audience
	}
	claims, verr := verifyToken(ctx, pub, cfg.Issuer, aud, tok)
	if verr != nil {
		// Show what the token says even though it cannot be trusted.
		claims, _ = decodeUnverified(tok)
	}
	v := tokenVerdictJSON{Valid: verr == nil, Claims: claimsJSON(claims)}
	if verr != nil {
		v.Reason = auth.Reason(verr)
		v.Error = verr.Error()
	}
	switch format {
	case FormatJSON:
		if err := writeJSON(f.IO.Out, v); err != nil {
			return err
		}
	default:
		p := newPalette(f.IO.OutTTY, f.Getenv)
		// The claims are the token's words, decoded even when it is not
		// trusted: escaped before any colour is added.
		esc := terminalText
		verdict := p.Green("valid")
		if !v.Valid {
			verdict = p.Red(esc("invalid: " + v.Reason + " (" + v.Error + ")"))
		}
		rows := [][]string{
			{"valid", verdict},
			{"sub", esc(v.Claims.Subject)},
			{"tenant_id", esc(v.Claims.TenantID)},
			{"permissions", joinEscaped(v.Claims.Permissions)},
			{"iss", esc(v.Claims.Issuer)},
			{"aud", joinEscaped(v.Claims.Audience)},
			{"exp", v.Claims.ExpiresAt + expiryNote(f.Now(), claims.ExpiresAt)},
			{"iat", v.Claims.IssuedAt},
			{"jti", esc(v.Claims.ID)},
		}
		if format == FormatTable {
			err = renderTable(f.IO.Out, []string{"claim", "value"}, rows)
		} else {
			if !v.Valid {
				rows[0][1] = "false"
				rows = append(rows[:1], append([][]string{{"reason", esc(v.Reason)}, {"error", esc(v.Error)}}, rows[1:]...)...)
			} else {
				rows[0][1] = "true"
			}
			err = renderPlain(f.IO.Out, rows)
		}
		if err != nil {
			return err
		}
	}
	if !v.Valid {
		return ErrSilent
	}
	return nil
}

// verifyToken checks tok as $connect does: signature with pub, expiry,
// issuer and (when set) audience.
func verifyToken(ctx context.Context, pub *rsa.PublicKey, issuer, audience, tok string) (auth.Claims, error) {
	v, err := auth.NewVerifier(auth.VerifierConfig{Keys: auth.StaticKey(pub), Issuer: issuer, Audience: audience})
	if err != nil {
		return auth.Claims{}, err
	}
	return v.Verify(ctx, tok)
}

func expiryNote(now, exp time.Time) string {
	if exp.IsZero() {
		return ""
	}
	if now.After(exp) {
		return " (expired " + strings.TrimSuffix(formatAge(now, exp), " ago") + " ago)"
	}
	return " (in " + exp.Sub(now).Round(time.Second).String() + ")"
}

func claimsJSON(c auth.Claims) tokenClaimsJSON {
	t := func(x time.Time) string {
		if x.IsZero() {
			return ""
		}
		return x.UTC().Format(time.RFC3339)
	}
	perms, aud := c.Permissions, c.Audience
	if perms == nil {
		perms = []string{}
	}
	if aud == nil {
		aud = []string{}
	}
	return tokenClaimsJSON{Subject: c.UserID, TenantID: c.TenantID, Permissions: perms, Issuer: c.Issuer,
		Audience: aud, ExpiresAt: t(c.ExpiresAt), IssuedAt: t(c.IssuedAt), NotBefore: t(c.NotBefore), ID: c.ID}
}

// decodeUnverified reads a JWT's payload without checking anything, only
// to explain a refusal.
func decodeUnverified(tok string) (auth.Claims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return auth.Claims{}, errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return auth.Claims{}, err
	}
	var raw struct {
		Sub   string          `json:"sub"`
		Ten   string          `json:"tenant_id"`
		Perms []string        `json:"permissions"`
		Iss   string          `json:"iss"`
		Aud   json.RawMessage `json:"aud"`
		Exp   float64         `json:"exp"`
		Iat   float64         `json:"iat"`
		Nbf   float64         `json:"nbf"`
		Jti   string          `json:"jti"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return auth.Claims{}, err
	}
	c := auth.Claims{UserID: raw.Sub, TenantID: raw.Ten, Permissions: raw.Perms, Issuer: raw.Iss, ID: raw.Jti}
	var one string
	if json.Unmarshal(raw.Aud, &one) == nil && one != "" {
		c.Audience = []string{one}
	} else {
		_ = json.Unmarshal(raw.Aud, &c.Audience)
	}
	sec := func(v float64) time.Time {
		if v == 0 {
			return time.Time{}
		}
		return time.Unix(int64(v), 0)
	}
	c.ExpiresAt, c.IssuedAt, c.NotBefore = sec(raw.Exp), sec(raw.Iat), sec(raw.Nbf)
	return c, nil
}
