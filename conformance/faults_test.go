package conformance

import (
	"bytes"
	"fmt"
	"github.com/statefun-go/statefun/connectors/connectortest"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/statefun/protocol"
	"github.com/statefun-go/statefun/statefun/translate"
)

// Faults of a remote function and their defined outcomes. Each failure
// test asserts the error text (the remote address ns/type/id must appear)
// and a time bound; each recovery test checks every record.

// greetRun runs remote/greet at url with the transport, with msgs messages
// to each key, and returns the run and the records.
func greetRun(t *testing.T, url, transport string, keys []string, msgs int) (runResult, []string) {
	t.Helper()
	var kv []string
	for i := 0; i < msgs; i++ {
		for _, k := range keys {
			kv = append(kv, k, "hi")
		}
	}
	mod := writeModule(t, endpoint("remote/*", url, 0, transport))
	var c capture
	res := runApp(t, 60*time.Second, app.Config{
		Modules:   []string{mod},
		Ingresses: []translate.Ingress{ingress("cf/in", "remote/greet", kv...)},
		Egresses:  []translate.Egress{c.egress("cf/out")},
	})
	return res, c.strings(t)
}

// checkGreets checks that every key counted 1..msgs, in order, once.
func checkGreets(t *testing.T, got []string, keys []string, msgs int) {
	t.Helper()
	per := groupBy(got, func(s string) string { k, _, _ := strings.Cut(s, ":"); return k })
	for _, k := range keys {
		var want []string
		for n := 1; n <= msgs; n++ {
			want = append(want, fmt.Sprintf("%s:%d", k, n))
		}
		if !slices.Equal(per[k], want) {
			t.Errorf("records of %s:\n got  %q\n want %q", k, per[k], want)
		}
		delete(per, k)
	}
	for k, v := range per {
		t.Errorf("unexpected records for %q: %q", k, v)
	}
}

// faultServer serves the Go SDK functions through a hook that may replace
// the reply; it counts the requests.
type faultServer struct {
	srv *httptest.Server
	h   http.Handler

	mu       sync.Mutex
	n        int
	bodies   [][]byte // every request body, in arrival order
	failed   [][]byte // bodies answered with an injected failure
	override func(n int, w http.ResponseWriter, r *http.Request, body []byte) bool
}

func newFaultServer(t *testing.T, override func(n int, w http.ResponseWriter, r *http.Request, body []byte) bool) *faultServer {
	fs := &faultServer{h: goHandler(), override: override}
	fs.srv = httptest.NewServer(http.HandlerFunc(fs.serve))
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *faultServer) url() string { return fs.srv.URL + "/{function.name}" }

func (fs *faultServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	fs.mu.Lock()
	fs.n++
	n := fs.n
	fs.bodies = append(fs.bodies, body)
	fs.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if fs.override != nil && fs.override(n, w, r, body) {
		fs.mu.Lock()
		fs.failed = append(fs.failed, body)
		fs.mu.Unlock()
		return
	}
	fs.h.ServeHTTP(w, r)
}

func (fs *faultServer) requests() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.n
}

// ---- 500 a few times, then recovery ----

func TestFault500ThenRecovers(t *testing.T) {
	for _, tr := range []struct{ name, yaml string }{
		{"async", asyncTransport("5s")},
		{"okhttp", okhttpTransport("5s")},
	} {
		t.Run(tr.name, func(t *testing.T) {
			fail := map[int]bool{2: true, 5: true, 6: true, 9: true, 10: true, 11: true}
			var fs *faultServer
			fs = newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request, body []byte) bool {
				if !fail[n] {
					return false
				}
				// The function runs (its reply is computed) but the reply
				// is lost: the runtime must re-send the same request and
				// apply the effects exactly once.
				rec := httptest.NewRecorder()
				r.Body = io.NopCloser(bytes.NewReader(body))
				fs.h.ServeHTTP(rec, r)
				http.Error(w, "injected failure", http.StatusInternalServerError)
				return true
			})
			keys := []string{"a", "b", "c", "d"}
			res, got := greetRun(t, fs.url(), tr.yaml, keys, 10)
			res.mustSucceed(t)
			checkGreets(t, got, keys, 10)
			fs.mu.Lock()
			defer fs.mu.Unlock()
			if len(fs.failed) != len(fail) {
				t.Errorf("%d injected failures, want %d", len(fs.failed), len(fail))
			}
			// Every failed request was re-sent unchanged.
			for _, f := range fs.failed {
				n := 0
				for _, b := range fs.bodies {
					if bytes.Equal(b, f) {
						n++
					}
				}
				if n < 2 {
					t.Errorf("a request answered with 500 was not re-sent unchanged")
				}
			}
		})
	}
}

