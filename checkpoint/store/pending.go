package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Pending is a checkpoint being written: Begin (or BeginSavepoint), then
// AddFile / AddPebbleCheckpoint from any goroutines, then exactly one of
// Commit or Abort. Until Commit returns, nothing of it is visible to List,
// Latest or Load.
//
// After an Add call fails with an I/O error the Pending is poisoned: Commit
// returns that error and the caller must Abort. Argument errors (a bad
// name, a duplicate) leave it usable.
type Pending struct {
	s         *Store // nil for a savepoint
	opts      Options
	id        uint64
	dir       string // the in-progress directory
	final     string // its name once committed
	sharedDir string // "" when nothing is shared (savepoints)
	job       string // for savepoints: "" (from Commit's meta)
	start     time.Time

	mu struct {
		sync.Mutex
		tasks    map[string]*pendingTask
		inflight int // Add calls writing files
		closed   bool
		renamed  bool  // Commit renamed dir to final but did not finish
		err      error // sticky: the first I/O error of an Add or Commit
		stats    Stats
	}

	// sharedRefs are the names in shared/ this checkpoint refers to. A name
	// is registered before the file is checked for or created, so Retain
	// (which holds s.mu while it collects) never removes it.
	// Protected by s.mu.
	sharedRefs map[string]struct{}
	// sharedDirty is set when this checkpoint created an entry in shared/,
	// which Commit then makes durable. Protected by s.mu.
	sharedDirty bool
}

type pendingTask struct {
	files  map[string]FileRef
	pebble bool
}

// Stats counts what a checkpoint references and what it added to storage.
type Stats struct {
	Files int   // files the checkpoint references (set by Commit)
	Bytes int64 // their stored size (set by Commit)
	// NewFiles and NewBytes are what this checkpoint wrote, moved, linked
	// or copied into storage: private files and shared files that were not
	// there before. For an incremental checkpoint this is the delta.
	NewFiles int
	NewBytes int64
	// ReusedFiles and ReusedBytes are shared files an earlier checkpoint
	// had already stored.
	ReusedFiles int
	ReusedBytes int64
	// CopiedBytes is the part of NewBytes that was copied byte by byte
	// rather than moved or hard-linked (blobs are written, not counted).
	CopiedBytes int64
}

// Begin starts checkpoint id in <job>/chk-<id>.inprogress/, first removing a
// leftover in-progress directory of the same id. It fails with ErrExists
// when chk-<id> is complete or id is already pending in this Store.
func (s *Store) Begin(id uint64) (*Pending, error) {
	p := &Pending{
		s: s, opts: s.opts, id: id, job: s.job, start: time.Now(),
		dir:        filepath.Join(s.dir, inProgressDirName(id)),
		final:      filepath.Join(s.dir, chkDirName(id)),
		sharedDir:  s.sharedDir,
		sharedRefs: make(map[string]struct{}),
	}
	p.mu.tasks = make(map[string]*pendingTask)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mu.pending[id]; ok {
		return nil, fmt.Errorf("%w: %s is pending", ErrExists, chkDirName(id))
	}
	if _, err := os.Lstat(p.final); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, chkDirName(id))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: begin: %w", err)
	}
	if err := s.opts.fs.RemoveAll(p.dir); err != nil {
		return nil, fmt.Errorf("store: begin: %w", err)
	}
	if err := s.opts.fs.Mkdir(p.dir); err != nil {
		return nil, fmt.Errorf("store: begin: %w", err)
	}
	s.mu.pending[id] = p
	return p, nil
}

// BeginSavepoint starts a self-contained savepoint written to dir (normally
// <state-dir>/savepoints/<id>), via dir+".inprogress". Nothing is shared:
// sstables are hard-linked (or copied) into the task directories, so the
// savepoint outlives the checkpoints it was taken next to and can be
// opened with OpenDir. Commit sets Metadata.Savepoint; meta.Job must be set.
func BeginSavepoint(dir string, id uint64, opts Options) (*Pending, error) {
	opts.EnsureDefaults()
	dir = filepath.Clean(dir)
	p := &Pending{opts: opts, id: id, dir: dir + inProgressSuffix, final: dir, start: time.Now()}
	p.mu.tasks = make(map[string]*pendingTask)
	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: begin savepoint: %w", err)
	}
	if err := opts.fs.MkdirAll(filepath.Dir(dir)); err != nil {
		return nil, fmt.Errorf("store: begin savepoint: %w", err)
	}
	if err := opts.fs.RemoveAll(p.dir); err != nil {
		return nil, fmt.Errorf("store: begin savepoint: %w", err)
	}
	if err := opts.fs.Mkdir(p.dir); err != nil {
		return nil, fmt.Errorf("store: begin savepoint: %w", err)
	}
	return p, nil
}

