package cmd

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/localstack"
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

// Builders turn a resolved Config into clients. Production uses
// RealBuilders; tests put fakes here. Each is called at most once per
// Factory, on first use, so a command that needs no AWS client never builds
// one.
type Builders struct {
	Store      func(ctx context.Context, cfg Config) (ConnStore, error)
	Management func(ctx context.Context, cfg Config) (ManagementAPI, error)
	Messenger  func(ctx context.Context, cfg Config, opts MessengerOptions) (Messenger, error)
}

// Deps are what a Factory is made of: its streams, clock, configuration
// sources and builders. WithConfig shares them whole, so a dependency added
// here reaches every Factory.
type Deps struct {
	IO IOStreams
	// Getenv reads configuration from the environment (injected for tests).
	Getenv func(string) string
	// Now is the clock (ages, token times, smoke timings).
	Now func() time.Time
	// DefaultKeyDir locates the key directory used when neither --key-dir
	// nor STREAMER_KEY_DIR is given (localstack.DefaultKeyDir).
	DefaultKeyDir func() (string, error)
	// StackDir locates the stack profiles --stack NAME reads
	// (DefaultStackDir when nil).
	StackDir func() (string, error)
	Build    Builders
	// Dial opens client WebSockets (smoke).
	Dial WSDialer
	// StartLocal starts an embedded local stack (`smoke --local`);
	// StartLocalStack in production.
	StartLocal func(ctx context.Context) (LocalStack, error)
}

// Factory lazily provides the dependencies commands share.
type Factory struct {
	Deps
	// Flags receives the root's persistent flags when the command line is
	// parsed; Config resolves them (with the environment) on first use.
	Flags GlobalFlags

	mu       sync.Mutex
	fixed    *Config // set by WithConfig: bypass flag resolution
	cfg      *Config
	cfgErr   error
	st       ConnStore
	mgmt     ManagementAPI
	msgr     Messenger
	shutdown []func(context.Context) error
	// warned holds the paths whose key permission warnings were printed
	// (once per command line).
	warned map[string]bool
}

// NewFactory returns a Factory over real streams and real dependencies.
func NewFactory(in io.Reader, out, errOut io.Writer) *Factory {
	return &Factory{Deps: Deps{
		IO: IOStreams{
			In: in, Out: out, ErrOut: errOut,
			OutTTY: isTerminal(out), ErrTTY: isTerminal(errOut),
		},
		Getenv:        os.Getenv,
		Now:           time.Now,
		DefaultKeyDir: localstack.DefaultKeyDir,
		StackDir:      DefaultStackDir,
		Build:         RealBuilders(),
		Dial:          DialWebSocket,
		StartLocal:    StartLocalStack,
	}}
}

// WithConfig returns a Factory sharing f's Deps but working from cfg (its
// flags play no part), with its own (not yet built) clients. `smoke
// --local` uses it to point every client at the stack it started.
func (f *Factory) WithConfig(cfg Config) *Factory {
	return &Factory{Deps: f.Deps, fixed: &cfg}
}

// reset forgets what a previous command line resolved and built, so one
// Factory can run several command lines (tests do).
func (f *Factory) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg, f.cfgErr, f.st, f.mgmt, f.msgr, f.warned = nil, nil, nil, nil, nil, nil
	f.Flags = GlobalFlags{}
}

// Config resolves flags, environment, the stack profile (--stack) and
// defaults once.
func (f *Factory) Config() (Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fixed != nil {
		return *f.fixed, nil
	}
	if f.cfg == nil && f.cfgErr == nil {
		c, err := f.resolve()
		if err != nil {
			f.cfgErr = err
		} else {
			f.cfg = &c
		}
	}
	if f.cfgErr != nil {
		return Config{}, f.cfgErr
	}
	return *f.cfg, nil
}

// resolve is ResolveConfig with the stack profile, when one is named,
// beneath the environment.
func (f *Factory) resolve() (Config, error) {
	getenv := f.Getenv
	name := f.Flags.Stack
	if name == "" {
		name = getenv(stackEnv)
	}
	var prof StackProfile
	if name != "" {
		var err error
		if prof, err = LoadStackProfile(name, f.StackDir); err != nil {
			return Config{}, err
		}
		getenv = prof.beneath(getenv)
	}
	c, err := ResolveConfig(f.Flags, getenv, f.DefaultKeyDir)
	if err != nil {
		return Config{}, err
	}
	c.Stack, c.Audience, c.Environment = prof.Name, prof.Audience, prof.Environment
	return c, nil
}

// Store returns the connection store, built on first use.
func (f *Factory) Store(ctx context.Context) (ConnStore, error) {
	return lazy(f, &f.st, func(cfg Config) (ConnStore, error) { return f.Build.Store(ctx, cfg) }, nil)
}

