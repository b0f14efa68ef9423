package e2e

import (
	"cmp"
	"fmt"
	"github.com/statefun-go/statefun/connectors/connectortest"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/connectors/datagen"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/dispatch"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/translate"
)

// The ring application: addresses "0".."N-1" of test/ring. A token enters
// at an address through an ingress (hop 0, kind "start") and travels the
// ring: every "start"/"ring" message at address a with hop h
//   - sends "ring" hop h+1 to (a+1) mod N while h < Hops (a cycle when
//     Hops >= N; a self-loop when N == 1),
//   - sends "self" hop h to a itself when h%SelfEvery == 0,
//   - sends "fan" hop h to (a+2+j) mod N, j < Fan, when h%FanEvery == 0.
// "self" and "fan" messages end there.
//
// Every message a function sends carries the sequence number of the
// (sender, receiver) pair, kept in the sender's state, so the receiver (and
// the test) can check per-pair FIFO. Every processed message emits one
// egress record with the address, the caller, the token, the hop, the
// sequence number, the address's processing index and its state after the
// message.

var (
	ringType       = statefun.TypeNameFrom("test/ring")
	ringTokenType  = statefun.MakeJsonType(statefun.TypeNameFrom("test/token"))
	ringRecordType = statefun.MakeJsonType(statefun.TypeNameFrom("test/ring-record"))
	ringEgress     = statefun.TypeNameFrom("test/ring-out")
	ringStateSpec  = statefun.ValueSpec{Name: "ring", ValueType: statefun.MakeJsonType(statefun.TypeNameFrom("test/ring-state"))}
)

const sliceTokenBase = 1_000_000 // token ids of the slice ingress

type ringParams struct {
	N, Hops, SelfEvery, FanEvery, Fan int
}

type ringToken struct {
	T int64  // token id
	H int    // hop
	K string // start | ring | self | fan
	S int    // sequence number of the (sender, receiver) pair
}

type ringState struct {
	N        int            // messages processed by this address
	Recv     map[string]int // last sequence number received, by sender id
	Sent     map[string]int // messages sent, by receiver id
	TokenSum int64          // sum of the token ids processed
}

type ringRecord struct {
	A   string // address id
	C   string // caller id ("" from an ingress)
	CT  string // caller function type
	T   int64
	H   int
	K   string
	S   int
	N   int  // processing index of this message at A (1-based)
	Gap bool // S was not the next sequence number of the pair
	St  ringState
}

func (p ringParams) function(ctx statefun.Context, msg statefun.Message) error {
	self := ctx.Self().Id
	a, err := strconv.Atoi(self)
	if err != nil || a < 0 || a >= p.N {
		return fmt.Errorf("unexpected address %v", ctx.Self())
	}
	var st ringState
	ctx.Storage().Get(ringStateSpec, &st)
	if st.Recv == nil {
		st.Recv = map[string]int{}
	}
	if st.Sent == nil {
		st.Sent = map[string]int{}
	}
	caller := ctx.Caller()
	var m ringToken
	switch {
	case msg.IsInt64():
		if caller != nil {
			return fmt.Errorf("ingress message with a caller %v", caller)
		}
		m = ringToken{T: msg.AsInt64(), K: "start"}
	case msg.Is(ringTokenType):
		if err := msg.As(ringTokenType, &m); err != nil {
			return err
		}
		if caller == nil {
			return fmt.Errorf("function message %+v without a caller", m)
		}
	default:
		return fmt.Errorf("unexpected message type %s", msg.ValueTypeName())
	}
	st.N++
	rec := ringRecord{A: self, T: m.T, H: m.H, K: m.K, S: m.S, N: st.N}
	if caller != nil {
		rec.C, rec.CT = caller.Id, caller.FunctionType.String()
		if m.S != st.Recv[caller.Id]+1 {
			rec.Gap = true
		}
		st.Recv[caller.Id] = m.S
	}
	st.TokenSum += m.T
	send := func(to int, kind string, hop int) {
		id := strconv.Itoa(to)
		st.Sent[id]++
		ctx.Send(statefun.MessageBuilder{
			Target:    statefun.Address{FunctionType: ringType, Id: id},
			Value:     ringToken{T: m.T, H: hop, K: kind, S: st.Sent[id]},
			ValueType: ringTokenType,
		})
	}
	if m.K == "start" || m.K == "ring" {
		p.forward(a, m.H, send)
	}
	ctx.Storage().Set(ringStateSpec, st)
	rec.St = st
	ctx.SendEgress(statefun.GenericEgressBuilder{Target: ringEgress, Value: rec, ValueType: ringRecordType})
	return nil
}

