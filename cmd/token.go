package cmd

import "github.com/spf13/cobra"

// NewCmdToken groups the token commands (token_mint.go, token_verify.go,
// token_keygen.go).
func NewCmdToken(f *Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Mint, verify and create keys for connection tokens (RS256 JWT)",
	}
	c.AddCommand(NewCmdTokenMint(f, nil), NewCmdTokenVerify(f, nil), NewCmdTokenKeygen(f, nil))
	return asGroup(c)
}
