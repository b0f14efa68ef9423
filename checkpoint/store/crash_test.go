package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestCrashAtEveryStep checks the crash-atomicity invariant: with chk-1
// complete, checkpoint 2 (Open, Begin, two AddFile, AddPebbleCheckpoint,
// Commit) is interrupted after every single file-system operation in turn,
// once as a process crash and once as a power loss (dropping what was not
// durable). Reopening the store must then find either chk-1 or a complete
// chk-2, never a corrupt checkpoint; a power loss before Commit's last
// fsync must leave chk-1; retrying checkpoint 2 and Retain must then leave
// a clean directory.
func TestCrashAtEveryStep(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "db"), false)
	fill(t, db, 0, 2000, 1, 1000)
	base := t.TempDir()
	log2 := bytes.Repeat([]byte("feedback-record-2;"), 1000)

	setPhase := func(phase int) {
		must(t, db.Set([]byte("phase"), fmt.Appendf(nil, "%d", phase), pebble.NoSync))
		must(t, db.Flush())
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

	for _, powerLoss := range []bool{false, true} {
		mode := map[bool]string{false: "process-crash", true: "power-loss"}[powerLoss]
		t.Run(mode, func(t *testing.T) {
			firstVisible := 0
			for k := 1; ; k++ {
				root := filepath.Join(base, fmt.Sprintf("%s-%d", mode, k))
				chkRoot := filepath.Join(root, "checkpoints")
				// Only the store under test fsyncs (through the model); the
				// others skip fsync to keep the test fast.
				fast := Options{Compress: true, Explicit: true}
				s1, err := Open(chkRoot, "job", fast)
				must(t, err)
				setPhase(1)
				must(t, checkpoint(s1, 1, root))

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
				if powerLoss && crashed {
					undone = cfs.powerLoss(root)
				}

				s, err := Open(chkRoot, "job", fast)
				must(t, err)
				c, skipped, err := s.Latest()
				must(t, err)
				if c == nil || len(skipped) > 0 {
					t.Fatalf("op %d (%v): Latest = %v, skipped %v; undone %v", k, cfs.ops[len(cfs.ops)-1].desc, c, skipped, undone)
				}
				id := c.Meta.ID
				switch {
				case !crashed && id != 2:
					t.Fatalf("op %d: completed checkpoint 2 not visible", k)
				case powerLoss && crashed && id != 1:
					t.Fatalf("op %d: chk-2 survived a power loss before Commit's last fsync", k)
				case !powerLoss && firstVisible > 0 && id != 2:
					t.Fatalf("op %d: chk-2 visible after a crash at op %d but not at op %d", k, firstVisible, k)
				case id == 2 && firstVisible == 0:
					firstVisible = k
				}
				checkContent(t, c, id)

				// Recovery: the coordinator retries checkpoint 2 (Begin
				// replaces any leftover), then Retain cleans up.
				if id == 1 {
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
				c2, err := s.Load(2)
				must(t, err)
				if id == 1 {
					checkContent(t, c2, 2)
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

func checkContent(t *testing.T, c *Checkpoint, id uint64) {
	t.Helper()
	got, err := c.ReadFile("source-0", "offsets")
	must(t, err)
	if want := fmt.Sprintf("v%d", id); string(got) != want {
		t.Fatalf("chk-%d offsets = %q, want %q", id, got, want)
	}
	if got, err := c.ReadFile("source-0", "log"); err != nil || !strings.HasPrefix(string(got), "feedback-record-2;") {
		t.Fatalf("chk-%d log: %v", id, err)
	}
	dst := filepath.Join(t.TempDir(), "db")
	must(t, c.MaterializePebble("state", dst))
	db, err := pebble.Open(dst, &pebble.Options{Logger: quietLogger{}})
	must(t, err)
	defer db.Close()
	v, closer, err := db.Get([]byte("phase"))
	must(t, err)
	defer closer.Close()
	if want := fmt.Sprintf("%d", id); string(v) != want {
		t.Fatalf("chk-%d: restored phase %q, want %q", id, v, want)
	}
}
