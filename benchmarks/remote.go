package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	sdk "github.com/apache/flink-statefun/statefun-sdk-go/v3/pkg/statefun"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/protocol"
	"github.com/statefun-go/statefun/statefun/translate"
)

var remoteCount = sdk.ValueSpec{Name: "count", ValueType: sdk.Int64Type}

// remoteCounter is the official-SDK function of the remote benchmark: it
// counts messages per key in its state and emits the message's timestamp
// to the egress, so the sink can measure end-to-end latency.
func remoteCounter(ctx sdk.Context, msg sdk.Message) error {
	var n int64
	ctx.Storage().Get(remoteCount, &n)
	ctx.Storage().Set(remoteCount, n+1)
	ctx.SendEgress(sdk.GenericEgressBuilder{Target: sdk.TypeNameFrom("bench/out"), Value: msg.AsInt64(), ValueType: sdk.Int64Type})
	return nil
}

func sdkHandler() sdk.RequestReplyHandler {
	b := sdk.StatefulFunctionsBuilder()
	if err := b.WithSpec(sdk.StatefulFunctionSpec{FunctionType: sdk.TypeNameFrom("bench/remote-counter"),
		States: []sdk.ValueSpec{remoteCount}, Function: sdk.StatefulFunctionPointer(remoteCounter)}); err != nil {
		panic(err)
	}
	return b.AsHandler()
}

// tsSource emits n messages over `keys` keys whose value is the emit time
// (unix nanos), at most `rate` per second (0: as fast as credits allow).
type tsSource struct {
	n, next int64
	keys    int
	hot     bool // every other message goes to key k0
	ctx     dataflow.Context
	names   []string
}

func (s *tsSource) Open(ctx dataflow.Context) error {
	s.ctx = ctx
	s.next = int64(ctx.SubtaskIndex())
	s.names = make([]string, s.keys)
	for i := range s.names {
		s.names[i] = fmt.Sprintf("k%d", i)
	}
	return nil
}

func (s *tsSource) Read(dst []connectors.Record) ([]connectors.Record, time.Duration, error) {
	if s.next >= s.n {
		return dst, 0, dataflow.ErrEndOfInput
	}
	now := time.Now().UnixNano()
	for len(dst) < cap(dst) && s.next < s.n {
		v, _ := statefun.EncodeValue(statefun.Int64Type, now)
		k := s.names[s.next%int64(s.keys)]
		if s.hot && s.next%2 == 0 {
			k = s.names[0]
		}
		dst = append(dst, connectors.Record{Key: k, HasKey: true, Value: v})
		s.next += int64(s.ctx.Parallelism())
	}
	return dst, 0, nil
}

func (s *tsSource) Close() error { return nil }

// latencySink records end-to-end latencies (emit -> egress).
type latencySink struct {
	mu  *sync.Mutex
	lat *[]time.Duration
	buf []time.Duration
}

func (s *latencySink) Open(dataflow.Context) error { return nil }
func (s *latencySink) Write(e *envelope.Envelope) error {
	var ts int64
	if err := statefun.DecodeValue(statefun.Int64Type, e.Value, &ts); err != nil {
		return err
	}
	s.buf = append(s.buf, time.Duration(time.Now().UnixNano()-ts))
	return nil
}
func (s *latencySink) Flush() error {
	s.mu.Lock()
	*s.lat = append(*s.lat, s.buf...)
	s.mu.Unlock()
	s.buf = s.buf[:0]
	return nil
}
func (s *latencySink) Close() error { return s.Flush() }

// countingHandler counts the requests the SDK serves.
type countingHandler struct {
	h        http.Handler
	requests atomic.Int64
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.requests.Add(1)
	c.h.ServeHTTP(w, r)
}

