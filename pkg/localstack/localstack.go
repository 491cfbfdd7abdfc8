// Package localstack runs the whole streamer stack in one process: the API
// Gateway emulator (pkg/localgw) with its embedded DynamoDB-API endpoint, the
// real $connect/$disconnect/$default handlers in-process, and a development
// key pair for RS256 tokens. It is what `streamer local` and
// `streamer smoke --local` run, and what integration tests start.
//
// Everything talks over the real protocols: the handlers reach the store
// through the AWS SDK against the gateway's own DynamoDB endpoint, exactly as
// they reach DynamoDB on AWS; only endpoints differ.
//
// Routes of your own (Config.Routes) point a route key at a Lambda Invoke
// URL: your function's built bootstrap under the Runtime Interface Emulator
// (aws-lambda-rie) or `sam local start-lambda`, reaching the same embedded
// DynamoDB endpoint and @connections API as the builtin handlers. $connect
// can be replaced by your own authorizer function the same way.
package localstack

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/lambda/connect"
	defaultroute "github.com/pay-theory/streamer/lambda/default"
	"github.com/pay-theory/streamer/lambda/disconnect"
	"github.com/pay-theory/streamer/lambda/shared/observability"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/store"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

// Defaults of a local stack; the CLI's defaults point at the same place so a
// running `streamer local` needs no flags.
const (
	DefaultListen = "127.0.0.1:4510"
	DefaultStage  = "local"
	DefaultIssuer = "streamer-local"
)

// dynamoConns bounds the connections of the stack's own DynamoDB client.
const dynamoConns = 32

// ErrConfig reports an invalid Config (wrapped with the field at fault).
var ErrConfig = errors.New("localstack: invalid configuration")

// DefaultKeyDir is where `streamer local` keeps its development key pair and
// where `streamer token mint` looks by default: <user config dir>/streamer/keys.
func DefaultKeyDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("localstack: no user config directory (%w); pass a key directory explicitly", err)
	}
	return filepath.Join(dir, "streamer", "keys"), nil
}

// Config configures Start. Every zero value means the documented default.
type Config struct {
	// Listen is the TCP address; "" => DefaultListen. "127.0.0.1:0" picks a
	// free port.
	Listen string
	// Stage is the API stage; "" => DefaultStage.
	Stage string
	// KeyDir holds jwt-private.pem / jwt-public.pem, created on first use;
	// "" => DefaultKeyDir().
	KeyDir string
	// Issuer is the iss the $connect handler requires; "" => DefaultIssuer.
	Issuer string
	// Audience, when set, is the aud the $connect handler requires.
	Audience string
	// Table is the connections table; "" => schema.DefaultTableName.
	Table string
	// HandlerLogs receives the handlers' JSON log lines and EMF documents,
	// exactly as Lambda would send them to CloudWatch; nil => discarded.
	HandlerLogs io.Writer
	// Logger receives the gateway's diagnostics; nil => discard.
	Logger *slog.Logger
	// Routes add routes, or replace the in-process handlers, by key: a
	// route of your own (sendmessage) or $connect, $disconnect, $default,
	// pointed at a Lambda Invoke URL (your function under aws-lambda-rie)
	// or a builtin handler. Start checks every route (ErrConfig) and that
	// something listens at each Invoke URL (ErrRouteUnreachable) before it
	// starts anything. $connect, $disconnect and $default not given keep
	// the in-process handlers.
	Routes []Route
	// RouteProbeTimeout bounds the probe of each Invoke URL; 0 =>
	// DefaultRouteProbeTimeout.
	RouteProbeTimeout time.Duration
	// Integrations replace the in-process handlers per route key with
	// integrations of your own (e.g. localgw.LambdaInvoke with your HTTP
	// client, or an in-process handler). A key may not be in both Routes
	// and Integrations. Routes in contract.TwoWayRoutes are made two-way
	// either way.
	Integrations map[string]localgw.Integration
	// Gateway tunes the emulator (timeouts, faults, rate limits, the route
	// selection expression). Stage, Table, EmbeddedDynamoDB and Routes are
	// set by Start.
	Gateway localgw.Config
}

// Stack is a running local stack.
type Stack struct {
	// BaseURL is http://HOST:PORT; it also serves the DynamoDB API.
	BaseURL string
	// WebSocketURL is ws://HOST:PORT/{stage}.
	WebSocketURL string
	// ManagementEndpoint is http://HOST:PORT/{stage}, the @connections base.
	ManagementEndpoint string
	// DynamoDBEndpoint is the embedded DynamoDB-API endpoint (== BaseURL).
	DynamoDBEndpoint string
	// MetricsURL is the JSON metrics endpoint.
	MetricsURL string
	Stage      string
	Table      string
	Issuer     string
	Audience   string
	// KeyDir and the key pair in it; KeyCreated says Start generated it.
	KeyDir     string
	PrivateKey *rsa.PrivateKey
	KeyCreated bool

	// Routes are the routes in effect, $connect, $disconnect and $default
	// first, and RouteSelectionExpression the expression that picks them.
	Routes                   []RouteInfo
	RouteSelectionExpression string

	Gateway *localgw.Gateway
	// DynamoDB is an SDK client for the embedded endpoint; Store uses it.
	DynamoDB *dynamodb.Client
	Store    *store.Dynamo

	// invoke is the HTTP client of the routes to Invoke URLs.
	invoke *http.Client
}

