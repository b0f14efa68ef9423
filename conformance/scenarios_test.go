package conformance

import (
	"encoding/json"
	"fmt"
	"github.com/statefun-go/statefun/connectors/connectortest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/protocol"
	"github.com/statefun-go/statefun/statefun/translate"
)

// specWant is an expected PersistedValueSpec of an
// IncompleteInvocationContext.
type specWant struct {
	typename string
	mode     protocol.ExpireMode
	millis   int64
}

// checkRegistration checks the state protocol of function type fn as seen
// by the tap (contract §1.3, §1.4, §2.4, §2.5):
//   - at least one IncompleteInvocationContext happened (first contact),
//     and each lists only declared states with their exact type and
//     expiration;
//   - the request after it re-sends the same invocations for the same
//     address, now carrying every declared state;
//   - every request answered with a result carries every declared state,
//     with the registered typename and has_value when it has a value.
func checkRegistration(t *testing.T, tp *tap, fn string, want map[string]specWant) {
	t.Helper()
	exs := tp.exchanges(fn)
	if len(exs) == 0 {
		t.Fatalf("%s: the tap saw no request", fn)
	}
	incomplete := 0
	for id, list := range byID(exs) {
		for i, ex := range list {
			if ex.status != 200 {
				t.Errorf("%s/%s exchange %d: status %d", fn, id, i, ex.status)
				continue
			}
			if ic := ex.from.IncompleteInvocationContext; ic != nil {
				incomplete++
				if len(ex.to.Invocation.State) == 0 && len(ic.MissingValues) != len(want) {
					t.Errorf("%s/%s: first contact lists %d missing states, want all %d", fn, id, len(ic.MissingValues), len(want))
				}
				for _, spec := range ic.MissingValues {
					w, ok := want[spec.StateName]
					if !ok {
						t.Errorf("%s/%s: the function declared unexpected state %q", fn, id, spec.StateName)
						continue
					}
					var mode protocol.ExpireMode
					var ms int64
					if spec.ExpirationSpec != nil {
						mode, ms = spec.ExpirationSpec.Mode, spec.ExpirationSpec.ExpireAfterMillis
					}
					if spec.TypeTypename != w.typename || mode != w.mode || ms != w.millis {
						t.Errorf("%s/%s: state %q declared as (%s, %s, %d ms), want (%s, %s, %d ms)", fn, id, spec.StateName,
							spec.TypeTypename, mode, ms, w.typename, w.mode, w.millis)
					}
				}
				if i+1 >= len(list) {
					t.Errorf("%s/%s: no request after the IncompleteInvocationContext", fn, id)
					continue
				}
				next := list[i+1].to.Invocation
				if !sameInvocations(ex.to.Invocation.Invocations, next.Invocations) {
					t.Errorf("%s/%s: the request after the IncompleteInvocationContext does not re-send the same invocations", fn, id)
				}
				continue
			}
			if len(ex.to.Invocation.State) != len(want) {
				t.Errorf("%s/%s exchange %d: a request with a result carries %d states, want all %d declared", fn, id, i, len(ex.to.Invocation.State), len(want))
			}
			for _, pv := range ex.to.Invocation.State {
				w, ok := want[pv.StateName]
				if !ok {
					t.Errorf("%s/%s: the runtime sent undeclared state %q", fn, id, pv.StateName)
					continue
				}
				if v := pv.StateValue; v != nil && (v.Typename != w.typename || !v.HasValue) {
					t.Errorf("%s/%s: state %q sent as (typename %q, has_value %v), want (%q, true)", fn, id, pv.StateName, v.Typename, v.HasValue, w.typename)
				}
			}
		}
	}
	if incomplete == 0 {
		t.Errorf("%s: no IncompleteInvocationContext: the states were not registered on first contact", fn)
	}
}

func sameInvocations(a, b []protocol.Invocation) bool {
	return slices.EqualFunc(a, b, func(x, y protocol.Invocation) bool {
		return addr(x.Caller) == addr(y.Caller) && x.Argument != nil && y.Argument != nil &&
			x.Argument.Typename == y.Argument.Typename && string(x.Argument.Value) == string(y.Argument.Value)
	})
}

