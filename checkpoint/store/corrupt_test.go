package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corruptionFixture commits chk-1 and chk-2 (a blob and a Pebble checkpoint
// each; chk-2 has one sstable of its own) and returns the store and the
// names of chk-2's own files.
type corruptionFixture struct {
	s          *Store
	root       string
	ownSST     string // shared name of an sstable only chk-2 references
	manifest   string // chk-2's private MANIFEST
	wal        string // chk-2's private WAL
	chk2       string
	metadata2  string
	blob2      string
	largeBlob2 string
	sharedBoth string // shared name of an sstable both reference
}

func newCorruptionFixture(t *testing.T) *corruptionFixture {
	t.Helper()
	s, root := newStore(t, Options{})
	db := openDB(t, filepath.Join(t.TempDir(), "db"), true)
	tmp := t.TempDir()
	fill(t, db, 0, 3000, 1, 1000)
	for id := uint64(1); id <= 2; id++ {
		if id == 2 {
			fill(t, db, 0, 30, 2, 0)
			must(t, db.Flush())
		}
		p, err := s.Begin(id)
		must(t, err)
		must(t, p.AddFile("source-0", "offsets", []byte{byte(id)}))
		must(t, p.AddFile("source-0", "log", []byte(strings.Repeat("feedback record ", 1000))))
		must(t, p.AddPebbleCheckpoint("state", pebbleCheckpoint(t, db, tmp)))
		must(t, p.Commit(Metadata{}))
	}
	c1, err := s.Load(1)
	must(t, err)
	c2, err := s.Load(2)
	must(t, err)
	f := &corruptionFixture{s: s, root: root, chk2: c2.Dir}
	f.metadata2 = filepath.Join(c2.Dir, metadataName)
	f.blob2 = filepath.Join(c2.Dir, "source-0", "offsets")
	f.largeBlob2 = filepath.Join(c2.Dir, "source-0", "log")
	in1 := map[string]bool{}
	for _, r := range c1.Meta.Task("state").Files {
		in1[r.Shared] = true
	}
	for _, r := range c2.Meta.Task("state").Files {
		switch {
		case r.Shared != "" && !in1[r.Shared]:
			f.ownSST = r.Shared
		case r.Shared != "":
			f.sharedBoth = r.Shared
		case strings.HasPrefix(r.Name, "MANIFEST-"):
			f.manifest = r.Name
		case strings.HasSuffix(r.Name, ".log"):
			f.wal = r.Name
		}
	}
	if f.ownSST == "" || f.manifest == "" || f.wal == "" || f.sharedBoth == "" {
		t.Fatalf("fixture: %+v", f)
	}
	return f
}

// clone copies the fixture's store (byte copies, so corrupting the clone
// leaves the template intact) and returns the fixture for the copy.
func (f *corruptionFixture) clone(t *testing.T) *corruptionFixture {
	t.Helper()
	root := filepath.Join(t.TempDir(), "checkpoints")
	err := filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(f.root, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(root, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(root, rel), b, 0o644)
	})
	must(t, err)
	s, err := Open(root, "job", Options{})
	must(t, err)
	g := *f
	move := func(p string) string { return filepath.Join(root, strings.TrimPrefix(p, f.root)) }
	g.s, g.root = s, root
	g.chk2, g.metadata2, g.blob2, g.largeBlob2 = move(f.chk2), move(f.metadata2), move(f.blob2), move(f.largeBlob2)
	return &g
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer fh.Close()
	fi, err := fh.Stat()
	must(t, err)
	if off < 0 {
		off += fi.Size()
	}
	b := make([]byte, 1)
	_, err = fh.ReadAt(b, off)
	must(t, err)
	b[0] ^= 0x20
	_, err = fh.WriteAt(b, off)
	must(t, err)
}

func truncate(t *testing.T, path string, frac float64) {
	t.Helper()
	fi, err := os.Stat(path)
	must(t, err)
	must(t, os.Truncate(path, int64(float64(fi.Size())*frac)))
}

