package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestCrashAtEveryStep checks the crash-atomicity invariant: with chk-1
// complete (or, for the first checkpoint, nothing), checkpoint 2 (Open, Begin, two AddFile, AddPebbleCheckpoint,
// Commit) is interrupted after every single file-system operation in turn,
// once as a process crash and once as a power loss (dropping what was not
// durable). Reopening the store must then find either the previous state or
// a complete chk-2, never a corrupt checkpoint; a power loss before
// Commit's last fsync must leave the previous state; retrying checkpoint 2 and Retain must then leave
// a clean directory.
func TestCrashAtEveryStep(t *testing.T) {
	if fi, err := os.Stat(t.TempDir()); err != nil {
		t.Fatal(err)
	} else if _, ok := fileIDOf(fi); !ok {
		t.Skip("the crash model identifies entries by inode")
	}
	db := openDB(t, filepath.Join(t.TempDir(), "db"), false)
	fill(t, db, 0, 2000, 1, 1000)
	base := t.TempDir()
	log2 := bytes.Repeat([]byte("feedback-record-2;"), 1000)

	phase := 0
	setPhase := func(p int) {
		if phase != p {
			must(t, db.Set([]byte("phase"), fmt.Appendf(nil, "%d", p), pebble.NoSync))
			must(t, db.Flush())
			phase = p
		}
	}
	checkpoint := func(s *Store, id uint64, root string) error {
		p, err := s.Begin(id)
		if err != nil {
			return err
		}
		err = p.AddFile("source-0", "offsets", fmt.Appendf(nil, "v%d", id))
		if err == nil {
			err = p.AddFile("source-0", "log", log2)
		}
		if err == nil {
			setPhase(int(id))
			err = p.AddPebbleCheckpoint("state", pebbleCheckpoint(t, db, filepath.Join(root, "tmp")))
		}
		if err == nil {
			err = p.Commit(Metadata{Parallelism: 1})
		}
		if err != nil {
			_ = p.Abort() // fails too after a crash
		}
		return err
	}

	// The starting state (chk-1, or nothing at all) is built once and
	// cloned (hard links: the store never writes to a file in place) for
	// every crash point. Only the store under test fsyncs (through the
	// model); the others skip fsync to keep the test fast.
	fast := Options{Compress: true, Explicit: true}
	withPrev := filepath.Join(base, "template-chk-1")
	s0, err := Open(filepath.Join(withPrev, "checkpoints"), "job", fast)
	must(t, err)
	must(t, checkpoint(s0, 1, withPrev))
	empty := filepath.Join(base, "template-empty")
	must(t, os.MkdirAll(empty, 0o755))

	for _, tc := range []struct {
		name      string
		template  string
		powerLoss bool
	}{
		{"process-crash", withPrev, false},
		{"power-loss", withPrev, true},
		{"power-loss-first-checkpoint", empty, true},
	} {
		mode, template, powerLoss := tc.name, tc.template, tc.powerLoss
		prev := uint64(1)
		if template == empty {
			prev = 0
		}
		t.Run(mode, func(t *testing.T) {
			firstVisible := 0
			checked := map[uint64]bool{} // restored with Pebble at least once
			for k := 1; ; k++ {
				root := filepath.Join(base, fmt.Sprintf("%s-%d", mode, k))
				cloneTree(t, template, root)
				chkRoot := filepath.Join(root, "checkpoints")

				cfs := newCrashFS(k)
				s2, err := Open(chkRoot, "job", Options{fs: cfs})
				if err == nil {
					err = checkpoint(s2, 2, root)
				}
				crashed := cfs.crashed
				if !crashed {
					must(t, err)
				} else if !errors.Is(err, errCrash) {
					t.Fatalf("op %d: checkpoint returned %v, want the crash", k, err)
				}
				var undone []string
				if powerLoss { // also after success: all of it must be durable
					undone = cfs.powerLoss(root)
				}

				s, err := Open(chkRoot, "job", fast)
				must(t, err)
				c, skipped, err := s.Latest()
				must(t, err)
				if (c == nil && prev != 0) || len(skipped) > 0 {
					t.Fatalf("op %d: Latest = %v, skipped %v; undone %v", k, c, skipped, undone)
				}
				id := uint64(0)
				if c != nil {
					id = c.Meta.ID
				}
				switch {
				case id != prev && id != 2:
					t.Fatalf("op %d: Latest found chk-%d", k, id)
				case !crashed && id != 2:
					t.Fatalf("op %d: completed checkpoint 2 not visible", k)
				case powerLoss && crashed && id != prev:
					t.Fatalf("op %d: chk-2 survived a power loss before Commit's last fsync", k)
				case !powerLoss && firstVisible > 0 && id != 2:
					t.Fatalf("op %d: chk-2 visible after a crash at op %d but not at op %d", k, firstVisible, k)
				case id == 2 && firstVisible == 0:
					firstVisible = k
				}
				// Latest verified every file; restoring with Pebble checks
				// the file set opens, which depends only on the id.
				if c != nil {
					checkContent(t, c, id, !checked[id] || !crashed)
					checked[id] = true
				}

				// Recovery: the coordinator retries checkpoint 2 (Begin
				// replaces any leftover), then Retain cleans up.
				if id != 2 {
					must(t, checkpoint(s, 2, root))
				}
				must(t, s.Retain(1))
				des, err := os.ReadDir(s.Dir())
				must(t, err)
				var names []string
				for _, de := range des {
					names = append(names, de.Name())
				}
				if !slices.Equal(names, []string{"chk-2", "shared"}) {
					t.Fatalf("op %d: job dir after recovery: %v", k, names)
				}
				if got, want := sharedFiles(t, s), referenced(t, s); !slices.Equal(got, want) {
					t.Fatalf("op %d: shared/ = %v, referenced %v", k, got, want)
				}
				if _, err := s.Load(2); err != nil {
					t.Fatalf("op %d: after recovery: %v", k, err)
				}
				must(t, os.RemoveAll(root))
				if !crashed {
					t.Logf("%d operations; chk-2 visible from a crash at op %d on", k-1, firstVisible)
					break
				}
			}
		})
	}
}

// cloneTree recreates src at dst with directories made and files
// hard-linked.
func cloneTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		return os.Link(p, filepath.Join(dst, rel))
	})
	must(t, err)
}

func checkContent(t *testing.T, c *Checkpoint, id uint64, withPebble bool) {
	t.Helper()
	got, err := c.ReadFile("source-0", "offsets")
	must(t, err)
	if want := fmt.Sprintf("v%d", id); string(got) != want {
		t.Fatalf("chk-%d offsets = %q, want %q", id, got, want)
	}
	if got, err := c.ReadFile("source-0", "log"); err != nil || !strings.HasPrefix(string(got), "feedback-record-2;") {
		t.Fatalf("chk-%d log: %v", id, err)
	}
	if !withPebble {
		return
	}
	dst := filepath.Join(t.TempDir(), "db")
	must(t, c.MaterializePebble("state", dst))
	db, err := pebble.Open(dst, &pebble.Options{FS: noSyncFS{vfs.Default}, Logger: quietLogger{}})
	must(t, err)
	defer db.Close()
	v, closer, err := db.Get([]byte("phase"))
	must(t, err)
	defer closer.Close()
	if want := fmt.Sprintf("%d", id); string(v) != want {
		t.Fatalf("chk-%d: restored phase %q, want %q", id, v, want)
	}
}
