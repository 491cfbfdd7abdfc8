// Package simulate runs synthetic WebSocket clients against a local stack so
// the dashboard has live numbers in a demo: clients connect with minted
// tokens (a few with bad ones, to show authentication failures), send
// messages and pings, receive tenant broadcasts sent through a real
// connection.Manager, and disconnect and reconnect at a steady pace.
//
// Everything goes over the real protocols: WebSocket upgrades through the
// gateway and the real $connect handler, @connections POSTs through the AWS
// SDK client.
package simulate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/internal/wait"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/store"
)

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("simulate: invalid configuration")

// Config tunes a simulation. Every zero value means the documented default.
type Config struct {
	// Clients is how many synthetic clients stay connected (each reconnects
	// as a new connection when its lifetime ends). Required: 1..10000.
	Clients int
	// Tenants spreads clients over this many tenants; 0 => 3.
	Tenants int
	// MessageInterval is the mean pause between one client's messages;
	// 0 => 2 s.
	MessageInterval time.Duration
	// Lifetime is the mean connection lifetime; 0 => 30 s.
	Lifetime time.Duration
	// BroadcastInterval is the pause between tenant broadcasts; 0 => 3 s.
	BroadcastInterval time.Duration
	// BadTokenRate is the fraction of connects that present an expired
	// token (and are refused with 401); 0 => 0.05, negative => none.
	BadTokenRate float64
	// Seed makes the pacing reproducible; 0 => random.
	Seed uint64
	// Logger receives diagnostics; nil => discard.
	Logger *slog.Logger
}

// Stats counts what the simulation did.
type Stats struct {
	Connects, Refused, Disconnects int64
	MessagesSent, MessagesReceived int64
	Broadcasts                     int64
}

// Simulator is a running simulation.
type Simulator struct {
	cfg     Config
	stack   *localstack.Stack
	manager *connection.Manager
	log     *slog.Logger
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	connects, refused, disconnects atomic.Int64
	sent, received, broadcasts     atomic.Int64
}