// Start starts a local stack and returns once it accepts connections.
// Close (or ctx's cancellation is not enough: call Close) stops it.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	// Everything that can be checked is, before anything starts or a key
	// is written: the routes, then that their endpoints answer, then the
	// gateway's own configuration.
	if err := checkRoutes(cfg.Routes, cfg.Integrations); err != nil {
		return nil, err
	}
	if err := probeRoutes(ctx, cfg.Routes, cfg.RouteProbeTimeout); err != nil {
		return nil, err
	}
	gcfg := cfg.Gateway
	gcfg.Stage = cfg.Stage
	gcfg.Table = cfg.Table
	gcfg.EmbeddedDynamoDB = true
	if gcfg.Logger == nil {
		gcfg.Logger = cfg.Logger
	}
	gcfg.Routes = nil
	gw, err := localgw.New(gcfg)
	if errors.Is(err, localgw.ErrInvalidConfig) {
		return nil, gatewayConfigError{err}
	}
	if err != nil {
		return nil, fmt.Errorf("localstack: %w", err)
	}
	priv, created, err := auth.EnsureKeyPair(cfg.KeyDir)
	if err != nil {
		_ = gw.Shutdown(ctx)
		return nil, fmt.Errorf("localstack: key pair in %s: %w", cfg.KeyDir, err)
	}
	base, err := gw.Start(cfg.Listen)
	if err != nil {
		_ = gw.Shutdown(ctx)
		// Name the CLI's flag rather than the gateway's generic hint.
		var op *net.OpError
		if errors.As(err, &op) {
			err = op
		}
		return nil, fmt.Errorf("localstack: cannot listen on %s: %w (is another `streamer local` running? choose another address with --listen)", cfg.Listen, err)
	}
	s := &Stack{
		BaseURL:            base,
		WebSocketURL:       "ws://" + strings.TrimPrefix(base, "http://") + "/" + cfg.Stage,
		ManagementEndpoint: base + "/" + cfg.Stage,
		DynamoDBEndpoint:   base,
		MetricsURL:         base + "/metrics.json",
		Stage:              cfg.Stage,
		Table:              cfg.Table,
		Issuer:             cfg.Issuer,
		Audience:           cfg.Audience,
		KeyDir:             cfg.KeyDir,
		PrivateKey:         priv,
		KeyCreated:         created,
		Gateway:            gw,
		// Its own pool, closed with the stack: the invocations of a
		// message storm share warm connections to the emulator.
		invoke:                   &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		RouteSelectionExpression: gw.RouteSelectionExpression(),
	}

	fail := func(err error) (*Stack, error) {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(sctx)
		return nil, err
	}
	// A bounded pool: the embedded DynamoDB serves one request at a time,
	// so more connections only queue there, while an unbounded pool opens
	// one per concurrent request: 17,000 clients closing at once made their
	// $disconnect writes open thousands of sockets to this very process,
	// past its open-file limit.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = dynamoConns, dynamoConns
	s.DynamoDB, err = store.NewDynamoClient(ctx, store.ClientConfig{Endpoint: base, HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		return fail(fmt.Errorf("localstack: DynamoDB client: %w", err))
	}
	s.Store = store.New(s.DynamoDB, store.Config{Table: cfg.Table})

	builtins, err := s.handlers(cfg)
	if err != nil {
		return fail(err)
	}
	s.setRoutes(cfg, builtins)
	return s, nil
}

// setRoutes sets the builtin handlers on their routes, then cfg.Routes
// and cfg.Integrations over them, and records the routes in effect.
func (s *Stack) setRoutes(cfg Config, builtins map[string]localgw.Integration) {
	routes := slices.Clone(builtinRoutes)
	for _, r := range cfg.Routes {
		i := slices.IndexFunc(routes, func(b Route) bool { return b.Key == r.Key })
		if i < 0 {
			routes = append(routes, r)
		} else {
			routes[i] = r
		}
	}
	set := func(key, target string, in localgw.Integration, twoWay bool) {
		if twoWay {
			in = localgw.TwoWay(in)
		}
		s.Gateway.SetRoute(key, in)
		s.Routes = append(s.Routes, RouteInfo{Key: key, Target: target, TwoWay: localgw.IsTwoWay(in)})
	}
	envs := map[string]chan struct{}{} // by Invoke URL: one execution environment each
	for _, r := range routes {
		if _, ok := cfg.Integrations[r.Key]; ok {
			continue // replaced below (only builtins can be: checkRoutes)
		}
		in, ok := builtins[r.Target]
		if !ok {
			if envs[r.Target] == nil {
				envs[r.Target] = make(chan struct{}, 1)
			}
			in = oneAtATime{in: localgw.LambdaInvoke(r.Target, s.invoke), env: envs[r.Target]}
		}
		set(r.Key, r.Target, in, r.twoWay())
	}
	for key, in := range cfg.Integrations {
		// Two-way where the deployment creates a route response, so a
		// reply that reaches the client here reaches it on AWS.
		set(key, TargetInProcess, in, contract.IsTwoWayRoute(key))
	}
	sortRoutes(s.Routes)
}