// forward is the routing rule shared by the function and the model.
func (p ringParams) forward(a, h int, send func(to int, kind string, hop int)) {
	if h < p.Hops {
		send((a+1)%p.N, "ring", h+1)
	}
	if p.SelfEvery > 0 && h%p.SelfEvery == 0 {
		send(a, "self", h)
	}
	if p.FanEvery > 0 && h%p.FanEvery == 0 {
		for j := 0; j < p.Fan; j++ {
			send((a+2+j)%p.N, "fan", h)
		}
	}
}

// ringKey is what the model predicts of each record.
type ringKey struct {
	A, C string
	T    int64
	H    int
	K    string
}

func compareRingKey(x, y ringKey) int {
	return cmp.Or(cmp.Compare(x.A, y.A), cmp.Compare(x.T, y.T), cmp.Compare(x.H, y.H), cmp.Compare(x.K, y.K), cmp.Compare(x.C, y.C))
}

type ringModel struct {
	records []ringKey
	final   map[string]ringState
}

// model computes the records and final states of the tokens starting at
// start[token] (processing order does not matter for either).
func (p ringParams) model(start map[int64]int) ringModel {
	m := ringModel{final: map[string]ringState{}}
	st := func(id string) ringState {
		s, ok := m.final[id]
		if !ok {
			s = ringState{Recv: map[string]int{}, Sent: map[string]int{}}
		}
		return s
	}
	type msg struct {
		to     int
		caller string
		k      string
		h      int
	}
	for _, tok := range slices.Sorted(maps.Keys(start)) {
		queue := []msg{{to: start[tok], k: "start"}}
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			id := strconv.Itoa(x.to)
			m.records = append(m.records, ringKey{A: id, C: x.caller, T: tok, H: x.h, K: x.k})
			s := st(id)
			s.N++
			s.TokenSum += tok
			if x.caller != "" {
				s.Recv[x.caller]++
			}
			if x.k == "start" || x.k == "ring" {
				p.forward(x.to, x.h, func(to int, kind string, hop int) {
					s.Sent[strconv.Itoa(to)]++
					queue = append(queue, msg{to: to, caller: id, k: kind, h: hop})
				})
			}
			m.final[id] = s
		}
	}
	return m
}

type ringCase struct {
	name    string
	p, maxP int
	params  ringParams
	// tokens enter through a generator ingress (datagen, sequential keys:
	// token i starts at address i mod N) ...
	tokens int
	// moduleGenerator declares the generator in a module.yaml instead of
	// in code.
	moduleGenerator bool
	// ... and/or through a code-declared slice ingress (parallelism 1,
	// seeded random start addresses); when pace > 0 it emits one token
	// every pace.
	sliceTokens    int
	pace           time.Duration
	dispatch       dispatch.Config
	checkpoints    time.Duration // barrier interval (0: none)
	shortTokensDiv int           // divide the token counts by this in -short mode
}