// Management returns the management API client, built on first use.
func (f *Factory) Management(ctx context.Context) (ManagementAPI, error) {
	return lazy(f, &f.mgmt, func(cfg Config) (ManagementAPI, error) { return f.Build.Management(ctx, cfg) }, nil)
}

// Messenger returns the Manager, built on first use with opts (later calls
// get the same Manager). Close shuts it down.
func (f *Factory) Messenger(ctx context.Context, opts MessengerOptions) (Messenger, error) {
	return lazy(f, &f.msgr, func(cfg Config) (Messenger, error) { return f.Build.Messenger(ctx, cfg, opts) },
		func(m Messenger) { f.shutdown = append(f.shutdown, m.Shutdown) })
}

// lazy returns *slot, building it from the resolved configuration on first
// use under f.mu; built, when not nil, runs (under f.mu) once it is built.
func lazy[T comparable](f *Factory, slot *T, build func(Config) (T, error), built func(T)) (T, error) {
	var zero T
	cfg, err := f.Config()
	if err != nil {
		return zero, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if *slot == zero {
		v, err := build(cfg)
		if err != nil {
			return zero, err
		}
		*slot = v
		if built != nil {
			built(v)
		}
	}
	return *slot, nil
}

// KeyDir is the resolved key directory; it fails, with what to do, when
// none was given and the default cannot be located (no home directory).
func (f *Factory) KeyDir() (string, error) {
	cfg, err := f.Config()
	if err != nil {
		return "", err
	}
	if cfg.KeyDir != "" {
		return cfg.KeyDir, nil
	}
	_, err = f.defaultKeyDir()
	if err == nil {
		err = errors.New("no default key directory")
	}
	return "", fmt.Errorf("%w; pass --key-dir DIR or set %s", err, keyDirEnv)
}

// keyPath is keyFile, or name in the configured key directory when
// keyFile is "".
func (f *Factory) keyPath(keyFile, name string) (string, error) {
	if keyFile != "" {
		return keyFile, nil
	}
	dir, err := f.KeyDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// SigningKey loads the private key from keyFile, or from the configured key
// directory when keyFile is "". A missing key gets a hint; a key others
// can read or replace gets a warning on stderr (warnKeyPermissions).
func (f *Factory) SigningKey(keyFile string) (*rsa.PrivateKey, error) {
	path, err := f.keyPath(keyFile, PrivateKeyFile)
	if err != nil {
		return nil, err
	}
	f.warnKeyPermissions(path)
	k, err := auth.LoadPrivateKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no signing key at %s: create one with `streamer token keygen`, or start `streamer local` (it creates its key pair there), or pass --key FILE", path)
	}
	if err != nil {
		return nil, fmt.Errorf("load signing key %s: %w", path, err)
	}
	return k, nil
}

// PublicKey loads the verification key from keyFile, or from the key
// directory's public key when keyFile is "" (then a key directory others
// can write to gets a warning: they could swap the key that verifies).
func (f *Factory) PublicKey(keyFile string) (*rsa.PublicKey, error) {
	path, err := f.keyPath(keyFile, PublicKeyFile)
	if err != nil {
		return nil, err
	}
	if keyFile == "" {
		f.warnKeyPermissions(filepath.Join(filepath.Dir(path), PrivateKeyFile))
	}
	k, err := loadPublicKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no public key at %s: create a pair with `streamer token keygen`, start `streamer local`, or pass --public-key FILE", path)
	}
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w", path, err)
	}
	return k, nil
}

// Close releases what the Factory built (shuts the Manager down, draining
// in-flight sends until ctx ends).
func (f *Factory) Close(ctx context.Context) error {
	f.mu.Lock()
	fns := f.shutdown
	f.shutdown = nil
	f.mu.Unlock()
	var errs []error
	for _, fn := range fns {
		errs = append(errs, fn(ctx))
	}
	return errors.Join(errs...)
}

// warnKeyPermissions prints, once per command line and path, on stderr,
// ssh's warnings about the private key at privateKeyPath and its
// directory: others can read it (and mint tokens) or replace it. Advice,
// not an error: the key still loads.
func (f *Factory) warnKeyPermissions(privateKeyPath string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.warned[privateKeyPath] {
		return
	}
	if f.warned == nil {
		f.warned = map[string]bool{}
	}
	f.warned[privateKeyPath] = true
	for _, w := range auth.KeyPermissionWarnings(privateKeyPath) {
		fmt.Fprintln(f.IO.ErrOut, "warning:", w)
	}
}

// loadPublicKey reads a public key PEM file (through auth.ReadKeyFile:
// a regular file of at most 64 KB, so /dev/zero or a FIFO fails at once);
// a private key file works too (its public half verifies).
func loadPublicKey(path string) (*rsa.PublicKey, error) {
	data, err := auth.ReadKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := auth.ParsePublicKeyPEM(data)
	if err != nil {
		if pk, perr := auth.ParsePrivateKeyPEM(data); perr == nil {
			return &pk.PublicKey, nil
		}
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
