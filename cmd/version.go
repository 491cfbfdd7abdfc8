package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// VersionOptions are the inputs of `streamer version`.
type VersionOptions struct {
	IO     IOStreams
	Output string
}

// NewCmdVersion builds `streamer version`. runF replaces the run function in tests.
func NewCmdVersion(f *Factory, runF func(*VersionOptions) error) *cobra.Command {
	opts := &VersionOptions{IO: f.IO}
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the streamer version",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkOutput(opts.Output, "text", FormatJSON); err != nil {
				return err
			}
			return runWith(c.Context(), opts, runF, versionRun)
		},
	}
	c.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text|json")
	return c
}

// Version is set at build time with -ldflags "-X github.com/pay-theory/streamer/cmd.Version=v1.2.3".
var Version = "dev"

func versionRun(_ context.Context, opts *VersionOptions) error {
	v := Version
	if v == "dev" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	if opts.Output == FormatJSON {
		return json.NewEncoder(opts.IO.Out).Encode(map[string]string{"version": v, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH})
	}
	_, err := fmt.Fprintf(opts.IO.Out, "streamer %s (%s, %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
