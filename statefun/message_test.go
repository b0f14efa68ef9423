package statefun

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

var greeter = Address{FunctionType: TypeNameFrom("example/greeter"), Id: "bob"}

func TestMessageBuilderDefaultTypes(t *testing.T) {
	b, i32, i64, f32, f64, s := true, int32(-7), int64(1)<<40, float32(1.5), -2.25, "hello"
	tests := []struct {
		name     string
		value    interface{}
		typename string
		enc      []byte
	}{
		{"bool", true, "io.statefun.types/bool", h("08 01")},
		{"*bool", &b, "io.statefun.types/bool", h("08 01")},
		{"false", false, "io.statefun.types/bool", nil},
		{"int32", int32(1), "io.statefun.types/int", h("0D 01000000")},
		{"*int32", &i32, "io.statefun.types/int", h("0D F9FFFFFF")},
		{"int64", int64(1), "io.statefun.types/long", h("09 0100000000000000")},
		{"*int64", &i64, "io.statefun.types/long", h("09 0000000000010000")},
		{"float32", float32(1), "io.statefun.types/float", h("0D 0000803F")},
		{"*float32", &f32, "io.statefun.types/float", h("0D 0000C03F")},
		{"float64", float64(1), "io.statefun.types/double", h("09 000000000000F03F")},
		{"*float64", &f64, "io.statefun.types/double", h("09 00000000000002C0")},
		{"string", "hi", "io.statefun.types/string", h("0A 02 6869")},
		{"*string", &s, "io.statefun.types/string", h("0A 05 68656C6C6F")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target, typename, value, err := MessageBuilder{Target: greeter, Value: tc.value}.Build()
			if err != nil {
				t.Fatal(err)
			}
			if target != greeter || typename != tc.typename || !bytes.Equal(value, tc.enc) {
				t.Fatalf("Build = (%v, %s, % X), want (%v, %s, % X)", target, typename, value, greeter, tc.typename, tc.enc)
			}
			msg, err := MessageBuilder{Target: greeter, Value: tc.value}.ToMessage()
			if err != nil {
				t.Fatal(err)
			}
			if msg.ValueTypeName().String() != tc.typename || !bytes.Equal(msg.RawValue(), tc.enc) {
				t.Fatalf("ToMessage = (%s, % X)", msg.ValueTypeName(), msg.RawValue())
			}
			if msg.Target() == nil || *msg.Target() != greeter {
				t.Fatalf("Target() = %v", msg.Target())
			}
		})
	}
}

func TestMessageBuilderErrors(t *testing.T) {
	tests := []struct {
		name    string
		builder MessageBuilder
		errText string
	}{
		{"int-ambiguous", MessageBuilder{Target: greeter, Value: 1}, "ambiguous"},
		{"nil-value", MessageBuilder{Target: greeter}, "nil value"},
		{"empty-target", MessageBuilder{Value: "x"}, "target"},
		{"id-only-target", MessageBuilder{Target: Address{Id: "x"}, Value: "x"}, "target"},
		{"non-primitive", MessageBuilder{Target: greeter, Value: []byte("x")}, "SimpleType"},
		{"struct", MessageBuilder{Target: greeter, Value: user{}}, "SimpleType"},
		{"uint", MessageBuilder{Target: greeter, Value: uint32(1)}, "SimpleType"},
		{"wrong-explicit-type", MessageBuilder{Target: greeter, Value: "x", ValueType: Int64Type}, "int64"},
		{"int-with-int64-type", MessageBuilder{Target: greeter, Value: 1, ValueType: Int64Type}, "int64"},
		{"typeless-type", MessageBuilder{Target: greeter, Value: &wrapperspb.Int64Value{}, ValueType: MakeProtobufTypeWithTypeName(nil)}, "typename"},
		{"invalid-utf8", MessageBuilder{Target: greeter, Value: "\xff"}, "UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := tc.builder.Build()
			if err == nil || !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("Build error = %v, want one containing %q", err, tc.errText)
			}
			if _, err := tc.builder.ToMessage(); err == nil {
				t.Fatal("ToMessage succeeded")
			}
		})
	}
}

