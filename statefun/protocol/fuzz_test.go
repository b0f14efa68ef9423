package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
)

// The fuzz targets compare Unmarshal with two reference decoders on arbitrary
// input: dynamicpb over the private reference schema, and the official SDK's
// generated code. All three must accept the same inputs and produce the same
// message (unknown fields aside: we drop them). Accepted input must also
// re-encode to exactly the bytes protobuf-go produces for it (unknown fields
// discarded), and decode again to the same message.
//
// Crashers found by `go test -fuzz` are kept in testdata/fuzz/<target>/ and
// run as part of the normal test suite.

var discardUnknown = proto.UnmarshalOptions{DiscardUnknown: true}

var fuzzEdgeSeeds = []string{
	"",
	"\x00",
	"\xa2\x06",
	"\xa2\x06\x00",
	"\xaa\x06\x00",
	"\xa2\x06\x00\xaa\x06\x00\xa2\x06\x02\x0a\x00",
	"\x0b\x0a\x00\x0c",                             // unknown group
	"\x0b\x14",                                     // mismatched end group
	"\x0e",                                         // reserved wire type
	"\x80\x80\x80\x80\x10\x00",                     // field number too large
	"\xf8\xff\xff\xff\x0f\x00",                     // largest valid field number
	"\xa2\x06\x05\x12\x03\x0a\x01\xff",             // invalid UTF-8
	"\xa2\x06\x04\x0a\x02\x08\x07",                 // unknown enum value
	"\xa2\x06\x05\x1a\x03\x50\xff\x01",             // bool 255
	"\xa2\x06\x06\x0a\x04\x0d\x01\x00\x00",         // wrong wire type, truncated
	"\xa2\x86\x80\x80\x00\x00",                     // overlong length prefix
	"\xa2\x06\x07\x1a\x05\x08\xff\xff\xff\xff\x0f", // large delay
}

func addFuzzSeeds(f *testing.F, gen func(g *gen) []byte) {
	for _, s := range fuzzEdgeSeeds {
		f.Add([]byte(s))
	}
	for _, v := range vectors {
		f.Add(v.msg.AppendMarshal(nil))
	}
	g := newGen(42)
	for range 40 {
		f.Add(gen(g))
	}
}

func FuzzToFunction(f *testing.F) {
	addFuzzSeeds(f, func(g *gen) []byte { return g.toFunction().AppendMarshal(nil) })
	f.Fuzz(checkToFunction)
}

// checkToFunction is the body of FuzzToFunction.
func checkToFunction(t *testing.T, data []byte) {
	t.Helper()
	var m ToFunction
	err := m.Unmarshal(data)
	dyn, derr := refDecodeTo(newRefTo(), data)
	sdk, serr := refDecodeTo(sdkMessage(t, "ToFunction"), data)
	if (err == nil) != (derr == nil) || (err == nil) != (serr == nil) {
		t.Fatalf("acceptance differs on %x:\nours     %v\ndynamicpb %v\nsdk      %v", data, err, derr, serr)
	}
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
		if !reflect.DeepEqual(m, ToFunction{}) {
			t.Fatalf("message not reset after error: %s", dump(&m))
		}
		return
	}
	if !reflect.DeepEqual(&m, dyn) {
		t.Fatalf("differs from dynamicpb on %x:\nours %s\nref  %s", data, dump(&m), dump(dyn))
	}
	if !reflect.DeepEqual(&m, sdk) {
		t.Fatalf("differs from the SDK on %x:\nours %s\nsdk  %s", data, dump(&m), dump(sdk))
	}

	b := m.AppendMarshal(nil)
	if len(b) != m.Size() {
		t.Fatalf("Size %d, encoded %d", m.Size(), len(b))
	}
	canon := newRefTo()
	if err := discardUnknown.Unmarshal(data, canon); err != nil {
		t.Fatal(err)
	}
	want, err := deterministic.Marshal(canon)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("re-encoding of %x differs from protobuf-go:\nours %x\nref  %x", data, b, want)
	}
	var m2 ToFunction
	if err := m2.Unmarshal(b); err != nil {
		t.Fatalf("re-decoding our own encoding: %v", err)
	}
	if !reflect.DeepEqual(&m2, &m) {
		t.Fatalf("Unmarshal→Marshal→Unmarshal not stable:\n1 %s\n2 %s", dump(&m), dump(&m2))
	}
	if b2 := m2.AppendMarshal(nil); !bytes.Equal(b2, b) {
		t.Fatalf("Marshal not stable: %x vs %x", b, b2)
	}
}