// groupBy splits lines into lists by key(line), keeping their order.
func groupBy(lines []string, key func(string) string) map[string][]string {
	m := map[string][]string{}
	for _, l := range lines {
		k := key(l)
		m[k] = append(m[k], l)
	}
	return m
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}

// ---- 1. state of every well-known type and a JSON type ----

func TestStateTypes(t *testing.T) {
	forEachSDK(t, func(t *testing.T, s sdk) {
		tp := newTap(t, s.start(t))
		runTypesScenario(t, tp.url(), asyncTransport("10s"))
		checkRegistration(t, tp, "remote/types", typesSpecs)
		// The first invocation of each address sees every state unset.
		for id, list := range byID(tp.exchanges("remote/types")) {
			for _, ex := range list {
				if ex.from.InvocationResult == nil {
					continue
				}
				for _, pv := range ex.to.Invocation.State {
					if pv.StateValue != nil {
						t.Errorf("remote/types/%s: first invocation with a result carries a value for state %q", id, pv.StateName)
					}
				}
				break
			}
		}
	})
}

var typesSpecs = map[string]specWant{
	"b": {typename: "io.statefun.types/bool"},
	"i": {typename: "io.statefun.types/int"},
	"l": {typename: "io.statefun.types/long"},
	"f": {typename: "io.statefun.types/float"},
	"d": {typename: "io.statefun.types/double"},
	"s": {typename: "io.statefun.types/string"},
	"j": {typename: "cf/json"},
}

// typesMessages are the messages of each address of remote/types.
var typesMessages = map[string][]string{
	"t1":   {"héllo", "wörld", "ünïcode ✓"},
	"t2":   {"a", "", "c"},
	"t3":   {"x y", "z", "end"},
	"ключ": {"only"},
}

// runTypesScenario runs remote/types at url (an urlPathTemplate) with the
// given transport and checks every record. Extra module components are
// appended.
func runTypesScenario(t *testing.T, url, transport string, extra ...string) runResult {
	t.Helper()
	return runTypes(t, append([]string{endpoint("remote/*", url, 0, transport)}, extra...)...)
}

// runTypes runs remote/types with the module made of components and checks
// every record.
func runTypes(t *testing.T, components ...string) runResult {
	t.Helper()
	var kv []string
	for i := 0; i < 3; i++ {
		for _, id := range []string{"t1", "t2", "t3", "ключ"} {
			if i < len(typesMessages[id]) {
				kv = append(kv, id, typesMessages[id][i])
			}
		}
	}
	mod := writeModule(t, components...)
	var c capture
	res := runApp(t, 60*time.Second, app.Config{
		Modules:   []string{mod},
		Ingresses: []translate.Ingress{ingress("cf/in", "remote/types", kv...)},
		Egresses:  []translate.Egress{c.egress("cf/out")},
	})
	res.mustSucceed(t)
	got := groupBy(c.strings(t), firstWord)
	for id, msgs := range typesMessages {
		var want []string
		for n := range msgs {
			want = append(want, typesLine(id, n, msgs))
		}
		if !slices.Equal(got[id], want) {
			t.Errorf("remote/types/%s records:\n got  %q\n want %q", id, got[id], want)
		}
		delete(got, id)
	}
	for id, lines := range got {
		t.Errorf("records for unexpected address %q: %q", id, lines)
	}
	return res
}

// typesLine is the record of invocation n (0-based) of remote/types/id: the
// values written by invocation n-1.
func typesLine(id string, n int, msgs []string) string {
	if n == 0 {
		return id + " b=- i=- l=- f=- d=- s=- j=-"
	}
	p := n // the previous invocation's number (1-based)
	m := msgs[n-1]
	return fmt.Sprintf("%s b=%t i=%d l=%d f=%.2f d=%.2f s=%s#%d j=%d:%s", id, p%2 == 1, p, int64(p)*10_000_000_000,
		float64(p)*0.5, float64(p)*1.25, m, p, p, m)
}

// ---- 2. expiration ----

