package feedback

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/statefun-go/statefun/statefun/envelope"
)

// rec builds a record whose value carries seq, padded to pad bytes.
func rec(seq uint64, pad int) *envelope.Envelope {
	v := make([]byte, 8+pad)
	binary.LittleEndian.PutUint64(v, seq)
	return &envelope.Envelope{
		Target:    envelope.Address{Namespace: "ns", Type: "fn", ID: fmt.Sprintf("id-%d", seq%17)},
		Caller:    envelope.Address{Namespace: "ns", Type: "caller", ID: "c"},
		HasCaller: seq%2 == 0,
		Typename:  "io.statefun.types/long",
		Value:     v,
	}
}

func seqOf(t testing.TB, e *envelope.Envelope) uint64 {
	t.Helper()
	if len(e.Value) < 8 {
		t.Fatalf("value too short: %q", e.Value)
	}
	return binary.LittleEndian.Uint64(e.Value)
}

// expectation checks the drained stream: records in seq order, and a marker
// m wherever the producer put it (after record markerAfter[m]).
type checker struct {
	t       testing.TB
	next    uint64 // next record seq expected
	markers uint64 // next marker id expected
	// markerEvery: the producer adds marker k after record (k+1)*markerEvery-1.
	markerEvery uint64
}

func (c *checker) item(it Item) error {
	if it.IsMarker {
		if it.Envelope != nil {
			return fmt.Errorf("marker %d carries an envelope", it.Marker)
		}
		if it.Marker != c.markers {
			return fmt.Errorf("marker %d, want %d", it.Marker, c.markers)
		}
		if c.markerEvery > 0 && c.next != (c.markers+1)*c.markerEvery {
			return fmt.Errorf("marker %d after record %d, want after %d", it.Marker, c.next, (c.markers+1)*c.markerEvery)
		}
		c.markers++
		return nil
	}
	if got := binary.LittleEndian.Uint64(it.Envelope.Value); got != c.next {
		return fmt.Errorf("record %d, want %d", got, c.next)
	}
	if want := rec(c.next, len(it.Envelope.Value)-8); !envEqual(it.Envelope, want) {
		return fmt.Errorf("record %d: got %+v want %+v", c.next, it.Envelope, want)
	}
	c.next++
	return nil
}

func envEqual(a, b *envelope.Envelope) bool {
	return a.Kind == b.Kind && a.Target == b.Target && a.HasCaller == b.HasCaller &&
		(!a.HasCaller || a.Caller == b.Caller) && a.Typename == b.Typename && string(a.Value) == string(b.Value)
}

func mustAdd(t testing.TB, q *Queue, e *envelope.Envelope) {
	t.Helper()
	if err := q.Add(e); err != nil {
		t.Fatal(err)
	}
}

func mustMarker(t testing.TB, q *Queue, id uint64) {
	t.Helper()
	if err := q.AddMarker(id); err != nil {
		t.Fatal(err)
	}
}

