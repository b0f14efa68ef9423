package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestBlobRoundTrip(t *testing.T) {
	compressible := bytes.Repeat([]byte("offset=12345 partition=7 topic=events\n"), 2000) // 78 KB
	tests := []struct {
		name           string
		data           []byte
		compress       bool
		wantCompressed bool
	}{
		{"empty", nil, true, false},
		{"small", []byte("kafka offsets: 1,2,3"), true, false},
		{"4KiB-exactly", bytes.Repeat([]byte("a"), 4096), true, false},
		{"4KiB+1-compressible", bytes.Repeat([]byte("a"), 4097), true, true},
		{"large-compressible", compressible, true, true},
		{"large-random", randomBytes(1, 64<<10), true, false}, // does not pay
		{"large-compressible-off", compressible, false, false},
		{"1MiB-mixed", append(randomBytes(2, 100<<10), bytes.Repeat([]byte{7}, 1<<20)...), true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(t, Options{Compress: tc.compress, Sync: true, Explicit: true})
			p, err := s.Begin(1)
			must(t, err)
			must(t, p.AddFile("source-0", "blob", tc.data))
			must(t, p.Commit(Metadata{Parallelism: 1, MaxParallelism: 128}))
			c, skipped, err := s.Latest()
			must(t, err)
			if c == nil || len(skipped) > 0 {
				t.Fatalf("Latest: %v, skipped %v", c, skipped)
			}
			f := c.Meta.Tasks[0].Files[0]
			if f.Compressed != tc.wantCompressed {
				t.Fatalf("Compressed = %v, want %v (stored %d of %d bytes)", f.Compressed, tc.wantCompressed, f.Size, len(tc.data))
			}
			if f.Compressed && f.Size >= int64(len(tc.data)) {
				t.Fatalf("compressed to %d of %d bytes", f.Size, len(tc.data))
			}
			got, err := c.ReadFile("source-0", "blob")
			must(t, err)
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("ReadFile returned %d bytes, want %d", len(got), len(tc.data))
			}
			if c.Meta.Job != "job" || c.Meta.ID != 1 || c.Meta.Version != FormatVersion || c.Meta.Timestamp == 0 ||
				c.Meta.Parallelism != 1 || c.Meta.MaxParallelism != 128 {
				t.Fatalf("metadata %+v", c.Meta)
			}
		})
	}
}

func TestMetadataFields(t *testing.T) {
	s, _ := newStore(t, Options{})
	p, err := s.Begin(42)
	must(t, err)
	must(t, p.AddFile("b-task", "z", []byte("1")))
	must(t, p.AddFile("b-task", "a", []byte("2")))
	must(t, p.AddFile("a-task", "x", []byte("3")))
	props := map[string]string{"config": "parallelism=4", "sink.txn": "job-egress-0"}
	must(t, p.Commit(Metadata{Timestamp: 1700000000000, Parallelism: 4, MaxParallelism: 128, Properties: props}))
	c, err := s.Load(42)
	must(t, err)
	if got := []string{c.Meta.Tasks[0].Task, c.Meta.Tasks[1].Task}; !slices.Equal(got, []string{"a-task", "b-task"}) {
		t.Fatalf("tasks not sorted: %v", got)
	}
	if got := []string{c.Meta.Tasks[1].Files[0].Name, c.Meta.Tasks[1].Files[1].Name}; !slices.Equal(got, []string{"a", "z"}) {
		t.Fatalf("files not sorted: %v", got)
	}
	if c.Meta.Timestamp != 1700000000000 || c.Meta.Properties["sink.txn"] != "job-egress-0" {
		t.Fatalf("metadata %+v", c.Meta)
	}
	infos, err := s.List()
	must(t, err)
	if len(infos) != 1 || infos[0] != (Info{ID: 42, Timestamp: 1700000000000, Dir: filepath.Join(s.Dir(), "chk-42")}) {
		t.Fatalf("List = %+v", infos)
	}
	if !c.HasTask("a-task") || c.HasTask("c-task") {
		t.Fatal("HasTask")
	}
	if st := p.Stats(); st.Files != 3 || st.NewFiles != 3 || st.Bytes != 3 {
		t.Fatalf("Stats = %+v", st)
	}
	// The file is readable as text after its header line.
	raw, err := os.ReadFile(filepath.Join(c.Dir, metadataName))
	must(t, err)
	if !bytes.HasPrefix(raw, []byte("statefun-checkpoint v0001 len=")) || !bytes.Contains(raw, []byte(`"sink.txn":"job-egress-0"`)) {
		t.Fatalf("_metadata:\n%s", raw)
	}
}