func TestExpiration(t *testing.T) {
	forEachSDK(t, func(t *testing.T, s sdk) {
		tp := newTap(t, s.start(t))
		mod := writeModule(t, endpoint("remote/*", tp.url(), 0, asyncTransport("10s")))
		var c capture
		res := runApp(t, 60*time.Second, app.Config{
			Modules:   []string{mod},
			Ingresses: []translate.Ingress{ingress("cf/in", "remote/expiry", "e1", "start", "e2", "start")},
			Egresses:  []translate.Egress{c.egress("cf/out")},
		})
		res.mustSucceed(t)
		got := groupBy(c.strings(t), firstWord)
		for _, id := range []string{"e1", "e2"} {
			want := []string{id + " tick1 w=1 wr=1 c=1"}
			for n := 2; n < ticks; n++ {
				want = append(want, fmt.Sprintf("%s tick%d wr=%d c=1", id, n, n-1))
			}
			want = append(want,
				// w: written once, expired; c: refreshed by every call.
				fmt.Sprintf("%s tick%d w=- wr=%d c=1", id, ticks, ticks-1),
				id+" check w=- wr=- c=-", // 500 ms without a call or a write
			)
			if !slices.Equal(got[id], want) {
				t.Errorf("remote/expiry/%s records:\n got  %q\n want %q", id, got[id], want)
			}
		}
		checkRegistration(t, tp, "remote/expiry", map[string]specWant{
			"w":  {typename: "io.statefun.types/int", mode: protocol.ExpireAfterWrite, millis: 300},
			"wr": {typename: "io.statefun.types/int", mode: protocol.ExpireAfterWrite, millis: 300},
			"c":  {typename: "io.statefun.types/int", mode: protocol.ExpireAfterInvoke, millis: 300},
			"n":  {typename: "io.statefun.types/int"},
		})
	})
}

// ---- 3. messaging: remote <-> remote, remote <-> embedded, self ----

// echoSpec is the embedded function emb/echo (this engine's SDK): it
// reports every message with its caller; on "to-emb" it answers its caller
// with "emb-reply" and sends "from-emb" to the remote remote/pong/<k>-q.
func echoSpec() statefun.StatefulFunctionSpec {
	return statefun.StatefulFunctionSpec{
		FunctionType: statefun.TypeNameFrom("emb/echo"),
		Function: statefun.StatefulFunctionPointer(func(ctx statefun.Context, m statefun.Message) error {
			v := m.AsString()
			caller := "none"
			if c := ctx.Caller(); c != nil {
				caller = c.FunctionType.String() + "/" + c.Id
			}
			id := ctx.Self().Id
			ctx.SendEgress(statefun.GenericEgressBuilder{
				Target: statefun.TypeNameFrom("cf/out"), ValueType: statefun.StringType,
				Value: fmt.Sprintf("emb %s got %s from %s", id, v, caller),
			})
			if v == "to-emb" {
				ctx.Send(statefun.MessageBuilder{Target: *ctx.Caller(), Value: "emb-reply"})
				ctx.Send(statefun.MessageBuilder{
					Target: statefun.Address{FunctionType: statefun.TypeNameFrom("remote/pong"), Id: strings.TrimSuffix(id, "-e") + "-q"},
					Value:  "from-emb",
				})
			}
			return nil
		}),
	}
}

