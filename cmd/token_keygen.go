package cmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/spf13/cobra"
)

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
			return runWith(c.Context(), opts, runF, tokenKeygenRun)
		},
	}
	c.Flags().StringVar(&opts.Dir, "dir", "", "directory for the key pair (default: --key-dir)")
	c.Flags().BoolVar(&opts.Force, "force", false, "replace an existing key pair (tokens minted with the old key stop verifying)")
	addOutputFlag(c, &opts.Output, "output format: plain|json (default plain)", FormatPlain, FormatJSON)
	return c
}

// keygenJSON is the documented -o json form of token keygen.
type keygenJSON struct {
	PrivateKey string `json:"private_key"`
	PublicKey  string `json:"public_key"`
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
	priv, pub, err := auth.WriteKeyPair(dir, opts.Force)
	if errors.Is(err, auth.ErrKeyExists) {
		return fmt.Errorf("a key pair already exists in %s; pass --force to replace it (tokens minted with the old key will stop verifying)", dir)
	}
	if err != nil {
		return fmt.Errorf("write key pair in %s: %w", dir, err)
	}
	if opts.Output == FormatJSON {
		return writeJSON(f.IO.Out, keygenJSON{PrivateKey: priv, PublicKey: pub})
	}
	fmt.Fprintf(f.IO.ErrOut, "Wrote a new RSA key pair. Mint with: streamer token mint --key-dir %s\n", dir)
	return renderPlain(f.IO.Out, [][]string{{"private_key", priv}, {"public_key", pub}})
}
