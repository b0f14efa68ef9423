package state

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/statefun-go/statefun/dataflow"
)

// clock is an injectable test clock.
type clock struct{ t int64 }

func (c *clock) now() int64 { return c.t }

// modes are the cache configurations every behavioural test runs under.
var modes = []struct {
	name string
	wb   int64
}{
	{"default", 0},
	{"tiny", 700}, // a few entries: constant flushing and eviction
	{"disabled", -1},
}

func openMem(t testing.TB, fs vfs.FS, wb int64, c *clock) *Store {
	t.Helper()
	s, err := Open(Options{FS: fs, Dir: "db", WriteBackBytes: wb, Now: c.now, CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func vk(kg int, id, name string) Key {
	return Key{KeyGroup: dataflow.KeyGroup(kg), Space: SpaceValue, Namespace: "ns", Type: "fn", ID: id, Name: name}
}

func mustGet(t testing.TB, s *Store, k Key) (string, bool) {
	t.Helper()
	v, ok, err := s.Get(k)
	if err != nil {
		t.Fatalf("Get(%v): %v", k, err)
	}
	return string(v), ok
}

func expectGet(t testing.TB, s *Store, k Key, want string, wantOK bool) {
	t.Helper()
	v, ok := mustGet(t, s, k)
	if ok != wantOK || v != want {
		t.Fatalf("Get(%v) = %q,%v; want %q,%v", k, v, ok, want, wantOK)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestBasic(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := &clock{t: 1000}
			fs := vfs.NewMem()
			s := openMem(t, fs, m.wb, c)
			a, b := vk(1, "a", "x"), vk(1, "b", "x")
			expectGet(t, s, a, "", false)
			must(t, s.Set(a, []byte("1"), 0))
			expectGet(t, s, a, "1", true)
			must(t, s.Set(a, []byte("22"), 0))
			expectGet(t, s, a, "22", true)
			must(t, s.Set(b, nil, 0)) // empty value is present
			expectGet(t, s, b, "", true)
			must(t, s.Delete(a))
			expectGet(t, s, a, "", false)
			must(t, s.Delete(a)) // deleting an absent key is fine
			must(t, s.Flush())
			expectGet(t, s, b, "", true)
			must(t, s.Close())
			s = openMem(t, fs, m.wb, c)
			expectGet(t, s, a, "", false)
			expectGet(t, s, b, "", true)
			must(t, s.Close())
		})
	}
}

func TestInvalidSpace(t *testing.T) {
	s := openMem(t, vfs.NewMem(), 0, &clock{})
	defer s.Close()
	k := Key{Space: 0}
	if _, _, err := s.Get(k); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Get: %v", err)
	}
	if err := s.Set(k, []byte("x"), 0); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Set: %v", err)
	}
}

func TestTTL(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := &clock{t: 1000}
			fs := vfs.NewMem()
			s := openMem(t, fs, m.wb, c)
			k, k2 := vk(3, "a", "ttl"), vk(3, "b", "ttl")
			must(t, s.Set(k, []byte("v"), 2000))
			must(t, s.Set(k2, []byte("w"), 2000))
			expectGet(t, s, k, "v", true)
			c.t = 1999
			expectGet(t, s, k, "v", true)
			must(t, s.Touch(k, 3000)) // extend
			c.t = 2000                // expiry is exclusive: now >= expiresAt is expired
			expectGet(t, s, k, "v", true)
			expectGet(t, s, k2, "", false)
			must(t, s.Touch(k2, 5000)) // expired: no-op
			expectGet(t, s, k2, "", false)
			must(t, s.Touch(vk(3, "none", "ttl"), 5000)) // absent: no-op
			expectGet(t, s, vk(3, "none", "ttl"), "", false)

			// Expiry survives Flush and reopen.
			must(t, s.Flush())
			must(t, s.Close())
			s = openMem(t, fs, m.wb, c)
			expectGet(t, s, k, "v", true)
			c.t = 3000
			expectGet(t, s, k, "", false)

			// Touch with 0 makes a value permanent.
			must(t, s.Set(k, []byte("p"), 3500))
			must(t, s.Touch(k, 0))
			c.t = 1 << 60
			expectGet(t, s, k, "p", true)

			// A value stored already expired is never returned.
			must(t, s.Set(k2, []byte("old"), 5))
			expectGet(t, s, k2, "", false)
			must(t, s.Close())

			// Expired values read from Pebble are deleted lazily.
			c.t = 0
			s = openMem(t, fs, m.wb, c)
			must(t, s.Set(k2, []byte("x"), 10))
			must(t, s.Close())
			c.t = 20
			s = openMem(t, fs, m.wb, c)
			expectGet(t, s, k2, "", false)
			must(t, s.Close())
			c.t = 0 // travel back in time: the value is gone for good
			s = openMem(t, fs, m.wb, c)
			expectGet(t, s, k2, "", false)
			must(t, s.Close())
		})
	}
}

