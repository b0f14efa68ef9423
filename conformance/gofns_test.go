package conformance

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	gosdk "github.com/apache/flink-statefun/statefun-sdk-go/v3/pkg/statefun"
)

// The remote functions of the scenarios, written with the official Go SDK.
// conformance/python/functions.py has the same functions written with the
// official Python SDK: both must produce exactly the same records. Every
// function lives in namespace "remote"; egress "cf/out" is the test's
// capturing egress, "cf/stdout" a module stdout egress.

var (
	egressOut    = gosdk.TypeNameFrom("cf/out")
	egressStdout = gosdk.TypeNameFrom("cf/stdout")
	jsonTypeName = gosdk.TypeNameFrom("cf/json")
	jsonType     = gosdk.MakeJsonType(jsonTypeName)
)

// jsonState is the JSON state of remote/types and the JSON egress value.
type jsonState struct {
	N    int    `json:"n"`
	Last string `json:"last"`
}

func callerString(c *gosdk.Address) string {
	if c == nil {
		return "none"
	}
	return c.FunctionType.String() + "/" + c.Id
}

func selfString(ctx gosdk.Context) string {
	s := ctx.Self()
	return s.FunctionType.String() + "/" + s.Id
}

func out(ctx gosdk.Context, format string, args ...any) {
	ctx.SendEgress(gosdk.GenericEgressBuilder{Target: egressOut, Value: fmt.Sprintf(format, args...), ValueType: gosdk.StringType})
}

func send(ctx gosdk.Context, fn, id, value string) {
	ctx.Send(gosdk.MessageBuilder{Target: gosdk.Address{FunctionType: gosdk.TypeNameFrom(fn), Id: id}, Value: value})
}

// ---- scenario 1: state of every well-known type and a JSON type ----

var (
	stB = gosdk.ValueSpec{Name: "b", ValueType: gosdk.BoolType}
	stI = gosdk.ValueSpec{Name: "i", ValueType: gosdk.Int32Type}
	stL = gosdk.ValueSpec{Name: "l", ValueType: gosdk.Int64Type}
	stF = gosdk.ValueSpec{Name: "f", ValueType: gosdk.Float32Type}
	stD = gosdk.ValueSpec{Name: "d", ValueType: gosdk.Float64Type}
	stS = gosdk.ValueSpec{Name: "s", ValueType: gosdk.StringType}
	stJ = gosdk.ValueSpec{Name: "j", ValueType: jsonType}
)

// goTypes reports the values it reads (before writing), "-" for an absent
// one, then writes the values of invocation n (n = previous i + 1):
// b = n odd, i = n, l = n*10^10, f = n*0.5, d = n*1.25, s = msg#n,
// j = {n, msg}.
func goTypes(ctx gosdk.Context, msg gosdk.Message) error {
	st := ctx.Storage()
	var (
		b       bool
		i       int32
		l       int64
		f       float32
		d       float64
		s       string
		j       jsonState
		fields  []string
		present = func(ok bool, v string) string {
			if !ok {
				return "-"
			}
			return v
		}
	)
	okB := st.Get(stB, &b)
	okI := st.Get(stI, &i)
	okL := st.Get(stL, &l)
	okF := st.Get(stF, &f)
	okD := st.Get(stD, &d)
	okS := st.Get(stS, &s)
	okJ := st.Get(stJ, &j)
	fields = append(fields,
		"b="+present(okB, fmt.Sprint(b)),
		"i="+present(okI, fmt.Sprint(i)),
		"l="+present(okL, fmt.Sprint(l)),
		"f="+present(okF, fmt.Sprintf("%.2f", f)),
		"d="+present(okD, fmt.Sprintf("%.2f", d)),
		"s="+present(okS, s),
		"j="+present(okJ, fmt.Sprintf("%d:%s", j.N, j.Last)),
	)
	out(ctx, "%s %s", ctx.Self().Id, strings.Join(fields, " "))
	n := i + 1
	m := msg.AsString()
	st.Set(stB, n%2 == 1)
	st.Set(stI, n)
	st.Set(stL, int64(n)*10_000_000_000)
	st.Set(stF, float32(n)*0.5)
	st.Set(stD, float64(n)*1.25)
	st.Set(stS, fmt.Sprintf("%s#%d", m, n))
	st.Set(stJ, jsonState{N: int(n), Last: m})
	return nil
}

// ---- scenario 2: expiration ----

const (
	ttl   = 300 * time.Millisecond
	tick  = 60 * time.Millisecond
	ticks = 8
)

