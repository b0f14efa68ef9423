package envelope

import (
	"errors"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	cases := []*Envelope{
		{Target: Address{"ns", "fn", "id-1"}, Typename: "io.statefun.types/string", Value: []byte("\x0a\x03abc")},
		{Kind: KindMessage, Target: Address{"a", "b", ""}, HasCaller: true, Caller: Address{"x", "y", "z"}, Typename: "t/t"},
		{Kind: KindEgress, Target: Address{"e", "out", ""}, Typename: "t/t", Value: make([]byte, 300)},
	}
	var buf []byte
	for _, c := range cases {
		buf = AppendEncode(buf, c)
	}
	off := 0
	for i, want := range cases {
		got, n, err := Decode(buf[off:])
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		off += n
		if len(want.Value) == 0 {
			want.Value = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: got %+v want %+v", i, got, want)
		}
	}
	if off != len(buf) {
		t.Fatalf("consumed %d of %d", off, len(buf))
	}
}

func TestDecodeCorrupt(t *testing.T) {
	good := AppendEncode(nil, &Envelope{Target: Address{"ns", "fn", "id"}, Typename: "a/b", Value: []byte("v")})
	for cut := 0; cut < len(good); cut++ {
		if _, _, err := Decode(good[:cut]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: want ErrCorrupt, got %v", cut, err)
		}
	}
	bad := append([]byte(nil), good...)
	bad[0] = 9
	if _, _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad version: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(AppendEncode(nil, &Envelope{Target: Address{"ns", "fn", "id"}, HasCaller: true, Typename: "a/b", Value: []byte("v")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, n, err := Decode(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		e2, _, err := Decode(AppendEncode(nil, e))
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("re-encoding does not round-trip: %v", err)
		}
	})
}