func TestCorruptionDetected(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, f *corruptionFixture)
		reason  string // the full text of the skipped error
	}{
		{"metadata-truncated", func(t *testing.T, f *corruptionFixture) { truncate(t, f.metadata2, 0.5) },
			"chk-2: _metadata: truncated"},
		{"metadata-empty", func(t *testing.T, f *corruptionFixture) { truncate(t, f.metadata2, 0) },
			"chk-2: _metadata: truncated (empty)"},
		{"metadata-header-only", func(t *testing.T, f *corruptionFixture) { must(t, os.Truncate(f.metadata2, int64(headerLen))) },
			"chk-2: _metadata: truncated"},
		{"metadata-body-flipped", func(t *testing.T, f *corruptionFixture) { flipByte(t, f.metadata2, -10) },
			"chk-2: _metadata: checksum mismatch"},
		{"metadata-length-flipped", func(t *testing.T, f *corruptionFixture) { flipByte(t, f.metadata2, int64(len(headerMagic)+17)) },
			"chk-2: _metadata: malformed header"},
		{"metadata-magic-flipped", func(t *testing.T, f *corruptionFixture) { flipByte(t, f.metadata2, 2) },
			"chk-2: _metadata: bad magic"},
		{"metadata-appended", func(t *testing.T, f *corruptionFixture) { appendTo(t, f.metadata2, "x") },
			"chk-2: _metadata: 1 trailing bytes"},
		{"metadata-deleted", func(t *testing.T, f *corruptionFixture) { must(t, os.Remove(f.metadata2)) },
			"chk-2: _metadata: missing"},
		{"blob-flipped", func(t *testing.T, f *corruptionFixture) { flipByte(t, f.blob2, 0) },
			"chk-2: source-0/offsets: checksum mismatch"},
		{"compressed-blob-flipped", func(t *testing.T, f *corruptionFixture) { flipByte(t, f.largeBlob2, 20) },
			"chk-2: source-0/log: checksum mismatch"},
		{"blob-truncated", func(t *testing.T, f *corruptionFixture) { truncate(t, f.largeBlob2, 0.5) },
			"chk-2: source-0/log: size"},
		{"blob-deleted", func(t *testing.T, f *corruptionFixture) { must(t, os.Remove(f.blob2)) },
			"chk-2: source-0/offsets: missing"},
		{"shared-sst-flipped", func(t *testing.T, f *corruptionFixture) {
			flipByte(t, filepath.Join(f.s.sharedDir, f.ownSST), 100)
		}, "chk-2: shared/{ownSST}: checksum mismatch"},
		{"shared-sst-deleted", func(t *testing.T, f *corruptionFixture) {
			must(t, os.Remove(filepath.Join(f.s.sharedDir, f.ownSST)))
		}, "chk-2: shared/{ownSST}: missing"},
		{"manifest-deleted", func(t *testing.T, f *corruptionFixture) {
			must(t, os.Remove(filepath.Join(f.chk2, "state", f.manifest)))
		}, "chk-2: state/{manifest}: missing"},
		{"wal-appended", func(t *testing.T, f *corruptionFixture) {
			appendTo(t, filepath.Join(f.chk2, "state", f.wal), "garbage")
		}, "chk-2: state/{wal}: size"},
	}
	template := newCorruptionFixture(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := template.clone(t)
			tc.corrupt(t, f)
			want := strings.NewReplacer("{ownSST}", f.ownSST, "{manifest}", f.manifest, "{wal}", f.wal).Replace(tc.reason)

			s, err := Open(f.root, "job", Options{})
			must(t, err)
			c, skipped, err := s.Latest()
			must(t, err)
			if c == nil || c.Meta.ID != 1 {
				t.Fatalf("Latest fell back to %v, want chk-1", c)
			}
			if len(skipped) != 1 || !strings.HasPrefix(skipped[0].Error(), want) || !IsCorruption(skipped[0]) {
				t.Fatalf("skipped = %v, want one corruption error starting %q", skipped, want)
			}
			t.Logf("skipped: %v", skipped[0])
			if got, err := c.ReadFile("source-0", "offsets"); err != nil || got[0] != 1 {
				t.Fatalf("fallback chk-1 ReadFile = %v, %v", got, err)
			}
			if _, err := s.Load(2); !IsCorruption(err) {
				t.Fatalf("Load(2) = %v, want corruption", err)
			}
			if _, err := OpenDir(f.chk2); !IsCorruption(err) {
				t.Fatalf("OpenDir(chk-2) = %v, want corruption", err)
			}
			// A corrupt chk-2 newer than the kept one stays for inspection.
			must(t, s.Retain(1))
			if _, err := os.Stat(f.chk2); err != nil {
				t.Fatalf("Retain removed the corrupt newest checkpoint: %v", err)
			}
			if c, _, err := s.Latest(); err != nil || c == nil || c.Meta.ID != 1 {
				t.Fatalf("Latest after Retain: %v, %v", c, err)
			}
		})
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = fh.WriteString(s)
	must(t, err)
	must(t, fh.Close())
}

