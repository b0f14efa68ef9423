package statefun

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// h decodes a hex string with optional spaces.
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func newReceiver(p PrimitiveType) interface{} {
	switch p {
	case BoolType:
		return new(bool)
	case Int32Type:
		return new(int32)
	case Int64Type:
		return new(int64)
	case Float32Type:
		return new(float32)
	case Float64Type:
		return new(float64)
	case StringType:
		return new(string)
	}
	panic("unknown primitive")
}

func deref(v interface{}) interface{} {
	return reflect.ValueOf(v).Elem().Interface()
}

// sameValue compares decoded values; floats are compared bit for bit so that
// NaN payloads and the sign of zero are checked.
func sameValue(a, b interface{}) bool {
	switch a := a.(type) {
	case float32:
		b, ok := b.(float32)
		return ok && math.Float32bits(a) == math.Float32bits(b)
	case float64:
		b, ok := b.(float64)
		return ok && math.Float64bits(a) == math.Float64bits(b)
	default:
		return a == b
	}
}

var str300 = strings.Repeat("a", 300)

// encodingVectors are the exact encodings of the well-known types.
var encodingVectors = []struct {
	name  string
	typ   PrimitiveType
	value interface{}
	enc   []byte
}{
	{"bool/true", BoolType, true, h("08 01")},
	{"bool/false", BoolType, false, nil},

	{"int/0", Int32Type, int32(0), nil},
	{"int/1", Int32Type, int32(1), h("0D 01000000")},
	{"int/1048576", Int32Type, int32(1048576), h("0D 00001000")},
	{"int/-1", Int32Type, int32(-1), h("0D FFFFFFFF")},
	{"int/-2", Int32Type, int32(-2), h("0D FEFFFFFF")},
	{"int/max", Int32Type, int32(math.MaxInt32), h("0D FFFFFF7F")},
	{"int/min", Int32Type, int32(math.MinInt32), h("0D 00000080")},

	{"long/0", Int64Type, int64(0), nil},
	{"long/1", Int64Type, int64(1), h("09 0100000000000000")},
	{"long/-1", Int64Type, int64(-1), h("09 FFFFFFFFFFFFFFFF")},
	{"long/-2", Int64Type, int64(-2), h("09 FEFFFFFFFFFFFFFF")},
	{"long/0x0102030405060708", Int64Type, int64(0x0102030405060708), h("09 0807060504030201")},
	{"long/max", Int64Type, int64(math.MaxInt64), h("09 FFFFFFFFFFFFFF7F")},
	{"long/min", Int64Type, int64(math.MinInt64), h("09 0000000000000080")},

	{"float/0", Float32Type, float32(0), nil},
	{"float/1", Float32Type, float32(1), h("0D 0000803F")},
	{"float/-2.5", Float32Type, float32(-2.5), h("0D 000020C0")},
	{"float/-0", Float32Type, float32(math.Copysign(0, -1)), h("0D 00000080")},
	{"float/+inf", Float32Type, float32(math.Inf(1)), h("0D 0000807F")},
	{"float/NaN", Float32Type, math.Float32frombits(0x7FC00000), h("0D 0000C07F")},
	{"float/NaN-payload", Float32Type, math.Float32frombits(0xFFC00001), h("0D 0100C0FF")},
	{"float/max", Float32Type, float32(math.MaxFloat32), h("0D FFFF7F7F")},

	{"double/0", Float64Type, float64(0), nil},
	{"double/1", Float64Type, float64(1), h("09 000000000000F03F")},
	{"double/-2.5", Float64Type, float64(-2.5), h("09 00000000000004C0")},
	{"double/-0", Float64Type, math.Copysign(0, -1), h("09 0000000000000080")},
	{"double/-inf", Float64Type, math.Inf(-1), h("09 000000000000F0FF")},
	{"double/NaN", Float64Type, math.Float64frombits(0x7FF8000000000001), h("09 010000000000F87F")},
	{"double/smallest", Float64Type, math.SmallestNonzeroFloat64, h("09 0100000000000000")},

	{"string/empty", StringType, "", nil},
	{"string/hi", StringType, "hi", h("0A 02 6869")},
	{"string/utf8", StringType, "é€", h("0A 05 C3A9 E282AC")},
	{"string/300", StringType, str300, append(h("0A AC02"), str300...)},
	{"string/127", StringType, strings.Repeat("b", 127), append(h("0A 7F"), strings.Repeat("b", 127)...)},
	{"string/128", StringType, strings.Repeat("c", 128), append(h("0A 8001"), strings.Repeat("c", 128)...)},
}

