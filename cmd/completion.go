package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// addCompletion adds cobra's `completion bash|zsh|fish|powershell` command,
// made strict: an unknown shell is a usage error (exit 2) rather than the
// help text and exit 0, so `streamer completion bsh > file` cannot quietly
// write help into a completion file.
func addCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		var shells []string
		for _, s := range c.Commands() {
			shells = append(shells, s.Name())
		}
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return c.Help()
			}
			return &UsageError{Err: fmt.Errorf("unknown shell %q: use %s, e.g. `streamer completion bash`", args[0], strings.Join(shells, ", "))}
		}
	}
}
