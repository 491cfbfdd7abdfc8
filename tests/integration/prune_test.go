package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pay-theory/streamer/internal/clitest"
	"github.com/pay-theory/streamer/internal/freeport"
	"github.com/pay-theory/streamer/internal/syncbuf"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/store"
)

// pruneResult is the documented -o json of `streamer conn prune`, read as
// a user's script would.
type pruneResult struct {
	DryRun   bool     `json:"dry_run"`
	Checked  int      `json:"checked"`
	Live     int      `json:"live"`
	Recent   int      `json:"recent"`
	Removed  int      `json:"removed"`
	Errors   int      `json:"errors"`
	Complete bool     `json:"complete"`
	Zombies  []string `json:"zombies"`
	Failures []struct {
		ConnectionID string `json:"connection_id"`
		Status       string `json:"status"`
	} `json:"failures"`
}

// buildCLI builds the streamer binary for this test.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "streamer")
	if err := clitest.Build(bin); err != nil {
		t.Fatalf("build streamer: %v", err)
	}
	return bin
}

// prune runs the built `streamer conn prune -o json args...` with env.
func prune(t *testing.T, bin string, env []string, args ...string) (pruneResult, clitest.Result) {
	t.Helper()
	r := clitest.Run(t, bin, env, "", append([]string{"conn", "prune", "-o", "json"}, args...)...)
	var res pruneResult
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("conn prune printed no JSON summary (%v): %s", err, r)
	}
	return res, r
}

// swarm holds real WebSocket clients, one user each, of one tenant.
type swarm struct {
	mu    sync.Mutex
	conns map[string]*websocket.Conn // by user
}

// connect dials n clients (users prefix-0..n-1), at most 32 at a time.
func connect(t *testing.T, wsURL string, key authKey, prefix, tenant string, n int) *swarm {
	t.Helper()
	s := &swarm{conns: map[string]*websocket.Conn{}}
	t.Cleanup(func() {
		for _, c := range s.conns {
			_ = c.CloseNow()
		}
	})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		user := fmt.Sprintf("%s-%03d", prefix, i)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tok, err := key.mint(user, tenant)
			if err != nil {
				errs <- err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, wsURL+"?Authorization="+url.QueryEscape(tok), &websocket.DialOptions{HTTPClient: hc})
			if resp != nil && resp.Body != nil {
				_ = resp.Body.Close()
			}
			if err != nil {
				errs <- fmt.Errorf("dial %s: %w", user, err)
				return
			}
			s.mu.Lock()
			s.conns[user] = c
			s.mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return s
}

// close closes the clients of users with 1000, as a browser tab does.
func (s *swarm) close(t *testing.T, users []string) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, u := range users {
		s.mu.Lock()
		c := s.conns[u]
		delete(s.conns, u)
		s.mu.Unlock()
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_ = c.Close(websocket.StatusNormalClosure, "bye")
		})
	}
	wg.Wait()
}

// authKey mints tokens for a stack.
type authKey struct {
	mint func(user, tenant string) (string, error)
}

