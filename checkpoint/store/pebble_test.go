package store

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestPebbleRoundTrip stores a real Pebble checkpoint (flushed sstables and
// unflushed WAL data), reopens the store, materializes it and reads every
// key back with pebble.
func TestPebbleRoundTrip(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run(map[bool]string{true: "sync", false: "nosync"}[sync], func(t *testing.T) {
			s, root := newStore(t, Options{Sync: sync, Compress: true, Explicit: true})
			db := openDB(t, filepath.Join(t.TempDir(), "db"), false)
			fill(t, db, 0, 4000, 1, 1000) // 4 flushed sstables
			fill(t, db, 4000, 4500, 1, 0) // in the memtable: only in the WAL
			chk := pebbleCheckpoint(t, db, t.TempDir())
			fill(t, db, 4500, 4600, 1, 0) // after the checkpoint: must not appear

			p, err := s.Begin(1)
			must(t, err)
			must(t, p.AddPebbleCheckpoint("keyed-3", chk))
			must(t, p.AddFile("source-0", "offsets", []byte("p0=4500")))
			must(t, p.Commit(Metadata{Parallelism: 1}))
			if _, err := os.Stat(chk); !os.IsNotExist(err) {
				t.Fatalf("Pebble checkpoint dir not removed: %v", err)
			}

			s2, err := Open(root, "job", Options{})
			must(t, err)
			c, skipped, err := s2.Latest()
			must(t, err)
			if c == nil || len(skipped) != 0 {
				t.Fatalf("Latest: %v, %v", c, skipped)
			}
			tm := c.Meta.Task("keyed-3")
			if !tm.Pebble {
				t.Fatal("task not marked Pebble")
			}
			var kinds []string
			for _, f := range tm.Files {
				switch {
				case strings.HasSuffix(f.Name, ".sst"):
					if f.Shared == "" {
						t.Errorf("sstable %s not shared", f.Name)
					}
					kinds = append(kinds, "sst")
				case f.Shared != "":
					t.Errorf("mutable file %s shared", f.Name)
				case strings.HasPrefix(f.Name, "MANIFEST-"):
					kinds = append(kinds, "manifest")
				case strings.HasSuffix(f.Name, ".log"):
					kinds = append(kinds, "wal")
				}
			}
			for _, k := range []string{"sst", "manifest", "wal"} {
				if !slices.Contains(kinds, k) {
					t.Errorf("no %s in %v", k, tm.Files)
				}
			}
			dst := filepath.Join(t.TempDir(), "restore", "keyed-3")
			must(t, c.MaterializePebble("keyed-3", dst))
			if err := c.MaterializePebble("keyed-3", dst); err == nil {
				t.Fatal("MaterializePebble into an existing dir succeeded")
			}
			checkDB(t, dst, 4500, func(i int) []byte { return value(i, 1) })

			// The restored DB keeps working, and writing to it leaves the
			// checkpoint intact (the linked sstables are never modified).
			rdb := openDB(t, filepath.Join(t.TempDir(), "restore2"), false)
			_ = rdb.Close()
			dst2 := filepath.Join(t.TempDir(), "restore3")
			must(t, c.MaterializePebble("keyed-3", dst2))
			wdb := openDB(t, dst2, false)
			fill(t, wdb, 0, 4500, 2, 1500)
			must(t, wdb.Compact(t.Context(), key(0), key(1<<30), true))
			must(t, wdb.Close())
			if _, err := s2.Load(1); err != nil {
				t.Fatalf("checkpoint damaged by writes to a restored DB: %v", err)
			}
		})
	}
}

// TestIncrementalSharing: a second checkpoint of the same DB with 1% of the
// keys changed stores only the new sstable and the small private files; the
// unchanged sstables are shared. Also with the store reopened in between
// (no inode cache: the files are read once and recognised by content name)
// and after a restore (the restored DB's sstables are links of shared/).
func TestIncrementalSharing(t *testing.T) {
	const keys, perSST = 20000, 2000 // 10 sstables of ~300 KB
	for _, mode := range []string{"same-store", "reopened-store", "after-restore"} {
		t.Run(mode, func(t *testing.T) {
			s, root := newStore(t, Options{})
			db := openDB(t, filepath.Join(t.TempDir(), "db"), true)
			fill(t, db, 0, keys, 1, perSST)
			tmp := t.TempDir()

			p1, err := s.Begin(1)
			must(t, err)
			must(t, p1.AddPebbleCheckpoint("state", pebbleCheckpoint(t, db, tmp)))
			must(t, p1.Commit(Metadata{}))
			st1 := p1.Stats()
			if st1.NewFiles < keys/perSST || st1.ReusedFiles != 0 || st1.CopiedBytes != 0 {
				t.Fatalf("first checkpoint stats %+v", st1)
			}
			sharedAfter1 := sharedFiles(t, s)

			switch mode {
			case "reopened-store":
				s, err = Open(root, "job", Options{})
				must(t, err)
			case "after-restore":
				c, err := s.Load(1)
				must(t, err)
				must(t, db.Close())
				dst := filepath.Join(t.TempDir(), "restored")
				must(t, c.MaterializePebble("state", dst))
				db = openDB(t, dst, true)
			}

			// Change 1% of the keys, spread over the key space.
			b := db.NewBatch()
			for i := 0; i < keys; i += 100 {
				must(t, b.Set(key(i), value(i, 2), nil))
			}
			must(t, b.Commit(pebble.NoSync))
			must(t, db.Flush())

			p2, err := s.Begin(2)
			must(t, err)
			must(t, p2.AddPebbleCheckpoint("state", pebbleCheckpoint(t, db, tmp)))
			must(t, p2.Commit(Metadata{}))
			st2 := p2.Stats()
			t.Logf("full: %d files, %d bytes; incremental: %d new files, %d new bytes, %d reused files (%d bytes)",
				st1.NewFiles, st1.NewBytes, st2.NewFiles, st2.NewBytes, st2.ReusedFiles, st2.ReusedBytes)
			if st2.ReusedFiles != keys/perSST {
				t.Errorf("second checkpoint reused %d sstables, want %d", st2.ReusedFiles, keys/perSST)
			}
			// Private files (MANIFEST, OPTIONS, the WAL: Pebble copies a
			// recycled WAL whole, stale tail included) are stored every time;
			// sstables only when new.
			sharedAfter2 := sharedFiles(t, s)
			bytes1, bytes2 := sharedBytes(t, s, sharedAfter1), sharedBytes(t, s, sharedAfter2)
			if added := bytes2 - bytes1; added*50 > bytes1 {
				t.Errorf("second checkpoint added %d bytes to shared/, more than 2%% of the first's %d", added, bytes1)
			}
			if added := len(sharedAfter2) - len(sharedAfter1); added != 1 {
				t.Errorf("second checkpoint added %d shared files, want 1 (the flushed 1%%)", added)
			}
			if !isSubset(sharedAfter1, sharedAfter2) {
				t.Error("shared files of the first checkpoint renamed or lost")
			}

			c, skipped, err := s.Latest()
			must(t, err)
			if c.Meta.ID != 2 || len(skipped) > 0 {
				t.Fatalf("Latest = %d, %v", c.Meta.ID, skipped)
			}
			dst := filepath.Join(t.TempDir(), "restored-2")
			must(t, c.MaterializePebble("state", dst))
			checkDB(t, dst, keys, func(i int) []byte {
				if i%100 == 0 {
					return value(i, 2)
				}
				return value(i, 1)
			})
		})
	}
}