// ---- 400 ----

func TestFault400(t *testing.T) {
	bad := func(n int, w http.ResponseWriter, r *http.Request, body []byte) bool {
		http.Error(w, "no such thing here", http.StatusBadRequest)
		return true
	}
	t.Run("okhttp-fails-at-once", func(t *testing.T) {
		fs := newFaultServer(t, bad)
		res, got := greetRun(t, fs.url(), okhttpTransport("10s"), []string{"k1"}, 1)
		res.wantFailure(t, 3*time.Second,
			"failure forwarding a message to remote function remote/greet/k1",
			"failed after 1 attempt", "(not retryable)", "HTTP status 400 Bad Request: no such thing here")
		if n := fs.requests(); n != 1 {
			t.Errorf("the server saw %d requests, want 1 (400 is not retried by okhttp)", n)
		}
		if len(got) != 0 {
			t.Errorf("records from a failing function: %q", got)
		}
	})
	t.Run("async-retries-until-budget", func(t *testing.T) {
		fs := newFaultServer(t, bad)
		res, _ := greetRun(t, fs.url(), asyncTransport("1s"), []string{"k1"}, 1)
		res.wantFailure(t, 5*time.Second,
			"failure forwarding a message to remote function remote/greet/k1",
			"call budget of 1s spent", "HTTP status 400 Bad Request: no such thing here")
		if res.elapsed < time.Second {
			t.Errorf("the job failed after %v, before the call budget of 1s", res.elapsed)
		}
		if n := fs.requests(); n < 3 {
			t.Errorf("the server saw %d requests: the async transport should retry a 400 until the budget", n)
		}
	})
}

// ---- garbage, empty body, wrong content type ----

func TestFaultBadReplies(t *testing.T) {
	t.Run("garbage", func(t *testing.T) {
		fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request, body []byte) bool {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write([]byte{0xff, 0xff, 0xff, 0xff, 0x07})
			return true
		})
		res, got := greetRun(t, fs.url(), asyncTransport("5s"), []string{"k1"}, 1)
		res.wantFailure(t, 3*time.Second, "remote function remote/greet/k1", "replied with a malformed FromFunction (5 bytes)")
		if len(got) != 0 {
			t.Errorf("records: %q", got)
		}
	})
	t.Run("empty-body", func(t *testing.T) {
		// An empty body is a FromFunction with no oneof set: an empty
		// result, no side effects (contract §1.1, §2.5).
		fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request, body []byte) bool {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.WriteHeader(http.StatusOK)
			return true
		})
		keys := []string{"k1", "k2", "k3"}
		res, got := greetRun(t, fs.url(), asyncTransport("5s"), keys, 1)
		res.mustSucceed(t)
		if len(got) != 0 {
			t.Errorf("records from empty replies: %q", got)
		}
		if n := fs.requests(); n != len(keys) {
			t.Errorf("the server saw %d requests, want %d (one per message, no retry)", n, len(keys))
		}
	})
	t.Run("text-plain-valid-body", func(t *testing.T) {
		fs := newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request, body []byte) bool {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			return false // the SDK writes the valid reply
		})
		keys := []string{"k1", "k2"}
		res, got := greetRun(t, fs.url(), asyncTransport("5s"), keys, 3)
		res.mustSucceed(t)
		checkGreets(t, got, keys, 3)
		logs := res.log.String()
		if !strings.Contains(logs, "unexpected Content-Type") || !strings.Contains(logs, "text/plain") {
			t.Errorf("no warning about the Content-Type text/plain in the log:\n%s", logs)
		}
		if c := strings.Count(logs, "unexpected Content-Type"); c != 1 {
			t.Errorf("the Content-Type warning was logged %d times, want once per endpoint", c)
		}
	})
}

