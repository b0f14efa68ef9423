package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// noSyncFS is the real file system with Pebble's fsyncs turned into no-ops:
// test DBs need no durability of their own (the store's is what is tested),
// and fsync on a busy shared disk dominates test time otherwise.
type noSyncFS struct{ vfs.FS }

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error                { return nil }
func (noSyncFile) SyncData() error            { return nil }
func (noSyncFile) SyncTo(int64) (bool, error) { return true, nil }
func wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}
func (fs noSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return wrap(fs.FS.Create(name, c))
}
func (fs noSyncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, o ...vfs.OpenOption) (vfs.File, error) {
	return wrap(fs.FS.OpenReadWrite(name, c, o...))
}
func (fs noSyncFS) OpenDir(name string) (vfs.File, error) { return wrap(fs.FS.OpenDir(name)) }
func (fs noSyncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return wrap(fs.FS.ReuseForWrite(oldname, newname, c))
}
func (fs noSyncFS) Unwrap() vfs.FS { return fs.FS }

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// openDB opens a Pebble DB at dir. With manual set, automatic compactions
// are off, so every Flush adds exactly one sstable (deterministic sharing).
func openDB(t testing.TB, dir string, manual bool) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                          noSyncFS{vfs.Default},
		Logger:                      quietLogger{},
		FormatMajorVersion:          pebble.FormatNewest,
		DisableAutomaticCompactions: manual,
		L0StopWritesThreshold:       1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer func() { _ = recover() }() // already closed by the test
		_ = db.Close()
	})
	return db
}

func key(i int) []byte { return fmt.Appendf(nil, "key-%08d", i) }

func value(i, version int) []byte {
	return bytes.Repeat(fmt.Appendf(nil, "v%d-%d|", version, i), 8)
}

// fill writes keys [from, to) with version in batches, flushing every
// perFlush keys (0: never).
func fill(t testing.TB, db *pebble.DB, from, to, version, perFlush int) {
	t.Helper()
	b := db.NewBatch()
	for i := from; i < to; i++ {
		must(t, b.Set(key(i), value(i, version), nil))
		if perFlush > 0 && (i-from+1)%perFlush == 0 {
			must(t, b.Commit(pebble.NoSync))
			must(t, db.Flush())
			b = db.NewBatch()
		}
	}
	must(t, b.Commit(pebble.NoSync))
}

// pebbleCheckpoint writes a Pebble checkpoint of db into a fresh directory
// under parent and returns it.
func pebbleCheckpoint(t testing.TB, db *pebble.DB, parent string) string {
	t.Helper()
	must(t, os.MkdirAll(parent, 0o755))
	dir, err := os.MkdirTemp(parent, "pebble-chk-")
	must(t, err)
	must(t, os.Remove(dir))
	must(t, db.Checkpoint(dir, pebble.WithFlushedWAL()))
	return dir
}

// checkDB opens a materialized checkpoint and checks that keys [0, n) hold
// want(i) and that key n is absent.
func checkDB(t testing.TB, dir string, n int, want func(i int) []byte) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FS: noSyncFS{vfs.Default}, Logger: quietLogger{}})
	if err != nil {
		t.Fatalf("open materialized checkpoint: %v", err)
	}
	defer db.Close()
	it, err := db.NewIter(nil)
	must(t, err)
	defer it.Close()
	i := 0
	for it.First(); it.Valid(); it.Next() {
		if !bytes.Equal(it.Key(), key(i)) {
			t.Fatalf("key %d: got %q, want %q", i, it.Key(), key(i))
		}
		if !bytes.Equal(it.Value(), want(i)) {
			t.Fatalf("key %d: got value %q, want %q", i, it.Value(), want(i))
		}
		i++
	}
	must(t, it.Error())
	if i != n {
		t.Fatalf("restored %d keys, want %d", i, n)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newStore(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "checkpoints")
	s, err := Open(root, "job", opts)
	must(t, err)
	return s, root
}

// sharedFiles lists shared/ (sorted).
func sharedFiles(t testing.TB, s *Store) []string {
	t.Helper()
	des, err := os.ReadDir(s.sharedDir)
	must(t, err)
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	sort.Strings(out)
	return out
}

// referenced returns the shared names the complete checkpoints reference.
func referenced(t testing.TB, s *Store) []string {
	t.Helper()
	infos, err := s.List()
	must(t, err)
	set := map[string]bool{}
	for _, in := range infos {
		m, err := readMetadata(in.Dir)
		must(t, err)
		for _, tm := range m.Tasks {
			for _, f := range tm.Files {
				if f.Shared != "" {
					set[f.Shared] = true
				}
			}
		}
	}
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func ids(infos []Info) []uint64 {
	var out []uint64
	for _, in := range infos {
		out = append(out, in.ID)
	}
	return out
}

func wantErrIs(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}