func FuzzFromFunction(f *testing.F) {
	addFuzzSeeds(f, func(g *gen) []byte { return g.fromFunction().AppendMarshal(nil) })
	f.Fuzz(checkFromFunction)
}

// checkFromFunction is the body of FuzzFromFunction.
func checkFromFunction(t *testing.T, data []byte) {
	t.Helper()
	var m FromFunction
	err := m.Unmarshal(data)
	dyn, derr := refDecodeFrom(newRefFrom(), data)
	sdk, serr := refDecodeFrom(sdkMessage(t, "FromFunction"), data)
	if (err == nil) != (derr == nil) || (err == nil) != (serr == nil) {
		t.Fatalf("acceptance differs on %x:\nours     %v\ndynamicpb %v\nsdk      %v", data, err, derr, serr)
	}
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
		if !reflect.DeepEqual(m, FromFunction{}) {
			t.Fatalf("message not reset after error: %s", dump(&m))
		}
		return
	}
	if m.InvocationResult != nil && m.IncompleteInvocationContext != nil {
		t.Fatalf("both oneof members set after Unmarshal of %x", data)
	}
	if !reflect.DeepEqual(&m, dyn) {
		t.Fatalf("differs from dynamicpb on %x:\nours %s\nref  %s", data, dump(&m), dump(dyn))
	}
	if !reflect.DeepEqual(&m, sdk) {
		t.Fatalf("differs from the SDK on %x:\nours %s\nsdk  %s", data, dump(&m), dump(sdk))
	}

	b := m.AppendMarshal(nil)
	if len(b) != m.Size() {
		t.Fatalf("Size %d, encoded %d", m.Size(), len(b))
	}
	canon := newRefFrom()
	if err := discardUnknown.Unmarshal(data, canon); err != nil {
		t.Fatal(err)
	}
	want, err := deterministic.Marshal(canon)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("re-encoding of %x differs from protobuf-go:\nours %x\nref  %x", data, b, want)
	}
	var m2 FromFunction
	if err := m2.Unmarshal(b); err != nil {
		t.Fatalf("re-decoding our own encoding: %v", err)
	}
	if !reflect.DeepEqual(&m2, &m) {
		t.Fatalf("Unmarshal→Marshal→Unmarshal not stable:\n1 %s\n2 %s", dump(&m), dump(&m2))
	}
	if b2 := m2.AppendMarshal(nil); !bytes.Equal(b2, b) {
		t.Fatalf("Marshal not stable: %x vs %x", b, b2)
	}
}

// TestMutatedInputs runs the fuzz checks, deterministically, over every
// truncation and many single-byte corruptions of generated messages, so the
// error paths are exercised by the ordinary test suite too.
func TestMutatedInputs(t *testing.T) {
	g := newGen(3)
	corrupt := []byte{0x00, 0x01, 0x07, 0x0c, 0x0e, 0x7f, 0x80, 0xff}
	mutations := func(b []byte, check func(*testing.T, []byte)) {
		for n := range len(b) {
			check(t, b[:n])
		}
		for i := range b {
			for _, c := range corrupt {
				m := append([]byte(nil), b...)
				m[i] = c
				check(t, m)
			}
		}
	}
	rounds := 60
	if testing.Short() {
		rounds = 10
	}
	for range rounds {
		if b := g.toFunction().AppendMarshal(nil); len(b) < 600 {
			mutations(b, checkToFunction)
		}
		if b := g.fromFunction().AppendMarshal(nil); len(b) < 600 {
			mutations(b, checkFromFunction)
		}
		if t.Failed() {
			return
		}
	}
}
