package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/pay-theory/streamer/internal/wait"
)

// Options configure Run, Once and NewModel. Zero values mean the documented
// defaults.
type Options struct {
	// Source is required.
	Source Source
	// Refresh is the time between fetches, also after a failure (0 => 5 s).
	Refresh time.Duration
	// Window is the range the counts cover (0 => 1 h); see the Source.
	Window time.Duration
	// Timeout bounds one fetch (0 => 10 s).
	Timeout time.Duration
	// In and Out are the terminal (nil => os.Stdin / os.Stdout).
	In  io.Reader
	Out io.Writer
	// NoAltScreen draws inline instead of on the alternate screen.
	NoAltScreen bool
	// Getenv reads NO_COLOR and the variables colour detection looks at
	// (nil => os.Getenv).
	Getenv func(string) string
	// ColorProfile overrides the colour detection (tests pass
	// colorprofile.Ascii for plain text); the zero value (Unknown) =>
	// DetectProfile(Out, Getenv): Ascii when NO_COLOR is set.
	ColorProfile colorprofile.Profile
	// Now is the clock for "updated at" (nil => time.Now).
	Now func() time.Time
	// Output is Once's format: OutputPlain (RenderPlain, also for "") or
	// OutputJSON (RenderJSON).
	Output string
	// OnceSettle, for Once: when the first snapshot has no rates yet (the
	// local source needs two polls), wait this long and fetch again. 0 => a
	// single fetch.
	OnceSettle time.Duration

	ctx context.Context
}

// ErrNoSource is returned when Options.Source is nil.
var ErrNoSource = errors.New("dashboard: no metrics source configured")

func (o Options) withDefaults() Options {
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.In == nil {
		o.In = os.Stdin
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ctx == nil {
		o.ctx = context.Background()
	}
	return o
}

// withProfile detects the colour profile unless one is set (Once needs
// none).
func (o Options) withProfile() Options {
	if o.ColorProfile == colorprofile.Unknown {
		o.ColorProfile = DetectProfile(o.Out, o.Getenv)
	}
	return o
}

// Run shows the dashboard on opts.Out until the user quits (q, ctrl+c) or
// ctx is cancelled, both of which return nil. Fetch errors never end it:
// they show in the status line and the next refresh retries.
func Run(ctx context.Context, opts Options) error {
	if opts.Source == nil {
		return ErrNoSource
	}
	// Ends the model's pending ticks and fetches once the program is over.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts.ctx = ctx
	opts = opts.withDefaults().withProfile()
	m := NewModel(opts)
	popts := []tea.ProgramOption{
		tea.WithInput(opts.In),
		tea.WithOutput(opts.Out),
		// The caller's ctx carries SIGINT/SIGTERM; a second handler here
		// would race it.
		tea.WithoutSignalHandler(),
		// The profile the styles were built for; Bubble Tea would otherwise
		// detect its own from os.Environ, and read NO_COLOR differently.
		tea.WithColorProfile(opts.ColorProfile),
		// The size until the terminal reports one; without a terminal
		// (a pipe, a test's buffer) Bubble Tea v2 would draw on 0x0.
		tea.WithWindowSize(defaultWidth, defaultHeight),
	}
	p := tea.NewProgram(m, popts...)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			p.Quit()
		case <-done:
		}
	}()
	if _, err := p.Run(); err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}

// Once fetches one snapshot and writes it with RenderPlain (or RenderJSON,
// see Options.Output), for --once and non-terminal output.
func Once(ctx context.Context, opts Options) error {
	if opts.Source == nil {
		return ErrNoSource
	}
	render := RenderPlain
	switch opts.Output {
	case "", OutputPlain:
	case OutputJSON:
		render = RenderJSON
	default:
		return fmt.Errorf("%w: %q", ErrUnknownOutput, opts.Output)
	}
	opts.ctx = ctx
	opts = opts.withDefaults()
	fetch := func() (Snapshot, error) {
		ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
		return opts.Source.Fetch(ctx, opts.Window)
	}
	s, err := fetch()
	if err != nil {
		return err
	}
	if opts.OnceSettle > 0 && !s.ConnectionsPerMinute.OK {
		if err := wait.Sleep(ctx, opts.OnceSettle); err != nil {
			return err
		}
		if s, err = fetch(); err != nil {
			return err
		}
	}
	return render(opts.Out, s, opts.Source.Name())
}
