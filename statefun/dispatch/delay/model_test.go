package delay

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/statefun-go/statefun/statefun/envelope"
)

var seedFlag = flag.Uint64("seed", 0, "seed for TestModel (0: derive one from the clock; the seed is always logged)")

// model is the naive reference: a slice in insertion order, scanned
// linearly. It encodes the contract directly: fire in (fireAt, insertion)
// order, tokens unique per owner among pending messages.
type model struct {
	pending []modelMsg
}

type modelMsg struct {
	owner  Owner
	token  string
	fireAt int64
	msg    string
}

func (m *model) add(owner Owner, token string, fireAt int64, msg string) error {
	if token != "" {
		for _, p := range m.pending {
			if p.owner == owner && p.token == token {
				return errors.New("duplicate")
			}
		}
	}
	m.pending = append(m.pending, modelMsg{owner, token, fireAt, msg})
	return nil
}

func (m *model) cancel(owner Owner, token string) (bool, error) {
	if token == "" {
		return false, errors.New("empty")
	}
	for i, p := range m.pending {
		if p.owner == owner && p.token == token {
			m.pending = slices.Delete(m.pending, i, i+1)
			return true, nil
		}
	}
	return false, nil
}

// ordered returns the pending messages in firing order. The slice is in
// insertion order, so a stable sort by fireAt gives (fireAt, insertion).
func (m *model) ordered() []modelMsg {
	s := slices.Clone(m.pending)
	slices.SortStableFunc(s, func(a, b modelMsg) int { return cmp.Compare(a.fireAt, b.fireAt) })
	return s
}

func (m *model) popDue(now int64) []string {
	var out []string
	for _, p := range m.ordered() {
		if p.fireAt <= now {
			out = append(out, p.msg)
		}
	}
	m.pending = slices.DeleteFunc(m.pending, func(p modelMsg) bool { return p.fireAt <= now })
	return out
}

func (m *model) next() (int64, bool) {
	if len(m.pending) == 0 {
		return 0, false
	}
	lo := m.pending[0].fireAt
	for _, p := range m.pending[1:] {
		lo = min(lo, p.fireAt)
	}
	return lo, true
}

func TestModel(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	owners := []Owner{
		{Namespace: "ns", Type: "a", ID: "1"},
		{Namespace: "ns", Type: "a", ID: "2"},
		{Namespace: "ns", Type: "b", ID: "1"}, // same id as the first, other type
		{Namespace: "other", Type: "a", ID: "1"},
	}
	tokens := []string{"", "", "t1", "t2", "t3"}

	const rounds = 200
	const steps = 300
	var ops, fired, cancelled, dups int
	for round := 0; round < rounds; round++ {
		b := NewBuffer()
		m := &model{}
		var now int64
		var trace []string
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d round %d: %s\ntrace:\n  %s", seed, round, fmt.Sprintf(format, args...), strings.Join(trace, "\n  "))
		}
		for step := 0; step < steps; step++ {
			ops++
			switch r := rng.IntN(100); {
			case r < 45: // add, with deadlines clustered so ties are frequent
				owner := owners[rng.IntN(len(owners))]
				token := tokens[rng.IntN(len(tokens))]
				fireAt := now + int64(rng.IntN(6))*5 - 5 // now-5 .. now+20, delay 0 included
				msg := fmt.Sprintf("r%d-s%d", round, step)
				trace = append(trace, fmt.Sprintf("add %s %q %d %s", owner, token, fireAt, msg))
				e := &envelope.Envelope{Target: owner, Caller: owner, HasCaller: true, Value: []byte(msg)}
				add := b.Add
				if rng.IntN(4) == 0 {
					add = b.Restore
				}
				gotErr := add(owner, token, fireAt, e)
				wantErr := m.add(owner, token, fireAt, msg)
				if (gotErr != nil) != (wantErr != nil) {
					fail("add: got error %v, model error %v", gotErr, wantErr)
				}
				if gotErr != nil {
					dups++
					want := fmt.Sprintf("delay: cancellation token %q of %s is already used by a pending delayed message", token, owner)
					if gotErr.Error() != want {
						fail("add: error %q, want %q", gotErr, want)
					}
				}
			case r < 70: // cancel
				owner := owners[rng.IntN(len(owners))]
				token := tokens[rng.IntN(len(tokens))]
				trace = append(trace, fmt.Sprintf("cancel %s %q", owner, token))
				got, gotErr := b.Cancel(owner, token)
				want, wantErr := m.cancel(owner, token)
				if got != want || (gotErr != nil) != (wantErr != nil) {
					fail("cancel: got (%v, %v), model (%v, %v)", got, gotErr, want, wantErr)
				}
				if gotErr != nil && !errors.Is(gotErr, ErrEmptyToken) {
					fail("cancel: error %v is not ErrEmptyToken", gotErr)
				}
				if got {
					cancelled++
				}
			case r < 95: // advance time and pop
				now += int64(rng.IntN(8))
				trace = append(trace, fmt.Sprintf("pop %d", now))
				var got []string
				n := b.PopDue(now, func(e *envelope.Envelope) { got = append(got, string(e.Value)) })
				want := m.popDue(now)
				if n != len(got) || !slices.Equal(got, want) {
					fail("pop %d: got %d %v, model %v", now, n, got, want)
				}
				fired += n
			default: // snapshot, and sometimes restart from it
				trace = append(trace, "snapshot")
				var got []string
				nb := NewBuffer()
				err := b.Snapshot(func(owner Owner, token string, fireAt int64, e *envelope.Envelope) error {
					got = append(got, fmt.Sprintf("%s|%s|%d|%s", owner, token, fireAt, e.Value))
					return nb.Restore(owner, token, fireAt, e)
				})
				if err != nil {
					fail("snapshot: %v", err)
				}
				var want []string
				for _, p := range m.ordered() {
					want = append(want, fmt.Sprintf("%s|%s|%d|%s", p.owner, p.token, p.fireAt, p.msg))
				}
				if !slices.Equal(got, want) {
					fail("snapshot:\n got %v\nwant %v", got, want)
				}
				if rng.IntN(2) == 0 {
					trace = append(trace, "restart")
					b = nb
				}
			}
			if b.Len() != len(m.pending) {
				fail("len %d, model %d", b.Len(), len(m.pending))
			}
			gotAt, gotOK := b.NextDeadline()
			wantAt, wantOK := m.next()
			if gotAt != wantAt || gotOK != wantOK {
				fail("next: got (%d, %v), model (%d, %v)", gotAt, gotOK, wantAt, wantOK)
			}
			checkInvariants(t, b)
		}
	}
	t.Logf("%d ops: %d fired, %d cancelled, %d duplicate-token errors", ops, fired, cancelled, dups)
	if fired == 0 || cancelled == 0 || dups == 0 {
		t.Fatalf("the generator did not exercise every path")
	}
}