func keyOf(t *testing.T, keyDir, issuer string) authKey {
	t.Helper()
	k, err := auth.LoadPrivateKeyFile(filepath.Join(keyDir, auth.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return authKey{mint: func(user, tenant string) (string, error) {
		return auth.Mint(k, auth.MintOptions{UserID: user, TenantID: tenant, Issuer: issuer, TTL: time.Hour})
	}}
}

// records maps user to connection id for the tenant's stored records.
func records(t *testing.T, st *store.Dynamo, tenant string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for c, err := range store.All(context.Background(), st, store.ListQuery{TenantID: tenant, PageSize: store.MaxListPageSize}) {
		if err != nil {
			t.Fatalf("list %s: %v", tenant, err)
		}
		out[c.UserID] = c.ConnectionID
	}
	return out
}

type gwMetrics struct {
	Active             int64 `json:"active_connections"`
	Disconnects        int64 `json:"disconnects_total"`
	DisconnectsDropped int64 `json:"disconnects_dropped_total"`
}

func readMetrics(t *testing.T, metricsURL string) gwMetrics {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := hc.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m gwMetrics
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// settle waits until the gateway has seen closed of its clients close and
// every $disconnect it ran has removed its record: the tenant then holds
// live + dropped records. It returns the dropped count.
func settle(t *testing.T, st *store.Dynamo, metricsURL, tenant string, live, closed int) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		m := readMetrics(t, metricsURL)
		n := len(records(t, st, tenant))
		if m.Active == int64(live) && m.Disconnects == int64(closed) && n == live+int(m.DisconnectsDropped) {
			return int(m.DisconnectsDropped)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled after 60 s: gateway %+v, %d records of %s (want %d live, %d closed)", m, n, tenant, live, closed)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func counter(t *testing.T, st *store.Dynamo) int64 {
	t.Helper()
	n, err := st.AddActive(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newStoreAt(t *testing.T, endpoint string) *store.Dynamo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := store.NewDynamoClient(ctx, store.ClientConfig{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	return store.New(client, store.Config{})
}

// TestPruneRemovesExactlyTheLingeringRecords is issue #12's done-when: 500
// real clients of `streamer local --drop-disconnect 0.3`, 200 of them
// close, about 60 records linger (their $disconnect was dropped), and the
// built `streamer conn prune` removes exactly those, keeps the 300 live
// ones and leaves ActiveConnections at 300; a second run removes nothing.
func TestPruneRemovesExactlyTheLingeringRecords(t *testing.T) {
	bin := buildCLI(t)
	keyDir := filepath.Join(t.TempDir(), "keys")
	l := clitest.StartLocal(t, bin, "--key-dir", keyDir, "--drop-disconnect", "0.3")
	st := newStoreAt(t, l.DynamoDBEndpoint)
	const tenant, total, closing = "zombies", 500, 200
	s := connect(t, l.WebSocketURL, keyOf(t, keyDir, localstack.DefaultIssuer), "zu", tenant, total)
	ids := records(t, st, tenant)
	if len(ids) != total || counter(t, st) != total {
		t.Fatalf("%d records, counter %d after %d connects", len(ids), counter(t, st), total)
	}
	var closed []string
	for i := range closing {
		closed = append(closed, fmt.Sprintf("zu-%03d", i))
	}
	s.close(t, closed)
	dropped := settle(t, st, l.MetricsURL, tenant, total-closing, closing)

	lingering := map[string]bool{}
	after := records(t, st, tenant)
	for _, u := range closed {
		if id, ok := after[u]; ok {
			lingering[id] = true
		}
	}
	t.Logf("%d of %d closes lost their $disconnect; %d records linger", dropped, closing, len(lingering))
	// 200 closes at P=0.3: 60 expected, σ ≈ 6.5.
	if len(lingering) != dropped || len(lingering) < 25 || len(lingering) > 100 {
		t.Fatalf("%d records of closed clients linger, %d $disconnects dropped: want about 60, and equal", len(lingering), dropped)
	}
	live := total - closing
	if got := counter(t, st); got != int64(live+len(lingering)) {
		t.Fatalf("ActiveConnections %d before prune, want %d (live + lingering)", got, live+len(lingering))
	}

	// Records are seconds old: --min-age 0 checks them all (the default
	// leaves alone a minute's worth, which a connecting client may own).
	res, r := prune(t, bin, l.Env(), "--min-age", "0")
	if r.Code != 0 {
		t.Fatalf("conn prune: %s", r)
	}
	got := slices.Clone(res.Zombies)
	slices.Sort(got)
	var want []string
	for id := range lingering {
		want = append(want, id)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) || res.Removed != len(want) || res.Live != live || res.Checked != live+len(want) || res.Errors != 0 || !res.Complete {
		t.Fatalf("prune %+v: want exactly the %d lingering records removed and %d live ones kept", res, len(want), live)
	}
	final := records(t, st, tenant)
	for u, id := range ids {
		_, stored := final[u]
		if stored == (slices.Contains(closed, u)) {
			t.Errorf("user %s (%s, closed %v): stored %v after prune", u, id, slices.Contains(closed, u), stored)
		}
	}
	if got := counter(t, st); got != int64(live) {
		t.Errorf("ActiveConnections %d after prune, want the %d live connections", got, live)
	}
	if m := readMetrics(t, l.MetricsURL); m.Active != int64(live) {
		t.Errorf("the gateway holds %d connections after prune, want %d: prune must not disconnect anyone", m.Active, live)
	}

	res, r = prune(t, bin, l.Env(), "--min-age", "0")
	if r.Code != 0 || res.Removed != 0 || len(res.Zombies) != 0 || res.Live != live {
		t.Fatalf("second prune %+v (%s): want nothing removed", res, r)
	}
	if got := counter(t, st); got != int64(live) {
		t.Errorf("ActiveConnections %d after a second prune, want %d", got, live)
	}
}

// TestPruneDuringAnOutageDeletesNothing: while every GetConnection
// answers 500, or the management API cannot be reached at all, the built
// `streamer conn prune` removes nothing and exits 3; once the gateway
// answers again it removes the zombies.
func TestPruneDuringAnOutageDeletesNothing(t *testing.T) {
	bin := buildCLI(t)
	s := startStack(t, localstack.Config{})
	st := s.Store
	const tenant = "outage"
	key := authKey{mint: func(user, tenant string) (string, error) {
		return s.Mint(auth.MintOptions{UserID: user, TenantID: tenant, TTL: time.Hour})
	}}
	sw := connect(t, s.WebSocketURL, key, "ou", tenant, 30)
	if err := s.Gateway.SetFaults(localgw.Faults{DropDisconnect: 1}); err != nil {
		t.Fatal(err)
	}
	var closed []string
	for i := range 20 {
		closed = append(closed, fmt.Sprintf("ou-%03d", i))
	}
	sw.close(t, closed)
	if dropped := settle(t, st, s.MetricsURL, tenant, 10, 20); dropped != 20 {
		t.Fatalf("%d $disconnects dropped, want all 20", dropped)
	}
	before := records(t, st, tenant)
	env := append(clitest.CleanEnv(t), "STREAMER_ENDPOINT="+s.ManagementEndpoint, "AWS_ENDPOINT_URL_DYNAMODB="+s.DynamoDBEndpoint)
	unchanged := func(what string) {
		t.Helper()
		if after := records(t, st, tenant); len(after) != len(before) {
			t.Fatalf("%s: %d records, %d before: an outage must remove nothing", what, len(after), len(before))
		}
		if got := counter(t, st); got != 30 {
			t.Fatalf("%s: ActiveConnections %d, want 30 (nothing removed)", what, got)
		}
	}

	if err := s.Gateway.SetFaults(localgw.Faults{Error500: 1}); err != nil {
		t.Fatal(err)
	}
	res, r := prune(t, bin, env, "--tenant", tenant, "--min-age", "0")
	if r.Code != 3 || res.Removed != 0 || len(res.Zombies) != 0 || res.Errors != 30 || len(res.Failures) == 0 {
		t.Fatalf("prune during 500s: %+v (%s): want exit 3, 30 errors, nothing removed", res, r)
	}
	unchanged("500s")

	// The management API is down: nothing listens at its address.
	down := "http://" + closedAddr(t) + "/local"
	res, r = prune(t, bin, append(env, "STREAMER_ENDPOINT="+down), "--tenant", tenant, "--min-age", "0")
	if r.Code != 3 || res.Removed != 0 || res.Errors != 30 {
		t.Fatalf("prune with the management API down: %+v (%s): want exit 3, nothing removed", res, r)
	}
	unchanged("management API down")

	if err := s.Gateway.SetFaults(localgw.Faults{}); err != nil {
		t.Fatal(err)
	}
	res, r = prune(t, bin, env, "--tenant", tenant, "--min-age", "0")
	if r.Code != 0 || res.Removed != 20 || res.Live != 10 {
		t.Fatalf("prune after the outage: %+v (%s): want the 20 zombies removed", res, r)
	}
	if got := counter(t, st); got != 10 {
		t.Errorf("ActiveConnections %d, want 10", got)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freeport.Port(t))
}

// TestPruneInterruptedResumes: Ctrl-C in the middle of a prune prints the
// summary so far with the cursor (exit 130), and the printed resume
// command finishes the job: every zombie removed exactly once, and the
// counter follows.
func TestPruneInterruptedResumes(t *testing.T) {
	bin := buildCLI(t)
	s := startStack(t, localstack.Config{})
	ctx := context.Background()
	const n = 3000
	old := time.Now().Add(-time.Hour)
	zombies := make([]store.Connection, n)
	for i := range zombies {
		zombies[i] = store.Connection{ConnectionID: fmt.Sprintf("Interrupt%06d=", i), UserID: "gone", TenantID: "gone", ConnectedAt: old}
	}
	start := time.Now()
	if err := s.Store.SaveMany(ctx, zombies); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded in %v", time.Since(start))
	if _, err := s.Store.AddActive(ctx, n); err != nil {
		t.Fatal(err)
	}
	// 500 ms per GetConnection: at most 256 in flight (pages overlap), so
	// 3,000 records need at least 5.9 s of requests, and when the first
	// 1,000 are removed (after at least 7 round trips from a limit of 10)
	// 2,000 need at least 3.9 s more: the interrupt comes mid-pass
	// whatever the machine's speed.
	if err := s.Gateway.SetFaults(localgw.Faults{Latency: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	env := append(clitest.CleanEnv(t), "STREAMER_ENDPOINT="+s.ManagementEndpoint, "AWS_ENDPOINT_URL_DYNAMODB="+s.DynamoDBEndpoint)

	cmd := exec.Command(bin, "conn", "prune", "-o", "json")
	cmd.Env = env
	var out, errOut syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for counter(t, s.Store) > n-store.MaxListPageSize { // 1,000 removed: the first pages are done
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("no page removed within 60 s: %s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("1,000 removed after %v", time.Since(start))
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := <-exited; !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("prune after SIGINT: %v, want exit 130; stderr:\n%s", err, errOut.String())
	}
	var first struct {
		pruneResult
		Interrupted bool   `json:"interrupted"`
		Cursor      string `json:"cursor"`
	}
	if err := json.Unmarshal([]byte(out.String()), &first); err != nil || !first.Interrupted || first.Complete || first.Cursor == "" || first.Removed == 0 {
		t.Fatalf("interrupted summary %+v (%v): want the work so far and a cursor\n%s", first, err, out.String())
	}
	hint := "to resume: streamer conn prune --cursor " + first.Cursor + "\n"
	if !strings.Contains(errOut.String(), hint) {
		t.Fatalf("stderr lacks %q:\n%s", hint, errOut.String())
	}

	t.Logf("interrupted after %v", time.Since(start))
	res, r := prune(t, bin, env, "--cursor", first.Cursor)
	t.Logf("resumed pass done after %v", time.Since(start))
	if r.Code != 0 || !res.Complete {
		t.Fatalf("resumed prune: %+v (%s)", res, r)
	}
	if first.Removed+res.Removed != n {
		t.Errorf("removed %d, then %d resuming: want the %d zombies, each once", first.Removed, res.Removed, n)
	}
	if left, err := s.Store.List(ctx, store.ListQuery{TenantID: "gone"}); err != nil || len(left.Connections) != 0 {
		t.Errorf("%d zombies left (%v)", len(left.Connections), err)
	}
	if got := counter(t, s.Store); got != 0 {
		t.Errorf("ActiveConnections %d, want 0", got)
	}
}
