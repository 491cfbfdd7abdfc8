package cmd

import (
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams are the command's standard streams and what they are attached to.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// OutTTY / ErrTTY: whether stdout / stderr are terminals (tables, colour,
	// progress bars only then).
	OutTTY bool
	ErrTTY bool
}

// Factory lazily provides the dependencies commands share, so a command that
// needs no AWS client never builds one.
type Factory struct {
	IO IOStreams
	// Getenv reads configuration from the environment (injected for tests).
	Getenv func(string) string
}

// NewFactory returns a Factory over real streams.
func NewFactory(in io.Reader, out, errOut io.Writer) *Factory {
	return &Factory{
		IO: IOStreams{
			In: in, Out: out, ErrOut: errOut,
			OutTTY: isTerminal(out), ErrTTY: isTerminal(errOut),
		},
		Getenv: os.Getenv,
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