// ID returns the checkpoint id.
func (p *Pending) ID() uint64 { return p.id }

// Stats returns what the checkpoint references and added so far.
func (p *Pending) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.stats
}

// usableLocked returns why no file can be added or committed.
// REQUIRES: p.mu held.
func (p *Pending) usableLocked() error {
	if p.mu.closed {
		return ErrClosed
	}
	if p.mu.err != nil {
		return fmt.Errorf("store: %s failed earlier: %w", chkDirName(p.id), p.mu.err)
	}
	return nil
}

// AddFile stores a small per-task blob (operator state, source offsets, a
// sealed feedback log). Blobs over 4 KiB are zstd-compressed when that
// pays; the stored bytes are checksummed and fsynced. Safe for concurrent
// use, by different tasks or the same one; a task holds either blobs or a
// Pebble checkpoint, and each name once.
func (p *Pending) AddFile(task, name string, data []byte) error {
	if err := checkTaskName(task); err != nil {
		return fmt.Errorf("store: AddFile: task: %v", err)
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("store: AddFile: file: %v", err)
	}
	taskDir := filepath.Join(p.dir, task)
	p.mu.Lock()
	if err := p.usableLocked(); err != nil {
		p.mu.Unlock()
		return err
	}
	t := p.mu.tasks[task]
	if t == nil {
		if err := p.opts.fs.Mkdir(taskDir); err != nil {
			p.mu.err = err
			p.mu.Unlock()
			return fmt.Errorf("store: AddFile: %w", err)
		}
		t = &pendingTask{files: make(map[string]FileRef)}
		p.mu.tasks[task] = t
	}
	if t.pebble {
		p.mu.Unlock()
		return fmt.Errorf("store: AddFile: task %q holds a Pebble checkpoint; store blobs under another task name", task)
	}
	if _, dup := t.files[name]; dup {
		p.mu.Unlock()
		return fmt.Errorf("store: AddFile: task %q: file %q already added", task, name)
	}
	t.files[name] = FileRef{Name: name, Size: -1} // reserved
	p.mu.inflight++
	p.mu.Unlock()

	ref, err := p.writeBlob(filepath.Join(taskDir, name), name, data)

	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.inflight--
	if err != nil {
		if p.mu.err == nil {
			p.mu.err = err
		}
		return fmt.Errorf("store: AddFile %s/%s: %w", task, name, err)
	}
	t.files[name] = ref
	p.mu.stats.NewFiles++
	p.mu.stats.NewBytes += ref.Size
	return nil
}

func (p *Pending) writeBlob(path, name string, data []byte) (FileRef, error) {
	stored, compressed, err := maybeCompress(data, p.opts.Compress)
	if err != nil {
		return FileRef{}, err
	}
	if err := writeFile(p.opts.fs, path, stored, p.opts.Sync); err != nil {
		return FileRef{}, err
	}
	return FileRef{
		Name: name, Size: int64(len(stored)), Compressed: compressed,
		CRC32C: crc32.Checksum(stored, castagnoli),
	}, nil
}

