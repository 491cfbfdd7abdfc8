package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/spf13/cobra"
)

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
			if err := checkClaims(opts.UserID, opts.TenantID, opts.Permissions, opts.Audience); err != nil {
				return err
			}
			return runWith(c.Context(), opts, runF, tokenMintRun)
		},
	}
	c.Flags().StringVar(&opts.UserID, "user", "user-1", "user id (sub claim)")
	c.Flags().StringVar(&opts.TenantID, "tenant", "tenant-1", "tenant id (tenant_id claim)")
	c.Flags().StringArrayVar(&opts.Permissions, "perm", nil, "permission (repeatable)")
	c.Flags().DurationVar(&opts.TTL, "ttl", time.Hour, "lifetime")
	c.Flags().BoolVar(&opts.Expired, "expired", false, "mint a token whose exp is already past (to test refusals)")
	c.Flags().StringArrayVar(&opts.Audience, "audience", nil, "aud claim (repeatable; default: the --stack's, else none)")
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
	aud := opts.Audience
	if len(aud) == 0 && cfg.Audience != "" { // the stack's $connect requires it (--stack)
		aud = []string{cfg.Audience}
	}
	tok, err := auth.Mint(key, auth.MintOptions{
		UserID: opts.UserID, TenantID: opts.TenantID, Permissions: opts.Permissions,
		Issuer: cfg.Issuer, Audience: aud, TTL: opts.TTL, Expired: opts.Expired, Now: f.Now,
	})
	if err != nil {
		return fmt.Errorf("mint token: %w", err)
	}
	_, err = fmt.Fprintln(f.IO.Out, tok)
	return err
}