func TestPrimitiveEncodingVectors(t *testing.T) {
	for _, tc := range encodingVectors {
		t.Run(tc.name, func(t *testing.T) {
			// EncodeValue fast path.
			got, err := EncodeValue(tc.typ, tc.value)
			if err != nil {
				t.Fatalf("EncodeValue: %v", err)
			}
			if !bytes.Equal(got, tc.enc) {
				t.Fatalf("EncodeValue = % X, want % X", got, tc.enc)
			}
			if got == nil {
				t.Fatalf("EncodeValue returned a nil slice")
			}

			// Pointer input.
			ptr := reflect.New(reflect.TypeOf(tc.value))
			ptr.Elem().Set(reflect.ValueOf(tc.value))
			got, err = EncodeValue(tc.typ, ptr.Interface())
			if err != nil || !bytes.Equal(got, tc.enc) {
				t.Fatalf("EncodeValue(pointer) = % X, %v; want % X", got, err, tc.enc)
			}

			// Serialize through an io.Writer.
			var buf bytes.Buffer
			if err := tc.typ.Serialize(&buf, tc.value); err != nil {
				t.Fatalf("Serialize: %v", err)
			}
			if !bytes.Equal(buf.Bytes(), tc.enc) {
				t.Fatalf("Serialize = % X, want % X", buf.Bytes(), tc.enc)
			}

			// The reference protobuf implementation agrees.
			ref := refMarshal(t, refWrapperName[tc.typ], map[string]interface{}{"value": tc.value})
			if !bytes.Equal(ref, tc.enc) {
				t.Fatalf("reference proto encoding = % X, want % X", ref, tc.enc)
			}

			// DecodeValue and Deserialize round trip.
			r := newReceiver(tc.typ)
			if err := DecodeValue(tc.typ, tc.enc, r); err != nil {
				t.Fatalf("DecodeValue: %v", err)
			}
			if !sameValue(deref(r), tc.value) {
				t.Fatalf("DecodeValue = %v, want %v", deref(r), tc.value)
			}
			r = newReceiver(tc.typ)
			if err := tc.typ.Deserialize(bytes.NewReader(tc.enc), r); err != nil {
				t.Fatalf("Deserialize: %v", err)
			}
			if !sameValue(deref(r), tc.value) {
				t.Fatalf("Deserialize = %v, want %v", deref(r), tc.value)
			}
		})
	}
}