// checkInvariants checks the heap indexes and the token index.
func checkInvariants(t *testing.T, b *Buffer) {
	t.Helper()
	withToken := 0
	for i, en := range b.h {
		if en.index != i {
			t.Fatalf("heap entry %d has index %d", i, en.index)
		}
		if i > 0 && b.h[(i-1)/2].compare(en) > 0 {
			t.Fatalf("heap order broken at %d", i)
		}
		if en.token != "" {
			withToken++
			if b.tokens[tokenKey{en.owner, en.token}] != en {
				t.Fatalf("token %q of %s not indexed", en.token, en.owner)
			}
		}
	}
	if withToken != len(b.tokens) {
		t.Fatalf("%d entries with tokens, %d in the index", withToken, len(b.tokens))
	}
}

// TestPopDueReentrant checks that fn may add and cancel while PopDue runs.
func TestPopDueReentrant(t *testing.T) {
	b := NewBuffer()
	o := Owner{Namespace: "ns", Type: "fn", ID: "1"}
	mk := func(s string) *envelope.Envelope { return &envelope.Envelope{Value: []byte(s)} }
	for _, s := range []string{"a", "b"} {
		if err := b.Add(o, s, 10, mk(s)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	n := b.PopDue(10, func(e *envelope.Envelope) {
		got = append(got, string(e.Value))
		if string(e.Value) == "a" {
			// b is already popped: cancelling it finds nothing, and its
			// token is free.
			if found, err := b.Cancel(o, "b"); found || err != nil {
				t.Fatalf("cancel b during pop: %v %v", found, err)
			}
			if err := b.Add(o, "b", 5, mk("b2")); err != nil {
				t.Fatalf("re-add b: %v", err)
			}
		}
	})
	if n != 2 || !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("popped %d %v", n, got)
	}
	if b.Len() != 1 {
		t.Fatalf("len %d", b.Len())
	}
	b.PopDue(10, func(e *envelope.Envelope) { got = append(got, string(e.Value)) })
	if !slices.Equal(got, []string{"a", "b", "b2"}) {
		t.Fatalf("got %v", got)
	}
}

func TestSnapshotStopsAtError(t *testing.T) {
	b := NewBuffer()
	o := Owner{Namespace: "ns", Type: "fn", ID: "1"}
	for i := 0; i < 3; i++ {
		if err := b.Add(o, "", int64(i), &envelope.Envelope{}); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	calls := 0
	err := b.Snapshot(func(Owner, string, int64, *envelope.Envelope) error {
		calls++
		return boom
	})
	if !errors.Is(err, boom) || calls != 1 || b.Len() != 3 {
		t.Fatalf("err %v calls %d len %d", err, calls, b.Len())
	}
	if err := b.Add(o, "", 0, nil); err == nil {
		t.Fatal("nil envelope accepted")
	}
}

func BenchmarkAddPop(b *testing.B) {
	buf := NewBuffer()
	o := Owner{Namespace: "ns", Type: "fn", ID: "1"}
	e := &envelope.Envelope{}
	b.ReportAllocs()
	var now int64
	for b.Loop() {
		_ = buf.Add(o, "", now+int64(now%7), e)
		if now%8 == 0 {
			buf.PopDue(now, func(*envelope.Envelope) {})
		}
		now++
	}
}

func BenchmarkAddCancel(b *testing.B) {
	buf := NewBuffer()
	o := Owner{Namespace: "ns", Type: "fn", ID: "1"}
	e := &envelope.Envelope{}
	for i := 0; i < 10000; i++ {
		_ = buf.Add(o, "", int64(i), e)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = buf.Add(o, "tok", 5000, e)
		_, _ = buf.Cancel(o, "tok")
	}
}
