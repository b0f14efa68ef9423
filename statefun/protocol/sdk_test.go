package protocol

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"os"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/apache/flink-statefun/statefun-sdk-go/v3/pkg/statefun"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// This file links the official StateFun Go SDK into the test binary. That the
// binary starts at all proves the point of the package: the SDK registers
// io.statefun.sdk.reqreply.* in the global protobuf registry, and nothing in
// this package registers anything, so there is no init-time conflict.

// sdkMessage returns a new, empty instance of the SDK's generated message
// io.statefun.sdk.reqreply.<name>, found through the global registry
// (read-only use; its Go package is internal to the SDK).
func sdkMessage(t testing.TB, name string) protoreflect.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(refPackage + "." + name))
	if err != nil {
		t.Fatalf("SDK type %s not registered: %v", name, err)
	}
	return mt.New()
}

// TestReferenceDescriptorMatchesSDK checks the test-time reference schema
// (refproto_test.go, written from the contract's field tables) against the
// descriptor embedded in the SDK's generated code: same messages, fields,
// numbers, types, labels, oneofs and enum values.
func TestReferenceDescriptorMatchesSDK(t *testing.T) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(refPackage + ".ToFunction")
	if err != nil {
		t.Fatal(err)
	}
	sdkFile := protodesc.ToFileDescriptorProto(d.ParentFile())
	ourFile := protodesc.ToFileDescriptorProto(ref.file)
	if sdkFile.GetPackage() != ourFile.GetPackage() || sdkFile.GetSyntax() != ourFile.GetSyntax() {
		t.Fatalf("package/syntax: sdk %s/%s, ours %s/%s", sdkFile.GetPackage(), sdkFile.GetSyntax(), ourFile.GetPackage(), ourFile.GetSyntax())
	}
	sdkMsgs, ourMsgs := flattenMessages(sdkFile.MessageType), flattenMessages(ourFile.MessageType)
	if len(sdkMsgs) != len(ourMsgs) {
		t.Errorf("message count: sdk %d, ours %d", len(sdkMsgs), len(ourMsgs))
	}
	for name, sm := range sdkMsgs {
		om, ok := ourMsgs[name]
		if !ok {
			t.Errorf("message %s missing from the reference schema", name)
			continue
		}
		if !proto.Equal(sm, om) {
			t.Errorf("message %s differs:\nsdk  %v\nours %v", name, sm, om)
		}
	}
	t.Logf("%d messages match the SDK's %s", len(sdkMsgs), sdkFile.GetName())
}

// flattenMessages maps full names to message descriptors with nested types
// removed (they are listed separately) and json names and options cleared.
func flattenMessages(msgs []*descriptorpb.DescriptorProto) map[string]*descriptorpb.DescriptorProto {
	out := map[string]*descriptorpb.DescriptorProto{}
	var walk func(prefix string, ms []*descriptorpb.DescriptorProto)
	walk = func(prefix string, ms []*descriptorpb.DescriptorProto) {
		for _, m := range ms {
			name := prefix + m.GetName()
			walk(name+".", m.NestedType)
			c := proto.Clone(m).(*descriptorpb.DescriptorProto)
			c.NestedType = nil
			c.Options = nil
			for _, f := range c.Field {
				f.JsonName = nil
				f.Options = nil
			}
			for _, e := range c.EnumType {
				e.Options = nil
			}
			out[name] = c
		}
	}
	walk("", msgs)
	return out
}

const (
	typeInt    = "io.statefun.types/int"
	typeLong   = "io.statefun.types/long"
	typeString = "io.statefun.types/string"
	typeBool   = "io.statefun.types/bool"
	typeKafka  = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
)

func stringWrapper(s string) []byte { return append([]byte{0x0a, byte(len(s))}, s...) }

func kafkaRecord(key, value, topic string) []byte {
	var b []byte
	b = append(append(b, 0x0a, byte(len(key))), key...)
	b = append(append(b, 0x12, byte(len(value))), value...)
	return append(append(b, 0x1a, byte(len(topic))), topic...)
}