// ---- slower than the call budget ----

func TestFaultSlowerThanBudget(t *testing.T) {
	slow := func(n int, w http.ResponseWriter, r *http.Request, body []byte) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return true
	}
	for _, tr := range []struct{ name, yaml string }{
		{"async", asyncTransport("500ms")},
		{"okhttp", okhttpTransport("500ms")},
	} {
		t.Run(tr.name, func(t *testing.T) {
			fs := newFaultServer(t, slow)
			res, _ := greetRun(t, fs.url(), tr.yaml, []string{"k1"}, 1)
			res.wantFailure(t, 4*time.Second,
				"failure forwarding a message to remote function remote/greet/k1",
				"call budget of 500ms spent")
			if res.elapsed < 500*time.Millisecond {
				t.Errorf("the job failed after %v, before the call budget", res.elapsed)
			}
		})
	}
}

// ---- the server goes away mid-job ----

func TestFaultServerClosedMidJob(t *testing.T) {
	var fs *faultServer
	var once sync.Once
	fs = newFaultServer(t, func(n int, w http.ResponseWriter, r *http.Request, body []byte) bool {
		if n == 4 {
			// Answer this one, then stop listening: later connections
			// are refused.
			fs.h.ServeHTTP(w, r)
			once.Do(func() { go fs.srv.Close() })
			return true
		}
		return false
	})
	var recs []connectors.Record
	for i := 0; i < 20; i++ {
		recs = append(recs, stringRecords("k1", "hi")...)
	}
	mod := writeModule(t, endpoint("remote/*", fs.url(), 0, asyncTransport("1s")))
	var c capture
	res := runApp(t, 60*time.Second, app.Config{
		Modules: []string{mod},
		Ingresses: []translate.Ingress{{
			ID: "cf/in", Parallelism: 1, ValueType: "io.statefun.types/string", Targets: []string{"remote/greet"},
			Source: func(int) connectors.Source {
				return &connectortest.PacedSource{Records: recs, Interval: 50 * time.Millisecond}
			},
		}},
		Egresses: []translate.Egress{c.egress("cf/out")},
	})
	res.wantFailure(t, 6*time.Second,
		"failure forwarding a message to remote function remote/greet/k1",
		"call budget of 1s spent", "connection refused")
	// What was answered before is kept, in order, with no gap or
	// duplicate; nothing after.
	got := c.strings(t)
	if len(got) == 0 || len(got) >= 20 {
		t.Errorf("%d records, want between 1 and 19", len(got))
	}
	for i, g := range got {
		if want := fmt.Sprintf("k1:%d", i+1); g != want {
			t.Errorf("record %d is %q, want %q", i, g, want)
		}
	}
}

// ---- nothing listening from the start ----

func TestFaultUnreachableAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/{function.name}"
	ln.Close()
	for _, tr := range []struct{ name, yaml string }{
		{"async", asyncTransport("1s")},
		{"okhttp", okhttpTransport("1s")},
	} {
		t.Run(tr.name, func(t *testing.T) {
			res, _ := greetRun(t, url, tr.yaml, []string{"k1"}, 1)
			res.wantFailure(t, 5*time.Second,
				"failure forwarding a message to remote function remote/greet/k1",
				"call budget of 1s spent", "connection refused")
			if res.elapsed < time.Second {
				t.Errorf("the job failed after %v, before the call budget of 1s", res.elapsed)
			}
		})
	}
}

