package store

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// BenchmarkPebbleCheckpoint stores checkpoints of a Pebble DB holding about
// 200 MiB of incompressible values (20 MiB under -short). Per iteration, on
// a fresh store: a full checkpoint, then 1% of the keys overwritten and
// flushed, then an incremental one, then Latest (which verifies every
// file's crc32c) and MaterializePebble. Times cover AddPebbleCheckpoint +
// Commit (db.Checkpoint itself is reported apart as pebble-ms); MiB are the
// bytes each checkpoint added to storage. Run with -benchtime=1x or 3x.
func BenchmarkPebbleCheckpoint(b *testing.B) {
	const valueSize = 1 << 10
	totalBytes := 200 << 20
	if testing.Short() {
		totalBytes = 20 << 20
	}
	keys := totalBytes / valueSize
	dir := b.TempDir()
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	db, err := pebble.Open(filepath.Join(dir, "db"), &pebble.Options{
		Logger: quietLogger{}, Cache: cache, FormatMajorVersion: pebble.FormatNewest,
	})
	must(b, err)
	defer db.Close()
	r := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, valueSize)
	write := func(i int) []byte {
		for j := 0; j < len(val); j += 8 {
			binary.LittleEndian.PutUint64(val[j:], r.Uint64())
		}
		return val
	}
	batch := db.NewBatch()
	for i := range keys {
		must(b, batch.Set(key(i), write(i), nil))
		if batch.Len() > 1<<20 {
			must(b, batch.Commit(pebble.NoSync))
			batch = db.NewBatch()
		}
	}
	must(b, batch.Commit(pebble.NoSync))
	must(b, db.Flush())
	dbBytes := dirBytes(b, filepath.Join(dir, "db"), ".sst")
	b.Logf("DB: %d keys, %.1f MiB of sstables", keys, float64(dbBytes)/(1<<20))

	var full, incr, latest, mat, pebbleCk time.Duration
	var fullBytes, incrBytes int64
	var fullFiles, incrFiles, reused int
	iter := 0
	for b.Loop() {
		iter++
		s, err := Open(filepath.Join(dir, fmt.Sprintf("store-%d", iter)), "job", Options{})
		must(b, err)
		checkpoint := func(id uint64) (time.Duration, Stats) {
			t0 := time.Now()
			ck := filepath.Join(dir, fmt.Sprintf("ck-%d-%d", iter, id))
			must(b, db.Checkpoint(ck, pebble.WithFlushedWAL()))
			t1 := time.Now()
			pebbleCk += t1.Sub(t0)
			p, err := s.Begin(id)
			must(b, err)
			must(b, p.AddPebbleCheckpoint("state", ck))
			must(b, p.Commit(Metadata{}))
			return time.Since(t1), p.Stats()
		}
		d, st := checkpoint(1)
		full += d
		fullBytes += st.NewBytes
		fullFiles += st.NewFiles

		b.StopTimer()
		batch := db.NewBatch()
		for range keys / 100 {
			i := r.IntN(keys)
			must(b, batch.Set(key(i), write(i), nil))
		}
		must(b, batch.Commit(pebble.NoSync))
		must(b, db.Flush())
		b.StartTimer()

		d, st = checkpoint(2)
		incr += d
		incrBytes += st.NewBytes
		incrFiles += st.NewFiles
		reused += st.ReusedFiles

		t0 := time.Now()
		c, skipped, err := s.Latest()
		must(b, err)
		if c == nil || len(skipped) > 0 {
			b.Fatalf("Latest: %v %v", c, skipped)
		}
		latest += time.Since(t0)
		t0 = time.Now()
		must(b, c.MaterializePebble("state", filepath.Join(dir, fmt.Sprintf("restored-%d", iter))))
		mat += time.Since(t0)
	}
	n := float64(iter)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	mib := func(x int64) float64 { return float64(x) / (1 << 20) / n }
	b.ReportMetric(ms(full), "full-ms")
	b.ReportMetric(mib(fullBytes), "full-MiB")
	b.ReportMetric(ms(incr), "incr-ms")
	b.ReportMetric(mib(incrBytes), "incr-MiB")
	b.ReportMetric(ms(latest), "latest-ms")
	b.ReportMetric(ms(mat), "materialize-ms")
	b.ReportMetric(ms(pebbleCk)/2, "pebble-ms")
	b.Logf("per iteration: full %d files, incremental %d new files + %d reused", fullFiles/iter, incrFiles/iter, reused/iter)
}

func dirBytes(b *testing.B, dir, suffix string) int64 {
	des, err := os.ReadDir(dir)
	must(b, err)
	var n int64
	for _, de := range des {
		if fi, err := de.Info(); err == nil && filepath.Ext(de.Name()) == suffix {
			n += fi.Size()
		}
	}
	return n
}
