package conformance

import (
	"bytes"
	"context"
	"fmt"
	"github.com/statefun-go/statefun/connectors/connectortest"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
	"github.com/statefun-go/statefun/statefun/protocol"
	"github.com/statefun-go/statefun/statefun/translate"
)

func TestMain(m *testing.M) {
	// The official Go SDK logs every IncompleteInvocationContext with the
	// standard logger: keep the test output readable.
	log.SetOutput(io.Discard)
	code := m.Run()
	stopPython()
	cleanupCLI()
	os.Exit(code)
}

// syncBuffer is a goroutine-safe bytes.Buffer.
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

// testLogger returns a logger whose output is printed only when t fails,
// and the buffer it writes to (to look for warnings).
func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo})), buf
}

// runResult is what one app.Run did.
type runResult struct {
	sum     app.Summary
	err     error
	elapsed time.Duration
	log     *syncBuffer
	stdout  *syncBuffer
}

// runApp runs cfg with a context timeout, so that a hang fails the test
// instead of blocking it; a job that had to be stopped by the timeout is a
// test failure. When app.Run does not return even after the shutdown grace
// the goroutines are dumped and the test fails.
func runApp(t *testing.T, timeout time.Duration, cfg app.Config) runResult {
	t.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	res := runResult{stdout: &syncBuffer{}}
	if cfg.Logger == nil {
		cfg.Logger, res.log = testLogger(t)
	}
	if cfg.Stdout == nil {
		cfg.Stdout = res.stdout
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	if cfg.Parallelism == 0 {
		cfg.Parallelism = 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	type result struct {
		sum app.Summary
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		s, err := app.Run(ctx, cfg)
		done <- result{s, err}
	}()
	grace := cfg.ShutdownTimeout + 10*time.Second
	select {
	case r := <-done:
		res.sum, res.err, res.elapsed = r.sum, r.err, time.Since(start)
		if ctx.Err() != nil {
			t.Errorf("the job did not finish by itself within %v (stopped by the test's timeout); err=%v", timeout, r.err)
		}
		return res
	case <-time.After(timeout + grace):
		var stacks bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Fatalf("app.Run hung: no return %v after the context timeout of %v\n%s", grace, timeout, stacks.String())
		return res
	}
}

// mustSucceed fails the test when the run failed.
func (r runResult) mustSucceed(t *testing.T) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("job failed after %v: %v", r.elapsed.Round(time.Millisecond), r.err)
	}
}

// wantFailure fails the test unless the run failed with an error holding
// every part, within the time bound.
func (r runResult) wantFailure(t *testing.T, within time.Duration, parts ...string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("the job succeeded after %v, want a failure containing %q", r.elapsed.Round(time.Millisecond), parts)
	}
	t.Logf("job failed (as expected) after %v: %v", r.elapsed.Round(time.Millisecond), r.err)
	for _, p := range parts {
		if !strings.Contains(r.err.Error(), p) {
			t.Errorf("the error does not contain %q:\n%v", p, r.err)
		}
	}
	if r.elapsed > within {
		t.Errorf("the job took %v to fail, want at most %v", r.elapsed.Round(time.Millisecond), within)
	}
}