func TestRing(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := envOr("E2E_SEED", ""); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("E2E_SEED: %v", err)
		}
	}
	t.Logf("seed %d (set E2E_SEED=%d to repeat)", seed, seed)

	cases := []ringCase{
		{name: "p1-generator", p: 1, params: ringParams{N: 5, Hops: 12, SelfEvery: 3, FanEvery: 4, Fan: 2}, tokens: 25},
		{name: "p1-slice", p: 1, params: ringParams{N: 6, Hops: 9, SelfEvery: 2, FanEvery: 4, Fan: 3}, sliceTokens: 25},
		{name: "p2-generator", p: 2, params: ringParams{N: 8, Hops: 20, SelfEvery: 5, FanEvery: 7, Fan: 3}, tokens: 50},
		{name: "p2-slice", p: 2, params: ringParams{N: 7, Hops: 15, SelfEvery: 3, FanEvery: 5, Fan: 2}, sliceTokens: 40},
		{name: "p2-module-generator", p: 2, params: ringParams{N: 7, Hops: 16, SelfEvery: 3, FanEvery: 4, Fan: 2}, tokens: 40, moduleGenerator: true},
		{name: "p4-generator", p: 4, params: ringParams{N: 16, Hops: 33, SelfEvery: 4, FanEvery: 11, Fan: 5}, tokens: 30},
		{name: "p4-maxp7-generator", p: 4, maxP: 7, params: ringParams{N: 11, Hops: 25, SelfEvery: 2, FanEvery: 6, Fan: 4}, tokens: 40},
		{name: "p4-maxp7-slice", p: 4, maxP: 7, params: ringParams{N: 13, Hops: 14, SelfEvery: 3, FanEvery: 4, Fan: 6}, sliceTokens: 30},
		{name: "p2-maxp7-self-ring", p: 2, maxP: 7, params: ringParams{N: 1, Hops: 30, SelfEvery: 4}, tokens: 15},
		// Tiny step budget, local queue limit and feedback memory: the
		// dispatcher yields constantly, router input is paused and the
		// feedback queue spills to disk.
		{name: "p3-maxp7-tight", p: 3, maxP: 7, params: ringParams{N: 9, Hops: 18, SelfEvery: 3, FanEvery: 5, Fan: 3}, tokens: 40,
			dispatch: dispatch.Config{StepBudget: 3, LocalQueueLimit: 2, FeedbackMemoryBytes: 2048}},
		// Many messages per address: three addresses, many tokens in
		// flight at once, so every address has a long queue (batching).
		{name: "p2-many-per-address", p: 2, params: ringParams{N: 3, Hops: 6, SelfEvery: 2, FanEvery: 3, Fan: 1}, tokens: 2000, shortTokensDiv: 5},
		// Checkpoint barriers flow through the job (and its feedback loop)
		// while the ring runs.
		{name: "p3-checkpoints", p: 3, params: ringParams{N: 10, Hops: 30, SelfEvery: 3, FanEvery: 5, Fan: 2}, tokens: 60, checkpoints: 2 * time.Millisecond},
		// Two ingresses: the generator ends at once, the slice ingress
		// trickles; the job must run until both ended and all drained.
		// Fails until the quiescence bug is fixed (see
		// TestQuiescenceWithSeveralIngresses).
		{name: "p2-two-ingresses", p: 2, params: ringParams{N: 6, Hops: 8, SelfEvery: 2, FanEvery: 3, Fan: 2}, tokens: 10, sliceTokens: 5, pace: 30 * time.Millisecond},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if testing.Short() && c.shortTokensDiv > 0 {
				c.tokens /= c.shortTokensDiv
				c.sliceTokens /= c.shortTokensDiv
			}
			runRing(t, c, seed+int64(i))
		})
	}
}

