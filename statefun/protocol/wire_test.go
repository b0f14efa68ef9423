package protocol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func dump(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type vector struct {
	name string
	msg  interface {
		AppendMarshal([]byte) []byte
		Size() int
	}
	hex string
}

var abc = &Address{Namespace: "a", Type: "b", ID: "c"}

var vectors = []vector{
	{"empty ToFunction", &ToFunction{}, ""},
	{"empty FromFunction", &FromFunction{}, ""},
	{"ToFunction, empty batch", &ToFunction{Invocation: &InvocationBatchRequest{}}, "a2 06 00"},
	{"ToFunction, target only", &ToFunction{Invocation: &InvocationBatchRequest{Target: abc}},
		"a2 06 0b  0a 09  0a 01 61  12 01 62  1a 01 63"},
	{"ToFunction, state without value, one invocation from ingress",
		&ToFunction{Invocation: &InvocationBatchRequest{
			State:       []PersistedValue{{StateName: "seen"}},
			Invocations: []Invocation{{Argument: &TypedValue{Typename: "t/s", HasValue: true, Value: []byte{0x0a, 0x01, 0x41}}}},
		}},
		"a2 06 18  12 06 0a 04 73 65 65 6e  1a 0e 12 0c  0a 03 74 2f 73  10 01  1a 03 0a 01 41"},
	{"ToFunction, caller and empty present argument",
		&ToFunction{Invocation: &InvocationBatchRequest{Invocations: []Invocation{{Caller: abc, Argument: &TypedValue{}}}}},
		"a2 06 0f  1a 0d  0a 09 0a 01 61 12 01 62 1a 01 63  12 00"},
	{"TypedValue has_value with empty value",
		&ToFunction{Invocation: &InvocationBatchRequest{State: []PersistedValue{{StateValue: &TypedValue{HasValue: true}}}}},
		"a2 06 06  12 04 12 02 10 01"},
	{"FromFunction, empty invocation_result", &FromFunction{InvocationResult: &InvocationResponse{}}, "a2 06 00"},
	{"FromFunction, empty incomplete_invocation_context", &FromFunction{IncompleteInvocationContext: &IncompleteInvocationContext{}}, "aa 06 00"},
	{"FromFunction, both set: incomplete_invocation_context wins",
		&FromFunction{InvocationResult: &InvocationResponse{StateMutations: []PersistedValueMutation{{StateName: "x"}}},
			IncompleteInvocationContext: &IncompleteInvocationContext{}},
		"aa 06 00"},
	{"FromFunction, missing seen",
		&FromFunction{IncompleteInvocationContext: &IncompleteInvocationContext{MissingValues: []PersistedValueSpec{
			{StateName: "seen", ExpirationSpec: &ExpirationSpec{}, TypeTypename: "io.statefun.types/int"},
		}}},
		"aa 06 21  0a 1f  0a 04 73 65 65 6e  12 00  1a 15" + hex.EncodeToString([]byte("io.statefun.types/int"))},
	{"ExpirationSpec AFTER_INVOKE 60000",
		&FromFunction{IncompleteInvocationContext: &IncompleteInvocationContext{MissingValues: []PersistedValueSpec{
			{ExpirationSpec: &ExpirationSpec{Mode: ExpireAfterInvoke, ExpireAfterMillis: 60000}},
		}}},
		"aa 06 0a  0a 08  12 06 08 02 10 e0 d4 03"},
	{"DelayedInvocation, cancellation (tags 0x50, 0x5a)",
		&FromFunction{InvocationResult: &InvocationResponse{DelayedInvocations: []DelayedInvocation{
			{IsCancellationRequest: true, CancellationToken: "tok"},
		}}},
		"a2 06 09  1a 07  50 01  5a 03 74 6f 6b"},
	{"DelayedInvocation, fields in number order 1 2 3 10 11",
		&FromFunction{InvocationResult: &InvocationResponse{DelayedInvocations: []DelayedInvocation{
			{DelayInMs: 1000, Target: abc, Argument: &TypedValue{HasValue: true}, IsCancellationRequest: true, CancellationToken: "k"},
		}}},
		"a2 06 19  1a 17  08 e8 07  12 09 0a 01 61 12 01 62 1a 01 63  1a 02 10 01  50 01  5a 01 6b"},
	{"mutation MODIFY seen=1",
		&FromFunction{InvocationResult: &InvocationResponse{StateMutations: []PersistedValueMutation{{
			MutationType: MutationModify, StateName: "seen",
			StateValue: &TypedValue{Typename: "t", HasValue: true, Value: []byte{0x0d, 1, 0, 0, 0}},
		}}}},
		"a2 06 18  0a 16  08 01  12 04 73 65 65 6e  1a 0c  0a 01 74  10 01  1a 05 0d 01 00 00 00"},
	{"mutation DELETE (enum 0 omitted)",
		&FromFunction{InvocationResult: &InvocationResponse{StateMutations: []PersistedValueMutation{{StateName: "s"}}}},
		"a2 06 05  0a 03  12 01 73"},
	{"negative enum: ten-byte varint",
		&FromFunction{InvocationResult: &InvocationResponse{StateMutations: []PersistedValueMutation{{MutationType: -1}}}},
		"a2 06 0d  0a 0b  08 ff ff ff ff ff ff ff ff ff 01"},
	{"negative int64 delay",
		&FromFunction{InvocationResult: &InvocationResponse{DelayedInvocations: []DelayedInvocation{{DelayInMs: -2}}}},
		"a2 06 0d  1a 0b  08 fe ff ff ff ff ff ff ff ff 01"},
	{"outgoing message and egress, all four repeated fields in order",
		&FromFunction{InvocationResult: &InvocationResponse{
			OutgoingEgresses:   []EgressMessage{{EgressNamespace: "e", EgressType: "k"}},
			DelayedInvocations: []DelayedInvocation{{}},
			OutgoingMessages:   []OutgoingMessage{{Target: &Address{}}},
			StateMutations:     []PersistedValueMutation{{}},
		}},
		"a2 06 10  0a 00  12 02 0a 00  1a 00  22 06 0a 01 65 12 01 6b"},
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		want := unhex(t, v.hex)
		got := v.msg.AppendMarshal(nil)
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got % x\nwant % x", v.name, got, want)
		}
		if v.msg.Size() != len(want) {
			t.Errorf("%s: Size %d, want %d", v.name, v.msg.Size(), len(want))
		}
		// Decoding gives the message back (bar the both-set case), and
		// dynamicpb produces the same bytes.
		switch m := v.msg.(type) {
		case *ToFunction:
			r := newRefTo()
			toFunctionToRef(m, r)
			if theirs, _ := deterministic.Marshal(r); !bytes.Equal(theirs, want) {
				t.Errorf("%s: dynamicpb encodes % x", v.name, theirs)
			}
			var back ToFunction
			if err := back.Unmarshal(want); err != nil || !reflect.DeepEqual(&back, m) {
				t.Errorf("%s: Unmarshal = %s, %v", v.name, dump(&back), err)
			}
		case *FromFunction:
			var back FromFunction
			if err := back.Unmarshal(want); err != nil {
				t.Errorf("%s: Unmarshal: %v", v.name, err)
			} else if m.InvocationResult == nil || m.IncompleteInvocationContext == nil {
				r := newRefFrom()
				fromFunctionToRef(m, r)
				if theirs, _ := deterministic.Marshal(r); !bytes.Equal(theirs, want) {
					t.Errorf("%s: dynamicpb encodes % x", v.name, theirs)
				}
				if !reflect.DeepEqual(&back, m) {
					t.Errorf("%s: Unmarshal = %s", v.name, dump(&back))
				}
			}
		}
	}
}