// gatewayConfigError is the gateway's own refusal of its configuration
// (the route selection expression): ErrConfig, in the gateway's words.
type gatewayConfigError struct{ err error }

func (e gatewayConfigError) Error() string   { return e.err.Error() }
func (e gatewayConfigError) Unwrap() []error { return []error{ErrConfig, e.err} }

// handlers builds the real in-process handlers, wired as their Lambda
// bootstraps wire them, but against the embedded endpoint, by builtin
// target name.
func (s *Stack) handlers(cfg Config) (map[string]localgw.Integration, error) {
	logs := cfg.HandlerLogs
	if logs == nil {
		logs = io.Discard
	}
	logger := func(fn string) *slog.Logger {
		return observability.NewLogger(observability.LogConfig{Writer: logs, Function: fn})
	}
	emf := func(fn string) *observability.EMF {
		return observability.NewEMF(observability.EMFConfig{Writer: logs, Environment: "local", Function: fn})
	}
	verifier, err := auth.NewVerifier(auth.VerifierConfig{
		Keys:     auth.StaticKey(&s.PrivateKey.PublicKey),
		Issuer:   cfg.Issuer,
		Audience: cfg.Audience,
	})
	if err != nil {
		return nil, fmt.Errorf("localstack: verifier: %w", err)
	}
	ch, err := connect.New(connect.Deps{Verifier: verifier, Store: s.Store, Logger: logger("connect"), Metrics: emf("connect")}, connect.Config{})
	if err != nil {
		return nil, fmt.Errorf("localstack: $connect handler: %w", err)
	}
	dh, err := disconnect.New(disconnect.Deps{Store: s.Store, Logger: logger("disconnect"), Metrics: emf("disconnect")})
	if err != nil {
		return nil, fmt.Errorf("localstack: $disconnect handler: %w", err)
	}
	mh, err := defaultroute.New(defaultroute.Deps{Store: s.Store, Logger: logger("default"), Metrics: emf("default")})
	if err != nil {
		return nil, fmt.Errorf("localstack: $default handler: %w", err)
	}
	return map[string]localgw.Integration{
		BuiltinConnect:    localgw.HandlerFunc(ch.Handle),
		BuiltinDisconnect: localgw.HandlerFunc(dh.Handle),
		BuiltinDefault:    localgw.HandlerFunc(mh.Handle),
	}, nil
}

// Mint signs a token for this stack (its issuer, audience and key).
func (s *Stack) Mint(opts auth.MintOptions) (string, error) {
	if opts.Issuer == "" {
		opts.Issuer = s.Issuer
	}
	if len(opts.Audience) == 0 && s.Audience != "" {
		opts.Audience = []string{s.Audience}
	}
	return auth.Mint(s.PrivateKey, opts)
}

// Close shuts the gateway down (clients get 1001 and their $disconnect runs)
// and waits for it until ctx is done. It does not wait for idle keep-alive
// connections of any client, this stack's own DynamoDB client included (the
// gateway closes them), so it returns as soon as the last $disconnect ran.
func (s *Stack) Close(ctx context.Context) error {
	err := s.Gateway.Shutdown(ctx)
	s.invoke.CloseIdleConnections()
	if s.DynamoDB != nil {
		// The client side of those connections: their keep-alive
		// goroutines would otherwise outlive the stack.
		type idleCloser interface{ CloseIdleConnections() }
		if c, ok := s.DynamoDB.Options().HTTPClient.(idleCloser); ok {
			c.CloseIdleConnections()
		}
	}
	return err
}

func withDefaults(cfg Config) (Config, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return cfg, fmt.Errorf("%w: listen address %q: want HOST:PORT, e.g. %s", ErrConfig, cfg.Listen, DefaultListen)
	}
	if cfg.Stage == "" {
		cfg.Stage = DefaultStage
	}
	if strings.ContainsAny(cfg.Stage, "/?#@ ") {
		return cfg, fmt.Errorf("%w: stage %q: use letters, digits, - and _", ErrConfig, cfg.Stage)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Table == "" {
		cfg.Table = schema.DefaultTableName
	}
	if cfg.RouteProbeTimeout < 0 {
		return cfg, fmt.Errorf("%w: RouteProbeTimeout %s is negative", ErrConfig, cfg.RouteProbeTimeout)
	}
	if cfg.RouteProbeTimeout == 0 {
		cfg.RouteProbeTimeout = DefaultRouteProbeTimeout
	}
	if cfg.KeyDir == "" {
		dir, err := DefaultKeyDir()
		if err != nil {
			return cfg, err
		}
		cfg.KeyDir = dir
	}
	return cfg, nil
}