func collect(t testing.TB, s *Store, r dataflow.KeyGroupRange) map[Key]string {
	t.Helper()
	got := map[Key]string{}
	var prev []byte
	must(t, s.Scan(r, func(k Key, v []byte, _ int64) error {
		if !r.Contains(k.KeyGroup) {
			t.Fatalf("Scan(%v) returned %v", r, k)
		}
		b := EncodeKey(nil, k)
		if prev != nil && bytes.Compare(prev, b) >= 0 {
			t.Fatalf("Scan out of order at %v", k)
		}
		prev = b
		got[k] = string(v)
		return nil
	}))
	return got
}

func TestScanRange(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := &clock{t: 100}
			s := openMem(t, vfs.NewMem(), m.wb, c)
			defer s.Close()
			want := map[Key]string{}
			for kg := range 10 {
				for i := range 20 {
					for _, sp := range []Space{SpaceValue, SpaceDelayed, SpaceMeta} {
						k := Key{KeyGroup: dataflow.KeyGroup(kg * 300), Space: sp, Namespace: "n", Type: "t", ID: fmt.Sprint(i), Name: "s"}
						v := fmt.Sprintf("%d/%d/%d", kg, i, sp)
						var exp int64
						if i%5 == 0 {
							exp = 150 // expires before the scan
						}
						must(t, s.Set(k, []byte(v), exp))
						if kg >= 3 && kg < 6 && exp == 0 {
							want[k] = v
						}
					}
				}
			}
			c.t = 200
			r := dataflow.KeyGroupRange{Start: 3 * 300, End: 6 * 300}
			got := collect(t, s, r)
			if len(got) != len(want) {
				t.Fatalf("Scan returned %d values, want %d", len(got), len(want))
			}
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("Scan %v = %q, want %q", k, got[k], v)
				}
			}
			if n := len(collect(t, s, dataflow.KeyGroupRange{Start: 5, End: 5})); n != 0 {
				t.Fatalf("empty range returned %d", n)
			}
			stop := errors.New("stop")
			n := 0
			err := s.Scan(r, func(Key, []byte, int64) error { n++; return stop })
			if !errors.Is(err, stop) || n != 1 {
				t.Fatalf("Scan error: %v after %d", err, n)
			}
		})
	}
}

func TestCheckpoint(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			c := &clock{t: 1}
			s, err := Open(Options{Dir: filepath.Join(dir, "db"), WriteBackBytes: m.wb, Now: c.now})
			must(t, err)
			defer s.Close()
			for i := range 100 {
				must(t, s.Set(vk(i%7, fmt.Sprint(i), "v"), []byte(fmt.Sprint("before", i)), 0))
			}
			must(t, s.Delete(vk(3, "3", "v")))
			all := dataflow.KeyGroupRange{Start: 0, End: 100}
			want := collect(t, s, all)
			chk := filepath.Join(dir, "chk-1")
			must(t, s.Checkpoint(chk))
			if err := s.Checkpoint(chk); err == nil {
				t.Fatal("Checkpoint into an existing directory succeeded")
			}
			// Later writes are not in the checkpoint.
			for i := range 100 {
				must(t, s.Set(vk(i%7, fmt.Sprint(i), "v"), []byte("after"), 0))
			}
			must(t, s.Set(vk(50, "new", "v"), []byte("after"), 0))
			must(t, s.Flush())

			cs, err := Open(Options{Dir: chk, WriteBackBytes: m.wb, Now: c.now})
			must(t, err)
			defer cs.Close()
			got := collect(t, cs, all)
			if len(got) != len(want) || len(want) != 99 {
				t.Fatalf("checkpoint has %d values, want %d (99)", len(got), len(want))
			}
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("checkpoint %v = %q, want %q", k, got[k], v)
				}
			}
			expectGet(t, cs, vk(50, "new", "v"), "", false)
		})
	}
}

func TestClose(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s := openMem(t, vfs.NewMem(), m.wb, &clock{})
			must(t, s.Set(vk(1, "a", "b"), []byte("x"), 0))
			must(t, s.Close())
			must(t, s.Close())
			k := vk(1, "a", "b")
			if _, _, err := s.Get(k); !errors.Is(err, ErrClosed) {
				t.Fatalf("Get after Close: %v", err)
			}
			for name, err := range map[string]error{
				"Set":        s.Set(k, []byte("y"), 0),
				"Touch":      s.Touch(k, 1),
				"Delete":     s.Delete(k),
				"Flush":      s.Flush(),
				"Checkpoint": s.Checkpoint("x"),
				"Scan":       s.Scan(dataflow.KeyGroupRange{End: 10}, func(Key, []byte, int64) error { return nil }),
			} {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("%s after Close: %v", name, err)
				}
			}
			if _, err := s.SweepExpired(10); !errors.Is(err, ErrClosed) {
				t.Errorf("SweepExpired after Close: %v", err)
			}
			_ = s.Stats()
		})
	}
}

