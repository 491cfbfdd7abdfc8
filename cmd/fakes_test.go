package cmd

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/pay-theory/streamer/pkg/auth"
	"github.com/pay-theory/streamer/pkg/connection"
	"github.com/pay-theory/streamer/pkg/connection/connectiontest"
	"github.com/pay-theory/streamer/pkg/store"
	"go.uber.org/goleak"
)

var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// testEnv is a Factory over buffers and fakes, plus handles to inspect them.
type testEnv struct {
	f      *Factory
	out    *bytes.Buffer
	errOut *bytes.Buffer
	env    map[string]string
	store  *fakeStore
	mgmt   *fakeMgmt
	keyDir string
	// fail configures each Messenger built: ids whose sends fail, and how.
	fail map[string]error
	// msgr is the Messenger the last command built (a fresh Recorder per
	// command line: Run shuts it down), msgrOpts what it was built with,
	// and recorders every one built so far.
	msgr      *connectiontest.Recorder
	msgrOpts  MessengerOptions
	recorders []*connectiontest.Recorder
	// sink, when set, is every Recorder's Sink (the smoke world's clients).
	sink chan connectiontest.Sent
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	te := &testEnv{out: &bytes.Buffer{}, errOut: &bytes.Buffer{}, env: map[string]string{},
		store: newFakeStore(), mgmt: &fakeMgmt{live: map[string]bool{}}, keyDir: t.TempDir(),
		fail: map[string]error{}, msgr: connectiontest.NewRecorder(0)}
	te.env[keyDirEnv] = te.keyDir
	te.f = &Factory{Deps: Deps{
		IO:            IOStreams{In: strings.NewReader(""), Out: te.out, ErrOut: te.errOut},
		Getenv:        func(k string) string { return te.env[k] },
		Now:           func() time.Time { return testNow },
		DefaultKeyDir: func() (string, error) { return t.TempDir(), nil },
		Build: Builders{
			Store:      func(context.Context, Config) (ConnStore, error) { return te.store, nil },
			Management: func(context.Context, Config) (ManagementAPI, error) { return te.mgmt, nil },
			Messenger: func(_ context.Context, _ Config, o MessengerOptions) (Messenger, error) {
				te.msgr, te.msgrOpts = connectiontest.NewRecorder(0), o
				te.recorders = append(te.recorders, te.msgr)
				te.msgr.Sink = te.sink
				for id, err := range te.fail {
					te.msgr.FailID(id, err)
				}
				return te.msgr, nil
			},
		},
		Dial: func(context.Context, string, http.Header) (WSConn, int, error) {
			return nil, 0, errors.New("no dialer in this test")
		},
	}}
	return te
}

// sent is every message delivered by the command lines run so far, in order.
func (te *testEnv) sent() []connectiontest.Sent {
	var all []connectiontest.Sent
	for _, r := range te.recorders {
		all = append(all, r.Sent()...)
	}
	return all
}

// sentTo is the payloads delivered to id so far, in order.
func (te *testEnv) sentTo(id string) []string {
	var out []string
	for _, s := range te.sent() {
		if s.ConnectionID == id {
			out = append(out, string(s.Message))
		}
	}
	return out
}

// run executes a command line and returns the exit code.
func (te *testEnv) run(args ...string) int {
	return Run(context.Background(), te.f, args)
}

// sharedKeys holds one key pair generated in TestMain for the package's
// tests (RSA generation is the slow part).
var sharedKeys string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "streamer-cmd-keys-")
	if err != nil {
		panic(err)
	}
	if _, _, err := auth.WriteKeyPair(dir, false); err != nil {
		panic(err)
	}
	sharedKeys = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func sharedKeyDir(t *testing.T) string {
	t.Helper()
	return sharedKeys
}

// ---- store

type fakeStore struct {
	mu        sync.Mutex
	conns     map[string]store.Connection
	order     []string
	listCalls int
	err       error
}

func newFakeStore() *fakeStore { return &fakeStore{conns: map[string]store.Connection{}} }

func (s *fakeStore) put(c store.Connection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c.ConnectionID]; !ok {
		s.order = append(s.order, c.ConnectionID)
	}
	s.conns[c.ConnectionID] = c
}

func (s *fakeStore) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.conns[id]
	return ok
}

func (s *fakeStore) Get(_ context.Context, id string) (store.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return store.Connection{}, s.err
	}
	c, ok := s.conns[id]
	if !ok {
		return store.Connection{}, store.ErrNotFound
	}
	return c, nil
}

func (s *fakeStore) Delete(_ context.Context, id string) (store.Connection, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[id]
	delete(s.conns, id)
	return c, ok, s.err
}

func (s *fakeStore) List(_ context.Context, q store.ListQuery) (store.Page, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listCalls++
	if s.err != nil {
		return store.Page{}, s.err
	}
	var match []store.Connection
	for _, id := range s.order {
		c, ok := s.conns[id]
		all := q.TenantID == "" && q.UserID == "" // the whole table, as store.Dynamo scans it
		if ok && (all || (q.TenantID != "" && c.TenantID == q.TenantID) || (q.UserID != "" && c.UserID == q.UserID)) {
			match = append(match, c)
		}
	}
	sort.SliceStable(match, func(i, j int) bool { return match[i].ConnectedAt.Before(match[j].ConnectedAt) })
	size := int(q.PageSize)
	if size == 0 {
		size = store.DefaultListPageSize
	}
	start := 0
	if q.Cursor != "" {
		fmt.Sscan(q.Cursor, &start)
	}
	end := min(start+size, len(match))
	p := store.Page{Connections: match[start:end]}
	if end < len(match) {
		p.Next = fmt.Sprint(end)
	}
	return p, nil
}