// tagOf encodes a tag, for vectors with large field numbers.
func tagOf(num protowire.Number, typ protowire.Type) []byte {
	return protowire.AppendTag(nil, num, typ)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// decodeVectors are inputs a proto decoder accepts besides the canonical
// encodings: explicit zeros, unknown fields, repeated fields (last wins),
// field 1 with an unexpected wire type (skipped as unknown), non-minimal
// varints.
var decodeVectors = []struct {
	name string
	typ  PrimitiveType
	enc  []byte
	want interface{}
}{
	{"bool/explicit-false", BoolType, h("08 00"), false},
	{"bool/non-one", BoolType, h("08 02"), true},
	{"bool/non-minimal-varint", BoolType, h("08 8100"), true},
	{"bool/large-varint", BoolType, h("08 80808080808080808001"), true},
	{"bool/last-wins", BoolType, h("08 01 08 00"), false},
	{"bool/unknown-varint", BoolType, h("10 05 08 01"), true},
	{"bool/unknown-bytes", BoolType, h("12 02 AABB 08 01 1A 00"), true},
	{"bool/unknown-fixed", BoolType, h("15 01020304 19 0102030405060708 08 01"), true},
	{"bool/unknown-group", BoolType, h("1B 08 01 1C"), false},
	{"bool/wrong-wire-type", BoolType, h("0D 01000000"), false},
	{"bool/large-field-number", BoolType, cat(tagOf(protowire.MaxValidNumber, protowire.VarintType), h("01 08 01")), true},
	{"bool/two-byte-tag", BoolType, h("88 01 01"), false}, // field 17

	{"int/explicit-zero", Int32Type, h("0D 00000000"), int32(0)},
	{"int/last-wins", Int32Type, h("0D 01000000 0D 02000000"), int32(2)},
	{"int/unknown-first", Int32Type, h("11 0102030405060708 0D 07000000"), int32(7)},
	{"int/unknown-after", Int32Type, h("0D FFFFFFFF 10 01"), int32(-1)},
	{"int/varint-is-unknown", Int32Type, h("08 05"), int32(0)},

	{"long/explicit-zero", Int64Type, h("09 0000000000000000"), int64(0)},
	{"long/last-wins", Int64Type, h("09 0100000000000000 09 FEFFFFFFFFFFFFFF"), int64(-2)},
	{"long/unknown", Int64Type, h("12 00 09 0300000000000000"), int64(3)},
	{"long/fixed32-is-unknown", Int64Type, h("0D 01000000"), int64(0)},

	{"float/explicit-zero", Float32Type, h("0D 00000000"), float32(0)},
	{"float/unknown", Float32Type, h("10 01 0D 0000803F"), float32(1)},

	{"double/explicit-zero", Float64Type, h("09 0000000000000000"), float64(0)},
	{"double/unknown", Float64Type, h("0D 00000000 09 000000000000F03F"), float64(1)},

	{"string/explicit-empty", StringType, h("0A 00"), ""},
	{"string/last-wins", StringType, h("0A 01 61 0A 01 62"), "b"},
	{"string/unknown", StringType, h("08 01 0A 02 6869 10 02"), "hi"},
	{"string/varint-is-unknown", StringType, h("08 01"), ""},
	{"string/non-minimal-length", StringType, h("0A 8100 61"), "a"},
}

func TestPrimitiveDecodeVectors(t *testing.T) {
	for _, tc := range decodeVectors {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(tc.typ)
			if err := DecodeValue(tc.typ, tc.enc, r); err != nil {
				t.Fatalf("DecodeValue: %v", err)
			}
			if !sameValue(deref(r), tc.want) {
				t.Fatalf("DecodeValue = %v, want %v", deref(r), tc.want)
			}
			m, err := refUnmarshal(refWrapperName[tc.typ], tc.enc)
			if err != nil {
				t.Fatalf("reference decoder rejects the vector: %v", err)
			}
			if got := refField(m, "value"); !sameValue(got, tc.want) {
				t.Fatalf("reference decoder = %v, want %v", got, tc.want)
			}
		})
	}
}

// malformedVectors must be rejected by every primitive decoder.
var malformedVectors = []struct {
	name string
	enc  []byte
}{
	{"truncated-tag", h("80")},
	{"field-zero", h("00 01")},
	{"field-number-too-large", cat(tagOf(protowire.MaxValidNumber+1, protowire.VarintType), h("01"))},
	{"truncated-varint", h("08")},
	{"truncated-varint-continuation", h("08 80")},
	{"varint-overflow", h("08 FFFFFFFFFFFFFFFFFF02")},
	{"truncated-fixed32", h("0D 0102")},
	{"truncated-fixed64", h("09 01020304")},
	{"truncated-bytes", h("0A 05 61")},
	{"bytes-length-overflow", h("0A FFFFFFFFFFFFFFFFFF01")},
	{"end-group", h("0C")},
	{"unterminated-group", h("0B 08 01")},
	{"mismatched-group", h("0B 14")},
	{"reserved-wire-type-6", h("0E")},
	{"reserved-wire-type-7", h("0F")},
	{"garbage-after-value", h("08 01 FF")},
}