func sharedBytes(t *testing.T, s *Store, names []string) int64 {
	var n int64
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(s.sharedDir, name))
		must(t, err)
		n += fi.Size()
	}
	return n
}

func isSubset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// noLinkFS makes every hard link and rename fail as across file systems, to
// exercise the copy fallbacks.
type noLinkFS struct{ osFS }

func (noLinkFS) Link(oldpath, newpath string) error {
	return &os.LinkError{Op: "link", Old: oldpath, New: newpath, Err: syscall.EXDEV}
}

func (noLinkFS) Rename(oldpath, newpath string) error {
	if strings.Contains(oldpath, "checkpoints") {
		return os.Rename(oldpath, newpath) // within the store: same file system
	}
	return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EXDEV}
}

func TestCopyFallback(t *testing.T) {
	s, _ := newStore(t, Options{fs: noLinkFS{}})
	db := openDB(t, filepath.Join(t.TempDir(), "db"), true)
	fill(t, db, 0, 6000, 1, 2000)
	tmp := t.TempDir()
	p1, err := s.Begin(1)
	must(t, err)
	must(t, p1.AddPebbleCheckpoint("state", pebbleCheckpoint(t, db, tmp)))
	must(t, p1.Commit(Metadata{}))
	if st := p1.Stats(); st.CopiedBytes != st.NewBytes {
		t.Fatalf("stats %+v: expected everything copied", st)
	}
	fill(t, db, 0, 60, 2, 0)
	must(t, db.Flush())
	p2, err := s.Begin(2)
	must(t, err)
	must(t, p2.AddPebbleCheckpoint("state", pebbleCheckpoint(t, db, tmp)))
	must(t, p2.Commit(Metadata{}))
	if st := p2.Stats(); st.ReusedFiles != 3 {
		t.Fatalf("stats %+v: expected the 3 unchanged sstables reused (compared by content)", st)
	}
	for _, name := range sharedFiles(t, s) {
		if strings.HasPrefix(name, tmpPrefix) {
			t.Fatalf("temporary file %s left in shared/", name)
		}
	}
	c, err := s.Load(2)
	must(t, err)
	dst := filepath.Join(t.TempDir(), "restored")
	must(t, c.MaterializePebble("state", dst))
	checkDB(t, dst, 6000, func(i int) []byte {
		if i < 60 {
			return value(i, 2)
		}
		return value(i, 1)
	})
}

// TestCRCCollisionNotShared: a shared name that exists with other content
// (a crc32c collision, simulated by planting a file under the name) is not
// reused; the sstable is stored privately.
func TestCRCCollisionNotShared(t *testing.T) {
	s, _ := newStore(t, Options{})
	db := openDB(t, filepath.Join(t.TempDir(), "db"), true)
	fill(t, db, 0, 1000, 1, 1000)
	chk := pebbleCheckpoint(t, db, t.TempDir())
	des, err := os.ReadDir(chk)
	must(t, err)
	var sst string
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".sst") {
			sst = de.Name()
		}
	}
	size, crc, err := crcFile(filepath.Join(chk, sst))
	must(t, err)
	planted := filepath.Join(s.sharedDir, sharedName(crc, size, sst))
	must(t, os.WriteFile(planted, make([]byte, size), 0o644))

	p, err := s.Begin(1)
	must(t, err)
	must(t, p.AddPebbleCheckpoint("state", chk))
	must(t, p.Commit(Metadata{}))
	c, err := s.Load(1)
	must(t, err)
	for _, f := range c.Meta.Task("state").Files {
		if f.Name == sst && f.Shared != "" {
			t.Fatalf("%s shared under a name holding other bytes", sst)
		}
	}
	dst := filepath.Join(t.TempDir(), "restored")
	must(t, c.MaterializePebble("state", dst))
	checkDB(t, dst, 1000, func(i int) []byte { return value(i, 1) })
}