func drainAll(t testing.TB, q *Queue) []Item {
	t.Helper()
	var out []Item
	if err := q.Drain(func(it Item) error { out = append(out, it); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func describe(items []Item) string {
	var s []string
	for _, it := range items {
		if it.IsMarker {
			s = append(s, fmt.Sprintf("M%d", it.Marker))
		} else {
			s = append(s, fmt.Sprint(binary.LittleEndian.Uint64(it.Envelope.Value)))
		}
	}
	return strings.Join(s, " ")
}

func spillFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestNotifyTransitions counts notifications in one goroutine: exactly one
// per empty -> non-empty transition, on the memory and the spill path.
func TestNotifyTransitions(t *testing.T) {
	for _, spill := range []bool{false, true} {
		t.Run(fmt.Sprintf("spill=%v", spill), func(t *testing.T) {
			notified := 0
			opts := Options{Notify: func() { notified++ }}
			if spill {
				opts.MemoryBytes = 1 // everything but nothing fits: all items spill
				opts.SpillDir = t.TempDir()
			}
			q := NewQueue(opts)
			defer q.Close()
			expect := func(n int) {
				t.Helper()
				if notified != n {
					t.Fatalf("notified %d times, want %d", notified, n)
				}
			}
			expect(0)
			mustAdd(t, q, rec(0, 0))
			expect(1)
			mustAdd(t, q, rec(1, 0))
			mustMarker(t, q, 0)
			mustAdd(t, q, rec(2, 0))
			expect(1)
			if got := describe(drainAll(t, q)); got != "0 1 M0 2" {
				t.Fatalf("drained %q", got)
			}
			expect(1)
			// Drain of an empty queue neither delivers nor notifies.
			if got := drainAll(t, q); len(got) != 0 {
				t.Fatalf("drained %q from an empty queue", describe(got))
			}
			expect(1)
			// A marker on an empty queue notifies too.
			mustMarker(t, q, 1)
			expect(2)
			mustAdd(t, q, rec(3, 0))
			mustAdd(t, q, rec(4, 0))
			expect(2)
			// fn fails on record 3: it counts as delivered, 4 stays queued,
			// so the queue is not empty and adding does not notify.
			boom := errors.New("boom")
			var got []Item
			err := q.Drain(func(it Item) error {
				got = append(got, it)
				if !it.IsMarker && seqOf(t, it.Envelope) == 3 {
					return boom
				}
				return nil
			})
			if !errors.Is(err, boom) || describe(got) != "M1 3" {
				t.Fatalf("drain: %v %q", err, describe(got))
			}
			if q.Len() != 1 {
				t.Fatalf("len %d after the failed drain", q.Len())
			}
			mustAdd(t, q, rec(5, 0))
			expect(2)
			if got := describe(drainAll(t, q)); got != "4 5" {
				t.Fatalf("drained %q", got)
			}
			expect(2)
			mustAdd(t, q, rec(6, 0))
			expect(3)
			// An item added while Drain runs is left for the next Drain,
			// which Drain re-arms with Notify.
			got = nil
			err = q.Drain(func(it Item) error {
				got = append(got, it)
				if !it.IsMarker && seqOf(t, it.Envelope) == 6 {
					mustAdd(t, q, rec(7, 0))
				}
				return nil
			})
			if err != nil || describe(got) != "6" {
				t.Fatalf("drain: %v %q", err, describe(got))
			}
			expect(4)
			if got := describe(drainAll(t, q)); got != "7" {
				t.Fatalf("drained %q", got)
			}
			expect(4)
			if s := q.Stats(); s.Items != 0 || s.MemoryBytes != 0 || s.SpilledItems != 0 || s.SpilledBytes != 0 {
				t.Fatalf("stats after draining: %+v", s)
			}
			if spill && q.Stats().SpilledItemsTotal != 10 {
				t.Fatalf("stats: %+v, want 10 spilled", q.Stats())
			}
		})
	}
}

// TestSpillTransitions walks memory -> spill (open page and written pages)
// -> memory in one goroutine and checks order, counters and the file.
func TestSpillTransitions(t *testing.T) {
	dir := t.TempDir()
	q := NewQueue(Options{MemoryBytes: 2000, SpillDir: dir})
	defer q.Close()
	c := &checker{t: t}
	var seq, marker uint64
	add := func(n int) {
		for i := 0; i < n; i++ {
			mustAdd(t, q, rec(seq, 8))
			seq++
			if seq%100 == 0 {
				mustMarker(t, q, marker)
				marker++
			}
		}
	}
	drain := func(max int) int {
		n := 0
		stop := errors.New("stop")
		err := q.Drain(func(it Item) error {
			if err := c.item(it); err != nil {
				t.Fatal(err)
			}
			n++
			if n == max {
				return stop
			}
			return nil
		})
		if err != nil && !errors.Is(err, stop) {
			t.Fatal(err)
		}
		return n
	}
	c.markerEvery = 100

	add(10) // within budget
	if s := q.Stats(); s.SpilledItemsTotal != 0 || s.SpillFiles != 0 || s.MemoryBytes == 0 {
		t.Fatalf("stats: %+v", s)
	}
	add(10000) // spills several pages
	s := q.Stats()
	if s.SpillPagesWritten < 3 || s.SpillFiles != 1 || s.SpilledItems == 0 || s.MemoryBytes > 2000 {
		t.Fatalf("stats after spilling: %+v", s)
	}
	if s.Items != 10010+100 {
		t.Fatalf("items %d", s.Items)
	}
	// Drain part of the memory items and part of the first page.
	drain(5)
	drain(2000)
	// The spill is not empty: new items still spill, even though memory is
	// now free.
	before := q.Stats().SpilledItemsTotal
	add(10)
	if q.Stats().SpilledItemsTotal != before+10 {
		t.Fatalf("items went to memory while the spill was not empty: %+v", q.Stats())
	}
	for q.Len() > 0 {
		drain(777)
	}
	if c.next != seq || c.markers != marker {
		t.Fatalf("drained up to %d/%d, added %d/%d", c.next, c.markers, seq, marker)
	}
	s = q.Stats()
	if s.Items != 0 || s.MemoryBytes != 0 || s.SpilledItems != 0 || s.SpilledBytes != 0 || s.SpillFiles != 1 {
		t.Fatalf("stats after draining: %+v", s)
	}
	// The spill episode is over: the file was truncated, items go to memory.
	files := spillFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("spill files %v", files)
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Size() != 0 {
		t.Fatalf("spill file not truncated: %v %v", fi.Size(), err)
	}
	before = q.Stats().SpilledItemsTotal
	add(3)
	if s := q.Stats(); s.SpilledItemsTotal != before || s.MemoryBytes == 0 {
		t.Fatalf("items did not go back to memory: %+v", s)
	}
	// And a second spill episode reuses the file from offset 0.
	add(5000)
	for q.Len() > 0 {
		drain(1000)
	}
	if c.next != seq {
		t.Fatalf("drained up to %d, added %d", c.next, seq)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if files := spillFiles(t, dir); len(files) != 0 {
		t.Fatalf("spill files left after Close: %v", files)
	}
}

// TestConcurrentFIFO runs a producer and a consumer goroutine under a tiny
// budget. Even bursts are produced while the consumer waits (so they spill
// to written pages), odd bursts race with the consumer (so the queue moves
// between memory, the open page and the file).
func TestConcurrentFIFO(t *testing.T) {
	const (
		bursts      = 12
		perBurst    = 6000
		markerEvery = 250
	)
	dir := t.TempDir()
	wake := make(chan struct{}, 1)
	q := NewQueue(Options{
		MemoryBytes: 4 << 10,
		SpillDir:    dir,
		Notify: func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		},
	})
	burstDone := make([]chan struct{}, bursts)
	for i := range burstDone {
		burstDone[i] = make(chan struct{})
	}

	var wg sync.WaitGroup
	var perr error
	wg.Add(1)
	go func() { // producer
		defer wg.Done()
		var seq, marker uint64
		for b := 0; b < bursts; b++ {
			for i := 0; i < perBurst; i++ {
				if err := q.Add(rec(seq, int(seq%13)*7)); err != nil {
					perr = err
					return
				}
				seq++
				if seq%markerEvery == 0 {
					if err := q.AddMarker(marker); err != nil {
						perr = err
						return
					}
					marker++
				}
			}
			close(burstDone[b])
		}
	}()

	c := &checker{t: t, markerEvery: markerEvery}
	total := uint64(bursts * perBurst)
	for c.next < total {
		<-wake
		err := q.Drain(func(it Item) error {
			if !it.IsMarker {
				if s := seqOf(t, it.Envelope); s%perBurst == 0 && (s/perBurst)%2 == 0 {
					<-burstDone[s/perBurst] // hold the consumer during even bursts
				}
			}
			return c.item(it)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if perr != nil {
		t.Fatal(perr)
	}
	if c.markers != total/markerEvery {
		t.Fatalf("%d markers, want %d", c.markers, total/markerEvery)
	}
	s := q.Stats()
	t.Logf("stats: %+v", s)
	if s.Items != 0 || s.MemoryBytes != 0 || s.SpilledItems != 0 {
		t.Fatalf("queue not empty: %+v", s)
	}
	if s.SpillPagesWritten == 0 || s.SpilledItemsTotal == 0 || s.SpilledItemsTotal >= total+c.markers {
		t.Fatalf("both the memory and the spill path should have been used: %+v", s)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if files := spillFiles(t, dir); len(files) != 0 {
		t.Fatalf("spill files left after Close: %v", files)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	q := NewQueue(Options{MemoryBytes: 1, SpillDir: dir})
	for i := 0; i < 5000; i++ {
		mustAdd(t, q, rec(uint64(i), 0))
	}
	if n := len(spillFiles(t, dir)); n != 1 || q.Stats().SpillFiles != 1 {
		t.Fatalf("%d spill files, stats %+v", n, q.Stats())
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if files := spillFiles(t, dir); len(files) != 0 {
		t.Fatalf("spill files left after Close: %v", files)
	}
	if err := q.Add(rec(0, 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	if err := q.AddMarker(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddMarker after Close: %v", err)
	}
	if err := q.Drain(func(Item) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Drain after Close: %v", err)
	}
	if s := q.Stats(); s.Items != 0 || s.SpillFiles != 0 {
		t.Fatalf("stats after Close: %+v", s)
	}
	// A queue that never spilled closes without a file.
	if err := NewQueue(Options{}).Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptSpill corrupts written pages and expects a clear, sticky error
// after the intact items, never a panic or a silent skip.
func TestCorruptSpill(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(b []byte)
		want    string
	}{
		{"payload", func(b []byte) { b[pageHeaderSize+100] ^= 0x40 }, "checksum mismatch"},
		{"count", func(b []byte) { b[4]++ }, "checksum mismatch"},
		{"crc", func(b []byte) { b[8] ^= 1 }, "checksum mismatch"},
		{"length", func(b []byte) { binary.LittleEndian.PutUint32(b, 1<<30) }, "only"},
		{"second page", func(b []byte) {
			n := binary.LittleEndian.Uint32(b)
			b[pageHeaderSize+int(n)+pageHeaderSize+10] ^= 0xff
		}, "checksum mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q := NewQueue(Options{MemoryBytes: 1000, SpillDir: dir})
			defer q.Close()
			const n = 5000
			for i := 0; i < n; i++ {
				mustAdd(t, q, rec(uint64(i), 0))
			}
			if q.Stats().SpillPagesWritten < 2 {
				t.Fatalf("stats %+v", q.Stats())
			}
			files := spillFiles(t, dir)
			if len(files) != 1 {
				t.Fatalf("spill files %v", files)
			}
			b, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			tc.corrupt(b)
			if err := os.WriteFile(files[0], b, 0o600); err != nil {
				t.Fatal(err)
			}
			c := &checker{t: t}
			err = q.Drain(c.item)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), files[0]) {
				t.Fatalf("drain error %v, want ErrCorrupt with %q and the file name", err, tc.want)
			}
			t.Logf("delivered %d of %d, then: %v", c.next, n, err)
			if c.next == 0 || c.next >= n {
				t.Fatalf("delivered %d of %d items", c.next, n)
			}
			if err2 := q.Drain(c.item); err2 != err {
				t.Fatalf("second drain: %v, want the same error", err2)
			}
		})
	}
}

// TestSpillWriteError: a spill directory that does not exist fails the Add
// that writes the first page, keeps the items, and fails later Adds.
func TestSpillWriteError(t *testing.T) {
	q := NewQueue(Options{MemoryBytes: 1000, SpillDir: filepath.Join(t.TempDir(), "missing")})
	defer q.Close()
	var err error
	var added uint64
	for ; added < 100000 && err == nil; added++ {
		err = q.Add(rec(added, 0))
	}
	if err == nil || !strings.Contains(err.Error(), "create spill file") {
		t.Fatalf("no spill error after %d adds: %v", added, err)
	}
	if err2 := q.Add(rec(added, 0)); err2 != err {
		t.Fatalf("Add after the failure: %v", err2)
	}
	if err2 := q.AddMarker(0); err2 != err {
		t.Fatalf("AddMarker after the failure: %v", err2)
	}
	// Every item up to the failing one is still delivered.
	c := &checker{t: t}
	if err := q.Drain(c.item); err != nil {
		t.Fatal(err)
	}
	if c.next != added {
		t.Fatalf("delivered %d of %d", c.next, added)
	}
}

func TestNoSpillDirStaysInMemory(t *testing.T) {
	q := NewQueue(Options{MemoryBytes: 100})
	for i := 0; i < 1000; i++ {
		mustAdd(t, q, rec(uint64(i), 0))
	}
	if s := q.Stats(); s.SpilledItemsTotal != 0 || s.Items != 1000 || s.MemoryBytes <= 100 {
		t.Fatalf("stats %+v", s)
	}
	c := &checker{t: t}
	if err := q.Drain(c.item); err != nil || c.next != 1000 {
		t.Fatalf("drained %d: %v", c.next, err)
	}
	if err := q.Add(nil); err == nil {
		t.Fatal("nil envelope accepted")
	}
}

func BenchmarkQueue(b *testing.B) {
	const items = 1 << 20
	for _, bc := range []struct {
		name   string
		budget int64
		spill  bool
	}{
		{"memory", 1 << 40, false},
		{"spill-64KiB", 64 << 10, true},
		{"spill-all", 1, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := rec(42, 16)
			b.Logf("envelope Size() %d, encoded %d bytes", e.Size(), len(envelope.AppendEncode(nil, e)))
			var spilled, pages uint64
			b.ReportAllocs()
			for b.Loop() {
				wake := make(chan struct{}, 1)
				opts := Options{MemoryBytes: bc.budget, Notify: func() {
					select {
					case wake <- struct{}{}:
					default:
					}
				}}
				if bc.spill {
					opts.SpillDir = b.TempDir()
				}
				q := NewQueue(opts)
				go func() {
					for i := 0; i < items; i++ {
						if err := q.Add(e); err != nil {
							panic(err)
						}
					}
				}()
				got := 0
				for got < items {
					<-wake
					if err := q.Drain(func(Item) error { got++; return nil }); err != nil {
						b.Fatal(err)
					}
				}
				s := q.Stats()
				spilled += s.SpilledItemsTotal
				pages += s.SpillPagesWritten
				if err := q.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(items)*float64(b.N)/b.Elapsed().Seconds(), "items/s")
			b.ReportMetric(float64(spilled)/float64(items)/float64(b.N)*100, "%spilled")
			b.ReportMetric(float64(pages)/float64(b.N), "pages/op")
		})
	}
}
