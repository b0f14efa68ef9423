package opstate

import (
	"errors"
	"reflect"
	"testing"

	"github.com/statefun-go/statefun/statefun/envelope"
)

func TestRoundTrip(t *testing.T) {
	e := func(id string) *envelope.Envelope {
		return &envelope.Envelope{Target: envelope.Address{Namespace: "n", Type: "t", ID: id}, Typename: "a/b", Value: []byte(id)}
	}
	s := &State{
		Remote:  []*envelope.Envelope{e("r1"), e("r2")},
		Queued:  []*envelope.Envelope{e("q1")},
		Delayed: []Delayed{{Owner: envelope.Address{Namespace: "n", Type: "t", ID: "o"}, Token: "tok", FireAt: -5, Envelope: e("d1")}},
	}
	got, err := Decode(Encode(s))
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if got, err := Decode(Encode(&State{})); err != nil || len(got.Remote)+len(got.Queued)+len(got.Delayed) != 0 {
		t.Fatalf("empty: %+v %v", got, err)
	}
	b := Encode(s)
	for cut := 0; cut < len(b); cut++ {
		if _, err := Decode(b[:cut]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: %v", cut, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(&State{Queued: []*envelope.Envelope{{Typename: "a/b"}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			return
		}
		if _, err := Decode(Encode(s)); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
	})
}
