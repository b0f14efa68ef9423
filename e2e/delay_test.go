package e2e

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/translate"
)

// Delayed messages and cancellation tokens (contract §2.6, §2.7), through
// one embedded function type test/delay. An ingress record (value = the
// address id) starts a scenario at an address; every message a function
// sends is a delayBody, recorded by its receiver (to the egress) with the
// caller, in processing order, before an optional scenario hook runs.

var (
	delayType       = statefun.TypeNameFrom("test/delay")
	delayBodyType   = statefun.MakeJsonType(statefun.TypeNameFrom("test/body"))
	delayRecordType = statefun.MakeJsonType(statefun.TypeNameFrom("test/delay-record"))
	delayEgress     = statefun.TypeNameFrom("test/delay-out")
	delayCount      = statefun.ValueSpec{Name: "n", ValueType: statefun.Int32Type}
)

type delayBody struct {
	B  string
	At int64 // unix nanos when sent
	D  int64 // delay, nanos
}

type delayRecord struct {
	To, From, B string
	N           int32 // processing index at To (1-based)
	Early       bool  // arrived before its delay elapsed
	Elapsed     time.Duration
}

type delayCase struct {
	name string
	// inputs are the ids that get one ingress message each, in order.
	inputs    []string
	onIngress func(ctx statefun.Context)
	// onMessage runs at the receiver after the message was recorded.
	onMessage func(ctx statefun.Context, b delayBody)
	// want maps a receiver id to "callerId|body" in processing order
	// (any order when unordered). Receivers not listed get nothing.
	want      map[string][]string
	unordered bool
	wantErr   []string
	// maxDuration bounds the run (a cancelled long delay must not hold
	// the job open; a failure must not wait for pending delays).
	maxDuration time.Duration
}

func body(b string, d time.Duration) statefun.MessageBuilder {
	return statefun.MessageBuilder{Value: delayBody{B: b, At: time.Now().UnixNano(), D: int64(d)}, ValueType: delayBodyType}
}

func to(id string, mb statefun.MessageBuilder) statefun.MessageBuilder {
	mb.Target = statefun.Address{FunctionType: delayType, Id: id}
	return mb
}

func send(ctx statefun.Context, id, b string) { ctx.Send(to(id, body(b, 0))) }

func sendAfter(ctx statefun.Context, d time.Duration, id, b string) {
	ctx.SendAfter(d, to(id, body(b, d)))
}

func tok(s string) statefun.CancellationToken {
	t, err := statefun.NewCancellationToken(s)
	if err != nil {
		panic(err)
	}
	return t
}

func sendTok(ctx statefun.Context, d time.Duration, token, id, b string) {
	ctx.SendAfterWithCancellationToken(d, tok(token), to(id, body(b, d)))
}

func cancelTok(ctx statefun.Context, token string) { ctx.CancelDelayedMessage(tok(token)) }

// subtaskOf is the function subtask that owns id.
func subtaskOf(id string, p, maxP int) int {
	return dataflow.SubtaskFor(dataflow.KeyGroupFor(id, maxP), maxP, p)
}

// pickID returns the first "prefix<n>" whose owner is (or, with same false,
// is not) the owner of ref.
func pickID(prefix, ref string, same bool, p, maxP int) string {
	for i := 0; ; i++ {
		id := prefix + strconv.Itoa(i)
		if id != ref && (subtaskOf(id, p, maxP) == subtaskOf(ref, p, maxP)) == same {
			return id
		}
		if i > 10000 {
			panic("no id found")
		}
	}
}