// TestCorruptionAfterLoad: damage after a checkpoint was loaded is still
// caught by ReadFile and MaterializePebble.
func TestCorruptionAfterLoad(t *testing.T) {
	f := newCorruptionFixture(t)
	c, err := f.s.Load(2)
	must(t, err)
	flipByte(t, f.largeBlob2, 30)
	if _, err := c.ReadFile("source-0", "log"); !IsCorruption(err) || !strings.Contains(err.Error(), "source-0/log: checksum mismatch") {
		t.Fatalf("ReadFile = %v", err)
	}
	flipByte(t, filepath.Join(f.chk2, "state", f.manifest), 5)
	dst := filepath.Join(t.TempDir(), "db")
	if err := c.MaterializePebble("state", dst); !IsCorruption(err) {
		t.Fatalf("MaterializePebble = %v", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatal("MaterializePebble left a partial directory")
	}
}

// TestAllCorrupt: with every checkpoint corrupt Latest returns none and
// lists all, newest first.
func TestAllCorrupt(t *testing.T) {
	f := newCorruptionFixture(t)
	flipByte(t, filepath.Join(f.s.sharedDir, f.sharedBoth), 50)
	c, skipped, err := f.s.Latest()
	must(t, err)
	if c != nil || len(skipped) != 2 ||
		!strings.HasPrefix(skipped[0].Error(), "chk-2: shared/"+f.sharedBoth+": checksum mismatch") ||
		!strings.HasPrefix(skipped[1].Error(), "chk-1: shared/"+f.sharedBoth+": checksum mismatch") {
		t.Fatalf("Latest = %v, %v", c, skipped)
	}
}

// TestUnknownVersionKept: intact metadata of a newer format is skipped by
// Latest but neither deleted nor garbage-collected by Retain.
func TestUnknownVersionKept(t *testing.T) {
	f := newCorruptionFixture(t)
	raw, err := os.ReadFile(f.metadata2)
	must(t, err)
	body := raw[headerLen:]
	newer, err := encodeRaw(2, body)
	must(t, err)
	must(t, os.WriteFile(f.metadata2, newer, 0o644))
	c, skipped, err := f.s.Latest()
	must(t, err)
	if c.Meta.ID != 1 || len(skipped) != 1 || !strings.Contains(skipped[0].Error(), "unsupported version 2") {
		t.Fatalf("Latest = %v, %v", c.Meta.ID, skipped)
	}
	must(t, f.s.Retain(1))
	if _, err := os.Stat(filepath.Join(f.s.sharedDir, f.ownSST)); err != nil {
		t.Fatalf("Retain collected a file of a checkpoint it cannot read: %v", err)
	}
}