var (
	stW  = gosdk.ValueSpec{Name: "w", ValueType: gosdk.Int32Type, Expiration: gosdk.ExpireAfterWrite(ttl)}
	stWR = gosdk.ValueSpec{Name: "wr", ValueType: gosdk.Int32Type, Expiration: gosdk.ExpireAfterWrite(ttl)}
	stC  = gosdk.ValueSpec{Name: "c", ValueType: gosdk.Int32Type, Expiration: gosdk.ExpireAfterCall(ttl)}
	stN  = gosdk.ValueSpec{Name: "n", ValueType: gosdk.Int32Type}
)

// goExpiry: "start" writes w, wr and c and schedules eight "tick"s 60 ms
// apart, then a "check" 500 ms after the last. w is written once (gone
// after 300 ms), wr is rewritten at every tick (kept), c is only read (kept
// while the ticks call the function, gone 500 ms after the last). Delays
// are lower bounds, so every "gone" is certain; every "kept" has a margin
// of 240 ms.
func goExpiry(ctx gosdk.Context, msg gosdk.Message) error {
	st := ctx.Storage()
	self := ctx.Self()
	get := func(spec gosdk.ValueSpec) string {
		var v int32
		if st.Get(spec, &v) {
			return fmt.Sprint(v)
		}
		return "-"
	}
	switch m := msg.AsString(); m {
	case "start":
		st.Set(stW, int32(1))
		st.Set(stWR, int32(1))
		st.Set(stC, int32(1))
		st.Set(stN, int32(0))
		ctx.SendAfter(tick, gosdk.MessageBuilder{Target: self, Value: "tick"})
	case "tick":
		var n int32
		st.Get(stN, &n)
		n++
		st.Set(stN, n)
		switch n {
		case 1, ticks:
			out(ctx, "%s tick%d w=%s wr=%s c=%s", self.Id, n, get(stW), get(stWR), get(stC))
		default:
			out(ctx, "%s tick%d wr=%s c=%s", self.Id, n, get(stWR), get(stC))
		}
		st.Set(stWR, n)
		if n < ticks {
			ctx.SendAfter(tick, gosdk.MessageBuilder{Target: self, Value: "tick"})
		} else {
			ctx.SendAfter(500*time.Millisecond, gosdk.MessageBuilder{Target: self, Value: "check"})
		}
	case "check":
		out(ctx, "%s check w=%s wr=%s c=%s", self.Id, get(stW), get(stWR), get(stC))
	default:
		return fmt.Errorf("unexpected message %q", m)
	}
	return nil
}

// ---- scenario 3: messaging ----

// goPing: on "go" (from an ingress) sends "hello" to remote/pong/<id>-p,
// "to-emb" to the embedded emb/echo/<id>-e and "self" to itself; every
// message is reported with its caller.
func goPing(ctx gosdk.Context, msg gosdk.Message) error {
	id := ctx.Self().Id
	m := msg.AsString()
	out(ctx, "ping %s got %s from %s", id, m, callerString(ctx.Caller()))
	if m == "go" {
		send(ctx, "remote/pong", id+"-p", "hello")
		send(ctx, "emb/echo", id+"-e", "to-emb")
		ctx.Send(gosdk.MessageBuilder{Target: ctx.Self(), Value: "self"})
	}
	return nil
}

// goPong reports every message and answers its caller with "pong-reply".
func goPong(ctx gosdk.Context, msg gosdk.Message) error {
	out(ctx, "pong %s got %s from %s", ctx.Self().Id, msg.AsString(), callerString(ctx.Caller()))
	if c := ctx.Caller(); c != nil {
		ctx.Send(gosdk.MessageBuilder{Target: *c, Value: "pong-reply"})
	}
	return nil
}

// ---- scenario 4: delayed messages and cancellation ----

func token(s string) gosdk.CancellationToken {
	t, err := gosdk.NewCancellationToken(s)
	if err != nil {
		panic(err)
	}
	return t
}