// AddPebbleCheckpoint stores the Pebble checkpoint directory dir (the output
// of db.Checkpoint) as task's state. Immutable files (*.sst, *.blob) go to
// shared/ under a content-derived name, hard-linked from dir: a file that
// an earlier checkpoint already stored is referenced, not stored again, so
// successive checkpoints of one DB are incremental. The other files
// (MANIFEST-*, OPTIONS-*, WALs, markers) are moved into the task's private
// directory, or copied when they have other links. When hard links or
// renames fail (dir on another file system) files are copied.
//
// dir is consumed: it is removed whether or not the call succeeds.
func (p *Pending) AddPebbleCheckpoint(task, dir string) (err error) {
	defer func() {
		if rerr := p.opts.fs.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("store: AddPebbleCheckpoint: removing %s: %w", dir, rerr)
		}
	}()
	if err := checkTaskName(task); err != nil {
		return fmt.Errorf("store: AddPebbleCheckpoint: task: %v", err)
	}
	taskDir := filepath.Join(p.dir, task)
	p.mu.Lock()
	if err := p.usableLocked(); err != nil {
		p.mu.Unlock()
		return err
	}
	if _, ok := p.mu.tasks[task]; ok {
		p.mu.Unlock()
		return fmt.Errorf("store: AddPebbleCheckpoint: task %q already has files; a task holds one Pebble checkpoint and nothing else", task)
	}
	if err := p.opts.fs.Mkdir(taskDir); err != nil {
		p.mu.err = err
		p.mu.Unlock()
		return fmt.Errorf("store: AddPebbleCheckpoint: %w", err)
	}
	t := &pendingTask{files: make(map[string]FileRef), pebble: true}
	p.mu.tasks[task] = t
	p.mu.inflight++
	p.mu.Unlock()

	var st Stats
	refs, err := p.addPebbleFiles(taskDir, dir, &st)

	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.inflight--
	if err != nil {
		if p.mu.err == nil {
			p.mu.err = err
		}
		return fmt.Errorf("store: AddPebbleCheckpoint %s: %w", task, err)
	}
	for _, r := range refs {
		t.files[r.Name] = r
	}
	p.mu.stats.NewFiles += st.NewFiles
	p.mu.stats.NewBytes += st.NewBytes
	p.mu.stats.ReusedFiles += st.ReusedFiles
	p.mu.stats.ReusedBytes += st.ReusedBytes
	p.mu.stats.CopiedBytes += st.CopiedBytes
	return nil
}

