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
	opts := &VersionOptions{IO: f.IO, Output: "text"}
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the streamer version",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runWith(c.Context(), opts, runF, versionRun)
		},
	}
	addOutputFlag(c, &opts.Output, "output format: text|json", "text", FormatJSON)
	return c
}

// Version is set at build time with -ldflags "-X github.com/pay-theory/streamer/cmd.Version=v1.2.3".
var Version = "dev"

// versionJSON is the documented -o json form of version (one line).
type versionJSON struct {
	Go       string `json:"go"`
	Platform string `json:"platform"`
	Version  string `json:"version"`
}

func versionRun(_ context.Context, opts *VersionOptions) error {
	v := Version
	if v == "dev" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	if opts.Output == FormatJSON {
		return json.NewEncoder(opts.IO.Out).Encode(versionJSON{Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Version: v})
	}
	_, err := fmt.Fprintf(opts.IO.Out, "streamer %s (%s, %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