func TestMessaging(t *testing.T) {
	forEachSDK(t, func(t *testing.T, s sdk) {
		tp := newTap(t, s.start(t))
		mod := writeModule(t, endpoint("remote/*", tp.url(), 0, asyncTransport("10s")))
		keys := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
		var kv []string
		for _, k := range keys {
			kv = append(kv, k, "go")
		}
		var c capture
		res := runApp(t, 60*time.Second, app.Config{
			Modules:   []string{mod},
			Functions: []statefun.StatefulFunctionSpec{echoSpec()},
			Ingresses: []translate.Ingress{ingress("cf/in", "remote/ping", kv...)},
			Egresses:  []translate.Egress{c.egress("cf/out")},
		})
		res.mustSucceed(t)
		var want []string
		for _, k := range keys {
			want = append(want,
				"ping "+k+" got go from none",
				"ping "+k+" got self from remote/ping/"+k,
				"pong "+k+"-p got hello from remote/ping/"+k,
				"emb "+k+"-e got to-emb from remote/ping/"+k,
				"ping "+k+" got pong-reply from remote/pong/"+k+"-p",
				"ping "+k+" got emb-reply from emb/echo/"+k+"-e",
				"pong "+k+"-q got from-emb from emb/echo/"+k+"-e",
				"emb "+k+"-e got pong-reply from remote/pong/"+k+"-q",
			)
		}
		sameMultiset(t, "egress records", want, c.strings(t))
		// The egress records carry their sender.
		for _, e := range c.all() {
			var v string
			_ = statefun.DecodeValue(statefun.StringType, e.Value, &v)
			fields := strings.Fields(v)
			if len(fields) < 2 {
				continue
			}
			wantFrom := map[string]string{"ping": "remote/ping/", "pong": "remote/pong/", "emb": "emb/echo/"}[fields[0]] + fields[1]
			if !e.HasCaller || e.Caller.String() != wantFrom {
				t.Errorf("egress record %q: sender %v (set %v), want %s", v, e.Caller, e.HasCaller, wantFrom)
			}
		}
		// What the function saw: caller absent for ingress messages, set
		// otherwise (contract §2.6).
		for _, ex := range tp.exchanges("remote/ping") {
			for _, inv := range ex.to.Invocation.Invocations {
				var v string
				_ = statefun.DecodeValue(statefun.StringType, inv.Argument.Value, &v)
				if (v == "go") != (inv.Caller == nil) {
					t.Errorf("remote/ping/%s: message %q with caller %s", ex.to.Invocation.Target.ID, v, addr(inv.Caller))
				}
			}
		}
	})
}

// ---- 4. delayed messages and cancellation ----