func TestAPIErrors(t *testing.T) {
	s, _ := newStore(t, Options{})
	p, err := s.Begin(1)
	must(t, err)
	if _, err := s.Begin(1); !errors.Is(err, ErrExists) {
		t.Fatalf("second Begin(1): %v", err)
	}
	must(t, p.AddFile("t", "f", []byte("x")))
	if err := p.AddFile("t", "f", []byte("y")); err == nil || !strings.Contains(err.Error(), "already added") {
		t.Fatalf("duplicate AddFile: %v", err)
	}
	if err := p.AddPebbleCheckpoint("t", t.TempDir()); err == nil {
		t.Fatal("AddPebbleCheckpoint on a task with blobs succeeded")
	}
	if err := p.Commit(Metadata{Tasks: []TaskMeta{{Task: "t"}}}); err == nil {
		t.Fatal("Commit with Tasks set succeeded")
	}
	if err := p.Commit(Metadata{ID: 2}); err == nil {
		t.Fatal("Commit with another ID succeeded")
	}
	if err := p.Commit(Metadata{Job: "other"}); err == nil {
		t.Fatal("Commit with another job succeeded")
	}
	must(t, p.Commit(Metadata{}))
	wantErrIs(t, p.AddFile("t", "g", nil), ErrClosed)
	wantErrIs(t, p.Commit(Metadata{}), ErrClosed)
	wantErrIs(t, p.Abort(), ErrClosed)
	if _, err := s.Begin(1); !errors.Is(err, ErrExists) {
		t.Fatalf("Begin of a complete id: %v", err)
	}

	c, err := s.Load(1)
	must(t, err)
	if _, err := c.ReadFile("t", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadFile of an absent file: %v", err)
	}
	if _, err := c.ReadFile("nope", "f"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadFile of an absent task: %v", err)
	}
	if err := c.MaterializePebble("t", filepath.Join(t.TempDir(), "db")); err == nil {
		t.Fatal("MaterializePebble of a blob task succeeded")
	}
	if _, err := s.Load(9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load(9): %v", err)
	}
	if _, err := OpenDir(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenDir of a missing dir: %v", err)
	}

	// Abort removes everything; Abort is idempotent.
	p2, err := s.Begin(2)
	must(t, err)
	must(t, p2.AddFile("t", "f", []byte("x")))
	must(t, p2.Abort())
	must(t, p2.Abort())
	wantErrIs(t, p2.Commit(Metadata{}), ErrClosed)
	if _, err := os.Stat(filepath.Join(s.Dir(), "chk-2.inprogress")); !os.IsNotExist(err) {
		t.Fatalf("in-progress dir left after Abort: %v", err)
	}
	infos, err := s.List()
	must(t, err)
	if !slices.Equal(ids(infos), []uint64{1}) {
		t.Fatalf("List = %v", ids(infos))
	}
	// An aborted id can be begun again.
	p2, err = s.Begin(2)
	must(t, err)
	must(t, p2.Commit(Metadata{}))
}

// TestBeginRemovesLeftover: an in-progress directory left by a crash is
// replaced by Begin of the same id, and is never listed.
func TestBeginRemovesLeftover(t *testing.T) {
	s, root := newStore(t, Options{})
	left := filepath.Join(s.Dir(), "chk-5.inprogress", "t")
	must(t, os.MkdirAll(left, 0o755))
	must(t, os.WriteFile(filepath.Join(left, "junk"), []byte("junk"), 0o644))
	p, err := s.Begin(5)
	must(t, err)
	must(t, p.AddFile("t", "f", []byte("x")))
	must(t, p.Commit(Metadata{}))
	if _, err := os.Stat(filepath.Join(s.Dir(), "chk-5", "t", "junk")); !os.IsNotExist(err) {
		t.Fatal("leftover file survived Begin")
	}
	// A leftover with a complete _metadata is not a checkpoint either:
	// Commit had not returned.
	must(t, os.Rename(filepath.Join(s.Dir(), "chk-5"), filepath.Join(s.Dir(), "chk-6.inprogress")))
	s2, err := Open(root, "job", Options{})
	must(t, err)
	if c, _, err := s2.Latest(); err != nil || c != nil {
		t.Fatalf("Latest with only an in-progress dir: %v, %v", c, err)
	}
}