// goDelay: "go" schedules, in one reply: "zero" after 0 ms, "plain" after
// 50 ms, "a-cancelled" with token t-a then cancels t-a, cancels t-b then
// schedules "b-kept" with t-b, and "c-cancelled" with t-c after 3 s, which
// the "plain" invocation cancels. "b-kept" reuses token t-b (its message
// has fired) for "b-again". It also schedules, for other addresses,
// "delayed-hello" to remote/pong/<id>-x after 30 ms (which answers) and
// "never" to remote/pong/<id>-y after 2 s, which the "zero" invocation
// cancels.
func goDelay(ctx gosdk.Context, msg gosdk.Message) error {
	self := ctx.Self()
	m := msg.AsString()
	out(ctx, "delay %s got %s from %s", self.Id, m, callerString(ctx.Caller()))
	to := func(v string) gosdk.MessageBuilder { return gosdk.MessageBuilder{Target: self, Value: v} }
	switch m {
	case "go":
		ctx.SendAfter(0, to("zero"))
		ctx.SendAfter(50*time.Millisecond, to("plain"))
		ctx.SendAfterWithCancellationToken(100*time.Millisecond, token("t-a"), to("a-cancelled"))
		ctx.CancelDelayedMessage(token("t-a"))
		ctx.CancelDelayedMessage(token("t-b"))
		ctx.SendAfterWithCancellationToken(100*time.Millisecond, token("t-b"), to("b-kept"))
		ctx.SendAfterWithCancellationToken(3*time.Second, token("t-c"), to("c-cancelled"))
		pong := func(id, v string) gosdk.MessageBuilder {
			return gosdk.MessageBuilder{Target: gosdk.Address{FunctionType: gosdk.TypeNameFrom("remote/pong"), Id: id}, Value: v}
		}
		ctx.SendAfterWithCancellationToken(30*time.Millisecond, token("t-x"), pong(self.Id+"-x", "delayed-hello"))
		ctx.SendAfterWithCancellationToken(2*time.Second, token("t-y"), pong(self.Id+"-y", "never"))
	case "zero":
		ctx.CancelDelayedMessage(token("t-y"))
	case "plain":
		ctx.CancelDelayedMessage(token("t-c"))
	case "b-kept":
		ctx.SendAfterWithCancellationToken(10*time.Millisecond, token("t-b"), to("b-again"))
	}
	return nil
}

// ---- scenario 5: egress ----

// goEgress sends one record of each type to cf/out and a line to
// cf/stdout.
func goEgress(ctx gosdk.Context, msg gosdk.Message) error {
	id := ctx.Self().Id
	eg := func(v any, t gosdk.SimpleType) {
		ctx.SendEgress(gosdk.GenericEgressBuilder{Target: egressOut, Value: v, ValueType: t})
	}
	eg("str-"+id+"-ü", gosdk.StringType)
	eg(int32(42), gosdk.Int32Type)
	eg(int32(0), gosdk.Int32Type)
	eg(int64(-7), gosdk.Int64Type)
	eg(true, gosdk.BoolType)
	eg(false, gosdk.BoolType)
	eg(float32(1.5), gosdk.Float32Type)
	eg(-2.25, gosdk.Float64Type)
	eg(jsonState{N: 1, Last: id}, jsonType)
	ctx.SendEgress(gosdk.GenericEgressBuilder{Target: egressStdout, Value: "hello " + id, ValueType: gosdk.StringType})
	return nil
}

// ---- scenario 6: batching ----

var stLast = gosdk.ValueSpec{Name: "last", ValueType: gosdk.Int64Type}

// goSeq reports "<id>:<previous>><message>" for every long message and
// keeps the last one in state.
func goSeq(ctx gosdk.Context, msg gosdk.Message) error {
	st := ctx.Storage()
	last := int64(-1)
	st.Get(stLast, &last)
	v := msg.AsInt64()
	out(ctx, "%s:%d>%d", ctx.Self().Id, last, v)
	st.Set(stLast, v)
	return nil
}

// ---- greeter (CLI, transports, faults) ----

var stSeen = gosdk.ValueSpec{Name: "seen", ValueType: gosdk.Int32Type}

// goGreet counts the messages of its address and reports "<id>:<count>".
func goGreet(ctx gosdk.Context, _ gosdk.Message) error {
	var seen int32
	ctx.Storage().Get(stSeen, &seen)
	seen++
	ctx.Storage().Set(stSeen, seen)
	out(ctx, "%s:%d", ctx.Self().Id, seen)
	return nil
}

// goHandler returns the Go SDK request-reply handler of every function.
func goHandler() http.Handler {
	b := gosdk.StatefulFunctionsBuilder()
	add := func(name string, fn func(gosdk.Context, gosdk.Message) error, states ...gosdk.ValueSpec) {
		if err := b.WithSpec(gosdk.StatefulFunctionSpec{
			FunctionType: gosdk.TypeNameFrom("remote/" + name),
			States:       states,
			Function:     gosdk.StatefulFunctionPointer(fn),
		}); err != nil {
			panic(err)
		}
	}
	add("types", goTypes, stB, stI, stL, stF, stD, stS, stJ)
	add("expiry", goExpiry, stW, stWR, stC, stN)
	add("ping", goPing)
	add("pong", goPong)
	add("delay", goDelay)
	add("egress", goEgress)
	add("seq", goSeq, stLast)
	add("greet", goGreet, stSeen)
	return b.AsHandler()
}