func TestLongLengthPrefixes(t *testing.T) {
	for _, n := range []int{127, 128, 16383, 16384, 1 << 21} {
		value := bytes.Repeat([]byte{0x5a}, n)
		m := &FromFunction{InvocationResult: &InvocationResponse{OutgoingMessages: []OutgoingMessage{{
			Argument: &TypedValue{Typename: strings.Repeat("n", n%300), HasValue: true, Value: value},
		}}}}
		b := m.AppendMarshal(nil)
		if len(b) != m.Size() {
			t.Fatalf("n=%d: Size %d, got %d bytes", n, m.Size(), len(b))
		}
		var back FromFunction
		if err := back.Unmarshal(b); err != nil || !reflect.DeepEqual(&back, m) {
			t.Fatalf("n=%d: round trip failed: %v", n, err)
		}
		ref := newRefFrom()
		fromFunctionToRef(m, ref)
		if theirs, _ := deterministic.Marshal(ref); !bytes.Equal(theirs, b) {
			t.Fatalf("n=%d: differs from dynamicpb", n)
		}
	}
}

func TestAppendMarshalAppends(t *testing.T) {
	m := &ToFunction{Invocation: &InvocationBatchRequest{Target: abc}}
	prefix := []byte("prefix")
	out := m.AppendMarshal(prefix)
	if !bytes.HasPrefix(out, prefix) || !bytes.Equal(out[len(prefix):], m.AppendMarshal(nil)) {
		t.Fatalf("got %x", out)
	}
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() { buf = m.AppendMarshal(buf[:0]) })
	if allocs != 0 {
		t.Errorf("AppendMarshal into a large enough buffer: %v allocs", allocs)
	}
	var nilTo *ToFunction
	var nilFrom *FromFunction
	if nilTo.Size() != 0 || len(nilTo.AppendMarshal(nil)) != 0 || nilFrom.Size() != 0 || len(nilFrom.AppendMarshal(nil)) != 0 {
		t.Error("nil messages must encode as nothing")
	}
}