func TestDelayedMessages(t *testing.T) {
	forEachSDK(t, func(t *testing.T, s sdk) {
		tp := newTap(t, s.start(t))
		mod := writeModule(t, endpoint("remote/*", tp.url(), 0, asyncTransport("10s")))
		var c capture
		res := runApp(t, 60*time.Second, app.Config{
			Modules:   []string{mod},
			Ingresses: []translate.Ingress{ingress("cf/in", "remote/delay", "d1", "go", "d2", "go", "d3", "go")},
			Egresses:  []translate.Egress{c.egress("cf/out")},
		})
		res.mustSucceed(t)
		records := c.strings(t)
		var all []string
		for _, id := range []string{"d1", "d2", "d3"} {
			from := " from remote/delay/" + id
			want := []string{
				"delay " + id + " got go from none",
				"delay " + id + " got zero" + from,
				"delay " + id + " got plain" + from,
				"delay " + id + " got b-kept" + from,
				"delay " + id + " got b-again" + from,
			}
			// The messages to itself fire in delay order: zero (0 ms),
			// plain (50 ms), b-kept (100 ms), then b-again; a-cancelled
			// (send then cancel in one reply) and c-cancelled (cancelled
			// by plain) never.
			var got []string
			for _, l := range records {
				if strings.HasPrefix(l, "delay "+id+" ") && !strings.Contains(l, "pong-reply") {
					got = append(got, l)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("remote/delay/%s records:\n got  %q\n want %q", id, got, want)
			}
			// The delayed message to another address keeps the scheduling
			// function as its caller; the one cancelled by zero never
			// arrives.
			all = append(all, want...)
			all = append(all,
				"pong "+id+"-x got delayed-hello"+from,
				"delay "+id+" got pong-reply from remote/pong/"+id+"-x")
		}
		sameMultiset(t, "egress records", all, records)
		// c-cancelled (3 s) and never (2 s) were cancelled: a job that
		// waited for them did not cancel them.
		if res.elapsed > 1800*time.Millisecond {
			t.Errorf("the job took %v: a cancelled message was waited for", res.elapsed)
		}
	})
}

// ---- 5. egress ----

func TestEgress(t *testing.T) {
	forEachSDK(t, func(t *testing.T, s sdk) {
		base := s.start(t)
		mod := writeModule(t, endpoint("remote/*", base+"/{function.name}", 0, asyncTransport("10s")), stdoutEgress("cf/stdout"))
		var c capture
		ids := []string{"g1", "g2"}
		res := runApp(t, 60*time.Second, app.Config{
			Modules:   []string{mod},
			Ingresses: []translate.Ingress{ingress("cf/in", "remote/egress", "g1", "go", "g2", "go")},
			Egresses:  []translate.Egress{c.egress("cf/out")},
		})
		res.mustSucceed(t)
		enc := func(t2 statefun.SimpleType, v any) string {
			b, err := statefun.EncodeValue(t2, v)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		type rec struct{ typename, value string }
		perSender := map[string][]rec{}
		for _, e := range c.all() {
			perSender[e.Caller.String()] = append(perSender[e.Caller.String()], rec{e.Typename, string(e.Value)})
		}
		for _, id := range ids {
			want := []rec{
				{"io.statefun.types/string", enc(statefun.StringType, "str-"+id+"-ü")},
				{"io.statefun.types/int", enc(statefun.Int32Type, int32(42))},
				{"io.statefun.types/int", ""}, // zero: the empty proto3 encoding
				{"io.statefun.types/long", enc(statefun.Int64Type, int64(-7))},
				{"io.statefun.types/bool", "\x08\x01"},
				{"io.statefun.types/bool", ""},
				{"io.statefun.types/float", enc(statefun.Float32Type, float32(1.5))},
				{"io.statefun.types/double", enc(statefun.Float64Type, -2.25)},
			}
			got := perSender["remote/egress/"+id]
			if len(got) != len(want)+1 {
				t.Errorf("remote/egress/%s: %d records, want %d: %q", id, len(got), len(want)+1, got)
				continue
			}
			for i, w := range want {
				if got[i] != w {
					t.Errorf("remote/egress/%s record %d: (%s, % x), want (%s, % x)", id, i, got[i].typename, got[i].value, w.typename, w.value)
				}
			}
			j := got[len(want)]
			var js jsonState
			if j.typename != "cf/json" || json.Unmarshal([]byte(j.value), &js) != nil || js != (jsonState{N: 1, Last: id}) {
				t.Errorf("remote/egress/%s JSON record: (%s, %q), want (cf/json, {\"n\":1,\"last\":%q})", id, j.typename, j.value, id)
			}
		}
		sameMultiset(t, "stdout egress lines", []string{"hello g1", "hello g2"}, splitLines(res.stdout.String()))
	})
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// ---- 6. batching on one hot address ----

func TestBatchingHotAddress(t *testing.T) {
	forEachSDK(t, func(t *testing.T, s sdk) {
		tp := newTap(t, s.start(t))
		tp.latency = 2 * time.Millisecond // let a backlog build behind each request
		mod := writeModule(t, endpoint("remote/*", tp.url(), 5, asyncTransport("10s")))
		const n = 400
		recs := make([]connectors.Record, n)
		for i := range recs {
			v, _ := statefun.EncodeValue(statefun.Int64Type, int64(i))
			recs[i] = connectors.Record{Key: "hot", HasKey: true, Value: v}
		}
		var c capture
		res := runApp(t, 90*time.Second, app.Config{
			Modules: []string{mod},
			Ingresses: []translate.Ingress{{
				ID: "cf/in", Parallelism: 1, ValueType: "io.statefun.types/long", Targets: []string{"remote/seq"},
				Source: func(int) connectors.Source { return &connectortest.SliceSource{Records: recs, Batch: 64} },
			}},
			Egresses: []translate.Egress{c.egress("cf/out")},
		})
		res.mustSucceed(t)
		want := make([]string, n)
		for i := range want {
			want[i] = "hot:" + strconv.Itoa(i-1) + ">" + strconv.Itoa(i)
		}
		if got := c.strings(t); !slices.Equal(got, want) {
			t.Errorf("records out of order or missing: %d records, want %d; first differences: %q", len(got), n, firstDiff(got, want, 5))
		}
		// What the function saw: batches of at most 5, some of more than
		// one, every message once and in order.
		hist := map[int]int{}
		var seen []int64
		for _, ex := range tp.exchanges("remote/seq") {
			k := len(ex.to.Invocation.Invocations)
			if k > 5 {
				t.Errorf("a request carried %d invocations, more than maxNumBatchRequests 5", k)
			}
			if ex.from.InvocationResult == nil {
				continue // first contact: re-sent after registration
			}
			hist[k]++
			for _, inv := range ex.to.Invocation.Invocations {
				var v int64
				if err := statefun.DecodeValue(statefun.Int64Type, inv.Argument.Value, &v); err != nil {
					t.Fatal(err)
				}
				seen = append(seen, v)
			}
		}
		t.Logf("batch sizes (size: requests): %v", hist)
		big := 0
		for k, cnt := range hist {
			if k > 1 {
				big += cnt
			}
		}
		if big == 0 {
			t.Errorf("no request carried more than one invocation: no batching happened (%v)", hist)
		}
		for i, v := range seen {
			if v != int64(i) {
				t.Errorf("invocation %d carried message %d: order lost or message duplicated", i, v)
				break
			}
		}
		if len(seen) != n {
			t.Errorf("the function was invoked %d times, want %d", len(seen), n)
		}
	})
}

func firstDiff(got, want []string, k int) []string {
	var out []string
	for i := 0; i < max(len(got), len(want)) && len(out) < k; i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			out = append(out, fmt.Sprintf("#%d got %q want %q", i, g, w))
		}
	}
	return out
}

// ---- state carried across batches while addresses wait for capacity ----

// TestStateAcrossBatchesManyAddresses: more addresses than the requests a
// subtask lets in flight at once (the dispatcher holds the others), each
// with several messages, on one subtask; every address must count 1..n.
// The tap adds a constant latency so that round trips are even.
//
// This catches a lost update: when a reply completes an address that has
// more messages queued while other addresses wait for capacity, the
// address's next batch must be built after the reply's state mutations
// are applied (contract §2.5: mutations, then queue handling).
func TestStateAcrossBatchesManyAddresses(t *testing.T) {
	forEachSDK(t, func(t *testing.T, s sdk) {
		tp := newTap(t, s.start(t))
		tp.latency = 20 * time.Millisecond
		var keys []string
		for k := 0; k < 10; k++ {
			keys = append(keys, fmt.Sprintf("m%d", k))
		}
		const msgs = 5
		var kv []string
		for i := 0; i < msgs; i++ {
			for _, k := range keys {
				kv = append(kv, k, "hi")
			}
		}
		// One invocation per request keeps work queued behind every
		// address for several rounds.
		mod := writeModule(t, endpoint("remote/*", tp.url(), 1, asyncTransport("10s")))
		var c capture
		res := runApp(t, 60*time.Second, app.Config{
			Modules: []string{mod}, Parallelism: 1,
			Ingresses: []translate.Ingress{ingress("cf/in", "remote/greet", kv...)},
			Egresses:  []translate.Egress{c.egress("cf/out")},
		})
		res.mustSucceed(t)
		checkGreets(t, c.strings(t), keys, msgs)
		// Explain a failure from what the function saw: a request that
		// carries a state older than the previous reply's mutation.
		for id, list := range byID(tp.exchanges("remote/greet")) {
			last := -1 // the count the previous reply wrote
			for _, ex := range list {
				if ex.from.InvocationResult == nil {
					continue
				}
				sent := 0
				for _, pv := range ex.to.Invocation.State {
					if pv.StateName == "seen" && pv.StateValue != nil {
						var v int32
						_ = statefun.DecodeValue(statefun.Int32Type, pv.StateValue.Value, &v)
						sent = int(v)
					}
				}
				if last >= 0 && sent != last {
					t.Errorf("remote/greet/%s: a request carried seen=%d, but the previous reply had written seen=%d: the next batch was built before the reply's state mutations were applied", id, sent, last)
				}
				for _, mu := range ex.from.InvocationResult.StateMutations {
					if mu.StateName == "seen" && mu.StateValue != nil {
						var v int32
						_ = statefun.DecodeValue(statefun.Int32Type, mu.StateValue.Value, &v)
						last = int(v)
					}
				}
			}
		}
	})
}
