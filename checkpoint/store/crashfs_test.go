package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

var errCrash = errors.New("crashfs: simulated crash")

// crashFS wraps the real file system for the write path (the writeFS
// interface) and simulates a crash at its crashAt-th operation: that
// operation does not happen (a write happens half), and every later one
// fails with errCrash, as if the process had died there. powerLoss then
// undoes what the operations before the crash had not made durable, under
// the POSIX rules the store relies on (pebble's vfs.NewCrashableMem models
// the same, in memory):
//
//   - file data written since the file's last fsync is lost (the file is
//     truncated to its size at that fsync, or 0);
//   - a directory entry created, linked or renamed into a directory is
//     lost unless that directory was fsynced after the operation (a lost
//     rename moves the entry back). Removals are taken as durable at once,
//     which only makes the model harsher.
//
// Entries are identified by inode, so the model follows directories that
// were renamed after the operation.
type crashFS struct {
	mu      sync.Mutex
	crashAt int // 1-based; 0: never
	n       int
	crashed bool
	ops     []crashOp
	// dirSynced maps a directory's inode to the index of its last fsync.
	dirSynced map[uint64]int
	// durable maps a file's inode to its size at its last fsync, for files
	// written through this FS.
	durable map[uint64]int64
	dirty   map[uint64]bool
}

type crashOp struct {
	seq       int
	kind      string // "create", "rename"
	parent    uint64 // inode of the directory gaining the entry
	name      string
	ino       uint64 // inode of the entry
	srcParent uint64 // rename: the directory losing the entry
	srcName   string
	desc      string
}

func newCrashFS(crashAt int) *crashFS {
	return &crashFS{crashAt: crashAt, dirSynced: map[uint64]int{}, durable: map[uint64]int64{}, dirty: map[uint64]bool{}}
}

// step accounts for one operation: it returns errCrash when the crash has
// happened, and now=true when it happens at this very operation.
func (c *crashFS) step(desc string) (seq int, now bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return 0, false, errCrash
	}
	c.n++
	if c.n == c.crashAt {
		c.crashed = true
		return c.n, true, fmt.Errorf("%w at op %d (%s)", errCrash, c.n, desc)
	}
	return c.n, false, nil
}

func inode(path string) uint64 {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0
	}
	id, _ := fileIDOf(fi)
	return id.ino
}

func (c *crashFS) record(op crashOp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops = append(c.ops, op)
}

func (c *crashFS) MkdirAll(path string) error {
	path = filepath.Clean(path)
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil
	}
	if parent := filepath.Dir(path); parent != path {
		if err := c.MkdirAll(parent); err != nil {
			return err
		}
	}
	return c.Mkdir(path)
}

func (c *crashFS) Mkdir(path string) error {
	seq, _, err := c.step("mkdir " + path)
	if err != nil {
		return err
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		return err
	}
	c.record(crashOp{seq: seq, kind: "create", parent: inode(filepath.Dir(path)), name: filepath.Base(path), ino: inode(path), desc: "mkdir " + path})
	return nil
}

func (c *crashFS) Create(path string) (writableFile, error) {
	seq, _, err := c.step("create " + path)
	if err != nil {
		return nil, err
	}
	f, err := osFS{}.Create(path)
	if err != nil {
		return nil, err
	}
	ino := inode(path)
	c.record(crashOp{seq: seq, kind: "create", parent: inode(filepath.Dir(path)), name: filepath.Base(path), ino: ino, desc: "create " + path})
	c.mu.Lock()
	c.durable[ino] = 0
	c.mu.Unlock()
	return &crashFile{c: c, f: f.(*os.File), ino: ino, path: path}, nil
}

func (c *crashFS) Rename(oldpath, newpath string) error {
	seq, _, err := c.step("rename " + oldpath)
	if err != nil {
		return err
	}
	srcParent := inode(filepath.Dir(oldpath))
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	c.record(crashOp{seq: seq, kind: "rename", parent: inode(filepath.Dir(newpath)), name: filepath.Base(newpath),
		ino: inode(newpath), srcParent: srcParent, srcName: filepath.Base(oldpath), desc: "rename " + oldpath + " " + newpath})
	return nil
}