func TestEnumStrings(t *testing.T) {
	for v, want := range map[any]string{
		MutationDelete: "DELETE", MutationModify: "MODIFY", MutationType(7): "MutationType(7)",
		ExpireNone: "NONE", ExpireAfterWrite: "AFTER_WRITE", ExpireAfterInvoke: "AFTER_INVOKE", ExpireMode(-3): "ExpireMode(-3)",
	} {
		if got := v.(interface{ String() string }).String(); got != want {
			t.Errorf("%v: got %q want %q", v, got, want)
		}
	}
}

// --- decoding semantics ----------------------------------------------------

func decodeFrom(t *testing.T, hexs string) (*FromFunction, error) {
	t.Helper()
	var m FromFunction
	err := m.Unmarshal(unhex(t, hexs))
	return &m, err
}

func TestDecodeSemantics(t *testing.T) {
	cases := []struct {
		name string
		hex  string
		want *FromFunction
	}{
		{"empty input", "", &FromFunction{}},
		{"oneof: last member wins (101 then 100)",
			"aa 06 02 0a 00  a2 06 02 0a 00",
			&FromFunction{InvocationResult: &InvocationResponse{StateMutations: []PersistedValueMutation{{}}}}},
		{"oneof: last member wins (100 then 101)",
			"a2 06 02 0a 00  aa 06 02 0a 00",
			&FromFunction{IncompleteInvocationContext: &IncompleteInvocationContext{MissingValues: []PersistedValueSpec{{}}}}},
		{"oneof: repeated member is merged, repeated fields append",
			"a2 06 05 0a 03 12 01 61  a2 06 05 0a 03 12 01 62",
			&FromFunction{InvocationResult: &InvocationResponse{StateMutations: []PersistedValueMutation{{StateName: "a"}, {StateName: "b"}}}}},
		{"scalars: last one wins; sub-message merged",
			"a2 06 1a 0a 18  12 01 61  12 01 62  08 01  1a 05 0a 01 78 10 01  1a 05 1a 03 01 02 03  08 00",
			&FromFunction{InvocationResult: &InvocationResponse{StateMutations: []PersistedValueMutation{{
				MutationType: MutationDelete, StateName: "b",
				StateValue: &TypedValue{Typename: "x", HasValue: true, Value: []byte{1, 2, 3}},
			}}}}},
		{"unknown fields of every wire type are skipped",
			"f8 06 01  a2 06 1b  0a 19  38 05  41 01 02 03 04 05 06 07 08  4d 01 02 03 04  52 00  5b 08 01 5c  12 01 61  0d 00 00 00 00",
			&FromFunction{InvocationResult: &InvocationResponse{StateMutations: []PersistedValueMutation{{StateName: "a"}}}}},
		{"known field with the wrong wire type is skipped",
			"a2 06 09 0a 07  10 05  0d 01 00 00 00",
			&FromFunction{InvocationResult: &InvocationResponse{StateMutations: []PersistedValueMutation{{}}}}},
		{"unknown enum value kept as the raw number",
			"a2 06 04 0a 02 08 07",
			&FromFunction{InvocationResult: &InvocationResponse{StateMutations: []PersistedValueMutation{{MutationType: 7}}}}},
		{"bool: any non-zero varint is true; overlong varints are accepted",
			"a2 06 0e  1a 0c  50 ff 01  08 80 80 80 80 80 80 80 00",
			&FromFunction{InvocationResult: &InvocationResponse{DelayedInvocations: []DelayedInvocation{{IsCancellationRequest: true}}}}},
		{"enum: 64-bit varint truncated to int32",
			"a2 06 08 0a 06 08 81 80 80 80 10",
			&FromFunction{InvocationResult: &InvocationResponse{StateMutations: []PersistedValueMutation{{MutationType: 1}}}}},
	}
	for _, c := range cases {
		got, err := decodeFrom(t, c.hex)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %s\nwant %s", c.name, dump(got), dump(c.want))
		}
		// dynamicpb agrees.
		ref, err := refDecodeFrom(newRefFrom(), unhex(t, c.hex))
		if err != nil || !reflect.DeepEqual(ref, c.want) {
			t.Errorf("%s: dynamicpb gives %s, %v", c.name, dump(ref), err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct{ hex, want string }{
		{"a2", "protocol: FromFunction: field tag: truncated"},
		{"a2 06", "protocol: FromFunction.invocation_result: truncated"},
		{"a2 06 02 0a 03", "protocol: FromFunction.invocation_result.state_mutations[0]: truncated"},
		{"a2 06 0a  0a 00  0a 06 08 01 1a 05 0a 01",
			"protocol: FromFunction.invocation_result.state_mutations[1].state_value: truncated"},
		{"a2 06 0c  0a 00  0a 00  0a 06 08 01 1a 02 0a 05",
			"protocol: FromFunction.invocation_result.state_mutations[2].state_value.typename: truncated"},
		{"a2 06 07 12 05 0a 03 0a 01 ff", "protocol: FromFunction.invocation_result.outgoing_messages[0].target.namespace: invalid UTF-8 in string field"},
		{"a2 06 05 1a 03 5a 01 c0", "protocol: FromFunction.invocation_result.delayed_invocations[0].cancellation_token: invalid UTF-8 in string field"},
		{"aa 06 06 0a 04 12 02 08 80", "protocol: FromFunction.incomplete_invocation_context.missing_values[0].expiration_spec.mode: truncated"},
		{"00", "protocol: FromFunction: invalid field number 0"},
		{"0c", "protocol: FromFunction: unknown field 1 (wire type 4): unexpected or mismatched end-group marker"},
		{"0e", "protocol: FromFunction: unknown field 1 (wire type 6): reserved wire type"},
		{"0b 0a 00", "protocol: FromFunction: unknown field 1 (wire type 3): truncated"},
		{"0b 14", "protocol: FromFunction: unknown field 1 (wire type 3): unexpected or mismatched end-group marker"},
		{"80 80 80 80 10 00", "protocol: FromFunction: invalid field number 536870912"},
		{"08 ff ff ff ff ff ff ff ff ff 7f", "protocol: FromFunction: unknown field 1 (wire type 0): varint overflows 64 bits"},
		{"a2 06 02 22 80", "protocol: FromFunction.invocation_result.outgoing_egresses[0]: truncated"},
	}
	for _, c := range cases {
		m, err := decodeFrom(t, c.hex)
		if err == nil {
			t.Errorf("%s: accepted: %s", c.hex, dump(m))
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v does not wrap ErrMalformed", c.hex, err)
		}
		if err.Error() != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.hex, err.Error(), c.want)
		}
		if !reflect.DeepEqual(m, &FromFunction{}) {
			t.Errorf("%s: message not reset after error: %s", c.hex, dump(m))
		}
		if _, rerr := refDecodeFrom(newRefFrom(), unhex(t, c.hex)); rerr == nil {
			t.Errorf("%s: dynamicpb accepts what we reject", c.hex)
		}
	}

	var to ToFunction
	err := to.Unmarshal(unhex(t, "a2 06 07 0a 05 1a 03 0a 01 80"))
	if want := "protocol: ToFunction.invocation.target.id: invalid UTF-8 in string field"; err == nil || err.Error() != want {
		t.Errorf("ToFunction error: %v, want %s", err, want)
	}
	err = to.Unmarshal(unhex(t, "a2 06 09 1a 07 0a 05 1a 03 0a 01 80"))
	if want := "protocol: ToFunction.invocation.invocations[0].caller.id: invalid UTF-8 in string field"; err == nil || err.Error() != want {
		t.Errorf("ToFunction error: %v, want %s", err, want)
	}
}

