package state

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/statefun-go/statefun/dataflow"
)

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestCacheHeapWithinBudget checks that the heap the cache holds stays
// within its budget (plus the index), and that the reported estimate is
// within the budget.
func TestCacheHeapWithinBudget(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("heap measurement: not under -race or -short")
	}
	const budget = 8 << 20
	keys := benchKeys(250_000)
	before := heapAlloc()
	s, err := Open(Options{Dir: t.TempDir(), WriteBackBytes: budget, CacheBytes: 1 << 20})
	must(t, err)
	defer s.Close()
	for _, k := range keys {
		if _, _, err := s.Get(k); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(k, make([]byte, 9), 0); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Bytes > budget {
			t.Fatalf("estimate %d > budget", st.Bytes)
		}
	}
	must(t, s.Flush())
	heap := float64(heapAlloc() - before)
	st := s.Stats()
	// The heap also holds Pebble's memtable when cgo is off; the arena and
	// index are the rest.
	t.Logf("%d keys through an %d MiB cache: %d cached, estimate %.1f MiB, heap %.1f MiB, %.0f B/entry", len(keys), budget>>20, st.Entries, float64(st.Bytes)/(1<<20), heap/(1<<20), float64(st.Bytes)/float64(st.Entries))
	if heap > 1.5*budget+float64(8<<20) {
		t.Fatalf("heap %.1f MiB for a %d MiB budget", heap/(1<<20), budget>>20)
	}
	runtime.KeepAlive(keys)
}

func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// TestMemory1M pushes 1M distinct keys through a store with the default
// budgets on disk and checks the process stays well under 512 MiB RSS.
func TestMemory1M(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("1M keys: not under -race or -short")
	}
	s, err := Open(Options{Dir: t.TempDir()})
	must(t, err)
	defer s.Close()
	const n = 1_000_000
	val := []byte("123456789")
	var k Key
	k.Space, k.Namespace, k.Type, k.Name = SpaceValue, "example", "counter", "count"
	peak := 0.0
	for round := range 2 {
		for i := range n {
			k.ID = "user-" + strconv.Itoa(i)
			k.KeyGroup = dataflow.KeyGroupFor(k.ID, 128)
			if _, _, err := s.Get(k); err != nil {
				t.Fatal(err)
			}
			if err := s.Set(k, append([]byte(nil), val...), 0); err != nil {
				t.Fatal(err)
			}
			if i%100_000 == 0 {
				peak = max(peak, rssMiB())
			}
		}
		t.Logf("round %d: %+v, RSS %.0f MiB", round, s.Stats(), rssMiB())
	}
	must(t, s.Flush()) // one batch of every dirty key
	peak = max(peak, rssMiB())
	must(t, s.Scan(dataflow.KeyGroupRange{End: 128}, func(Key, []byte, int64) error { return nil }))
	peak = max(peak, rssMiB())
	t.Logf("after flush and scan: %+v, peak RSS %.0f MiB", s.Stats(), peak)
	if peak > 400 {
		t.Fatalf("peak RSS %.0f MiB", peak)
	}
}