func TestConcurrentAddFile(t *testing.T) {
	s, _ := newStore(t, Options{})
	db := openDB(t, filepath.Join(t.TempDir(), "db"), false)
	fill(t, db, 0, 2000, 1, 500)
	p, err := s.Begin(1)
	must(t, err)
	const goroutines, perG = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*perG+2)
	for g := range goroutines {
		wg.Go(func() {
			task := fmt.Sprintf("task-%d", g%4) // two goroutines per task
			for i := range perG {
				data := bytes.Repeat(fmt.Appendf(nil, "%d/%d;", g, i), 100*i) // 0 B to ~20 KiB
				if err := p.AddFile(task, fmt.Sprintf("f-%d-%d", g, i), data); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range 2 {
		dir := pebbleCheckpoint(t, db, t.TempDir())
		wg.Go(func() {
			if err := p.AddPebbleCheckpoint(fmt.Sprintf("state-%d", i), dir); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	must(t, p.Commit(Metadata{}))
	c, skipped, err := s.Latest()
	must(t, err)
	if c == nil || len(skipped) > 0 {
		t.Fatalf("Latest: %v %v", c, skipped)
	}
	for g := range goroutines {
		for i := range perG {
			got, err := c.ReadFile(fmt.Sprintf("task-%d", g%4), fmt.Sprintf("f-%d-%d", g, i))
			must(t, err)
			if want := bytes.Repeat(fmt.Appendf(nil, "%d/%d;", g, i), 100*i); !bytes.Equal(got, want) {
				t.Fatalf("g%d i%d: wrong content", g, i)
			}
		}
	}
	for i := range 2 {
		dst := filepath.Join(t.TempDir(), "db")
		must(t, c.MaterializePebble(fmt.Sprintf("state-%d", i), dst))
		checkDB(t, dst, 2000, func(i int) []byte { return value(i, 1) })
	}
}

func TestPathTraversalRejected(t *testing.T) {
	s, root := newStore(t, Options{})
	p, err := s.Begin(1)
	must(t, err)
	bad := []string{"", ".", "..", "../x", "a/b", "/etc/passwd", `a\b`, "a\x00b", "a\nb", strings.Repeat("x", 256)}
	for _, name := range bad {
		if err := p.AddFile("t", name, nil); err == nil {
			t.Errorf("AddFile(t, %q) succeeded", name)
		}
		if err := p.AddFile(name, "f", nil); err == nil {
			t.Errorf("AddFile(%q, f) succeeded", name)
		}
		if _, err := Open(root, name, Options{}); err == nil {
			t.Errorf("Open(job %q) succeeded", name)
		}
	}
	for _, task := range []string{"_metadata", ".hidden", "_x"} {
		if err := p.AddFile(task, "f", nil); err == nil {
			t.Errorf("AddFile(%q, f): reserved task name accepted", task)
		}
	}
	must(t, p.Abort())

	// Crafted metadata with a valid checksum: every bad name is rejected
	// before any path is built from it.
	outside := filepath.Join(filepath.Dir(root), "secret")
	must(t, os.WriteFile(outside, []byte("secret"), 0o644))
	crafted := []struct{ name, body string }{
		{"file-dotdot", `{"version":1,"job":"job","id":1,"timestamp":1,"parallelism":1,"max_parallelism":1,"tasks":[{"task":"t","files":[{"name":"../../../secret","size":6,"crc32c":0}]}]}`},
		{"file-absolute", `{"version":1,"job":"job","id":1,"timestamp":1,"parallelism":1,"max_parallelism":1,"tasks":[{"task":"t","files":[{"name":"` + outside + `","size":6,"crc32c":0}]}]}`},
		{"shared-dotdot", `{"version":1,"job":"job","id":1,"timestamp":1,"parallelism":1,"max_parallelism":1,"tasks":[{"task":"t","files":[{"name":"x","shared":"..","size":6,"crc32c":0}]}]}`},
		{"shared-separator", `{"version":1,"job":"job","id":1,"timestamp":1,"parallelism":1,"max_parallelism":1,"tasks":[{"task":"t","files":[{"name":"x","shared":"../../secret","size":6,"crc32c":0}]}]}`},
		{"task-dotdot", `{"version":1,"job":"job","id":1,"timestamp":1,"parallelism":1,"max_parallelism":1,"tasks":[{"task":"..","files":[{"name":"secret","size":6,"crc32c":0}]}]}`},
		{"job-dotdot", `{"version":1,"job":"..","id":1,"timestamp":1,"parallelism":1,"max_parallelism":1,"tasks":[]}`},
		{"duplicate-file", `{"version":1,"job":"job","id":1,"timestamp":1,"parallelism":1,"max_parallelism":1,"tasks":[{"task":"t","files":[{"name":"x","size":1,"crc32c":0},{"name":"x","size":1,"crc32c":0}]}]}`},
		{"negative-size", `{"version":1,"job":"job","id":1,"timestamp":1,"parallelism":1,"max_parallelism":1,"tasks":[{"task":"t","files":[{"name":"x","size":-1,"crc32c":0}]}]}`},
	}
	for _, tc := range crafted {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "chk-1")
			must(t, os.MkdirAll(dir, 0o755))
			raw, err := encodeRaw(1, []byte(tc.body))
			must(t, err)
			must(t, os.WriteFile(filepath.Join(dir, metadataName), raw, 0o644))
			_, err = OpenDir(dir)
			if !IsCorruption(err) || !strings.Contains(err.Error(), "_metadata: invalid") {
				t.Fatalf("OpenDir: %v", err)
			}
		})
	}
}

func TestSavepoint(t *testing.T) {
	s, root := newStore(t, Options{})
	db := openDB(t, filepath.Join(t.TempDir(), "db"), false)
	fill(t, db, 0, 3000, 1, 1000)
	// A checkpoint first, so the savepoint's sstables exist in shared/ too.
	p, err := s.Begin(1)
	must(t, err)
	must(t, p.AddPebbleCheckpoint("state", pebbleCheckpoint(t, db, t.TempDir())))
	must(t, p.Commit(Metadata{}))

	spDir := filepath.Join(filepath.Dir(root), "savepoints", "sp-1")
	sp, err := BeginSavepoint(spDir, 7, Options{})
	must(t, err)
	must(t, sp.AddFile("source", "offsets", []byte("p0=17")))
	must(t, sp.AddPebbleCheckpoint("state", pebbleCheckpoint(t, db, t.TempDir())))
	if err := sp.Commit(Metadata{}); err == nil {
		t.Fatal("savepoint Commit without a job succeeded")
	}
	must(t, sp.Commit(Metadata{Job: "job"}))
	if _, err := BeginSavepoint(spDir, 8, Options{}); !errors.Is(err, ErrExists) {
		t.Fatalf("BeginSavepoint over an existing one: %v", err)
	}

	// Self-contained: nothing shared, so Retain and GC cannot affect it.
	must(t, s.Retain(1))
	must(t, os.RemoveAll(s.sharedDir))
	c, err := OpenDir(spDir)
	must(t, err)
	if !c.Meta.Savepoint || c.Meta.ID != 7 {
		t.Fatalf("savepoint metadata %+v", c.Meta)
	}
	for _, f := range c.Meta.Task("state").Files {
		if f.Shared != "" {
			t.Fatalf("savepoint file %s is shared", f.Name)
		}
	}
	got, err := c.ReadFile("source", "offsets")
	must(t, err)
	if string(got) != "p0=17" {
		t.Fatalf("ReadFile = %q", got)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	must(t, c.MaterializePebble("state", dst))
	checkDB(t, dst, 3000, func(i int) []byte { return value(i, 1) })
}

// TestRetain: Retain keeps the newest n checkpoints and every savepoint,
// removes leftovers, and removes exactly the shared files nothing
// references any more, also with a checkpoint pending.
func TestRetain(t *testing.T) {
	s, _ := newStore(t, Options{})
	db := openDB(t, filepath.Join(t.TempDir(), "db"), false)
	tmp := t.TempDir()
	n := 0
	checkpoint := func(id uint64, savepoint bool) {
		t.Helper()
		fill(t, db, n, n+500, 1, 0)
		n += 500
		must(t, db.Flush())
		if id%3 == 0 {
			must(t, db.Compact(t.Context(), key(0), key(1<<30), true)) // rewrites every sstable
		}
		p, err := s.Begin(id)
		must(t, err)
		must(t, p.AddPebbleCheckpoint("state", pebbleCheckpoint(t, db, tmp)))
		must(t, p.AddFile("source", "offsets", fmt.Appendf(nil, "%d", id)))
		must(t, p.Commit(Metadata{Savepoint: savepoint}))
	}
	for id := uint64(1); id <= 7; id++ {
		checkpoint(id, id == 2)
	}
	// Leftovers: an in-progress dir of a crashed checkpoint, a temporary
	// file and an unreferenced file in shared/.
	must(t, os.MkdirAll(filepath.Join(s.Dir(), "chk-3.inprogress", "x"), 0o755))
	must(t, os.WriteFile(filepath.Join(s.sharedDir, tmpPrefix+"abc"), []byte("x"), 0o644))
	must(t, os.WriteFile(filepath.Join(s.sharedDir, "00000000-1-orphan.sst"), []byte("x"), 0o644))

	// A pending checkpoint referencing the current sstables, which chk-5 to
	// chk-7 reference too.
	fill(t, db, n, n+10, 1, 0)
	n += 10
	pending, err := s.Begin(8)
	must(t, err)
	must(t, pending.AddPebbleCheckpoint("state", pebbleCheckpoint(t, db, tmp)))

	must(t, s.Retain(1))
	infos, err := s.List()
	must(t, err)
	if got := ids(infos); !slices.Equal(got, []uint64{2, 7}) {
		t.Fatalf("after Retain(1): %v, want savepoint 2 and newest 7", got)
	}
	if !infos[0].Savepoint {
		t.Fatal("chk-2 is not marked savepoint")
	}
	des, err := os.ReadDir(s.Dir())
	must(t, err)
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	if want := []string{"chk-2", "chk-7", "chk-8.inprogress", "shared"}; !slices.Equal(names, want) {
		t.Fatalf("job dir: %v, want %v", names, want)
	}
	// shared/ = referenced by chk-2, chk-7 and the pending chk-8, and the
	// temporary file, kept while a checkpoint is pending (it could be its).
	must(t, pending.Commit(Metadata{}))
	if got, want := sharedFiles(t, s), append([]string{tmpPrefix + "abc"}, referenced(t, s)...); !slices.Equal(got, want) {
		t.Fatalf("shared/ = %v\nreferenced = %v", got, want)
	}
	for _, id := range []uint64{2, 7, 8} {
		c, err := s.Load(id)
		must(t, err)
		dst := filepath.Join(t.TempDir(), "db")
		must(t, c.MaterializePebble("state", dst))
		rows := map[uint64]int{2: 1000, 7: 3500, 8: 3510}[id]
		checkDB(t, dst, rows, func(i int) []byte { return value(i, 1) })
	}

	// Retain(1) now drops chk-7, its exclusive files and the temporary file.
	must(t, s.Retain(1))
	infos, err = s.List()
	must(t, err)
	if got := ids(infos); !slices.Equal(got, []uint64{2, 8}) {
		t.Fatalf("after second Retain: %v", got)
	}
	if got, want := sharedFiles(t, s), referenced(t, s); !slices.Equal(got, want) {
		t.Fatalf("shared/ = %v\nreferenced = %v", got, want)
	}
	if err := s.Retain(0); err == nil {
		t.Fatal("Retain(0) succeeded")
	}
}

// TestRetainRandomized interleaves checkpoints (with compactions, so
// sstables come and go), aborts and Retain with random n, checking after
// each Retain that every kept checkpoint validates and shared/ holds exactly
// what they reference.
func TestRetainRandomized(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	s, _ := newStore(t, Options{Sync: false, Compress: true})
	db := openDB(t, filepath.Join(t.TempDir(), "db"), false)
	tmp := t.TempDir()
	for id := uint64(1); id <= 25; id++ {
		lo := r.IntN(3000)
		fill(t, db, lo, lo+200, int(id), 0)
		if r.IntN(2) == 0 {
			must(t, db.Flush())
		}
		p, err := s.Begin(id)
		must(t, err)
		must(t, p.AddPebbleCheckpoint("state", pebbleCheckpoint(t, db, tmp)))
		if r.IntN(5) == 0 {
			must(t, p.Abort())
		} else {
			must(t, p.Commit(Metadata{Savepoint: r.IntN(10) == 0}))
		}
		if r.IntN(3) == 0 {
			keep := 1 + r.IntN(3)
			must(t, s.Retain(keep))
			infos, err := s.List()
			must(t, err)
			regular := 0
			for _, in := range infos {
				if !in.Savepoint {
					regular++
				}
				if _, err := s.Load(in.ID); err != nil {
					t.Fatalf("seed %d: after Retain(%d): %v", seed, keep, err)
				}
			}
			if regular > keep {
				t.Fatalf("seed %d: %d checkpoints after Retain(%d)", seed, regular, keep)
			}
			if got, want := sharedFiles(t, s), referenced(t, s); !slices.Equal(got, want) {
				t.Fatalf("seed %d: shared/ = %v\nreferenced = %v", seed, got, want)
			}
		}
	}
}
