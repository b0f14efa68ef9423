package state

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/statefun-go/statefun/dataflow"
)

func TestKeyRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []Key{
		{Space: SpaceValue},
		{KeyGroup: 1, Space: SpaceValue, Namespace: "example", Type: "greeter", ID: "alice", Name: "seen"},
		{KeyGroup: 0xffff, Space: SpaceMeta, Name: "\x00\xff"},
		{KeyGroup: 127, Space: SpaceDelayed, Namespace: long, Type: long + "y", ID: "", Name: long},
		{KeyGroup: 300, Space: SpaceTokenIndex, Namespace: "ns", Type: "t", ID: "\x00\x80\xff", Name: ""},
		{KeyGroup: 2, Space: SpaceRequest, Namespace: "名前", Type: "型", ID: "🔑", Name: "状態"},
		{KeyGroup: 3, Space: SpaceValue, ID: strings.Repeat("i", 1<<14)},
	}
	for _, k := range tests {
		b := EncodeKey(nil, k)
		if len(b) != EncodedLen(k) {
			t.Errorf("%v: EncodedLen %d, encoded %d bytes", k, EncodedLen(k), len(b))
		}
		got, err := DecodeKey(b)
		if err != nil {
			t.Fatalf("%v: DecodeKey: %v", k, err)
		}
		if got != k {
			t.Errorf("round trip: got %v, want %v", got, k)
		}
		// Appending keeps dst.
		b2 := EncodeKey([]byte("pre"), k)
		if !bytes.Equal(b2[3:], b) || string(b2[:3]) != "pre" {
			t.Errorf("EncodeKey does not append")
		}
	}
}

func TestDecodeKeyErrors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"short", []byte{0, 1}},
		{"space zero", []byte{0, 1, 0, 0, 0, 0}},
		{"space undefined", []byte{0, 1, 6, 0, 0, 0}},
		{"no namespace len", []byte{0, 1, 1}},
		{"namespace too long", []byte{0, 1, 1, 5, 'a'}},
		{"no type len", []byte{0, 1, 1, 1, 'a'}},
		{"no id len", []byte{0, 1, 1, 0, 0}},
		{"id too long", []byte{0, 1, 1, 0, 0, 3, 'a', 'b'}},
		{"truncated varint", []byte{0, 1, 1, 0x80}},
		{"non-canonical varint", []byte{0, 1, 1, 0x80, 0x00, 0, 0}},
		{"oversized varint", []byte{0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"huge length", []byte{0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if k, err := DecodeKey(tt.b); err == nil {
				t.Fatalf("DecodeKey(%x) = %v, want error", tt.b, k)
			} else if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error %v does not wrap ErrInvalidKey", err)
			}
		})
	}
}

func randString(r *rand.Rand, alphabet string, maxLen int) string {
	n := r.IntN(maxLen + 1)
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// TestKeyOrder checks that the encodings of different key groups and spaces
// never interleave, and that one address's names are contiguous.
func TestKeyOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "\x00\x01\x7f\x80\xffab"
	type enc struct {
		k Key
		b []byte
	}
	var es []enc
	for range 5000 {
		k := Key{
			KeyGroup:  dataflow.KeyGroup(r.IntN(4) * 255), // 0, 255, 510, 765: both bytes matter
			Space:     Space(1 + r.IntN(int(maxSpace))),
			Namespace: randString(r, alphabet, 3),
			Type:      randString(r, alphabet, 3),
			ID:        randString(r, alphabet, 3),
			Name:      randString(r, alphabet, 3),
		}
		if r.IntN(20) == 0 {
			k.ID = strings.Repeat("z", 120+r.IntN(20)) // two-byte lengths
		}
		es = append(es, enc{k, EncodeKey(nil, k)})
	}
	sort.Slice(es, func(i, j int) bool { return bytes.Compare(es[i].b, es[j].b) < 0 })
	type group struct {
		kg dataflow.KeyGroup
		sp Space
	}
	type addr struct {
		g           group
		ns, typ, id string
	}
	seenGroup := map[group]bool{}
	seenAddr := map[addr]bool{}
	for i, e := range es {
		g := group{e.k.KeyGroup, e.k.Space}
		a := addr{g, e.k.Namespace, e.k.Type, e.k.ID}
		if i > 0 {
			p := es[i-1].k
			pg := group{p.KeyGroup, p.Space}
			if pg.kg > g.kg || (pg.kg == g.kg && pg.sp > g.sp) {
				t.Fatalf("order: %v before %v", p, e.k)
			}
			if pg != g && seenGroup[g] {
				t.Fatalf("group %v is not contiguous", g)
			}
			pa := addr{pg, p.Namespace, p.Type, p.ID}
			if pa != a && seenAddr[a] {
				t.Fatalf("address %v is not contiguous", a)
			}
		}
		seenGroup[g] = true
		seenAddr[a] = true
	}
}

func FuzzDecodeKey(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 1, 0, 0, 0})
	f.Add(EncodeKey(nil, Key{KeyGroup: 9, Space: SpaceValue, Namespace: "n", Type: "t", ID: "i", Name: "x"}))
	f.Add([]byte{0, 1, 1, 0x80, 0x00, 0, 0})
	f.Add([]byte{0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := DecodeKey(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error %v does not wrap ErrInvalidKey", err)
			}
			return
		}
		if re := EncodeKey(nil, k); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding %v: %x, input %x", k, re, b)
		}
	})
}

func TestValueHeader(t *testing.T) {
	for _, exp := range []int64{0, 1, -5, 1 << 62} {
		for _, p := range [][]byte{{}, []byte("hello world")} {
			b := make([]byte, valueHeaderLen(exp)+len(p))
			putValue(b, p, exp)
			gp, ge, err := decodeValue(b)
			if err != nil || ge != exp || !bytes.Equal(gp, p) {
				t.Errorf("exp %d payload %q: got %q %d %v", exp, p, gp, ge, err)
			}
		}
	}
	for _, bad := range [][]byte{nil, {0x02}, {0x01, 0, 0}, {0xff, 1}} {
		if _, _, err := decodeValue(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeValue(%x): %v, want ErrCorrupt", bad, err)
		}
	}
}
