package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// Checkpoint is a complete, validated checkpoint or savepoint. Values come
// from Latest, Load and OpenDir, which check every file's size and crc32c
// before returning one. The caller must not run Retain on a checkpoint it
// is still reading.
type Checkpoint struct {
	Meta Metadata
	// Dir is the checkpoint's directory (chk-<n> or a savepoint directory).
	Dir string

	sharedDir string // <Dir>/../shared
	s         *Store // nil from OpenDir
}

// OpenDir opens the checkpoint or savepoint directory dir by path (for
// restoring from --from-savepoint) and validates it. Shared files, if any,
// are looked up in dir's sibling "shared" directory. It returns ErrNotFound
// when dir does not exist and a corruption error when it does not validate.
func OpenDir(dir string) (*Checkpoint, error) {
	dir = filepath.Clean(dir)
	return loadDir(dir, filepath.Join(filepath.Dir(dir), sharedDirName), nil)
}

func loadDir(dir, sharedDir string, s *Store) (*Checkpoint, error) {
	if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, dir)
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("store: %s is not a directory", dir)
	}
	m, err := readMetadata(dir)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{Meta: *m, Dir: dir, sharedDir: sharedDir, s: s}
	if err := c.verify(); err != nil {
		return nil, err
	}
	return c, nil
}

// HasTask reports whether the checkpoint holds files of task.
func (c *Checkpoint) HasTask(task string) bool { return c.Meta.Task(task) != nil }

// paths returns a file's absolute path and the path errors name: relative
// to the checkpoint directory for a private file, "shared/<name>" for a
// shared one. Names were validated when the metadata was decoded.
func (c *Checkpoint) paths(task string, f *FileRef) (abs, rel string) {
	if f.Shared != "" {
		return filepath.Join(c.sharedDir, f.Shared), sharedDirName + "/" + f.Shared
	}
	return filepath.Join(c.Dir, task, f.Name), task + "/" + f.Name
}

// verify checks every referenced file's existence, size and crc32c, reading
// files on GOMAXPROCS goroutines. It returns the error of the first failing
// file in metadata order.
func (c *Checkpoint) verify() error {
	type job struct {
		task string
		f    *FileRef
	}
	var jobs []job
	for i := range c.Meta.Tasks {
		t := &c.Meta.Tasks[i]
		for j := range t.Files {
			jobs = append(jobs, job{t.Task, &t.Files[j]})
		}
	}
	errs := make([]error, len(jobs))
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				abs, rel := c.paths(jobs[i].task, jobs[i].f)
				errs[i] = verifyFile(abs, rel, jobs[i].f.Size, jobs[i].f.CRC32C)
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	return firstNonNil(errs)
}

func firstNonNil(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *Checkpoint) file(task, name string) (*FileRef, error) {
	t := c.Meta.Task(task)
	if t == nil {
		return nil, fmt.Errorf("%w: task %q in %s", ErrNotFound, task, c.Dir)
	}
	for i := range t.Files {
		if t.Files[i].Name == name {
			return &t.Files[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %s/%s in %s", ErrNotFound, task, name, c.Dir)
}

// ReadFile returns the blob task stored under name, verified against its
// crc32c and decompressed. It returns ErrNotFound when the checkpoint has
// no such file and a corruption error when it fails verification.
func (c *Checkpoint) ReadFile(task, name string) ([]byte, error) {
	b, err := c.readFile(task, name)
	if err != nil {
		c.s.markCorrupt(c.Meta.ID, err)
	}
	return b, err
}

func (c *Checkpoint) readFile(task, name string) ([]byte, error) {
	f, err := c.file(task, name)
	if err != nil {
		return nil, err
	}
	abs, rel := c.paths(task, f)
	b, err := os.ReadFile(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, corruptf(rel, "missing")
	case err != nil:
		return nil, fmt.Errorf("store: %w", err)
	case int64(len(b)) != f.Size:
		return nil, corruptf(rel, "size %d, want %d", len(b), f.Size)
	case crc32Checksum(b) != f.CRC32C:
		return nil, corruptf(rel, "checksum mismatch")
	}
	if !f.Compressed {
		return b, nil
	}
	out, err := decompress(b)
	if err != nil {
		return nil, corruptf(rel, "decompress: %v", err)
	}
	return out, nil
}

// MaterializePebble recreates task's Pebble checkpoint directory at dst,
// which must not exist; the result opens with pebble.Open. Shared
// sstables are hard-linked when possible (they are immutable, and Pebble
// never writes to an sstable), else copied; private files (MANIFEST, WAL,
// OPTIONS, markers), which Pebble may append to, are always copied. Every
// copy is verified against its crc32c as it is made; linked files were
// verified when the Checkpoint was loaded and are checked for size. The
// directory is built at dst+".materializing" and renamed into place, so
// dst is either absent or complete.
func (c *Checkpoint) MaterializePebble(task, dst string) error {
	t := c.Meta.Task(task)
	if t == nil {
		return fmt.Errorf("%w: task %q in %s", ErrNotFound, task, c.Dir)
	}
	if !t.Pebble {
		return fmt.Errorf("store: MaterializePebble: task %q holds no Pebble checkpoint", task)
	}
	dst = filepath.Clean(dst)
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("store: MaterializePebble: %s already exists", dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: MaterializePebble: %w", err)
	}
	tmp := dst + ".materializing"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("store: MaterializePebble: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("store: MaterializePebble: %w", err)
	}
	if err := c.materialize(t, tmp); err != nil {
		c.s.markCorrupt(c.Meta.ID, err)
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("store: MaterializePebble %s: %w", task, err)
	}
	if err := (osFS{}).SyncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("store: MaterializePebble: %w", err)
	}
	return (osFS{}).SyncDir(filepath.Dir(dst))
}

func (c *Checkpoint) materialize(t *TaskMeta, dir string) error {
	for i := range t.Files {
		f := &t.Files[i]
		src, rel := c.paths(t.Task, f)
		out := filepath.Join(dir, f.Name)
		if f.Shared != "" && os.Link(src, out) == nil {
			fi, err := os.Lstat(out)
			if err != nil {
				return err
			}
			if fi.Size() != f.Size {
				return corruptf(rel, "size %d, want %d", fi.Size(), f.Size)
			}
			if c.s != nil {
				if id, ok := fileIDOf(fi); ok {
					c.s.mu.Lock()
					c.s.mu.byInode[id] = sharedEntry{name: f.Shared, size: f.Size, crc: f.CRC32C}
					c.s.mu.Unlock()
				}
			}
			continue
		}
		size, crc, err := copyFile(osFS{}, src, out, true)
		if errors.Is(err, fs.ErrNotExist) {
			return corruptf(rel, "missing")
		} else if err != nil {
			return err
		}
		if size != f.Size {
			return corruptf(rel, "size %d, want %d", size, f.Size)
		}
		if crc != f.CRC32C {
			return corruptf(rel, "checksum mismatch")
		}
	}
	return nil
}