func TestUnmarshalResetsAndCopies(t *testing.T) {
	src := &FromFunction{InvocationResult: &InvocationResponse{StateMutations: []PersistedValueMutation{{
		MutationType: MutationModify, StateName: "seen",
		StateValue: &TypedValue{Typename: "io.statefun.types/int", HasValue: true, Value: []byte{0x0d, 1, 0, 0, 0}},
	}}}}
	b := src.AppendMarshal(nil)
	m := FromFunction{IncompleteInvocationContext: &IncompleteInvocationContext{MissingValues: make([]PersistedValueSpec, 3)}}
	if err := m.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&m, src) {
		t.Fatalf("not reset: %s", dump(&m))
	}
	for i := range b { // the decoded message must not alias the input
		b[i] = 0xee
	}
	if !reflect.DeepEqual(&m, src) {
		t.Fatalf("decoded message aliases its input: %s", dump(&m))
	}
}

func TestValidateUTF8(t *testing.T) {
	ok := &ToFunction{Invocation: &InvocationBatchRequest{Target: abc, State: []PersistedValue{{StateName: "é"}}}}
	if err := ok.ValidateUTF8(); err != nil {
		t.Fatal(err)
	}
	bad := &ToFunction{Invocation: &InvocationBatchRequest{Target: abc, Invocations: []Invocation{
		{}, {Argument: &TypedValue{Typename: "ok"}}, {Argument: &TypedValue{Typename: "\xc3"}},
	}}}
	err := bad.ValidateUTF8()
	if want := "protocol: ToFunction.invocation.invocations[2].argument.typename: invalid UTF-8 in string field"; err == nil || err.Error() != want || !errors.Is(err, ErrMalformed) {
		t.Errorf("got %v, want %s", err, want)
	}
	from := &FromFunction{InvocationResult: &InvocationResponse{OutgoingEgresses: []EgressMessage{{EgressNamespace: "x"}, {EgressType: "\xff"}}}}
	err = from.ValidateUTF8()
	if want := "protocol: FromFunction.invocation_result.outgoing_egresses[1].egress_type: invalid UTF-8 in string field"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	from = &FromFunction{IncompleteInvocationContext: &IncompleteInvocationContext{MissingValues: []PersistedValueSpec{{TypeTypename: "\xff"}}}}
	err = from.ValidateUTF8()
	if want := "protocol: FromFunction.incomplete_invocation_context.missing_values[0].type_typename: invalid UTF-8 in string field"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	// Our encoding of invalid strings is rejected by Unmarshal and dynamicpb alike.
	b := from.AppendMarshal(nil)
	var m FromFunction
	if err := m.Unmarshal(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("Unmarshal accepted invalid UTF-8: %v", err)
	}
	if _, err := refDecodeFrom(newRefFrom(), b); err == nil {
		t.Error("dynamicpb accepted invalid UTF-8")
	}
}