func TestOpenOptions(t *testing.T) {
	if _, err := Open(Options{}); err == nil {
		t.Fatal("Open without Dir succeeded")
	}
	s, err := Open(Options{FS: vfs.NewMem()}) // in-memory FS: Dir optional
	must(t, err)
	must(t, s.Close())
}

func TestSweepExpired(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := &clock{t: 0}
			fs := vfs.NewMem()
			s := openMem(t, fs, m.wb, c)
			const n = 3000
			for i := range n {
				var exp int64
				if i%3 != 0 {
					exp = 100
				}
				must(t, s.Set(vk(i%50, fmt.Sprint(i), "v"), []byte("x"), exp))
			}
			must(t, s.Flush())
			c.t = 100
			// A dirty re-write of an expired key must survive the sweep.
			must(t, s.Set(vk(1, "1", "v"), []byte("fresh"), 0))
			total := 0
			for range 100 {
				d, err := s.SweepExpired(150)
				must(t, err)
				if d > 150 {
					t.Fatalf("swept %d > limit", d)
				}
				total += d
				if d == 0 {
					break
				}
			}
			if want := n*2/3 - 1; total != want {
				t.Fatalf("swept %d, want %d", total, want)
			}
			expectGet(t, s, vk(1, "1", "v"), "fresh", true)
			got := collect(t, s, dataflow.KeyGroupRange{End: 50})
			if len(got) != n/3+1 {
				t.Fatalf("%d live values, want %d", len(got), n/3+1)
			}
			// Nothing expired is left in Pebble.
			c.t = 0
			must(t, s.Close())
			s = openMem(t, fs, m.wb, c)
			defer s.Close()
			if got := collect(t, s, dataflow.KeyGroupRange{End: 50}); len(got) != n/3+1 {
				t.Fatalf("%d values after sweep and clock reset, want %d", len(got), n/3+1)
			}
		})
	}
}

func TestEvictionBounded(t *testing.T) {
	const budget = 64 << 10
	s := openMem(t, vfs.NewMem(), budget, &clock{})
	defer s.Close()
	for i := range 20000 {
		k := vk(i%128, fmt.Sprint(i), "count")
		if _, _, err := s.Get(k); err != nil {
			t.Fatal(err)
		}
		must(t, s.Set(k, []byte("123456789"), 0))
		if st := s.Stats(); st.Bytes > budget {
			t.Fatalf("after %d keys: %d bytes > budget %d", i, st.Bytes, budget)
		}
	}
	st := s.Stats()
	if st.Evictions == 0 || st.Flushes == 0 {
		t.Fatalf("no evictions/flushes: %+v", st)
	}
	// A record is ~35 bytes here (header 4, key ~21, value 9) plus its
	// index slot.
	if max := budget / 35; st.Entries > max {
		t.Fatalf("%d entries cached, budget allows at most %d", st.Entries, max)
	}
	if min := budget / 2 / 64; st.Entries < min {
		t.Fatalf("only %d entries cached", st.Entries)
	}
	// Every key is still readable.
	for i := range 20000 {
		expectGet(t, s, vk(i%128, fmt.Sprint(i), "count"), "123456789", true)
	}
	t.Logf("%+v", s.Stats())
}

// TestNegativeCache checks that a new key costs one Pebble read, not two.
func TestNegativeCache(t *testing.T) {
	s := openMem(t, vfs.NewMem(), 0, &clock{})
	defer s.Close()
	k := vk(1, "new", "x")
	expectGet(t, s, k, "", false)
	expectGet(t, s, k, "", false)
	must(t, s.Set(k, []byte("v"), 0))
	expectGet(t, s, k, "v", true)
	if st := s.Stats(); st.Misses != 1 || st.Hits != 2 {
		t.Fatalf("stats %+v, want 1 miss and 2 hits", st)
	}
}