// writeModule writes a module.yaml made of the given components (YAML
// documents) into a fresh temp dir and returns its path.
func writeModule(t *testing.T, components ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "module.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(components, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// endpoint is an io.statefun.endpoints.v2/http component. transport is
// the YAML body of the transport object, unindented (this function indents
// it), or empty for none; maxBatch 0 leaves maxNumBatchRequests out.
func endpoint(functions, url string, maxBatch int, transport string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kind: io.statefun.endpoints.v2/http\nspec:\n  functions: %s\n  urlPathTemplate: %q\n", functions, url)
	if maxBatch != 0 {
		fmt.Fprintf(&b, "  maxNumBatchRequests: %d\n", maxBatch)
	}
	if transport != "" {
		b.WriteString("  transport:\n")
		for _, line := range strings.Split(strings.TrimSpace(transport), "\n") {
			b.WriteString("    " + line + "\n")
		}
	}
	return b.String()
}

// asyncTransport is the async transport with a call budget.
func asyncTransport(call string) string {
	return "type: io.statefun.transports.v1/async\ncall: " + call
}

// okhttpTransport is the okhttp transport with a call budget (and connect,
// read and write timeouts no larger than it).
func okhttpTransport(call string) string {
	return "type: io.statefun.transports.v1/okhttp\ntimeouts:\n  call: " + call + "\n  connect: " + call + "\n  read: " + call + "\n  write: " + call
}

func stdoutEgress(id string) string {
	return "kind: io.statefun.stdout.v1/egress\nspec:\n  id: " + id + "\n"
}

// ---- code-declared ingress ----

// ingress declares a code ingress of string messages to target, one record
// per key/value pair.
func ingress(id, target string, kv ...string) translate.Ingress {
	recs := stringRecords(kv...)
	return translate.Ingress{
		ID: id, Parallelism: 1, ValueType: "io.statefun.types/string", Targets: []string{target},
		Source: func(int) connectors.Source { return &connectortest.SliceSource{Records: recs, Batch: 64} },
	}
}

func stringRecords(kv ...string) []connectors.Record {
	var out []connectors.Record
	for i := 0; i+1 < len(kv); i += 2 {
		v, err := statefun.EncodeValue(statefun.StringType, kv[i+1])
		if err != nil {
			panic(err)
		}
		out = append(out, connectors.Record{Key: kv[i], HasKey: true, Value: v, Origin: fmt.Sprintf("record %d", i/2+1)})
	}
	return out
}

// ---- code-declared capturing egress ----

// capture keeps every envelope an egress receives, in arrival order.
type capture struct{ connectortest.Capture }

func (c *capture) egress(id string) translate.Egress { return translate.Egress{ID: id, Sink: c.Sink} }

func (c *capture) all() []envelope.Envelope { return c.All() }

// strings decodes every captured value as an io.statefun.types/string.
func (c *capture) strings(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, e := range c.all() {
		if e.Typename != "io.statefun.types/string" {
			t.Errorf("egress record of type %q (value % x), want io.statefun.types/string", e.Typename, e.Value)
			continue
		}
		var s string
		if err := statefun.DecodeValue(statefun.StringType, e.Value, &s); err != nil {
			t.Errorf("egress value % x: %v", e.Value, err)
			continue
		}
		out = append(out, s)
	}
	return out
}

// ---- multiset helpers ----

// sameMultiset reports (as test errors) the missing and extra lines.
func sameMultiset(t *testing.T, what string, want, got []string) {
	t.Helper()
	counts := map[string]int{}
	for _, w := range want {
		counts[w]++
	}
	for _, g := range got {
		counts[g]--
	}
	var missing, extra []string
	for k, n := range counts {
		for ; n > 0; n-- {
			missing = append(missing, k)
		}
		for ; n < 0; n++ {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("%s: %d records, want %d\n missing: %q\n extra:   %q", what, len(got), len(want), head(missing, 20), head(extra, 20))
	}
}

func head[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ---- the tap: a recording proxy in front of a function server ----

// exchange is one request-reply exchange seen by a tap.
type exchange struct {
	to     protocol.ToFunction
	from   protocol.FromFunction
	status int
}

// tap forwards every request to a function server and records the decoded
// ToFunction and FromFunction (decoded with statefun/protocol).
type tap struct {
	t       *testing.T
	target  string // base URL of the function server
	srv     *httptest.Server
	client  *http.Client
	latency time.Duration

	mu  sync.Mutex
	exs []exchange
}

// newTap starts a tap in front of the function server at base (for
// example http://127.0.0.1:1234); its URL serves every function path.
func newTap(t *testing.T, base string) *tap {
	tp := &tap{t: t, target: strings.TrimSuffix(base, "/"), client: &http.Client{Timeout: 30 * time.Second}}
	tp.srv = httptest.NewServer(http.HandlerFunc(tp.serve))
	t.Cleanup(tp.srv.Close)
	return tp
}

// url is the urlPathTemplate of the tap.
func (tp *tap) url() string { return tp.srv.URL + "/{function.name}" }

func (tp *tap) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ex exchange
	if err := ex.to.Unmarshal(body); err != nil {
		tp.t.Errorf("tap: the runtime sent a ToFunction that does not decode: %v", err)
	}
	// Request headers (contract §1.1): exact Content-Type (the Go SDK
	// rejects parameters), Accept, User-Agent, a Content-Length.
	for h, want := range map[string]string{"Content-Type": "application/octet-stream", "Accept": "application/octet-stream", "User-Agent": "statefun"} {
		if got := r.Header.Get(h); got != want {
			tp.t.Errorf("tap: request %s %q, want %q", h, got, want)
		}
	}
	if r.Method != http.MethodPost || r.ContentLength != int64(len(body)) || len(body) == 0 {
		tp.t.Errorf("tap: %s with Content-Length %d and %d body bytes, want a POST with a Content-Length", r.Method, r.ContentLength, len(body))
	}
	if tp.latency > 0 {
		time.Sleep(tp.latency)
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, tp.target+r.URL.Path, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := tp.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	ex.status = resp.StatusCode
	if resp.StatusCode == http.StatusOK {
		if err := ex.from.Unmarshal(out); err != nil {
			tp.t.Errorf("tap: the function replied with a FromFunction that does not decode: %v", err)
		}
	}
	tp.mu.Lock()
	tp.exs = append(tp.exs, ex)
	tp.mu.Unlock()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

// exchanges returns the recorded exchanges of function type fn
// (namespace/name), in order.
func (tp *tap) exchanges(fn string) []exchange {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var out []exchange
	for _, ex := range tp.exs {
		if b := ex.to.Invocation; b != nil && b.Target != nil && b.Target.Namespace+"/"+b.Target.Type == fn {
			out = append(out, ex)
		}
	}
	return out
}

// byID groups exchanges by target id, each in order.
func byID(exs []exchange) map[string][]exchange {
	m := map[string][]exchange{}
	for _, ex := range exs {
		id := ex.to.Invocation.Target.ID
		m[id] = append(m[id], ex)
	}
	return m
}

// addr renders a protocol address as ns/type/id ("none" for nil).
func addr(a *protocol.Address) string {
	if a == nil {
		return "none"
	}
	return a.Namespace + "/" + a.Type + "/" + a.ID
}