func TestMessageBuilderExplicitType(t *testing.T) {
	// An explicit type overrides the default selection: int64 values as longs
	// are the default, but a JSON type serializes anything.
	jt := MakeJsonType(TypeNameFrom("com.example/User"))
	_, typename, value, err := MessageBuilder{Target: greeter, Value: user{"a", "b"}, ValueType: jt}.Build()
	if err != nil || typename != "com.example/User" || string(value) != "{\"first_name\":\"a\",\"last_name\":\"b\"}\n" {
		t.Fatalf("Build = %s %q %v", typename, value, err)
	}

	pt := MakeProtobufType(&wrapperspb.Int64Value{})
	msg, err := MessageBuilder{Target: greeter, Value: wrapperspb.Int64(-3), ValueType: pt}.ToMessage()
	if err != nil {
		t.Fatal(err)
	}
	if !msg.Is(pt) || msg.IsInt64() {
		t.Fatal("Is() mismatch")
	}
	got := &wrapperspb.Int64Value{}
	if err := msg.As(pt, got); err != nil || got.GetValue() != -3 {
		t.Fatalf("As = %v %v", got, err)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	check := func(t *testing.T, value interface{}, is func(*Message) bool, as func(*Message) interface{}) {
		t.Helper()
		msg, err := MessageBuilder{Target: greeter, Value: value}.ToMessage()
		if err != nil {
			t.Fatal(err)
		}
		if !is(&msg) {
			t.Fatalf("Is check failed for %T", value)
		}
		if got := as(&msg); !sameValue(got, value) {
			t.Fatalf("round trip of %v gave %v", value, got)
		}
		// Exactly one Is* predicate holds.
		n := 0
		for _, p := range []bool{msg.IsBool(), msg.IsInt32(), msg.IsInt64(), msg.IsFloat32(), msg.IsFloat64(), msg.IsString()} {
			if p {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d Is* predicates hold for %T", n, value)
		}
	}
	for _, v := range []bool{true, false} {
		check(t, v, (*Message).IsBool, func(m *Message) interface{} { return m.AsBool() })
	}
	for _, v := range []int32{0, 1, -1, math.MaxInt32, math.MinInt32} {
		check(t, v, (*Message).IsInt32, func(m *Message) interface{} { return m.AsInt32() })
	}
	for _, v := range []int64{0, 1, -1, math.MaxInt64, math.MinInt64} {
		check(t, v, (*Message).IsInt64, func(m *Message) interface{} { return m.AsInt64() })
	}
	for _, v := range []float32{0, 2.1459, -1e4, math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.NaN())} {
		check(t, v, (*Message).IsFloat32, func(m *Message) interface{} { return m.AsFloat32() })
	}
	for _, v := range []float64{0, 2.1459, -1e4, math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(-1)} {
		check(t, v, (*Message).IsFloat64, func(m *Message) interface{} { return m.AsFloat64() })
	}
	for _, v := range []string{"", "This is a string", "日本語", str300} {
		check(t, v, (*Message).IsString, func(m *Message) interface{} { return m.AsString() })
	}
}

func TestMessageFromTypedValue(t *testing.T) {
	msg := MessageFromTypedValue(&greeter, "io.statefun.types/long", h("09 2A00000000000000"))
	if msg.Target() != &greeter {
		t.Fatal("Target() is not the given address")
	}
	if !msg.IsInt64() || !msg.Is(Int64Type) || msg.Is(Int32Type) || msg.AsInt64() != 42 {
		t.Fatal("typed accessors mismatch")
	}
	var v int64
	if err := msg.As(Int64Type, &v); err != nil || v != 42 {
		t.Fatalf("As = %d %v", v, err)
	}
	if tn := msg.ValueTypeName(); tn.GetNamespace() != "io.statefun.types" || tn.GetType() != "long" {
		t.Fatalf("ValueTypeName = %v", tn)
	}

	// Without a target and with an empty payload.
	msg = MessageFromTypedValue(nil, "io.statefun.types/string", nil)
	if msg.Target() != nil || msg.AsString() != "" || msg.RawValue() != nil {
		t.Fatal("empty message mismatch")
	}

	// A typename that does not parse does not panic.
	msg = MessageFromTypedValue(nil, "not-a-typename", []byte("x"))
	tn := msg.ValueTypeName()
	if tn.String() != "not-a-typename" || tn.GetNamespace() != "" || tn.GetType() != "not-a-typename" {
		t.Fatalf("ValueTypeName = %q %q %q", tn.String(), tn.GetNamespace(), tn.GetType())
	}
	if msg.Is(PrimitiveType(42)) || msg.Is(nil) {
		t.Fatal("Is() of an invalid type holds")
	}

	// The zero Message is usable.
	var zero Message
	if zero.Target() != nil || zero.AsInt64() != 0 || zero.IsBool() {
		t.Fatal("zero message mismatch")
	}
}

func TestMessageAsPanicsOnMalformed(t *testing.T) {
	msg := MessageFromTypedValue(&greeter, "io.statefun.types/long", h("09 01"))
	accessors := map[string]func(){
		"AsBool":    func() { msg.AsBool() },
		"AsInt32":   func() { msg.AsInt32() },
		"AsInt64":   func() { msg.AsInt64() },
		"AsFloat32": func() { msg.AsFloat32() },
		"AsFloat64": func() { msg.AsFloat64() },
		"AsString":  func() { msg.AsString() },
	}
	for name, f := range accessors {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				if _, ok := r.(error); !ok {
					t.Fatalf("recovered %v, want an error panic", r)
				}
			}()
			f()
		})
	}
	var v int64
	if err := msg.As(Int64Type, &v); err == nil {
		t.Fatal("As accepted malformed bytes")
	}
}