// TestGetSliceStable checks that a slice returned by Get keeps its bytes
// while other Gets insert, evict and compact, and that values aliasing the
// cache can be passed back to Set.
func TestGetSliceStable(t *testing.T) {
	s := openMem(t, vfs.NewMem(), 4<<10, &clock{})
	defer s.Close()
	a, b := vk(1, "a", "x"), vk(1, "b", "x")
	must(t, s.Set(a, []byte("value-a"), 0))
	must(t, s.Set(b, []byte("value-b"), 0))
	va, _, err := s.Get(a)
	must(t, err)
	vb, _, err := s.Get(b)
	must(t, err)
	for i := range 2000 { // misses: inserts, flushes, evictions, compactions
		if _, _, err := s.Get(vk(2, fmt.Sprint(i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	if string(va) != "value-a" || string(vb) != "value-b" {
		t.Fatalf("slices changed: %q %q", va, vb)
	}
	// Touch (relocating: no expiry field yet), Delete and writes of other
	// keys do not overwrite a returned value either.
	va, _, _ = s.Get(a)
	vb, _, _ = s.Get(b)
	must(t, s.Touch(a, 1<<61))
	must(t, s.Touch(a, 0))
	must(t, s.Delete(b))
	for i := range 200 {
		must(t, s.Set(vk(3, fmt.Sprint(i), "x"), []byte("other-value"), 0))
	}
	if string(va) != "value-a" || string(vb) != "value-b" {
		t.Fatalf("slices changed: %q %q", va, vb)
	}
	must(t, s.Set(b, []byte("value-b"), 0))
	if s.Stats().Evictions == 0 {
		t.Fatal("no evictions")
	}
	// Values that alias the cache.
	va, _, _ = s.Get(a)
	must(t, s.Set(b, va, 0)) // b := a
	expectGet(t, s, b, "value-a", true)
	va, _, _ = s.Get(a)
	must(t, s.Set(a, va[:5], 0)) // shrink in place from its own bytes
	expectGet(t, s, a, "value", true)
	must(t, s.Touch(a, 1<<60)) // relocates (the record had no expiry field)
	expectGet(t, s, a, "value", true)
	// The last record grows: rewritten at the tail.
	c := vk(1, "c", "x")
	expectGet(t, s, c, "", false)
	vb, _, _ = s.Get(b)
	must(t, s.Set(c, append(vb, "-and-more"...), 0))
	expectGet(t, s, c, "value-a-and-more", true)
	expectGet(t, s, b, "value-a", true)
	must(t, s.checkInvariants())
}

// TestLargeValues checks values larger than the whole cache budget.
func TestLargeValues(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			fs := vfs.NewMem()
			s := openMem(t, fs, m.wb, &clock{})
			big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
			must(t, s.Set(vk(1, "big", "x"), big, 0))
			must(t, s.Set(vk(1, "small", "x"), []byte("s"), 0))
			v, ok, err := s.Get(vk(1, "big", "x"))
			if err != nil || !ok || !bytes.Equal(v, big) {
				t.Fatalf("Get big: %d bytes, %v, %v", len(v), ok, err)
			}
			must(t, s.checkInvariants())
			must(t, s.Close())
			s = openMem(t, fs, m.wb, &clock{})
			defer s.Close()
			v, ok, err = s.Get(vk(1, "big", "x"))
			if err != nil || !ok || !bytes.Equal(v, big) {
				t.Fatalf("Get big after reopen: %d bytes, %v, %v", len(v), ok, err)
			}
			expectGet(t, s, vk(1, "small", "x"), "s", true)
		})
	}
}

// TestCheckpointAsyncHoldsTheStateOfTheCall checks that writes made while
// an asynchronous checkpoint runs never reach it, with the cache on (writes
// absorbed) and off (writes wait).
func TestCheckpointAsyncHoldsTheStateOfTheCall(t *testing.T) {
	for _, wb := range []int64{0, -1, 4 << 10} {
		dir := t.TempDir()
		st, err := Open(Options{Dir: filepath.Join(dir, "db"), WriteBackBytes: wb})
		if err != nil {
			t.Fatal(err)
		}
		k := func(i int) Key {
			return Key{KeyGroup: dataflow.KeyGroup(i % 128), Space: SpaceValue, Namespace: "n", Type: "t", ID: fmt.Sprint(i), Name: "v"}
		}
		for i := 0; i < 500; i++ {
			if err := st.Set(k(i), []byte("before"), 0); err != nil {
				t.Fatal(err)
			}
		}
		wait, err := st.CheckpointAsync(filepath.Join(dir, "ckpt"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2000; i++ { // overwrite and add, forcing shrinks in the small cache
			if err := st.Set(k(i), []byte("after-after-after"), 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		cp, err := Open(Options{Dir: filepath.Join(dir, "ckpt")})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = cp.Scan(dataflow.KeyGroupRange{Start: 0, End: 128}, func(_ Key, v []byte, _ int64) error {
			if string(v) != "before" {
				return fmt.Errorf("checkpoint holds a later write %q", v)
			}
			n++
			return nil
		})
		cp.Close()
		if err != nil || n != 500 {
			t.Fatalf("wb=%d: %d values, err %v", wb, n, err)
		}
	}
}