func delayCases(p, maxP int) []delayCase {
	rSame := pickID("r", "d", true, p, maxP)
	rOther := pickID("o", "d", p == 1, p, maxP) // at p 1 every id is local
	const ms = time.Millisecond
	return []delayCase{
		{
			name:   "delay-0-is-asynchronous",
			inputs: []string{"d"},
			onIngress: func(ctx statefun.Context) {
				for _, r := range []string{"d", rSame, rOther} {
					sendAfter(ctx, 0, r, "delayed")
					send(ctx, r, "direct")
				}
			},
			want: map[string][]string{
				"d":    {"d|direct", "d|delayed"},
				rSame:  {"d|direct", "d|delayed"},
				rOther: {"d|direct", "d|delayed"},
			},
		},
		{
			name:   "delays-fire-in-deadline-order",
			inputs: []string{"d"},
			onIngress: func(ctx statefun.Context) {
				sendAfter(ctx, 45*ms, rOther, "c")
				sendAfter(ctx, 15*ms, rOther, "a")
				sendAfter(ctx, 30*ms, rOther, "b")
				send(ctx, rOther, "now")
			},
			want: map[string][]string{rOther: {"d|now", "d|a", "d|b", "d|c"}},
		},
		{
			name:   "send-then-cancel-in-one-invocation-is-never-delivered",
			inputs: []string{"d"},
			onIngress: func(ctx statefun.Context) {
				sendTok(ctx, 20*ms, "t1", rOther, "cancelled")
				cancelTok(ctx, "t1")
				sendAfter(ctx, 60*ms, rOther, "after")
			},
			want: map[string][]string{rOther: {"d|after"}},
		},
		{
			name:   "cancel-then-send-is-delivered",
			inputs: []string{"d"},
			onIngress: func(ctx statefun.Context) {
				cancelTok(ctx, "t2")
				sendTok(ctx, 10*ms, "t2", rSame, "kept")
			},
			want: map[string][]string{rSame: {"d|kept"}},
		},
		{
			name:   "token-reusable-after-cancel",
			inputs: []string{"d"},
			onIngress: func(ctx statefun.Context) {
				sendTok(ctx, 10*ms, "t3", rOther, "first")
				cancelTok(ctx, "t3")
				sendTok(ctx, 10*ms, "t3", rOther, "second")
			},
			want: map[string][]string{rOther: {"d|second"}},
		},
		{
			name:   "cancel-in-a-later-invocation-and-the-job-does-not-wait-for-it",
			inputs: []string{"d"},
			onIngress: func(ctx statefun.Context) {
				sendTok(ctx, 30*time.Second, "late", rOther, "never")
				send(ctx, "d", "cancel-late")
			},
			onMessage: func(ctx statefun.Context, b delayBody) {
				if b.B == "cancel-late" {
					cancelTok(ctx, "late")
				}
			},
			want:        map[string][]string{"d": {"d|cancel-late"}},
			maxDuration: 10 * time.Second,
		},
		{
			name:   "cancel-of-an-unknown-token-is-a-no-op",
			inputs: []string{"d"},
			onIngress: func(ctx statefun.Context) {
				cancelTok(ctx, "never-used")
				send(ctx, rOther, "ok")
			},
			want: map[string][]string{rOther: {"d|ok"}},
		},
		{
			name:   "only-the-sender-can-cancel",
			inputs: []string{"s1"},
			onIngress: func(ctx statefun.Context) {
				sendTok(ctx, 100*ms, "x", rOther, "from-s1")
				send(ctx, "s2", "cancel-x")
			},
			onMessage: func(ctx statefun.Context, b delayBody) {
				if b.B == "cancel-x" {
					cancelTok(ctx, "x") // s2 has no message with token x: no-op
				}
			},
			want: map[string][]string{"s2": {"s1|cancel-x"}, rOther: {"s1|from-s1"}},
		},
		{
			name:   "same-token-from-two-senders",
			inputs: []string{"s1", "s2", "s3"},
			onIngress: func(ctx statefun.Context) {
				sendTok(ctx, 10*ms, "shared", rSame, "from-"+ctx.Self().Id)
			},
			want:      map[string][]string{rSame: {"s1|from-s1", "s2|from-s2", "s3|from-s3"}},
			unordered: true,
		},
		{
			name:   "token-reusable-after-fire-and-cancel-after-fire-is-a-no-op",
			inputs: []string{"d"},
			onIngress: func(ctx statefun.Context) {
				sendTok(ctx, 5*ms, "loop", "d", "round-1")
			},
			onMessage: func(ctx statefun.Context, b delayBody) {
				k, _ := strconv.Atoi(strings.TrimPrefix(b.B, "round-"))
				if k < 3 {
					cancelTok(ctx, "loop") // already fired
					sendTok(ctx, 5*ms, "loop", "d", fmt.Sprintf("round-%d", k+1))
				}
			},
			want: map[string][]string{"d": {"d|round-1", "d|round-2", "d|round-3"}},
		},
		{
			name:   "duplicate-pending-token-in-one-invocation-fails",
			inputs: []string{"d"},
			onIngress: func(ctx statefun.Context) {
				sendTok(ctx, 10*ms, "dup", rOther, "1")
				sendTok(ctx, 20*ms, "dup", rOther, "2")
			},
			wantErr: []string{"test/delay/d", `"dup"`},
		},
		{
			name:   "duplicate-pending-token-across-invocations-fails-without-waiting",
			inputs: []string{"d", "d"},
			onIngress: func(ctx statefun.Context) {
				sendTok(ctx, 30*time.Second, "dup2", rOther, "x")
			},
			wantErr:     []string{"test/delay/d", `"dup2"`},
			maxDuration: 10 * time.Second,
		},
		{
			name:   "negative-delay-fails",
			inputs: []string{"d"},
			onIngress: func(ctx statefun.Context) {
				sendAfter(ctx, -ms, rOther, "x")
			},
			wantErr: []string{"test/delay/d", "negative delay"},
		},
	}
}