func (p *Pending) addPebbleFiles(taskDir, dir string, st *Stats) ([]FileRef, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	refs := make([]FileRef, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file (a Pebble checkpoint directory is flat)", filepath.Join(dir, name))
		}
		if err := checkName(name); err != nil {
			return nil, err
		}
		src := filepath.Join(dir, name)
		var ref FileRef
		if immutable(name) && p.sharedDir != "" {
			ref, err = p.share(src, name, taskDir, st)
		} else {
			ref, err = p.storePrivate(src, filepath.Join(taskDir, name), false, st)
		}
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// storePrivate puts src at dst: a rename when src has no other links (or,
// for an immutable file, a hard link), else a copy. It returns dst's ref.
func (p *Pending) storePrivate(src, dst string, linkOK bool, st *Stats) (FileRef, error) {
	fsys := p.opts.fs
	fi, err := os.Lstat(src)
	if err != nil {
		return FileRef{}, err
	}
	placed := false
	if immutable(filepath.Base(src)) || linkOK {
		placed = fsys.Link(src, dst) == nil
	} else if linkCount(fi) <= 1 {
		placed = fsys.Rename(src, dst) == nil
	}
	var size int64
	var crc uint32
	if placed {
		size, crc, err = crcFile(dst)
		if err == nil && p.opts.Sync && !immutable(filepath.Base(src)) {
			err = syncFile(dst)
		}
	} else {
		size, crc, err = copyFile(fsys, src, dst, p.opts.Sync)
		st.CopiedBytes += size
	}
	if err != nil {
		return FileRef{}, err
	}
	st.NewFiles++
	st.NewBytes += size
	return FileRef{Name: filepath.Base(dst), Size: size, CRC32C: crc}, nil
}

// share places the immutable file src in shared/ and returns its ref.
//
// Fast path: src is an inode the store already placed in shared/ (it is a
// hard link of the live DB's sstable, which is a hard link of the shared
// file): no read at all. Otherwise src is read once for its crc32c, which
// with its size and name gives the shared name; if that name exists the
// existing file is reused when it is the same inode or holds the same
// bytes, and src is stored privately on a (2^-32) crc collision.
// Otherwise src is hard-linked to the name (no clobbering: link fails on
// an existing name), or, when links fail, copied to a temporary file that
// is renamed to the name.
//
// Sstables are not fsynced here: Pebble syncs every sstable before it
// enters a version, and a hard link shares the durable inode. The new
// directory entry is made durable by Commit's fsync of shared/.
func (p *Pending) share(src, name, taskDir string, st *Stats) (FileRef, error) {
	s, fsys := p.s, p.opts.fs
	fi, err := os.Lstat(src)
	if err != nil {
		return FileRef{}, err
	}
	fid, hasID := fileIDOf(fi)
	if hasID {
		s.mu.Lock()
		e, ok := s.mu.byInode[fid]
		if ok && e.size == fi.Size() {
			if sfi, err := os.Lstat(filepath.Join(s.sharedDir, e.name)); err == nil && os.SameFile(fi, sfi) {
				p.sharedRefs[e.name] = struct{}{}
				s.mu.Unlock()
				st.ReusedFiles++
				st.ReusedBytes += e.size
				return FileRef{Name: name, Size: e.size, CRC32C: e.crc, Shared: e.name}, nil
			}
		}
		s.mu.Unlock()
	}
	size, crc, err := crcFile(src)
	if err != nil {
		return FileRef{}, err
	}
	if size != fi.Size() {
		return FileRef{}, fmt.Errorf("%s changed while being read", src)
	}
	sn := sharedName(crc, size, name)
	if checkName(sn) != nil {
		return p.storePrivate(src, filepath.Join(taskDir, name), true, st)
	}
	ref := FileRef{Name: name, Size: size, CRC32C: crc, Shared: sn}
	dst := filepath.Join(s.sharedDir, sn)
	remember := func(fi os.FileInfo) {
		if id, ok := fileIDOf(fi); ok {
			s.mu.byInode[id] = sharedEntry{name: sn, size: size, crc: crc}
		}
	}

	s.mu.Lock()
	p.sharedRefs[sn] = struct{}{} // from here on Retain keeps dst
	lerr := fsys.Link(src, dst)
	if lerr == nil {
		p.sharedDirty = true
		remember(fi)
		s.mu.Unlock()
		st.NewFiles++
		st.NewBytes += size
		return ref, nil
	}
	s.mu.Unlock()

	if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
		// Links fail (another file system, or none supported): copy to a
		// temporary name, then link that into place.
		tmp := filepath.Join(s.sharedDir, tmpPrefix+randomSuffix())
		csize, ccrc, err := copyFile(fsys, src, tmp, p.opts.Sync)
		if err != nil {
			return FileRef{}, err
		}
		if csize != size || ccrc != crc {
			_ = fsys.Remove(tmp)
			return FileRef{}, fmt.Errorf("%s changed while being copied", src)
		}
		// Rename cannot refuse to clobber, so check under s.mu: every
		// creation in shared/ happens under it.
		s.mu.Lock()
		_, serr := os.Lstat(dst)
		placed := errors.Is(serr, fs.ErrNotExist)
		if placed {
			if err := fsys.Rename(tmp, dst); err != nil {
				s.mu.Unlock()
				_ = fsys.Remove(tmp)
				return FileRef{}, err
			}
			p.sharedDirty = true
			if tfi, err := os.Lstat(dst); err == nil {
				remember(tfi)
			}
		}
		s.mu.Unlock()
		if placed {
			st.NewFiles++
			st.NewBytes += size
			st.CopiedBytes += size
			return ref, nil
		}
		if err := fsys.Remove(tmp); err != nil { // another checkpoint placed dst
			return FileRef{}, err
		}
	} else if err != nil {
		return FileRef{}, err
	}

	// dst exists: reuse it if it is the same file or the same bytes.
	sfi, err := os.Lstat(dst)
	if err != nil {
		return FileRef{}, err
	}
	same := os.SameFile(fi, sfi)
	if !same && sfi.Mode().IsRegular() && sfi.Size() == size {
		if same, err = sameContent(src, dst); err != nil {
			return FileRef{}, err
		}
	}
	if same {
		if os.SameFile(fi, sfi) {
			s.mu.Lock()
			remember(sfi)
			s.mu.Unlock()
		}
		st.ReusedFiles++
		st.ReusedBytes += size
		return ref, nil
	}
	p.opts.Logger.Warn("checkpoint store: shared name taken by different content; storing privately",
		"shared", sn, "task_dir", taskDir)
	return p.storePrivate(src, filepath.Join(taskDir, name), true, st)
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Commit completes the checkpoint. It fills meta.Tasks from what was added
// (meta.Tasks must be empty), sets Version, Job and ID (when zero; a
// different value is an error) and Timestamp (when zero), then:
//
//  1. fsyncs the task directories and shared/ (file contents were fsynced
//     as they were written);
//  2. writes _metadata.tmp, fsyncs it, renames it to _metadata, fsyncs the
//     in-progress directory;
//  3. renames chk-<id>.inprogress to chk-<id> and fsyncs the job directory.
//
// Only step 3 makes the checkpoint visible, and by then everything it
// references is durable. On error the caller must Abort.
func (p *Pending) Commit(meta Metadata) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.usableLocked(); err != nil {
		return err
	}
	if p.mu.inflight > 0 {
		return fmt.Errorf("store: Commit of %s while %d Add calls are running", chkDirName(p.id), p.mu.inflight)
	}
	if len(meta.Tasks) > 0 {
		return fmt.Errorf("store: Commit: meta.Tasks must be empty; it is filled from the added files")
	}
	switch {
	case meta.Job == "" && p.job != "":
		meta.Job = p.job
	case p.job != "" && meta.Job != p.job:
		return fmt.Errorf("store: Commit: meta.Job %q, store holds job %q", meta.Job, p.job)
	}
	switch meta.ID {
	case 0:
		meta.ID = p.id
	case p.id:
	default:
		return fmt.Errorf("store: Commit: meta.ID %d for %s", meta.ID, chkDirName(p.id))
	}
	if p.s == nil {
		meta.Savepoint = true
	}
	if meta.Timestamp == 0 {
		meta.Timestamp = time.Now().UnixMilli()
	}
	meta.Version = FormatVersion
	names := make([]string, 0, len(p.mu.tasks))
	for name := range p.mu.tasks {
		names = append(names, name)
	}
	sort.Strings(names)
	st := p.mu.stats
	st.Files, st.Bytes = 0, 0
	for _, name := range names {
		t := p.mu.tasks[name]
		tm := TaskMeta{Task: name, Pebble: t.pebble, Files: make([]FileRef, 0, len(t.files))}
		for _, f := range t.files {
			tm.Files = append(tm.Files, f)
			st.Files++
			st.Bytes += f.Size
		}
		sort.Slice(tm.Files, func(i, j int) bool { return tm.Files[i].Name < tm.Files[j].Name })
		meta.Tasks = append(meta.Tasks, tm)
	}
	if err := meta.validate(); err != nil {
		return fmt.Errorf("store: Commit: %w", err)
	}
	data, err := encodeMetadata(&meta)
	if err != nil {
		return err
	}
	if err := p.commitFiles(names, data); err != nil {
		p.mu.err = err
		return fmt.Errorf("store: Commit %s: %w", chkDirName(p.id), err)
	}
	p.mu.closed = true
	p.mu.stats = st
	if p.s != nil {
		p.s.mu.Lock()
		delete(p.s.mu.pending, p.id)
		p.s.mu.Unlock()
	}
	p.opts.Logger.Debug("checkpoint store: committed", "dir", p.final, "tasks", len(names),
		"files", st.Files, "bytes", st.Bytes, "new_files", st.NewFiles, "new_bytes", st.NewBytes,
		"reused_files", st.ReusedFiles, "reused_bytes", st.ReusedBytes,
		"ms", time.Since(p.start).Milliseconds())
	return nil
}