type remoteResult struct {
	rate, sdkCeiling, naive float64
	p50, p99                time.Duration
	avgBatch                float64
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

func runRemote(n int64, keys, par int) (remoteResult, error) {
	return runRemoteCfg(n, keys, par, 1000, false, false, true)
}

// runRemoteCfg runs the remote pipeline; refs also measures the SDK ceiling
// and the naive client.
func runRemoteCfg(n int64, keys, par, maxBatch int, hot, wholeTask, refs bool) (remoteResult, error) {
	var res remoteResult
	h := &countingHandler{h: sdkHandler()}
	srv := httptest.NewServer(h)
	defer srv.Close()
	dir, err := os.MkdirTemp("", "statefun-bench-remote-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	mod := fmt.Sprintf("kind: io.statefun.endpoints.v2/http\nspec:\n  functions: bench/remote-counter\n  urlPathTemplate: %s/{function.name}\n  maxNumBatchRequests: %d\n", srv.URL, maxBatch)
	modPath := filepath.Join(dir, "module.yaml")
	if err := os.WriteFile(modPath, []byte(mod), 0o644); err != nil {
		return res, err
	}
	var mu sync.Mutex
	var lat []time.Duration
	cfg := app.Config{
		Modules: []string{modPath}, StateDir: dir, Parallelism: par,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ingresses: []translate.Ingress{{ID: "bench/ts", ValueType: "io.statefun.types/long", Targets: []string{"bench/remote-counter"},
			Source: func(int) connectors.Source { return &tsSource{n: n, keys: keys, hot: hot} }}},
		Egresses: []translate.Egress{{ID: "bench/out", Sink: func(int) connectors.Sink { return &latencySink{mu: &mu, lat: &lat} }}},
	}

	cfg.Dispatch.BlockWholeTask = wholeTask
	sum, err := app.Run(context.Background(), cfg)
	if err != nil {
		return res, err
	}
	if int64(len(lat)) != n {
		return res, fmt.Errorf("remote: %d egress records, want %d", len(lat), n)
	}
	res.rate = float64(sum.Invocations) / sum.Duration.Seconds()
	res.p50, res.p99 = percentile(lat, 0.50), percentile(lat, 0.99)
	// Requests include the few IncompleteInvocationContext round trips.
	res.avgBatch = float64(n) / float64(h.requests.Load())
	if !refs {
		return res, nil
	}

	// The SDK's own ceiling: the same function, driven through Invoke with
	// batches of the size the runtime sent, no HTTP, no runtime.
	res.sdkCeiling = sdkCeiling(keys, int(res.avgBatch+0.5), 2*time.Second)
	// A naive client: one HTTP request per message, sequential.
	res.naive = naiveClient(srv.URL+"/remote-counter", keys, 2*time.Second)
	return res, nil
}

// sdkCeiling drives handler.Invoke from GOMAXPROCS goroutines with state fed
// back, batch invocations per request, for d; it returns invocations/s.
func sdkCeiling(keys, batch int, d time.Duration) float64 {
	if batch < 1 {
		batch = 1
	}
	h := sdkHandler()
	var total atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	workers := 2
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			state := map[string][]byte{}
			for i := w; time.Now().Before(deadline); i += workers {
				id := fmt.Sprintf("k%d", i%keys)
				total.Add(int64(invokeOnce(h.Invoke, id, state, batch)))
			}
		}(w)
	}
	wg.Wait()
	return float64(total.Load()) / d.Seconds()
}

// invokeOnce sends one request for id with `batch` invocations (handling
// the first IncompleteInvocationContext) and stores the returned state.
func invokeOnce(invoke func(context.Context, []byte) ([]byte, error), id string, state map[string][]byte, batch int) int {
	ts, _ := statefun.EncodeValue(statefun.Int64Type, time.Now().UnixNano())
	req := protocol.ToFunction{Invocation: &protocol.InvocationBatchRequest{
		Target: &protocol.Address{Namespace: "bench", Type: "remote-counter", ID: id},
		State:  []protocol.PersistedValue{{StateName: "count"}},
	}}
	if v, ok := state[id]; ok {
		req.Invocation.State[0].StateValue = &protocol.TypedValue{Typename: "io.statefun.types/long", HasValue: true, Value: v}
	}
	for j := 0; j < batch; j++ {
		req.Invocation.Invocations = append(req.Invocation.Invocations, protocol.Invocation{Argument: &protocol.TypedValue{Typename: "io.statefun.types/long", HasValue: true, Value: ts}})
	}
	out, err := invoke(context.Background(), req.AppendMarshal(nil))
	if err != nil {
		return 0
	}
	var from protocol.FromFunction
	if from.Unmarshal(out) != nil || from.InvocationResult == nil {
		return 0
	}
	for _, m := range from.InvocationResult.StateMutations {
		if m.StateValue != nil {
			state[id] = m.StateValue.Value
		}
	}
	return batch
}

// naiveClient posts one request per message, sequentially, for d.
func naiveClient(url string, keys int, d time.Duration) float64 {
	client := &http.Client{}
	post := func(_ context.Context, body []byte) ([]byte, error) {
		resp, err := client.Post(url, protocol.ContentType, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	state := map[string][]byte{}
	deadline := time.Now().Add(d)
	var total int
	for i := 0; time.Now().Before(deadline); i++ {
		total += invokeOnce(post, fmt.Sprintf("k%d", i%keys), state, 1)
	}
	return float64(total) / d.Seconds()
}
