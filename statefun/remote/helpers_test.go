package remote

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statefun-go/statefun/statefun/module"
)

const (
	async  = module.TransportAsync
	okhttp = module.TransportOkHTTP
)

var transports = []string{async, okhttp}

// testBudget is the call budget of the tests that run out of budget.
const testBudget = 200 * time.Millisecond

// newEP returns a v2 endpoint at module.yaml:3:1 binding com.example/*.
func newEP(url, typ string, call time.Duration) *module.Endpoint {
	ep := &module.Endpoint{
		Pos:                 module.Pos{File: "module.yaml", Line: 3, Column: 1},
		Kind:                module.KindHTTPv2,
		Functions:           module.TypeName{Namespace: "com.example", Name: "*"},
		Wildcard:            true,
		URLPathTemplate:     url,
		MaxNumBatchRequests: module.DefaultMaxNumBatchRequests,
	}
	if typ == okhttp {
		ep.Transport = module.Transport{Type: okhttp, Call: call, Connect: time.Second, Read: call, Write: call}
	} else {
		ep.Transport = module.Transport{Type: async, Call: call, Connect: time.Second, PoolTTL: 15 * time.Second,
			PoolSize: 16, PayloadMaxBytes: module.DefaultAsyncPayloadMaxBytes}
	}
	return ep
}

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger(buf *logBuf) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newClient(t *testing.T, ep *module.Endpoint, opts Options) *Client {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c, err := NewClient(ep, opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// newServer starts an HTTP test server whose own error log is silenced.
func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func asCallError(t *testing.T, err error) *CallError {
	t.Helper()
	if err == nil {
		t.Fatal("Invoke succeeded, want an error")
	}
	var ce *CallError
	if !errors.As(err, &ce) {
		t.Fatalf("error %T %v is not a *CallError", err, err)
	}
	return ce
}

func mustContain(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}

// fakeClock is an injected clock advanced only by the injected Sleep.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	waits []time.Duration
	// onSleep, when set, runs before each wait is recorded.
	onSleep func(n int)
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	n := len(f.waits)
	hook := f.onSleep
	f.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	f.mu.Lock()
	f.waits = append(f.waits, d)
	f.t = f.t.Add(d)
	f.mu.Unlock()
	return ctx.Err()
}

func (f *fakeClock) Waits() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.waits...)
}
