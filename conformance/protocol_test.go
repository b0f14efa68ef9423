package conformance

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/statefun-go/statefun/connectors/connectortest"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/protocol"
	"github.com/statefun-go/statefun/statefun/translate"
)

// ---- the io.statefun.endpoints.v1/http kind ----

func TestEndpointV1Kind(t *testing.T) {
	forEachSDK(t, func(t *testing.T, s sdk) {
		tp := newTap(t, s.start(t))
		runTypes(t, fmt.Sprintf(`kind: io.statefun.endpoints.v1/http
spec:
  functions: remote/*
  urlPathTemplate: %q
  maxNumBatchRequests: 10
  timeouts:
    call: 10s
    connect: 2s
    read: 5s
    write: 5s
`, tp.url()))
		checkRegistration(t, tp, "remote/types", typesSpecs)
	})
}

// ---- compressed replies ----

func TestCompressedReplies(t *testing.T) {
	for _, enc := range []string{"gzip", "deflate"} {
		t.Run(enc, func(t *testing.T) {
			h := goHandler()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if ae := r.Header.Get("Accept-Encoding"); !strings.Contains(ae, enc) {
					t.Errorf("Accept-Encoding %q does not offer %s", ae, enc)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				var buf bytes.Buffer
				var zw io.WriteCloser
				if enc == "gzip" {
					zw = gzip.NewWriter(&buf)
				} else {
					zw, _ = flate.NewWriter(&buf, flate.DefaultCompression)
				}
				zw.Write(rec.Body.Bytes())
				zw.Close()
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Header().Set("Content-Encoding", enc)
				w.WriteHeader(rec.Code)
				w.Write(buf.Bytes())
			}))
			t.Cleanup(srv.Close)
			keys := []string{"a", "b", "c"}
			res, got := greetRun(t, srv.URL+"/{function.name}", asyncTransport("5s"), keys, 5)
			res.mustSucceed(t)
			checkGreets(t, got, keys, 5)
		})
	}
}

// ---- incremental state registration (contract §2.5, §2.13) ----