func TestPrimitiveMalformed(t *testing.T) {
	types := []PrimitiveType{BoolType, Int32Type, Int64Type, Float32Type, Float64Type, StringType}
	for _, tc := range malformedVectors {
		for _, typ := range types {
			t.Run(tc.name+"/"+refWrapperName[typ], func(t *testing.T) {
				if err := DecodeValue(typ, tc.enc, newReceiver(typ)); err == nil {
					t.Fatalf("DecodeValue accepted % X", tc.enc)
				}
				if err := typ.Deserialize(bytes.NewReader(tc.enc), newReceiver(typ)); err == nil {
					t.Fatalf("Deserialize accepted % X", tc.enc)
				}
				if _, err := refUnmarshal(refWrapperName[typ], tc.enc); err == nil {
					t.Fatalf("reference decoder accepts % X; the vector is not malformed", tc.enc)
				}
			})
		}
	}
}

func TestStringInvalidUTF8(t *testing.T) {
	var s string
	if err := DecodeValue(StringType, h("0A 02 FFFE"), &s); err == nil {
		t.Fatal("decoding invalid UTF-8 succeeded")
	}
	if _, err := refUnmarshal("StringWrapper", h("0A 02 FFFE")); err == nil {
		t.Fatal("reference decoder accepts invalid UTF-8")
	}
	if _, err := EncodeValue(StringType, "\xff"); err == nil {
		t.Fatal("encoding invalid UTF-8 succeeded")
	}
	// Like proto.Unmarshal, every occurrence is validated, not only the
	// last one.
	if err := DecodeValue(StringType, h("0A 01 FF 0A 01 61"), &s); err == nil {
		t.Fatalf("shadowed invalid UTF-8 accepted: %q", s)
	}
	if _, err := refUnmarshal("StringWrapper", h("0A 01 FF 0A 01 61")); err == nil {
		t.Fatal("reference decoder accepts shadowed invalid UTF-8")
	}
}