// Start starts cfg.Clients clients against stack and a broadcaster, and
// reports the broadcaster's Manager metrics into the gateway's
// /metrics.json ("manager"), so the dashboard shows breaker state and send
// latency. Stop ends it.
func Start(ctx context.Context, stack *localstack.Stack, cfg Config) (*Simulator, error) {
	if stack == nil {
		return nil, fmt.Errorf("%w: no stack", ErrConfig)
	}
	if cfg.Clients < 1 || cfg.Clients > 10000 {
		return nil, fmt.Errorf("%w: clients %d: want 1..10000", ErrConfig, cfg.Clients)
	}
	if cfg.Tenants <= 0 {
		cfg.Tenants = 3
	}
	if cfg.MessageInterval <= 0 {
		cfg.MessageInterval = 2 * time.Second
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 30 * time.Second
	}
	if cfg.BroadcastInterval <= 0 {
		cfg.BroadcastInterval = 3 * time.Second
	}
	if cfg.BadTokenRate == 0 {
		cfg.BadTokenRate = 0.05
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	api := connection.NewManagementClient(stack.ManagementEndpoint, connection.ClientOptions{})
	m, err := connection.New(api, stack.Store, connection.Config{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("simulate: manager: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Simulator{cfg: cfg, stack: stack, manager: m, log: log, cancel: cancel}
	stack.Gateway.SetManagerReporter(s.managerMetrics)
	for i := 0; i < cfg.Clients; i++ {
		s.wg.Add(1)
		go s.client(ctx, i)
	}
	s.wg.Add(1)
	go s.broadcaster(ctx)
	return s, nil
}

// Stats returns the counters so far.
func (s *Simulator) Stats() Stats {
	return Stats{
		Connects: s.connects.Load(), Refused: s.refused.Load(), Disconnects: s.disconnects.Load(),
		MessagesSent: s.sent.Load(), MessagesReceived: s.received.Load(), Broadcasts: s.broadcasts.Load(),
	}
}

// Stop disconnects every client and stops the broadcaster, waiting until
// ctx is done at most.
func (s *Simulator) Stop(ctx context.Context) error {
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("simulate: clients still running: %w", ctx.Err())
	}
	s.stack.Gateway.SetManagerReporter(nil)
	if e := s.manager.Shutdown(ctx); e != nil && err == nil {
		err = e
	}
	return err
}

func (s *Simulator) managerMetrics() localgw.ManagerMetrics {
	ms := s.manager.Metrics()
	ms2 := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return localgw.ManagerMetrics{
		BreakerState:     ms.BreakerState,
		SendsTotal:       int64(ms.Sends),
		SendErrorsTotal:  int64(ms.SendErrors),
		LatencyMS:        localgw.LatencyMS{P50: ms2(ms.Latency.P50), P90: ms2(ms.Latency.P90), P99: ms2(ms.Latency.P99)},
		ConcurrencyLimit: ms.Limit.Limit, InFlight: ms.Limit.InFlight, RatePerSecond: ms.Limit.RatePerSecond,
		ThrottledTotal: int64(ms.Limit.Throttled),
	}
}

// jitter returns d scaled by a uniform factor in [0.5, 1.5).
func jitter(r *rand.Rand, d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.5 + r.Float64()))
}

func (s *Simulator) client(ctx context.Context, n int) {
	defer s.wg.Done()
	r := rand.New(rand.NewPCG(s.cfg.Seed, uint64(n)))
	tenant := "tenant-" + strconv.Itoa(n%s.cfg.Tenants)
	// Spread the first connects over one message interval, not all at once.
	if wait.Sleep(ctx, time.Duration(r.Int64N(int64(s.cfg.MessageInterval)))) != nil {
		return
	}
	for gen := 0; ctx.Err() == nil; gen++ {
		user := fmt.Sprintf("sim-%d-%d", n, gen)
		bad := s.cfg.BadTokenRate > 0 && r.Float64() < s.cfg.BadTokenRate
		tok, err := s.stack.Mint(auth.MintOptions{UserID: user, TenantID: tenant, Expired: bad})
		if err != nil {
			s.log.Error("simulate: mint", "err", err)
			return
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, _, err := websocket.Dial(dctx, s.stack.WebSocketURL+"?Authorization="+url.QueryEscape(tok), nil)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.refused.Add(1)
			if wait.Sleep(ctx, jitter(r, time.Second)) != nil {
				return
			}
			continue
		}
		s.connects.Add(1)
		s.session(ctx, r, c)
		s.disconnects.Add(1)
	}
}

// session drives one connection until its lifetime ends or ctx is done.
func (s *Simulator) session(ctx context.Context, r *rand.Rand, c *websocket.Conn) {
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
			s.received.Add(1)
		}
	}()
	end := time.NewTimer(jitter(r, s.cfg.Lifetime))
	defer end.Stop()
	for i := 0; ; i++ {
		wait := time.NewTimer(jitter(r, s.cfg.MessageInterval))
		select {
		case <-ctx.Done():
			wait.Stop()
			_ = c.Close(websocket.StatusGoingAway, "simulation stopped")
			s.awaitReader(c, readDone)
			return
		case <-end.C:
			wait.Stop()
			_ = c.Close(websocket.StatusNormalClosure, "lifetime over")
			s.awaitReader(c, readDone)
			return
		case <-readDone:
			wait.Stop()
			_ = c.CloseNow()
			return
		case <-wait.C:
		}
		msg := `{"action":"message","n":` + strconv.Itoa(i) + `}`
		if i%5 == 4 {
			msg = `{"action":"ping"}`
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.Write(wctx, websocket.MessageText, []byte(msg))
		cancel()
		if err == nil {
			s.sent.Add(1)
		}
	}
}

// awaitReader waits for the read loop to see the close handshake finish,
// forcing the socket closed if the peer does not answer in time.
func (s *Simulator) awaitReader(c *websocket.Conn, readDone <-chan struct{}) {
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-readDone:
	case <-t.C:
		_ = c.CloseNow()
		<-readDone
	}
}

func (s *Simulator) broadcaster(ctx context.Context) {
	defer s.wg.Done()
	for i := 0; ; i++ {
		if wait.Sleep(ctx, s.cfg.BroadcastInterval) != nil {
			return
		}
		tenant := "tenant-" + strconv.Itoa(i%s.cfg.Tenants)
		var ids []string
		for c, err := range store.All(ctx, s.stack.Store, store.ListQuery{TenantID: tenant}) {
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("simulate: list tenant", "tenant", tenant, "err", err)
				}
				break
			}
			ids = append(ids, c.ConnectionID)
		}
		if len(ids) == 0 {
			continue
		}
		msg := map[string]any{"type": "broadcast", "tenant": tenant, "seq": i}
		if _, err := s.manager.Broadcast(ctx, ids, msg); err != nil && ctx.Err() == nil {
			s.log.Warn("simulate: broadcast", "tenant", tenant, "err", err)
		}
		s.broadcasts.Add(1)
	}
}