// ---- replies that break the state or routing rules ----

// fakeServer answers every request with reply(request, n), encoded with
// statefun/protocol.
func fakeServer(t *testing.T, reply func(to *protocol.ToFunction, n int) *protocol.FromFunction) string {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var to protocol.ToFunction
		if err := to.Unmarshal(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		from := reply(&to, k)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(from.AppendMarshal(nil))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/{function.name}"
}

// declare is an IncompleteInvocationContext registering the states.
func declare(specs ...protocol.PersistedValueSpec) *protocol.FromFunction {
	return &protocol.FromFunction{IncompleteInvocationContext: &protocol.IncompleteInvocationContext{MissingValues: specs}}
}

func intSpec(name, typename string) protocol.PersistedValueSpec {
	return protocol.PersistedValueSpec{StateName: name, TypeTypename: typename, ExpirationSpec: &protocol.ExpirationSpec{}}
}

// hasState reports whether the request carries state name.
func hasState(to *protocol.ToFunction, name string) bool {
	for _, pv := range to.Invocation.State {
		if pv.StateName == name {
			return true
		}
	}
	return false
}

// result is an InvocationResult with an egress record (that must not be
// emitted when the reply is rejected) and the given mutations.
func result(muts ...protocol.PersistedValueMutation) *protocol.FromFunction {
	return &protocol.FromFunction{InvocationResult: &protocol.InvocationResponse{
		StateMutations: muts,
		OutgoingEgresses: []protocol.EgressMessage{{EgressNamespace: "cf", EgressType: "out",
			Argument: &protocol.TypedValue{Typename: "io.statefun.types/string", HasValue: true, Value: []byte("\x0a\x02no")}}},
	}}
}

const intType, longType = "io.statefun.types/int", "io.statefun.types/long"

func TestFaultInvalidStateReplies(t *testing.T) {
	// Every function declares x (int) on first contact, then replies with
	// the case's result.
	cases := []struct {
		name   string
		reply  func(to *protocol.ToFunction) *protocol.FromFunction
		reason string
	}{
		{
			name: "modify-undeclared",
			reply: func(*protocol.ToFunction) *protocol.FromFunction {
				return result(protocol.PersistedValueMutation{MutationType: protocol.MutationModify, StateName: "y",
					StateValue: &protocol.TypedValue{Typename: intType, HasValue: true, Value: []byte{0x0d, 1, 0, 0, 0}}})
			},
			reason: `state_mutations[0] modifies state "y", which the function never declared (accessing a non-existing function state)`,
		},
		{
			name: "delete-undeclared",
			reply: func(*protocol.ToFunction) *protocol.FromFunction {
				return result(protocol.PersistedValueMutation{MutationType: protocol.MutationDelete, StateName: "y"})
			},
			reason: `state_mutations[0] deletes state "y", which the function never declared (accessing a non-existing function state)`,
		},
		{
			name: "modify-wrong-type",
			reply: func(*protocol.ToFunction) *protocol.FromFunction {
				return result(
					protocol.PersistedValueMutation{MutationType: protocol.MutationModify, StateName: "x",
						StateValue: &protocol.TypedValue{Typename: intType, HasValue: true, Value: []byte{0x0d, 1, 0, 0, 0}}},
					protocol.PersistedValueMutation{MutationType: protocol.MutationModify, StateName: "x",
						StateValue: &protocol.TypedValue{Typename: longType, HasValue: true, Value: []byte{0x09, 1, 0, 0, 0, 0, 0, 0, 0}}})
			},
			reason: `state_mutations[1] writes state "x" with type "io.statefun.types/long", but it is registered with type io.statefun.types/int`,
		},
		{
			name: "redeclare-other-type",
			reply: func(*protocol.ToFunction) *protocol.FromFunction {
				return declare(intSpec("x", longType))
			},
			reason: `state "x" is registered with type io.statefun.types/int, the function now declares io.statefun.types/long`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := fakeServer(t, func(to *protocol.ToFunction, n int) *protocol.FromFunction {
				if !hasState(to, "x") {
					return declare(intSpec("x", intType))
				}
				return tc.reply(to)
			})
			mod := writeModule(t, endpoint("remote/*", url, 0, asyncTransport("5s")))
			var c capture
			res := runApp(t, 30*time.Second, app.Config{
				Modules:   []string{mod},
				Ingresses: []translate.Ingress{ingress("cf/in", "remote/fake", "k1", "hi")},
				Egresses:  []translate.Egress{c.egress("cf/out")},
			})
			res.wantFailure(t, 3*time.Second, "remote function remote/fake/k1: ", tc.reason)
			if n := len(c.all()); n != 0 {
				t.Errorf("%d egress records from a rejected reply", n)
			}
		})
	}
}

