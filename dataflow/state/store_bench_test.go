package state

import (
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/statefun-go/statefun/dataflow"
)

func benchKeys(n int) []Key {
	keys := make([]Key, n)
	for i := range keys {
		id := "user-" + strconv.Itoa(i)
		keys[i] = Key{
			KeyGroup:  dataflow.KeyGroupFor(id, dataflow.DefaultMaxParallelism),
			Space:     SpaceValue,
			Namespace: "example",
			Type:      "counter",
			ID:        id,
			Name:      "count",
		}
	}
	return keys
}

// BenchmarkGetSet is the dispatcher's hot path: read a ~9-byte state value
// and write a new one, for keys drawn uniformly at random.
func BenchmarkGetSet(b *testing.B) {
	for _, bc := range []struct {
		name string
		keys int
		wb   int64
	}{
		{"cache/100k", 100_000, 0},
		{"nocache/100k", 100_000, -1},
		{"cache/1M", 1_000_000, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := Open(Options{Dir: b.TempDir(), WriteBackBytes: bc.wb})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			keys := benchKeys(bc.keys)
			// Load every key once so that Gets find values.
			for _, k := range keys {
				if err := s.Set(k, []byte("000000000"), 0); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Flush(); err != nil {
				b.Fatal(err)
			}
			st0 := s.Stats()
			x := uint64(88172645463325252)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				k := keys[x%uint64(len(keys))]
				v, _, err := s.Get(k)
				if err != nil {
					b.Fatal(err)
				}
				nv := make([]byte, 9)
				copy(nv, v)
				nv[0]++
				if err := s.Set(k, nv, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			st := s.Stats()
			if hits, misses := st.Hits-st0.Hits, st.Misses-st0.Misses; hits+misses > 0 {
				b.ReportMetric(float64(hits)/float64(hits+misses)*100, "hit%")
			}
			b.ReportMetric(float64(st.Bytes)/(1<<20), "cache-MiB")
		})
	}
}

// BenchmarkGetSetMem isolates the cache: in-memory FS, all keys cached.
func BenchmarkGetSetMem(b *testing.B) {
	s, err := Open(Options{FS: vfs.NewMem()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	keys := benchKeys(1000)
	b.ReportAllocs()
	for i := range b.N {
		k := keys[i%len(keys)]
		if _, _, err := s.Get(k); err != nil {
			b.Fatal(err)
		}
		if err := s.Set(k, make([]byte, 9), 0); err != nil {
			b.Fatal(err)
		}
	}
}