func TestPrimitiveTypeErrors(t *testing.T) {
	var nilInt64 *int64
	tests := []struct {
		name string
		typ  PrimitiveType
		data interface{}
	}{
		{"bool-from-int", BoolType, 1},
		{"int32-from-int", Int32Type, 1},
		{"int32-from-int64", Int32Type, int64(1)},
		{"int64-from-int32", Int64Type, int32(1)},
		{"int64-nil-pointer", Int64Type, nilInt64},
		{"float32-from-float64", Float32Type, 1.0},
		{"float64-from-float32", Float64Type, float32(1)},
		{"string-from-bytes", StringType, []byte("x")},
		{"nil", StringType, nil},
		{"unknown-primitive", PrimitiveType(42), int32(1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := EncodeValue(tc.typ, tc.data); err == nil {
				t.Fatal("EncodeValue succeeded")
			}
			if err := tc.typ.Serialize(&bytes.Buffer{}, tc.data); err == nil {
				t.Fatal("Serialize succeeded")
			}
		})
	}

	receivers := []struct {
		name     string
		typ      PrimitiveType
		receiver interface{}
	}{
		{"bool-into-value", BoolType, false},
		{"int32-into-int64", Int32Type, new(int64)},
		{"int64-into-int32", Int64Type, new(int32)},
		{"int64-into-nil", Int64Type, nilInt64},
		{"float32-into-float64", Float32Type, new(float64)},
		{"float64-into-float32", Float64Type, new(float32)},
		{"string-into-bytes", StringType, new([]byte)},
		{"nil", StringType, nil},
		{"unknown-primitive", PrimitiveType(-1), new(int32)},
	}
	for _, tc := range receivers {
		t.Run(tc.name, func(t *testing.T) {
			if err := DecodeValue(tc.typ, nil, tc.receiver); err == nil {
				t.Fatal("DecodeValue succeeded")
			}
			if err := tc.typ.Deserialize(bytes.NewReader(nil), tc.receiver); err == nil {
				t.Fatal("Deserialize succeeded")
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("boom") }

func TestPrimitiveIOErrors(t *testing.T) {
	var v int64
	if err := Int64Type.Deserialize(failingReader{}, &v); err == nil {
		t.Fatal("reader error not reported")
	}
	if err := Int64Type.Serialize(failingWriter{}, int64(1)); err == nil {
		t.Fatal("writer error not reported")
	}
}

func TestPrimitiveTypeNames(t *testing.T) {
	want := map[PrimitiveType]string{
		BoolType:    "io.statefun.types/bool",
		Int32Type:   "io.statefun.types/int",
		Int64Type:   "io.statefun.types/long",
		Float32Type: "io.statefun.types/float",
		Float64Type: "io.statefun.types/double",
		StringType:  "io.statefun.types/string",
	}
	for p, name := range want {
		if got := p.GetTypeName().String(); got != name {
			t.Errorf("%d.GetTypeName() = %s, want %s", p, got, name)
		}
		if got := p.GetTypeName().GetNamespace(); got != "io.statefun.types" {
			t.Errorf("namespace = %s", got)
		}
		if got := TypeNameString(p); got != name {
			t.Errorf("TypeNameString(%d) = %s, want %s", p, got, name)
		}
	}
	if PrimitiveType(42).GetTypeName() != nil {
		t.Error("unknown primitive has a typename")
	}
	if TypeNameString(PrimitiveType(42)) != "" || TypeNameString(nil) != "" {
		t.Error("TypeNameString of unknown/nil type is not empty")
	}
	if TypeNameString(MakeProtobufTypeWithTypeName(nil)) != "" {
		t.Error("TypeNameString of a type with nil TypeName is not empty")
	}
	if got := TypeNameString(MakeJsonType(TypeNameFrom("org.foo/User"))); got != "org.foo/User" {
		t.Errorf("TypeNameString(json) = %s", got)
	}
}

type user struct {
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

func TestJsonType(t *testing.T) {
	userType := MakeJsonType(TypeNameFrom("org.foo.bar/UserJson"))
	if userType.GetTypeName().String() != "org.foo.bar/UserJson" {
		t.Fatalf("typename = %s", userType.GetTypeName())
	}

	b, err := EncodeValue(userType, user{"bob", "mop"})
	if err != nil {
		t.Fatal(err)
	}
	// json.Encoder output, including the trailing newline, as upstream.
	if want := "{\"first_name\":\"bob\",\"last_name\":\"mop\"}\n"; string(b) != want {
		t.Fatalf("encoding = %q, want %q", b, want)
	}
	var buf bytes.Buffer
	if err := userType.Serialize(&buf, &user{"bob", "mop"}); err != nil || !bytes.Equal(buf.Bytes(), b) {
		t.Fatalf("Serialize = %q, %v", buf.Bytes(), err)
	}

	var got user
	if err := DecodeValue(userType, b, &got); err != nil || got != (user{"bob", "mop"}) {
		t.Fatalf("DecodeValue = %+v, %v", got, err)
	}
	got = user{}
	if err := userType.Deserialize(bytes.NewReader(b), &got); err != nil || got != (user{"bob", "mop"}) {
		t.Fatalf("Deserialize = %+v, %v", got, err)
	}
	if err := DecodeValue(userType, []byte("{not json"), &got); err == nil {
		t.Fatal("malformed JSON accepted")
	}
	if _, err := EncodeValue(userType, make(chan int)); err == nil {
		t.Fatal("unencodable value accepted")
	}
}

func TestProtobufType(t *testing.T) {
	st := MakeProtobufType(&wrapperspb.StringValue{})
	if got := st.GetTypeName().String(); got != "type.googleapis.com/google.protobuf.StringValue" {
		t.Fatalf("typename = %s", got)
	}
	if st.GetTypeName().GetNamespace() != "type.googleapis.com" || st.GetTypeName().GetType() != "google.protobuf.StringValue" {
		t.Fatalf("typename parts = %s %s", st.GetTypeName().GetNamespace(), st.GetTypeName().GetType())
	}

	in := wrapperspb.String("hello")
	b, err := EncodeValue(st, in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, h("0A 05 68656C6C6F")) {
		t.Fatalf("encoding = % X", b)
	}
	out := &wrapperspb.StringValue{}
	if err := DecodeValue(st, b, out); err != nil || out.GetValue() != "hello" {
		t.Fatalf("DecodeValue = %v, %v", out, err)
	}
	var buf bytes.Buffer
	if err := st.Serialize(&buf, in); err != nil || !bytes.Equal(buf.Bytes(), b) {
		t.Fatalf("Serialize = % X, %v", buf.Bytes(), err)
	}
	out = &wrapperspb.StringValue{}
	if err := st.Deserialize(bytes.NewReader(b), out); err != nil || out.GetValue() != "hello" {
		t.Fatalf("Deserialize = %v, %v", out, err)
	}

	// A structured message.
	structType := MakeProtobufType(&structpb.Struct{})
	if got := TypeNameString(structType); got != "type.googleapis.com/google.protobuf.Struct" {
		t.Fatalf("typename = %s", got)
	}
	s, err := structpb.NewStruct(map[string]interface{}{"name": "bob", "age": 42.0, "tags": []interface{}{"a", true}})
	if err != nil {
		t.Fatal(err)
	}
	b, err = EncodeValue(structType, s)
	if err != nil {
		t.Fatal(err)
	}
	s2 := &structpb.Struct{}
	if err := DecodeValue(structType, b, s2); err != nil || !proto.Equal(s, s2) {
		t.Fatalf("struct round trip = %v, %v", s2, err)
	}

	// Errors.
	if _, err := EncodeValue(st, "not a proto"); err == nil {
		t.Fatal("non-proto value accepted")
	}
	if err := st.Serialize(&buf, "not a proto"); err == nil {
		t.Fatal("non-proto value accepted by Serialize")
	}
	var notProto string
	if err := DecodeValue(st, b, &notProto); err == nil {
		t.Fatal("non-proto receiver accepted")
	}
	if err := st.Deserialize(bytes.NewReader(b), &notProto); err == nil {
		t.Fatal("non-proto receiver accepted by Deserialize")
	}
	if err := DecodeValue(st, h("0A 05 61"), &wrapperspb.StringValue{}); err == nil {
		t.Fatal("malformed protobuf accepted")
	}

	// Custom typename.
	custom := MakeProtobufTypeWithTypeName(TypeNameFrom("com.example/Greeting"))
	if TypeNameString(custom) != "com.example/Greeting" {
		t.Fatalf("typename = %s", TypeNameString(custom))
	}
	if MakeProtobufType(nil).GetTypeName() != nil {
		t.Fatal("nil message has a typename")
	}
}

func TestEncodeDecodeValueNilType(t *testing.T) {
	if _, err := EncodeValue(nil, int64(1)); err == nil {
		t.Fatal("EncodeValue(nil type) succeeded")
	}
	var v int64
	if err := DecodeValue(nil, nil, &v); err == nil {
		t.Fatal("DecodeValue(nil type) succeeded")
	}
}
