package protocol

import (
	"math"
	"math/rand/v2"
	"strings"
)

// gen builds random, valid (UTF-8 strings, at most one oneof member) messages
// in normal form: empty slices and empty bytes are nil, which is what both
// Unmarshal and the reference converters produce.
type gen struct{ r *rand.Rand }

func newGen(seed uint64) *gen { return &gen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

var genStrings = []string{
	"", "", "a", "example", "greeter", "alice", "seen", "io.statefun.types/int",
	"io.statefun.types/string", "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord",
	"héllo wörld", "日本語", "emoji 🚀", "\x00nul", strings.Repeat("x", 127), strings.Repeat("ü", 70),
}

func (g *gen) str() string {
	switch g.r.IntN(6) {
	case 0:
		// random printable and multi-byte runes
		n := g.r.IntN(40)
		var sb strings.Builder
		for range n {
			switch g.r.IntN(4) {
			case 0:
				sb.WriteRune(rune(0x80 + g.r.IntN(0x700)))
			case 1:
				sb.WriteRune(rune(0x1F300 + g.r.IntN(0x200)))
			default:
				sb.WriteByte(byte(0x20 + g.r.IntN(0x5f)))
			}
		}
		return sb.String()
	case 1:
		return strings.Repeat("s", g.r.IntN(300))
	default:
		return genStrings[g.r.IntN(len(genStrings))]
	}
}

func (g *gen) bytes() []byte {
	var n int
	switch g.r.IntN(10) {
	case 0, 1, 2:
		return nil
	case 3:
		n = 128 + g.r.IntN(300)
	case 4:
		if g.r.IntN(20) == 0 {
			n = 16384 + g.r.IntN(1000) // three-byte length prefix
		} else {
			n = g.r.IntN(8)
		}
	default:
		n = 1 + g.r.IntN(40)
	}
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return b
}

func (g *gen) int64() int64 {
	switch g.r.IntN(8) {
	case 0, 1:
		return 0
	case 2:
		return math.MaxInt64
	case 3:
		return math.MinInt64
	case 4:
		return -g.r.Int64N(1 << 40)
	default:
		return g.r.Int64N(1 << uint(g.r.IntN(62)+1))
	}
}

func (g *gen) enum() int32 {
	switch g.r.IntN(10) {
	case 0:
		return -1 - g.r.Int32N(1000) // unknown, negative: ten-byte varint
	case 1:
		return 3 + g.r.Int32N(math.MaxInt32-3) // unknown, positive
	case 2:
		return math.MinInt32
	default:
		return g.r.Int32N(3)
	}
}

func (g *gen) count(max int) int {
	if g.r.IntN(4) == 0 {
		return 0
	}
	return g.r.IntN(max + 1)
}

// present decides whether an optional sub-message is set.
func (g *gen) present() bool { return g.r.IntN(5) != 0 }

func (g *gen) address() *Address {
	if !g.present() {
		return nil
	}
	if g.r.IntN(10) == 0 {
		return &Address{} // present but empty: encodes as tag + 0x00
	}
	return &Address{Namespace: g.str(), Type: g.str(), ID: g.str()}
}

func (g *gen) typedValue() *TypedValue {
	if !g.present() {
		return nil
	}
	if g.r.IntN(10) == 0 {
		return &TypedValue{}
	}
	return &TypedValue{Typename: g.str(), HasValue: g.r.IntN(4) != 0, Value: g.bytes()}
}

func (g *gen) toFunction() *ToFunction {
	if g.r.IntN(20) == 0 {
		return &ToFunction{}
	}
	b := &InvocationBatchRequest{Target: g.address()}
	for range g.count(5) {
		b.State = append(b.State, PersistedValue{StateName: g.str(), StateValue: g.typedValue()})
	}
	for range g.count(12) {
		b.Invocations = append(b.Invocations, Invocation{Caller: g.address(), Argument: g.typedValue()})
	}
	return &ToFunction{Invocation: b}
}

func (g *gen) fromFunction() *FromFunction {
	switch g.r.IntN(10) {
	case 0:
		return &FromFunction{}
	case 1, 2, 3:
		c := &IncompleteInvocationContext{}
		for range g.count(5) {
			s := PersistedValueSpec{StateName: g.str(), TypeTypename: g.str()}
			if g.present() {
				s.ExpirationSpec = &ExpirationSpec{Mode: ExpireMode(g.enum()), ExpireAfterMillis: g.int64()}
			}
			c.MissingValues = append(c.MissingValues, s)
		}
		return &FromFunction{IncompleteInvocationContext: c}
	}
	r := &InvocationResponse{}
	for range g.count(4) {
		r.StateMutations = append(r.StateMutations, PersistedValueMutation{
			MutationType: MutationType(g.enum()), StateName: g.str(), StateValue: g.typedValue(),
		})
	}
	for range g.count(6) {
		r.OutgoingMessages = append(r.OutgoingMessages, OutgoingMessage{Target: g.address(), Argument: g.typedValue()})
	}
	for range g.count(4) {
		r.DelayedInvocations = append(r.DelayedInvocations, DelayedInvocation{
			IsCancellationRequest: g.r.IntN(3) == 0,
			CancellationToken:     g.str(),
			DelayInMs:             g.int64(),
			Target:                g.address(),
			Argument:              g.typedValue(),
		})
	}
	for range g.count(3) {
		r.OutgoingEgresses = append(r.OutgoingEgresses, EgressMessage{
			EgressNamespace: g.str(), EgressType: g.str(), Argument: g.typedValue(),
		})
	}
	return &FromFunction{InvocationResult: r}
}