func newSDKHandler(t *testing.T) statefun.RequestReplyHandler {
	log.SetOutput(io.Discard) // the SDK logs every registration
	t.Cleanup(func() { log.SetOutput(os.Stderr) })

	seen := statefun.ValueSpec{Name: "seen", ValueType: statefun.Int32Type}
	builder := statefun.StatefulFunctionsBuilder()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// test/greeter: counts invocations in `seen` and produces every kind of
	// side effect.
	must(builder.WithSpec(statefun.StatefulFunctionSpec{
		FunctionType: statefun.TypeNameFrom("test/greeter"),
		States:       []statefun.ValueSpec{seen},
		Function: statefun.StatefulFunctionPointer(func(ctx statefun.Context, msg statefun.Message) error {
			var n int32
			ctx.Storage().Get(seen, &n)
			n++
			ctx.Storage().Set(seen, n)

			name := msg.AsString()
			target := statefun.Address{FunctionType: statefun.TypeNameFrom("test/other"), Id: name}
			ctx.Send(statefun.MessageBuilder{Target: target, Value: "hello " + name})
			ctx.SendAfter(5*time.Second, statefun.MessageBuilder{Target: target, Value: n})
			tok, err := statefun.NewCancellationToken("tok-" + name)
			if err != nil {
				return err
			}
			ctx.SendAfterWithCancellationToken(time.Minute, tok, statefun.MessageBuilder{Target: target, Value: int64(n)})
			ctx.CancelDelayedMessage(tok)
			ctx.SendEgress(statefun.KafkaEgressBuilder{
				Target: statefun.TypeNameFrom("example/greets"),
				Topic:  "greetings",
				Key:    name,
				Value:  "Hello " + name,
			})
			if caller := ctx.Caller(); caller != nil {
				ctx.Send(statefun.MessageBuilder{Target: *caller, Value: true})
			}
			return nil
		}),
	}))

	// test/ttl: two states with expiration, never invoked successfully here.
	must(builder.WithSpec(statefun.StatefulFunctionSpec{
		FunctionType: statefun.TypeNameFrom("test/ttl"),
		States: []statefun.ValueSpec{
			{Name: "w", ValueType: statefun.Int64Type, Expiration: statefun.ExpireAfterWrite(90 * time.Second)},
			{Name: "c", ValueType: statefun.StringType, Expiration: statefun.ExpireAfterCall(2 * time.Hour)},
		},
		Function: statefun.StatefulFunctionPointer(func(statefun.Context, statefun.Message) error { return nil }),
	}))
	return builder.AsHandler()
}

// invokeSDK sends req through the SDK's Invoke (the AWS Lambda entry, the
// same code path as its HTTP handler) and decodes the reply with Unmarshal.
// It also checks that re-encoding the reply gives back the SDK's bytes.
func invokeSDK(t *testing.T, h statefun.RequestReplyHandler, req *ToFunction) *FromFunction {
	t.Helper()
	out, err := h.Invoke(context.Background(), req.AppendMarshal(nil))
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var resp FromFunction
	if err := resp.Unmarshal(out); err != nil {
		t.Fatalf("Unmarshal of the SDK's reply: %v\n%x", err, out)
	}
	if again := resp.AppendMarshal(nil); !bytes.Equal(again, out) {
		t.Errorf("re-encoding differs from the SDK's bytes\nsdk  %x\nours %x", out, again)
	}
	return &resp
}