func (c *crashFS) Link(oldpath, newpath string) error {
	seq, _, err := c.step("link " + newpath)
	if err != nil {
		return err
	}
	if err := os.Link(oldpath, newpath); err != nil {
		return err
	}
	c.record(crashOp{seq: seq, kind: "create", parent: inode(filepath.Dir(newpath)), name: filepath.Base(newpath), ino: inode(newpath), desc: "link " + newpath})
	return nil
}

func (c *crashFS) Remove(path string) error {
	if _, _, err := c.step("remove " + path); err != nil {
		return err
	}
	return os.Remove(path)
}

func (c *crashFS) RemoveAll(path string) error {
	if _, _, err := c.step("removeall " + path); err != nil {
		return err
	}
	return os.RemoveAll(path)
}

func (c *crashFS) SyncDir(path string) error {
	seq, _, err := c.step("syncdir " + path)
	if err != nil {
		return err
	}
	// The model decides what is durable; a real fsync would only slow
	// the test down.
	if _, err := os.Stat(path); err != nil {
		return err
	}
	c.mu.Lock()
	c.dirSynced[inode(path)] = seq
	c.mu.Unlock()
	return nil
}

type crashFile struct {
	c    *crashFS
	f    *os.File
	ino  uint64
	path string
}

func (f *crashFile) Write(b []byte) (int, error) {
	_, now, err := f.c.step("write " + f.path)
	if now {
		n, _ := f.f.Write(b[:len(b)/2])
		return n, err
	}
	if err != nil {
		return 0, err
	}
	f.c.mu.Lock()
	f.c.dirty[f.ino] = true
	f.c.mu.Unlock()
	return f.f.Write(b)
}

func (f *crashFile) Sync() error {
	if _, _, err := f.c.step("fsync " + f.path); err != nil {
		return err
	}
	fi, err := f.f.Stat() // no real fsync: the model decides
	if err != nil {
		return err
	}
	f.c.mu.Lock()
	f.c.durable[f.ino] = fi.Size()
	delete(f.c.dirty, f.ino)
	f.c.mu.Unlock()
	return nil
}

func (f *crashFile) Close() error { return f.f.Close() }

// paths maps inodes to a current path under roots.
func paths(roots ...string) map[uint64]string {
	m := map[uint64]string{}
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				if ino := inode(p); ino != 0 {
					if _, seen := m[ino]; !seen {
						m[ino] = p
					}
				}
			}
			return nil
		})
	}
	return m
}

// powerLoss drops what was not durable at the crash (see crashFS). roots
// must cover every directory the operations touched. It returns a
// description of what it undid.
func (c *crashFS) powerLoss(roots ...string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var undone []string
	where := paths(roots...)
	for ino := range c.dirty {
		if p, ok := where[ino]; ok {
			_ = os.Truncate(p, c.durable[ino])
			undone = append(undone, fmt.Sprintf("truncate %s to %d", p, c.durable[ino]))
		}
	}
	for i := len(c.ops) - 1; i >= 0; i-- {
		op := c.ops[i]
		if c.dirSynced[op.parent] > op.seq {
			continue // durable
		}
		where := paths(roots...)
		dir, ok := where[op.parent]
		if !ok {
			continue // the directory itself is gone
		}
		target := filepath.Join(dir, op.name)
		if inode(target) != op.ino {
			continue // no longer there (removed, or renamed on durably)
		}
		switch op.kind {
		case "create":
			_ = os.RemoveAll(target)
		case "rename":
			if src, ok := where[op.srcParent]; ok {
				_ = os.Rename(target, filepath.Join(src, op.srcName))
			} else {
				_ = os.RemoveAll(target)
			}
		}
		undone = append(undone, "undo "+op.desc)
	}
	return undone
}
