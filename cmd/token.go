package cmd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/spf13/cobra"
)

// NewCmdToken groups the token commands.
func NewCmdToken(f *Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Mint, verify and create keys for connection tokens (RS256 JWT)",
	}
	c.AddCommand(NewCmdTokenMint(f, nil), NewCmdTokenVerify(f, nil), NewCmdTokenKeygen(f, nil))
	return c
}

// ---- mint

// TokenMintOptions are the inputs of `streamer token mint`.
type TokenMintOptions struct {
	F           *Factory
	UserID      string
	TenantID    string
	Permissions []string
	TTL         time.Duration
	Expired     bool
	Audience    []string
	KeyFile     string
}

// NewCmdTokenMint builds `streamer token mint`.
func NewCmdTokenMint(f *Factory, runF func(*TokenMintOptions) error) *cobra.Command {
	opts := &TokenMintOptions{F: f}
	c := &cobra.Command{
		Use:   "mint",
		Short: "Mint a signed connection token; prints only the token",
		Long: `Mint an RS256 token signed with the key in --key-dir (or --key FILE).
Only the token goes to stdout, so TOKEN=$(streamer token mint --tenant acme) works.
Clients present it as ?Authorization=TOKEN on the WebSocket URL.`,
		Example: `  streamer token mint --user alice --tenant acme --perm read --ttl 30m
  streamer token mint --expired   # a token whose exp is already past`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if opts.TTL < 0 {
				return &UsageError{Err: fmt.Errorf("--ttl must be positive, got %s", opts.TTL)}
			}
			return runWith(c.Context(), opts, runF, tokenMintRun)
		},
	}
	c.Flags().StringVar(&opts.UserID, "user", "user-1", "user id (sub claim)")
	c.Flags().StringVar(&opts.TenantID, "tenant", "tenant-1", "tenant id (tenant_id claim)")
	c.Flags().StringArrayVar(&opts.Permissions, "perm", nil, "permission (repeatable)")
	c.Flags().DurationVar(&opts.TTL, "ttl", time.Hour, "lifetime")
	c.Flags().BoolVar(&opts.Expired, "expired", false, "mint a token whose exp is already past (to test refusals)")
	c.Flags().StringArrayVar(&opts.Audience, "audience", nil, "aud claim (repeatable)")
	c.Flags().StringVar(&opts.KeyFile, "key", "", "private key PEM file (default: <key-dir>/"+PrivateKeyFile+")")
	return c
}

func tokenMintRun(_ context.Context, opts *TokenMintOptions) error {
	f := opts.F
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	key, err := f.SigningKey(opts.KeyFile)
	if err != nil {
		return err
	}
	iss := cfg.Issuer
	tok, err := f.Auth.Mint(key, MintSpec{
		UserID: opts.UserID, TenantID: opts.TenantID, Permissions: opts.Permissions,
		Issuer: iss, Audience: opts.Audience, TTL: opts.TTL, Expired: opts.Expired, Now: f.Now,
	})
	if err != nil {
		return fmt.Errorf("mint token: %w", err)
	}
	_, err = fmt.Fprintln(f.IO.Out, tok)
	return err
}

// ---- verify

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
			if err := checkOutput(opts.Output, dataFormats...); err != nil {
				return err
			}
			return runWith(c.Context(), opts, runF, tokenVerifyRun)
		},
	}
	c.Flags().StringVar(&opts.Audience, "audience", "", "expected aud (default: not checked)")
	c.Flags().StringVar(&opts.PublicKeyFile, "public-key", "", "public key PEM file (default: <key-dir>/"+PublicKeyFile+")")
	c.Flags().StringVarP(&opts.Output, "output", "o", "", outputFlagHelp)
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
		b, err := io.ReadAll(io.LimitReader(f.IO.In, 1<<20))
		if err != nil {
			return fmt.Errorf("read token from stdin: %w", err)
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
	iss := cfg.Issuer
	claims, verr := f.Auth.Verify(ctx, pub, iss, opts.Audience, tok)
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
		verdict := p.Green("valid")
		if !v.Valid {
			verdict = p.Red("invalid: " + v.Reason + " (" + v.Error + ")")
		}
		rows := [][]string{
			{"valid", verdict},
			{"sub", v.Claims.Subject},
			{"tenant_id", v.Claims.TenantID},
			{"permissions", strings.Join(v.Claims.Permissions, ",")},
			{"iss", v.Claims.Issuer},
			{"aud", strings.Join(v.Claims.Audience, ",")},
			{"exp", v.Claims.ExpiresAt + expiryNote(f.Now(), claims.ExpiresAt)},
			{"iat", v.Claims.IssuedAt},
			{"jti", v.Claims.ID},
		}
		if format == FormatTable {
			err = renderTable(f.IO.Out, []string{"claim", "value"}, rows)
		} else {
			if !v.Valid {
				rows[0][1] = "false"
				rows = append(rows[:1], append([][]string{{"reason", v.Reason}, {"error", v.Error}}, rows[1:]...)...)
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

// ---- keygen

// TokenKeygenOptions are the inputs of `streamer token keygen`.
type TokenKeygenOptions struct {
	F      *Factory
	Dir    string
	Force  bool
	Output string
}

// NewCmdTokenKeygen builds `streamer token keygen`.
func NewCmdTokenKeygen(f *Factory, runF func(*TokenKeygenOptions) error) *cobra.Command {
	opts := &TokenKeygenOptions{F: f}
	c := &cobra.Command{
		Use:   "keygen",
		Short: "Create an RSA key pair for minting and verifying tokens",
		Long: `Write ` + PrivateKeyFile + ` (mode 0600) and ` + PublicKeyFile + ` into --dir
(default: the global --key-dir, which ` + "`streamer local`" + ` also uses). Refuses to replace
an existing pair unless --force.

JSON output (-o json): {"private_key": path, "public_key": path}.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			// table is accepted (and printed as plain) as it always was.
			if err := checkOutput(opts.Output, dataFormats...); err != nil {
				return err
			}
			return runWith(c.Context(), opts, runF, tokenKeygenRun)
		},
	}
	c.Flags().StringVar(&opts.Dir, "dir", "", "directory for the key pair (default: --key-dir)")
	c.Flags().BoolVar(&opts.Force, "force", false, "replace an existing key pair (tokens minted with the old key stop verifying)")
	c.Flags().StringVarP(&opts.Output, "output", "o", "", "output format: plain|json")
	return c
}

func tokenKeygenRun(_ context.Context, opts *TokenKeygenOptions) error {
	f := opts.F
	dir := opts.Dir
	if dir == "" {
		var err error
		if dir, err = f.KeyDir(); err != nil {
			return err
		}
	}
	priv, pub, err := f.Auth.WriteKeyPair(dir, opts.Force)
	if errors.Is(err, ErrKeyExists) {
		return fmt.Errorf("a key pair already exists in %s; pass --force to replace it (tokens minted with the old key will stop verifying)", dir)
	}
	if err != nil {
		return fmt.Errorf("write key pair in %s: %w", dir, err)
	}
	if opts.Output == FormatJSON {
		return writeJSON(f.IO.Out, map[string]string{"private_key": priv, "public_key": pub})
	}
	fmt.Fprintf(f.IO.ErrOut, "Wrote a new RSA key pair. Mint with: streamer token mint --key-dir %s\n", dir)
	return renderPlain(f.IO.Out, [][]string{{"private_key", priv}, {"public_key", pub}})
}