func TestFaultInvalidRouting(t *testing.T) {
	cases := []struct {
		name   string
		reply  *protocol.FromFunction
		reason string
	}{
		{
			name: "unknown-egress",
			reply: &protocol.FromFunction{InvocationResult: &protocol.InvocationResponse{
				OutgoingEgresses: []protocol.EgressMessage{{EgressNamespace: "cf", EgressType: "nowhere",
					Argument: &protocol.TypedValue{Typename: "io.statefun.types/string", HasValue: true}}},
			}},
			reason: "outgoing_egresses[0]: unknown egress cf/nowhere",
		},
		{
			name: "message-to-unbound-type",
			reply: &protocol.FromFunction{InvocationResult: &protocol.InvocationResponse{
				OutgoingMessages: []protocol.OutgoingMessage{{Target: &protocol.Address{Namespace: "nobody", Type: "here", ID: "x"},
					Argument: &protocol.TypedValue{Typename: "io.statefun.types/string", HasValue: true}}},
			}},
			reason: "outgoing_messages[0]: message to nobody/here/x: no function is bound to type nobody/here",
		},
		{
			name: "cancel-without-token",
			reply: &protocol.FromFunction{InvocationResult: &protocol.InvocationResponse{
				DelayedInvocations: []protocol.DelayedInvocation{{IsCancellationRequest: true}},
			}},
			reason: "delayed_invocations[0]: cancellation request without a token",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := fakeServer(t, func(*protocol.ToFunction, int) *protocol.FromFunction { return tc.reply })
			mod := writeModule(t, endpoint("remote/*", url, 0, asyncTransport("5s")))
			var c capture
			res := runApp(t, 30*time.Second, app.Config{
				Modules:   []string{mod},
				Ingresses: []translate.Ingress{ingress("cf/in", "remote/fake", "k1", "hi")},
				Egresses:  []translate.Egress{c.egress("cf/out")},
			})
			res.wantFailure(t, 3*time.Second, "remote function remote/fake/k1: ", tc.reason)
		})
	}
}

// ---- a function that never completes its context ----

// TestFaultEndlessIncompleteContext: a function server that answers every
// request with an IncompleteInvocationContext for a state the runtime has
// registered and sends. Re-sending cannot help (the request would be the
// same), so the job must fail, naming the address and the state, instead
// of re-sending forever.
func TestFaultEndlessIncompleteContext(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	url := fakeServer(t, func(*protocol.ToFunction, int) *protocol.FromFunction {
		mu.Lock()
		calls++
		mu.Unlock()
		return declare(intSpec("x", intType))
	})
	mod := writeModule(t, endpoint("remote/*", url, 0, asyncTransport("5s")))
	res := runApp(t, 5*time.Second, app.Config{
		Modules:         []string{mod},
		ShutdownTimeout: time.Second,
		Ingresses:       []translate.Ingress{ingress("cf/in", "remote/fake", "k1", "hi")},
	})
	mu.Lock()
	t.Logf("the function server got %d requests", calls)
	mu.Unlock()
	res.wantFailure(t, 5*time.Second, "remote function remote/fake/k1", "IncompleteInvocationContext", `"x"`)
}