// commitFiles runs steps 1–3 of Commit.
// REQUIRES: p.mu held.
func (p *Pending) commitFiles(tasks []string, data []byte) error {
	fsys, sync := p.opts.fs, p.opts.Sync
	if sync {
		for _, t := range tasks {
			if err := fsys.SyncDir(filepath.Join(p.dir, t)); err != nil {
				return err
			}
		}
		if p.s != nil {
			p.s.mu.Lock()
			dirty := p.sharedDirty
			p.s.mu.Unlock()
			if dirty {
				if err := fsys.SyncDir(p.sharedDir); err != nil {
					return err
				}
			}
		}
	}
	tmp := filepath.Join(p.dir, metadataTmpName)
	_ = fsys.Remove(tmp)
	if err := writeFile(fsys, tmp, data, sync); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, filepath.Join(p.dir, metadataName)); err != nil {
		return err
	}
	if sync {
		if err := fsys.SyncDir(p.dir); err != nil {
			return err
		}
	}
	if err := fsys.Rename(p.dir, p.final); err != nil {
		return err
	}
	p.mu.renamed = true
	if sync {
		if err := fsys.SyncDir(filepath.Dir(p.final)); err != nil {
			return err
		}
	}
	return nil
}

// Abort discards the checkpoint: its directory is removed (also when a
// failed Commit had already renamed it) and its references to shared files
// are dropped; files it alone added to shared/ go at the next Retain.
// Abort after Abort is a no-op; after a successful Commit it returns
// ErrClosed.
func (p *Pending) Abort() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		if p.mu.err == nil && p.mu.renamed {
			return ErrClosed
		}
		return nil
	}
	p.mu.closed = true
	var errs []error
	if p.mu.renamed {
		if err := p.opts.fs.Remove(filepath.Join(p.final, metadataName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		errs = append(errs, p.opts.fs.RemoveAll(p.final))
	}
	errs = append(errs, p.opts.fs.RemoveAll(p.dir))
	if p.s != nil {
		p.s.mu.Lock()
		delete(p.s.mu.pending, p.id)
		p.s.mu.Unlock()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: Abort %s: %w", chkDirName(p.id), err)
	}
	return nil
}