// TestIncrementalRegistration: a function first declares x; when it gets
// "upgrade" (a new version of it) it also needs y, declares only y, and
// re-declares x with a different TTL (which must be ignored: a state's
// TTL never changes once registered). The runtime must keep x and its
// value, add y, and re-send the same invocations.
func TestIncrementalRegistration(t *testing.T) {
	var mu sync.Mutex
	upgraded := false
	type seenReq struct {
		states map[string]*protocol.TypedValue
		args   []string
	}
	var reqs []seenReq
	str := func(tv *protocol.TypedValue) string {
		var s string
		if tv == nil {
			return "-"
		}
		if err := statefun.DecodeValue(statefun.StringType, tv.Value, &s); err != nil {
			t.Errorf("string value % x: %v", tv.Value, err)
		}
		return s
	}
	url := fakeServer(t, func(to *protocol.ToFunction, n int) *protocol.FromFunction {
		mu.Lock()
		defer mu.Unlock()
		b := to.Invocation
		states := map[string]*protocol.TypedValue{}
		for _, pv := range b.State {
			states[pv.StateName] = pv.StateValue
		}
		var args []string
		for _, inv := range b.Invocations {
			args = append(args, str(inv.Argument))
		}
		reqs = append(reqs, seenReq{states, args})
		if _, ok := states["x"]; !ok {
			return declare(intSpec("x", intType))
		}
		if slices.Contains(args, "upgrade") {
			upgraded = true
		}
		if _, ok := states["y"]; upgraded && !ok {
			x := intSpec("x", intType)
			x.ExpirationSpec = &protocol.ExpirationSpec{Mode: protocol.ExpireAfterWrite, ExpireAfterMillis: 1}
			return declare(protocol.PersistedValueSpec{StateName: "y", TypeTypename: "io.statefun.types/string"}, x)
		}
		var x int32
		if tv := states["x"]; tv != nil {
			if len(tv.Value) != 5 || tv.Value[0] != 0x0d {
				t.Errorf("state x sent as % x, want an IntWrapper", tv.Value)
			} else {
				x = int32(binary.LittleEndian.Uint32(tv.Value[1:]))
			}
		}
		y := str(states["y"])
		res := &protocol.InvocationResponse{}
		for _, a := range args {
			x++
			v, _ := statefun.EncodeValue(statefun.StringType, fmt.Sprintf("%s x=%d y=%s", a, x, y))
			res.OutgoingEgresses = append(res.OutgoingEgresses, protocol.EgressMessage{EgressNamespace: "cf", EgressType: "out",
				Argument: &protocol.TypedValue{Typename: "io.statefun.types/string", HasValue: true, Value: v}})
			if a == "upgrade" {
				y = "v2"
			}
		}
		xb, _ := statefun.EncodeValue(statefun.Int32Type, x)
		res.StateMutations = append(res.StateMutations, protocol.PersistedValueMutation{MutationType: protocol.MutationModify, StateName: "x",
			StateValue: &protocol.TypedValue{Typename: intType, HasValue: true, Value: xb}})
		if upgraded {
			yb, _ := statefun.EncodeValue(statefun.StringType, y)
			res.StateMutations = append(res.StateMutations, protocol.PersistedValueMutation{MutationType: protocol.MutationModify, StateName: "y",
				StateValue: &protocol.TypedValue{Typename: "io.statefun.types/string", HasValue: true, Value: yb}})
		}
		return &protocol.FromFunction{InvocationResult: res}
	})
	mod := writeModule(t, endpoint("remote/*", url, 0, asyncTransport("5s")))
	recs := stringRecords("k1", "1", "k1", "2", "k1", "upgrade", "k1", "4", "k1", "5")
	var c capture
	res := runApp(t, 30*time.Second, app.Config{
		Modules: []string{mod},
		Ingresses: []translate.Ingress{{
			ID: "cf/in", Parallelism: 1, ValueType: "io.statefun.types/string", Targets: []string{"remote/evolve"},
			Source: func(int) connectors.Source {
				return &connectortest.PacedSource{Records: recs, Interval: 20 * time.Millisecond}
			},
		}},
		Egresses: []translate.Egress{c.egress("cf/out")},
	})
	res.mustSucceed(t)
	want := []string{"1 x=1 y=-", "2 x=2 y=-", "upgrade x=3 y=-", "4 x=4 y=v2", "5 x=5 y=v2"}
	if got := c.strings(t); !slices.Equal(got, want) {
		t.Errorf("records:\n got  %q\n want %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	// The request right after y was declared re-sends the same invocations
	// with x (and its value) and y (unset).
	found := false
	for i := 1; i < len(reqs); i++ {
		prev, cur := reqs[i-1], reqs[i]
		if _, ok := prev.states["y"]; ok || !slices.Contains(prev.args, "upgrade") {
			continue
		}
		found = true
		if !slices.Equal(prev.args, cur.args) {
			t.Errorf("re-sent invocations %q, want %q", cur.args, prev.args)
		}
		x, xok := cur.states["x"]
		y, yok := cur.states["y"]
		if !xok || x == nil || !yok || y != nil || len(cur.states) != 2 {
			t.Errorf("states after the second registration: %v, want x with a value and y unset", cur.states)
		}
	}
	if !found {
		t.Errorf("no IncompleteInvocationContext for y was seen: %d requests", len(reqs))
	}
}

// ---- more invalid replies ----

func TestFaultInvalidDelayedReplies(t *testing.T) {
	strArg := func(s string) *protocol.TypedValue {
		v, _ := statefun.EncodeValue(statefun.StringType, s)
		return &protocol.TypedValue{Typename: "io.statefun.types/string", HasValue: true, Value: v}
	}
	self := &protocol.Address{Namespace: "remote", Type: "fake", ID: "k1"}
	cases := []struct {
		name    string
		reply   *protocol.FromFunction
		reasons []string
	}{
		{
			name: "duplicate-pending-token",
			reply: &protocol.FromFunction{InvocationResult: &protocol.InvocationResponse{
				DelayedInvocations: []protocol.DelayedInvocation{
					{CancellationToken: "t", DelayInMs: 5000, Target: self, Argument: strArg("a")},
					{CancellationToken: "t", DelayInMs: 5000, Target: self, Argument: strArg("b")},
				},
			}},
			reasons: []string{"delayed_invocations[1]: ", `cancellation token "t"`, "already used by a pending delayed message"},
		},
		{
			name: "negative-delay",
			reply: &protocol.FromFunction{InvocationResult: &protocol.InvocationResponse{
				DelayedInvocations: []protocol.DelayedInvocation{{DelayInMs: -5, Target: self, Argument: strArg("a")}},
			}},
			reasons: []string{"delayed_invocations[0]: negative delay -5 ms"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := fakeServer(t, func(*protocol.ToFunction, int) *protocol.FromFunction { return tc.reply })
			mod := writeModule(t, endpoint("remote/*", url, 0, asyncTransport("5s")))
			res := runApp(t, 30*time.Second, app.Config{
				Modules:   []string{mod},
				Ingresses: []translate.Ingress{ingress("cf/in", "remote/fake", "k1", "hi")},
			})
			res.wantFailure(t, 3*time.Second, append([]string{"remote function remote/fake/k1: "}, tc.reasons...)...)
		})
	}
}

func TestFaultReplyTooLarge(t *testing.T) {
	big := &protocol.FromFunction{InvocationResult: &protocol.InvocationResponse{
		OutgoingEgresses: []protocol.EgressMessage{{EgressNamespace: "cf", EgressType: "out",
			Argument: &protocol.TypedValue{Typename: "cf/blob", HasValue: true, Value: bytes.Repeat([]byte("x"), 4000)}}},
	}}
	var mu sync.Mutex
	calls := 0
	url := fakeServer(t, func(*protocol.ToFunction, int) *protocol.FromFunction {
		mu.Lock()
		calls++
		mu.Unlock()
		return big
	})
	mod := writeModule(t, endpoint("remote/*", url, 0, asyncTransport("5s")+"\npayload_max_bytes: 1000"))
	var c capture
	res := runApp(t, 30*time.Second, app.Config{
		Modules:   []string{mod},
		Ingresses: []translate.Ingress{ingress("cf/in", "remote/fake", "k1", "hi")},
		Egresses:  []translate.Egress{c.egress("cf/out")},
	})
	res.wantFailure(t, 3*time.Second,
		"failure forwarding a message to remote function remote/fake/k1",
		"(not retryable)", "response exceeds payload_max_bytes (1000)")
	if calls != 1 {
		t.Errorf("%d calls, want 1: an oversize reply is not retried", calls)
	}
	if n := len(c.all()); n != 0 {
		t.Errorf("%d egress records from an oversize reply", n)
	}
}

// ---- a stop while a remote call hangs: nothing hangs ----

func TestStopWhileRemoteCallHangs(t *testing.T) {
	arrived := make(chan struct{}, 1)
	released := make(chan time.Time, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets net/http watch the connection (and cancel
		// r.Context() when the client goes away).
		_, _ = io.ReadAll(r.Body)
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
			select {
			case released <- time.Now():
			default:
			}
		case <-time.After(30 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	mod := writeModule(t, endpoint("remote/*", srv.URL+"/{function.name}", 0, asyncTransport("2min")))
	logger, _ := testLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := app.Run(ctx, app.Config{
			Modules: []string{mod}, Parallelism: 2, StateDir: t.TempDir(), Logger: logger,
			ShutdownTimeout: time.Second,
			Ingresses:       []translate.Ingress{ingress("cf/in", "remote/greet", "k1", "hi")},
			Egresses:        []translate.Egress{(&capture{}).egress("cf/out")},
		})
		done <- err
	}()
	select {
	case <-arrived:
	case err := <-done:
		t.Fatalf("the job ended before calling the function: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the function was never called")
	}
	stop := time.Now()
	cancel()
	select {
	case err := <-done:
		elapsed := time.Since(stop)
		t.Logf("app.Run returned %v after the stop: %v", elapsed.Round(time.Millisecond), err)
		if elapsed > 4*time.Second {
			t.Errorf("app.Run took %v to return after the stop, with a shutdown timeout of 1s", elapsed)
		}
		if err == nil {
			t.Errorf("a stop that could not drain (a call in flight) returned no error")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("app.Run did not return within 15s of the stop (shutdown timeout 1s)")
	}
	select {
	case at := <-released:
		if d := at.Sub(stop); d > 4*time.Second {
			t.Errorf("the hanging request was released %v after the stop", d)
		}
	case <-time.After(5 * time.Second):
		var stacks bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Errorf("the hanging request was never cancelled (the connection stayed open)\n%s", stacks.String())
	}
}

// ---- URL templates and endpoint resolution (contract §1.1, §2.1) ----

func TestURLTemplateAndResolution(t *testing.T) {
	// Server 1 serves the namespace binding, server 2 the exact binding
	// of remote/greet; both record the request line.
	type seen struct {
		mu    sync.Mutex
		lines []string
	}
	serve := func(s *seen) string {
		h := goHandler()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			s.lines = append(s.lines, r.URL.Path+"?"+r.URL.RawQuery)
			s.mu.Unlock()
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	var s1, s2 seen
	u1, u2 := serve(&s1), serve(&s2)
	mod := writeModule(t,
		endpoint("remote/*", u1+"/ns/{function.name}?fn={function.name}&k=v", 0, asyncTransport("5s")),
		endpoint("remote/greet", u2+"/exact/{function.name}", 0, asyncTransport("5s")),
	)
	var c capture
	res := runApp(t, 30*time.Second, app.Config{
		Modules: []string{mod},
		Ingresses: []translate.Ingress{
			ingress("cf/in1", "remote/greet", "g1", "hi", "g1", "hi"),
			ingress("cf/in2", "remote/types", "t1", "x"),
		},
		Egresses: []translate.Egress{c.egress("cf/out")},
	})
	res.mustSucceed(t)
	sameMultiset(t, "records", []string{"g1:1", "g1:2", "t1 b=- i=- l=- f=- d=- s=- j=-"}, c.strings(t))
	for _, l := range s1.lines {
		if l != "/ns/types?fn=types&k=v" {
			t.Errorf("namespace endpoint got request %q, want /ns/types?fn=types&k=v (every {function.name} replaced, query kept)", l)
		}
	}
	for _, l := range s2.lines {
		if l != "/exact/greet?" {
			t.Errorf("exact endpoint got request %q, want /exact/greet", l)
		}
	}
	if len(s1.lines) == 0 || len(s2.lines) == 0 {
		t.Errorf("requests: namespace endpoint %d, exact endpoint %d; want both used (the exact binding wins for remote/greet)", len(s1.lines), len(s2.lines))
	}
}