func TestOfficialGoSDK(t *testing.T) {
	h := newSDKHandler(t)
	greeter := &Address{Namespace: "test", Type: "greeter", ID: "g1"}
	hello := func(name string) Invocation {
		return Invocation{Argument: &TypedValue{Typename: typeString, HasValue: true, Value: stringWrapper(name)}}
	}
	other := func(id string) *Address { return &Address{Namespace: "test", Type: "other", ID: id} }

	// 1. No state sent: the SDK asks for `seen`.
	resp := invokeSDK(t, h, &ToFunction{Invocation: &InvocationBatchRequest{
		Target: greeter, Invocations: []Invocation{hello("alice")},
	}})
	want := &FromFunction{IncompleteInvocationContext: &IncompleteInvocationContext{
		MissingValues: []PersistedValueSpec{{StateName: "seen", ExpirationSpec: &ExpirationSpec{}, TypeTypename: typeInt}},
	}}
	if !reflect.DeepEqual(resp, want) {
		t.Fatalf("first call:\n got %+v\nwant %+v", resp.IncompleteInvocationContext, want.IncompleteInvocationContext)
	}

	// 2. Same invocation with `seen` present and empty.
	resp = invokeSDK(t, h, &ToFunction{Invocation: &InvocationBatchRequest{
		Target: greeter, State: []PersistedValue{{StateName: "seen"}}, Invocations: []Invocation{hello("alice")},
	}})
	want = &FromFunction{InvocationResult: &InvocationResponse{
		StateMutations: []PersistedValueMutation{{
			MutationType: MutationModify, StateName: "seen",
			StateValue: &TypedValue{Typename: typeInt, HasValue: true, Value: []byte{0x0d, 1, 0, 0, 0}},
		}},
		OutgoingMessages: []OutgoingMessage{{
			Target:   other("alice"),
			Argument: &TypedValue{Typename: typeString, HasValue: true, Value: stringWrapper("hello alice")},
		}},
		DelayedInvocations: []DelayedInvocation{
			{DelayInMs: 5000, Target: other("alice"),
				Argument: &TypedValue{Typename: typeInt, HasValue: true, Value: []byte{0x0d, 1, 0, 0, 0}}},
			{DelayInMs: 60000, CancellationToken: "tok-alice", Target: other("alice"),
				Argument: &TypedValue{Typename: typeLong, HasValue: true, Value: []byte{0x09, 1, 0, 0, 0, 0, 0, 0, 0}}},
			{IsCancellationRequest: true, CancellationToken: "tok-alice"},
		},
		OutgoingEgresses: []EgressMessage{{
			EgressNamespace: "example", EgressType: "greets",
			Argument: &TypedValue{Typename: typeKafka, HasValue: true, Value: kafkaRecord("alice", "Hello alice", "greetings")},
		}},
	}}
	if !reflect.DeepEqual(resp, want) {
		t.Fatalf("second call:\n got %s\nwant %s", dump(resp), dump(want))
	}

	// 3. Feed the mutation back; a batch of two, the first from a caller.
	withCaller := hello("bob")
	withCaller.Caller = &Address{Namespace: "test", Type: "caller", ID: "c1"}
	resp = invokeSDK(t, h, &ToFunction{Invocation: &InvocationBatchRequest{
		Target:      greeter,
		State:       []PersistedValue{{StateName: "seen", StateValue: resp.InvocationResult.StateMutations[0].StateValue}},
		Invocations: []Invocation{withCaller, hello("carol")},
	}})
	r := resp.InvocationResult
	if r == nil {
		t.Fatalf("third call: no invocation result: %s", dump(resp))
	}
	wantMutation := []PersistedValueMutation{{
		MutationType: MutationModify, StateName: "seen",
		StateValue: &TypedValue{Typename: typeInt, HasValue: true, Value: []byte{0x0d, 3, 0, 0, 0}},
	}}
	if !reflect.DeepEqual(r.StateMutations, wantMutation) {
		t.Errorf("third call mutations: %s", dump(r.StateMutations))
	}
	wantMsgs := []OutgoingMessage{
		{Target: other("bob"), Argument: &TypedValue{Typename: typeString, HasValue: true, Value: stringWrapper("hello bob")}},
		{Target: withCaller.Caller, Argument: &TypedValue{Typename: typeBool, HasValue: true, Value: []byte{0x08, 0x01}}},
		{Target: other("carol"), Argument: &TypedValue{Typename: typeString, HasValue: true, Value: stringWrapper("hello carol")}},
	}
	if !reflect.DeepEqual(r.OutgoingMessages, wantMsgs) {
		t.Errorf("third call messages: %s", dump(r.OutgoingMessages))
	}
	if len(r.DelayedInvocations) != 6 || len(r.OutgoingEgresses) != 2 {
		t.Errorf("third call: %d delayed, %d egresses; want 6 and 2", len(r.DelayedInvocations), len(r.OutgoingEgresses))
	}
	if d := r.DelayedInvocations[3]; d.DelayInMs != 5000 || !bytes.Equal(d.Argument.Value, []byte{0x0d, 3, 0, 0, 0}) {
		t.Errorf("third call, delayed[3]: %s", dump(d))
	}

	// 4. Expiration specs, and the partial-state case.
	ttl := &Address{Namespace: "test", Type: "ttl", ID: "x"}
	resp = invokeSDK(t, h, &ToFunction{Invocation: &InvocationBatchRequest{Target: ttl, Invocations: []Invocation{hello("z")}}})
	if resp.IncompleteInvocationContext == nil {
		t.Fatalf("ttl: %s", dump(resp))
	}
	missing := resp.IncompleteInvocationContext.MissingValues
	sort.Slice(missing, func(i, j int) bool { return missing[i].StateName < missing[j].StateName }) // SDK uses map order
	wantMissing := []PersistedValueSpec{
		{StateName: "c", ExpirationSpec: &ExpirationSpec{Mode: ExpireAfterInvoke, ExpireAfterMillis: 7_200_000}, TypeTypename: typeString},
		{StateName: "w", ExpirationSpec: &ExpirationSpec{Mode: ExpireAfterWrite, ExpireAfterMillis: 90_000}, TypeTypename: typeLong},
	}
	if !reflect.DeepEqual(missing, wantMissing) {
		t.Errorf("ttl missing: %s", dump(missing))
	}
	resp = invokeSDK(t, h, &ToFunction{Invocation: &InvocationBatchRequest{
		Target: ttl, State: []PersistedValue{{StateName: "w"}, {StateName: "unrelated"}}, Invocations: []Invocation{hello("z")},
	}})
	if resp.IncompleteInvocationContext == nil || !reflect.DeepEqual(resp.IncompleteInvocationContext.MissingValues, wantMissing[:1]) {
		t.Errorf("ttl partial: %s", dump(resp))
	}
	resp = invokeSDK(t, h, &ToFunction{Invocation: &InvocationBatchRequest{
		Target: ttl, State: []PersistedValue{{StateName: "w"}, {StateName: "c"}}, Invocations: []Invocation{hello("z")},
	}})
	if !reflect.DeepEqual(resp, &FromFunction{InvocationResult: &InvocationResponse{}}) {
		t.Errorf("ttl complete, no side effects: %s", dump(resp))
	}

	// 5. Unknown function type: an error (a 500 over HTTP), no reply.
	_, err := h.Invoke(context.Background(), (&ToFunction{Invocation: &InvocationBatchRequest{
		Target: &Address{Namespace: "test", Type: "nope", ID: "1"}, Invocations: []Invocation{hello("z")},
	}}).AppendMarshal(nil))
	if err == nil {
		t.Error("unknown function type: no error")
	}

	// 6. Invalid UTF-8 in a string: the SDK's generated code rejects it,
	// which is why Unmarshal rejects it too and ValidateUTF8 exists.
	bad := &ToFunction{Invocation: &InvocationBatchRequest{Target: &Address{Namespace: "test", Type: "greeter", ID: "\xff"}}}
	if _, err := h.Invoke(context.Background(), bad.AppendMarshal(nil)); err == nil {
		t.Error("SDK accepted invalid UTF-8")
	}
	if err := bad.ValidateUTF8(); !errors.Is(err, ErrMalformed) {
		t.Errorf("ValidateUTF8: %v", err)
	}
}