func runRing(t *testing.T, c ringCase, seed int64) {
	p := c.params
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	start := map[int64]int{}
	for i := 0; i < c.tokens; i++ {
		start[int64(i)] = i % p.N // datagen: key i mod Keys
	}
	var sliceRecs []connectors.Record
	for i := 0; i < c.sliceTokens; i++ {
		tok, a := int64(sliceTokenBase+i), rng.IntN(p.N)
		start[tok] = a
		v, _ := statefun.EncodeValue(statefun.Int64Type, tok)
		sliceRecs = append(sliceRecs, connectors.Record{Key: strconv.Itoa(a), HasKey: true, Value: v, Origin: fmt.Sprintf("slice:%d", i+1)})
	}
	model := p.model(start)

	out := &capture{}
	cfg := app.Config{
		Parallelism:    c.p,
		MaxParallelism: c.maxP,
		Functions: specs(t, statefun.StatefulFunctionSpec{
			FunctionType: ringType, States: []statefun.ValueSpec{ringStateSpec},
			Function: statefun.StatefulFunctionPointer(p.function),
		}),
		Egresses:           []translate.Egress{out.egress(ringEgress.String())},
		Dispatch:           c.dispatch,
		CheckpointInterval: c.checkpoints,
	}
	if c.tokens > 0 && c.moduleGenerator {
		cfg.Modules = []string{writeFile(t, t.TempDir(), "module.yaml", fmt.Sprintf(`kind: io.statefun.generator.v1/ingress
spec:
  id: test/tokens
  targets: [test/ring]
  count: %d
  keys: %d
  keyPrefix: ""
  valueType: io.statefun.types/long
`, c.tokens, p.N))}
	} else if c.tokens > 0 {
		cfg.Ingresses = append(cfg.Ingresses, translate.Ingress{
			ID: "test/tokens", ValueType: "io.statefun.types/long", Targets: []string{"test/ring"},
			Source: func(int) connectors.Source {
				return datagen.New(datagen.Config{Count: int64(c.tokens), Keys: p.N, ValueType: "io.statefun.types/long"})
			},
		})
	}
	if c.sliceTokens > 0 {
		src := newSliceSource(sliceRecs, 3)
		if c.pace > 0 {
			src = func(int) connectors.Source {
				return &connectortest.PacedSource{Records: sliceRecs, Interval: c.pace, StartAfterInterval: true}
			}
		}
		cfg.Ingresses = append(cfg.Ingresses, translate.Ingress{
			ID: "test/more-tokens", Parallelism: 1, ValueType: "io.statefun.types/long", Targets: []string{"test/ring"},
			Source: src,
		})
	}
	sum, err := runApp(t, 60*time.Second, cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	envs := out.all()
	recs := decodeJSON[ringRecord](t, envs)
	t.Logf("%d tokens, %d records, summary: %s", len(start), len(recs), sum)

	// The egress envelope's sender is the function that emitted it.
	for i, e := range envs {
		want := envelope.Address{Namespace: "test", Type: "ring", ID: recs[i].A}
		if !e.HasCaller || e.Caller != want || e.Typename != "test/ring-record" || e.Target.FunctionType() != "test/ring-out" {
			t.Fatalf("egress envelope %d: caller %v (has %v), target %v, typename %s; want caller %v", i, e.Caller, e.HasCaller, e.Target, e.Typename, want)
		}
	}

	// 1. Exactly the model's records: no loss, no duplicate, caller right.
	got := make([]ringKey, len(recs))
	for i, r := range recs {
		got[i] = ringKey{A: r.A, C: r.C, T: r.T, H: r.H, K: r.K}
		if (r.C == "") != (r.K == "start") || (r.C != "" && r.CT != "test/ring") {
			t.Errorf("record %+v: caller %q of type %q for a %q message", got[i], r.C, r.CT, r.K)
		}
	}
	missing, extra := multisetDiff(model.records, got, compareRingKey)
	if len(missing)+len(extra) > 0 {
		t.Fatalf("records differ from the model (%d expected, %d got): %d missing, e.g. %+v; %d extra (duplicates or unexpected), e.g. %+v",
			len(model.records), len(got), len(missing), head(missing, 5), len(extra), head(extra, 5))
	}

	// 2. Per address, the processing indexes are exactly 1..n: state is
	// kept between invocations and nothing is processed twice.
	byAddr := map[string][]ringRecord{}
	for _, r := range recs {
		byAddr[r.A] = append(byAddr[r.A], r)
	}
	for a, rs := range byAddr {
		slices.SortFunc(rs, func(x, y ringRecord) int { return cmp.Compare(x.N, y.N) })
		for i, r := range rs {
			if r.N != i+1 {
				t.Fatalf("address %s: processing indexes are not 1..%d: position %d has %d", a, len(rs), i, r.N)
			}
		}
	}

	// 3. Per (sender, receiver) FIFO: in the receiver's processing order the
	// sequence numbers of each sender are exactly 1, 2, 3, ...
	for a, rs := range byAddr {
		next := map[string]int{}
		for _, r := range rs {
			if r.C == "" {
				continue
			}
			next[r.C]++
			if r.S != next[r.C] || r.Gap {
				t.Fatalf("FIFO violated from %s to %s: message #%d of the pair carries sequence %d (token %d hop %d %s, processing index %d)",
					r.C, a, next[r.C], r.S, r.T, r.H, r.K, r.N)
			}
		}
	}

	// 4. Ingress FIFO: the records of one source subtask for one key are
	// processed in the order they were read.
	lastTok := map[string]int64{}
	for a, rs := range byAddr {
		for _, r := range rs {
			if r.K != "start" {
				continue
			}
			src := "slice"
			if r.T < sliceTokenBase {
				src = "datagen-" + strconv.FormatInt(r.T%int64(c.p), 10) // subtask i mod p generates token i
			}
			k := a + "/" + src
			if last, ok := lastTok[k]; ok && r.T <= last {
				t.Fatalf("ingress order violated at address %s (%s): token %d processed after token %d", a, src, r.T, last)
			}
			lastTok[k] = r.T
		}
	}

	// 5. Final state per address equals the model.
	for a, want := range model.final {
		rs := byAddr[a]
		got := rs[len(rs)-1].St
		if got.N != want.N || got.TokenSum != want.TokenSum || !maps.Equal(got.Recv, want.Recv) || !maps.Equal(got.Sent, want.Sent) {
			t.Errorf("final state of %s:\n got  %+v\n want %+v", a, got, want)
		}
	}
	if len(byAddr) != len(model.final) {
		t.Errorf("%d addresses processed messages, the model has %d", len(byAddr), len(model.final))
	}

	// 6. The summary counts.
	if sum.IngressRecords != int64(len(start)) || sum.Invocations != int64(len(model.records)) || sum.EgressRecords != int64(len(model.records)) {
		t.Errorf("summary %+v: want %d ingress records, %d invocations, %d egress records",
			sum, len(start), len(model.records), len(model.records))
	}
}
