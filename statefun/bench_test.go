package statefun

import (
	"testing"
)

var (
	sinkBytes  []byte
	sinkString string
	sinkBool   bool
)

func BenchmarkDecodeValueInt64(b *testing.B) {
	data := h("09 2A00000000000000")
	var v int64
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := DecodeValue(Int64Type, data, &v); err != nil {
			b.Fatal(err)
		}
	}
	if v != 42 {
		b.Fatal(v)
	}
}

func BenchmarkDecodeValueBool(b *testing.B) {
	data := h("08 01")
	var v bool
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := DecodeValue(BoolType, data, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeValueFloat64(b *testing.B) {
	data := h("09 000000000000F03F")
	var v float64
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := DecodeValue(Float64Type, data, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeValueString(b *testing.B) {
	data := h("0A 05 68656C6C6F")
	var v string
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := DecodeValue(StringType, data, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeValueInt64(b *testing.B) {
	var v interface{} = int64(1) << 40 // boxed once, outside the loop
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		out, err := EncodeValue(Int64Type, v)
		if err != nil {
			b.Fatal(err)
		}
		sinkBytes = out
	}
}

func BenchmarkEncodeValueInt64Zero(b *testing.B) {
	var v interface{} = int64(0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		out, err := EncodeValue(Int64Type, v)
		if err != nil {
			b.Fatal(err)
		}
		sinkBytes = out
	}
}

func BenchmarkEncodeValueString(b *testing.B) {
	var v interface{} = "hello world"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		out, err := EncodeValue(StringType, v)
		if err != nil {
			b.Fatal(err)
		}
		sinkBytes = out
	}
}

func BenchmarkTypeNameString(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sinkString = TypeNameString(Int64Type)
	}
}

func BenchmarkMessageFromTypedValue(b *testing.B) {
	data := h("09 2A00000000000000")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m := MessageFromTypedValue(&greeter, "io.statefun.types/long", data)
		sinkBool = m.IsInt64() && m.AsInt64() == 42
	}
}

func BenchmarkMessageBuilderBuild(b *testing.B) {
	mb := MessageBuilder{Target: greeter, Value: int64(1) << 40}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, _, v, err := mb.Build()
		if err != nil {
			b.Fatal(err)
		}
		sinkBytes = v
	}
}

// TestAllocations turns the allocation guarantees of the fast paths into
// regular test failures.
func TestAllocations(t *testing.T) {
	long := h("09 2A00000000000000")
	var i64 int64
	var boxed interface{} = int64(1) << 40
	var zero interface{} = int64(0)
	var b bool
	var f32 float32
	tests := []struct {
		name string
		max  float64
		f    func()
	}{
		{"DecodeValue/int64", 0, func() { _ = DecodeValue(Int64Type, long, &i64) }},
		{"DecodeValue/bool", 0, func() { _ = DecodeValue(BoolType, h8x01, &b) }},
		{"DecodeValue/float32-empty", 0, func() { _ = DecodeValue(Float32Type, nil, &f32) }},
		{"DecodeValue/int64-with-unknown-field", 0, func() { _ = DecodeValue(Int64Type, longWithUnknown, &i64) }},
		{"EncodeValue/int64", 1, func() { sinkBytes, _ = EncodeValue(Int64Type, boxed) }},
		{"EncodeValue/int64-zero", 0, func() { sinkBytes, _ = EncodeValue(Int64Type, zero) }},
		{"TypeNameString/primitive", 0, func() { sinkString = TypeNameString(StringType) }},
		{"Message/IsInt64+AsInt64", 0, func() {
			m := MessageFromTypedValue(nil, "io.statefun.types/long", long)
			sinkBool = m.IsInt64() && m.AsInt64() == 42
		}},
	}
	for _, tc := range tests {
		if got := testing.AllocsPerRun(100, tc.f); got > tc.max {
			t.Errorf("%s: %v allocations per run, want at most %v", tc.name, got, tc.max)
		}
	}
}

var (
	h8x01           = h("08 01")
	longWithUnknown = h("10 01 09 2A00000000000000")
)
