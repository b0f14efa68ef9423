package protocol

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
)

// benchToFunction is what the engine sends for one remote batch: a target,
// two states (one with a value, one without) and ten invocations with
// ~20-byte values, half of them from a caller.
func benchToFunction() *ToFunction {
	b := &InvocationBatchRequest{
		Target: &Address{Namespace: "example", Type: "greeter", ID: "user-000042"},
		State: []PersistedValue{
			{StateName: "seen", StateValue: &TypedValue{Typename: "io.statefun.types/int", HasValue: true, Value: []byte{0x0d, 7, 0, 0, 0}}},
			{StateName: "profile"},
		},
	}
	for i := range 10 {
		inv := Invocation{Argument: &TypedValue{
			Typename: "io.statefun.types/string", HasValue: true,
			Value: fmt.Appendf(nil, "\x0a\x12hello-payload-%04d", i), // 20 bytes
		}}
		if i%2 == 1 {
			inv.Caller = &Address{Namespace: "example", Type: "caller", ID: fmt.Sprintf("c-%d", i)}
		}
		b.Invocations = append(b.Invocations, inv)
	}
	return &ToFunction{Invocation: b}
}

// benchFromFunction is a typical reply: one mutation, one message, one egress.
func benchFromFunction() *FromFunction {
	return &FromFunction{InvocationResult: &InvocationResponse{
		StateMutations: []PersistedValueMutation{{
			MutationType: MutationModify, StateName: "seen",
			StateValue: &TypedValue{Typename: "io.statefun.types/int", HasValue: true, Value: []byte{0x0d, 8, 0, 0, 0}},
		}},
		OutgoingMessages: []OutgoingMessage{{
			Target:   &Address{Namespace: "example", Type: "other", ID: "user-000042"},
			Argument: &TypedValue{Typename: "io.statefun.types/string", HasValue: true, Value: []byte("\x0a\x12hello-payload-0001")},
		}},
		OutgoingEgresses: []EgressMessage{{
			EgressNamespace: "example", EgressType: "greets",
			Argument: &TypedValue{
				Typename: "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord", HasValue: true,
				Value: kafkaRecord("user-000042", "Hello user-000042", "greetings"),
			},
		}},
	}}
}

func BenchmarkMarshalToFunction(b *testing.B) {
	m := benchToFunction()
	b.SetBytes(int64(m.Size()))
	b.ReportAllocs()
	for b.Loop() {
		_ = m.AppendMarshal(nil)
	}
}

func BenchmarkMarshalToFunctionReuse(b *testing.B) {
	m := benchToFunction()
	buf := make([]byte, 0, m.Size())
	b.SetBytes(int64(m.Size()))
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendMarshal(buf[:0])
	}
}

func BenchmarkUnmarshalFromFunction(b *testing.B) {
	data := benchFromFunction().AppendMarshal(nil)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var m FromFunction
	for b.Loop() {
		if err := m.Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalToFunction(b *testing.B) {
	data := benchToFunction().AppendMarshal(nil)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var m ToFunction
	for b.Loop() {
		if err := m.Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}

// Baselines: the official SDK's generated code (protobuf-go fast path) on
// the same messages, for comparison only.

func BenchmarkSDKMarshalToFunction(b *testing.B) {
	s := sdkMessage(b, "ToFunction")
	toFunctionToRef(benchToFunction(), s)
	msg := s.Interface()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := proto.Marshal(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSDKUnmarshalFromFunction(b *testing.B) {
	data := benchFromFunction().AppendMarshal(nil)
	msg := sdkMessage(b, "FromFunction").Interface()
	b.ReportAllocs()
	for b.Loop() {
		if err := proto.Unmarshal(data, msg); err != nil {
			b.Fatal(err)
		}
	}
}
