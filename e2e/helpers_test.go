package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/statefun-go/statefun/connectors/connectortest"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/translate"
)

// syncBuffer is a goroutine-safe bytes.Buffer (log output, stdout egress).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger returns a logger whose output is printed only when t fails
// (so the logs never race with the end of the test).
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// runApp runs cfg with a context timeout (a hang fails the test instead of
// blocking it). When app.Run does not even return within the timeout plus
// a grace period, the goroutines are dumped and the test fails.
func runApp(t *testing.T, timeout time.Duration, cfg app.Config) (app.Summary, error) {
	t.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	type result struct {
		sum app.Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := app.Run(ctx, cfg)
		done <- result{s, err}
	}()
	grace := cfg.ShutdownTimeout + 10*time.Second
	select {
	case r := <-done:
		if ctx.Err() != nil {
			t.Errorf("the job did not finish by itself within %v (it was stopped by the test's context timeout); err=%v", timeout, r.err)
		}
		return r.sum, r.err
	case <-time.After(timeout + grace):
		var stacks bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Fatalf("app.Run hung: no return %v after the context timeout of %v\n%s", grace, timeout, stacks.String())
		return app.Summary{}, nil
	}
}

// stringRecords makes keyed records whose value is a StringType value.
func stringRecords(origin string, kv ...string) []connectors.Record {
	return connectortest.StringRecords(origin, kv...)
}

func newSliceSource(recs []connectors.Record, batch int) translate.SourceFactory {
	return func(int) connectors.Source { return &connectortest.SliceSource{Records: recs, Batch: batch} }
}

// capture keeps every envelope an egress receives, in arrival order.
type capture struct{ connectortest.Capture }

func (c *capture) egress(id string) translate.Egress { return translate.Egress{ID: id, Sink: c.Sink} }

func (c *capture) all() []envelope.Envelope { return c.All() }

// decodeJSON decodes the JSON egress values of envs into a slice of T.
func decodeJSON[T any](t *testing.T, envs []envelope.Envelope) []T {
	t.Helper()
	out := make([]T, 0, len(envs))
	for _, e := range envs {
		var v T
		if err := json.Unmarshal(e.Value, &v); err != nil {
			t.Fatalf("egress value %q of typename %s: %v", e.Value, e.Typename, err)
		}
		out = append(out, v)
	}
	return out
}

// specs builds embedded function specs through the SDK builder.
func specs(t *testing.T, ss ...statefun.StatefulFunctionSpec) []statefun.StatefulFunctionSpec {
	t.Helper()
	b := statefun.StatefulFunctionsBuilder()
	for _, s := range ss {
		if err := b.WithSpec(s); err != nil {
			t.Fatal(err)
		}
	}
	return b.Specs()
}

// wantErrContains fails unless err is non-nil and contains every part.
func wantErrContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error containing %q, got nil", parts)
	}
	t.Logf("error (as expected): %v", err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not contain %q:\n%v", p, err)
		}
	}
}

// multisetDiff returns the elements missing from got and the extra ones
// (with multiplicity), each sorted.
func multisetDiff[T comparable](want, got []T, less func(a, b T) int) (missing, extra []T) {
	counts := map[T]int{}
	for _, w := range want {
		counts[w]++
	}
	for _, g := range got {
		counts[g]--
	}
	for k, n := range counts {
		for ; n > 0; n-- {
			missing = append(missing, k)
		}
		for ; n < 0; n++ {
			extra = append(extra, k)
		}
	}
	slices.SortFunc(missing, less)
	slices.SortFunc(extra, less)
	return missing, extra
}

func head[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