func (c delayCase) function(ctx statefun.Context, msg statefun.Message) error {
	caller := ctx.Caller()
	if caller == nil {
		if !msg.IsString() || msg.AsString() != ctx.Self().Id {
			return fmt.Errorf("unexpected ingress message at %v", ctx.Self())
		}
		c.onIngress(ctx)
		return nil
	}
	var b delayBody
	if err := msg.As(delayBodyType, &b); err != nil {
		return err
	}
	var n int32
	ctx.Storage().Get(delayCount, &n)
	n++
	ctx.Storage().Set(delayCount, n)
	elapsed := time.Duration(time.Now().UnixNano() - b.At)
	// Delays count from the start of the sending invocation, a little
	// before the function read the clock: allow 1 ms.
	early := b.D > 0 && elapsed < time.Duration(b.D)-time.Millisecond
	if caller.FunctionType.String() != "test/delay" {
		return fmt.Errorf("caller %v has the wrong type", caller)
	}
	ctx.SendEgress(statefun.GenericEgressBuilder{
		Target:    delayEgress,
		Value:     delayRecord{To: ctx.Self().Id, From: caller.Id, B: b.B, N: n, Early: early, Elapsed: elapsed},
		ValueType: delayRecordType,
	})
	if c.onMessage != nil {
		c.onMessage(ctx, b)
	}
	return nil
}

func TestDelayedMessages(t *testing.T) {
	const maxP = 128
	for _, p := range []int{1, 2} {
		for _, c := range delayCases(p, maxP) {
			t.Run(fmt.Sprintf("p%d/%s", p, c.name), func(t *testing.T) {
				t.Parallel()
				runDelayCase(t, c, p, maxP)
			})
		}
	}
}

func runDelayCase(t *testing.T, c delayCase, p, maxP int) {
	var kv []string
	for _, id := range c.inputs {
		kv = append(kv, id, id)
	}
	out := &capture{}
	cfg := app.Config{
		Parallelism:    p,
		MaxParallelism: maxP,
		Functions: specs(t, statefun.StatefulFunctionSpec{
			FunctionType: delayType, States: []statefun.ValueSpec{delayCount},
			Function: statefun.StatefulFunctionPointer(c.function),
		}),
		Ingresses: []translate.Ingress{{
			ID: "test/start", Parallelism: 1, ValueType: "io.statefun.types/string", Targets: []string{"test/delay"},
			Source: newSliceSource(stringRecords("start", kv...), 1),
		}},
		Egresses: []translate.Egress{out.egress(delayEgress.String())},
	}
	start := time.Now()
	_, err := runApp(t, 30*time.Second, cfg)
	took := time.Since(start)
	if c.maxDuration > 0 && took > c.maxDuration {
		t.Errorf("the run took %v, want at most %v", took, c.maxDuration)
	}
	if c.wantErr != nil {
		wantErrContains(t, err, c.wantErr...)
		return
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	recs := decodeJSON[delayRecord](t, out.all())
	got := map[string][]delayRecord{}
	for _, r := range recs {
		got[r.To] = append(got[r.To], r)
		if r.Early {
			t.Errorf("%s -> %s %q arrived %v after it was sent, before its delay", r.From, r.To, r.B, r.Elapsed)
		}
	}
	for id, rs := range got {
		slices.SortFunc(rs, func(x, y delayRecord) int { return cmp.Compare(x.N, y.N) })
		for i, r := range rs {
			if int(r.N) != i+1 {
				t.Errorf("%s: processing indexes are not 1..%d: %+v", id, len(rs), rs)
				break
			}
		}
	}
	for _, id := range sortedKeys(got, c.want) {
		var g []string
		for _, r := range got[id] {
			g = append(g, r.From+"|"+r.B)
		}
		w := c.want[id]
		if c.unordered {
			slices.Sort(g)
			w = slices.Sorted(slices.Values(w))
		}
		if !slices.Equal(g, w) {
			t.Errorf("receiver %s (subtask %d, sender d on subtask %d) got %q, want %q", id, subtaskOf(id, p, maxP), subtaskOf("d", p, maxP), g, w)
		}
	}
}

func sortedKeys[V1, V2 any](a map[string]V1, b map[string]V2) []string {
	var ks []string
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}