func conn(id, user, tenant string, age time.Duration) store.Connection {
	return store.Connection{ConnectionID: id, UserID: user, TenantID: tenant, Endpoint: "http://127.0.0.1:4510/local",
		ConnectedAt: testNow.Add(-age), LastPing: testNow.Add(-age / 2), MessagesSent: 3, MessagesReceived: 4,
		Metadata: store.Metadata{UserAgent: "test-agent", IPAddress: "127.0.0.1"}, TTL: testNow.Add(24 * time.Hour).Unix()}
}

// ---- management API

type fakeMgmt struct {
	mu      sync.Mutex
	live    map[string]bool
	deleted []string
	err     error
	// onDelete runs after a successful DeleteConnection, like the gateway
	// running $disconnect.
	onDelete func(id string)
}

func (m *fakeMgmt) GetConnection(_ context.Context, in *apigatewaymanagementapi.GetConnectionInput, _ ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.GetConnectionOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	if !m.live[aws.ToString(in.ConnectionId)] {
		return nil, &types.GoneException{Message: aws.String("gone")}
	}
	return &apigatewaymanagementapi.GetConnectionOutput{
		ConnectedAt: aws.Time(testNow.Add(-time.Hour)), LastActiveAt: aws.Time(testNow.Add(-time.Minute)),
		Identity: &types.Identity{SourceIp: aws.String("10.0.0.1"), UserAgent: aws.String("wscat")},
	}, nil
}

func (m *fakeMgmt) DeleteConnection(_ context.Context, in *apigatewaymanagementapi.DeleteConnectionInput, _ ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.DeleteConnectionOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	id := aws.ToString(in.ConnectionId)
	if !m.live[id] {
		return nil, &types.GoneException{Message: aws.String("gone")}
	}
	delete(m.live, id)
	m.deleted = append(m.deleted, id)
	if m.onDelete != nil {
		m.onDelete(id)
	}
	return &apigatewaymanagementapi.DeleteConnectionOutput{}, nil
}

// ---- a whole fake stack for smoke: dialing with a token the key verifies
// creates a connection and its record; closing removes the record.

type fakeWorld struct {
	te  *testEnv
	pub *rsa.PublicKey
	// acceptExpired simulates a broken $connect that lets expired tokens in.
	acceptExpired bool
	// keepRecord simulates a $disconnect that never deletes the record.
	keepRecord bool
	mu         sync.Mutex
	n          int
}

func newFakeWorld(t *testing.T, te *testEnv) *fakeWorld {
	t.Helper()
	dir := sharedKeyDir(t)
	te.env[keyDirEnv] = dir
	pub, err := loadPublicKey(filepath.Join(dir, PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	w := &fakeWorld{te: te, pub: pub}
	te.f.Now = time.Now // tokens are checked against the real clock
	te.f.Dial = w.dial
	// Deliveries reach the world's one client through the Recorder's sink.
	te.sink = make(chan connectiontest.Sent, 4)
	return w
}

func (w *fakeWorld) dial(ctx context.Context, raw string, _ http.Header) (WSConn, int, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, 0, err
	}
	tok := u.Query().Get("Authorization")
	claims, err := verifyToken(ctx, w.pub, DefaultIssuer, "", tok)
	if err != nil && !(w.acceptExpired && errors.Is(err, auth.ErrExpired)) {
		return nil, http.StatusUnauthorized, fmt.Errorf("failed to WebSocket dial: 401: %w", err)
	}
	if err != nil {
		claims, _ = decodeUnverified(tok)
	}
	w.mu.Lock()
	w.n++
	id := fmt.Sprintf("conn%d=", w.n)
	w.mu.Unlock()
	w.te.store.put(store.Connection{ConnectionID: id, UserID: claims.UserID, TenantID: claims.TenantID, ConnectedAt: time.Now()})
	return &fakeWS{w: w, id: id}, http.StatusSwitchingProtocols, nil
}

type fakeWS struct {
	w  *fakeWorld
	id string
}

func (c *fakeWS) Read(ctx context.Context) ([]byte, error) {
	select {
	case s := <-c.w.te.sink:
		if s.ConnectionID != c.id {
			return nil, fmt.Errorf("received a message for %s on %s", s.ConnectionID, c.id)
		}
		return s.Message, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Write: smoke's client sends nothing.
func (c *fakeWS) Write(context.Context, []byte) error {
	return errors.New("fakeWS: smoke's client sends nothing")
}

// Close is the client leaving: its record goes (unless keepRecord) and
// sends to it are not found, as the Manager would find no record.
func (c *fakeWS) Close() error {
	if !c.w.keepRecord {
		_, _, _ = c.w.te.store.Delete(context.Background(), c.id)
		c.w.te.msgr.FailID(c.id, connection.ErrConnectionNotFound)
	}
	return nil
}