// stringFields returns every string field reachable from v (a pointer).
func stringFields(v reflect.Value, out []reflect.Value) []reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			out = stringFields(v.Elem(), out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			out = stringFields(v.Field(i), out)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Uint8 {
			for i := range v.Len() {
				out = stringFields(v.Index(i), out)
			}
		}
	case reflect.String:
		out = append(out, v)
	}
	return out
}

// TestValidateMatchesDecode puts invalid UTF-8 into each string field of
// random messages in turn: ValidateUTF8 must report exactly the error that
// Unmarshal reports for the encoded message.
func TestValidateMatchesDecode(t *testing.T) {
	g := newGen(11)
	checked := 0
	for range 40 {
		for _, m := range []interface {
			AppendMarshal([]byte) []byte
			ValidateUTF8() error
		}{g.toFunction(), g.fromFunction()} {
			for _, f := range stringFields(reflect.ValueOf(m), nil) {
				old := f.String()
				f.SetString(old + "\xff")
				verr := m.ValidateUTF8()
				var derr error
				switch m := m.(type) {
				case *ToFunction:
					derr = new(ToFunction).Unmarshal(m.AppendMarshal(nil))
				case *FromFunction:
					derr = new(FromFunction).Unmarshal(m.AppendMarshal(nil))
				}
				if verr == nil || derr == nil || verr.Error() != derr.Error() {
					t.Fatalf("ValidateUTF8: %v\nUnmarshal:   %v", verr, derr)
				}
				f.SetString(old)
				checked++
			}
			if err := m.ValidateUTF8(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%d string fields checked", checked)
}
