package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Options configures a Store (and BeginSavepoint). The zero value, after
// EnsureDefaults, compresses blobs and fsyncs.
type Options struct {
	// Logger receives one Info line per committed checkpoint and per
	// Retain, and a Warn line per checkpoint Latest skips. Default: discard.
	Logger *slog.Logger
	// Compress stores AddFile blobs larger than 4 KiB as zstd frames when
	// that saves at least 1/8. Default true (see EnsureDefaults).
	Compress bool
	// Sync fsyncs written files and the directories whose entries change,
	// in the order that makes a checkpoint visible only once durable.
	// Turning it off keeps atomicity against process crashes but not
	// against power loss; only tests and benchmarks should. Default true.
	Sync bool
	// Explicit takes Compress and Sync as given. Without it EnsureDefaults
	// turns both on when both are false, so Options{} and
	// Options{Logger: l} mean the defaults.
	Explicit bool

	// fs performs every mutation of the write path; tests inject crashes.
	fs writeFS
}

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !o.Explicit && !o.Compress && !o.Sync {
		o.Compress, o.Sync = true, true
	}
	if o.fs == nil {
		o.fs = osFS{}
	}
}

// Store holds the checkpoints of one job under <root>/<job>/:
//
//	<root>/<job>/chk-<n>/_metadata          complete checkpoint n
//	<root>/<job>/chk-<n>/<task>/<name>      its private files
//	<root>/<job>/chk-<n>.inprogress/        checkpoint n being written
//	<root>/<job>/shared/<crc>-<size>-<name> immutable files shared by checkpoints
//
// A Store is safe for concurrent use. One process owns a job directory;
// the store takes no lock file.
type Store struct {
	opts      Options
	job       string
	dir       string // <root>/<job>
	sharedDir string // <dir>/shared

	mu struct {
		sync.Mutex
		// pending are the checkpoints being written, by id. Retain keeps
		// their in-progress directories and every shared file they refer
		// to (Pending.sharedRefs).
		pending map[uint64]*Pending
		// byInode remembers, for each inode the store placed in (or linked
		// from) shared/, its shared name, crc and size. An sstable of a
		// later Pebble checkpoint that is the same inode (a hard link) is
		// recognised without reading it. Entries are hints: every hit is
		// confirmed with os.SameFile against shared/<name>.
		byInode map[fileID]sharedEntry
		// corrupt are the checkpoints this Store found corrupt (Latest,
		// Load, ReadFile, MaterializePebble), with the reason. Retain does
		// not count them among the n it keeps, so it never deletes the
		// newest checkpoint that does validate because a newer one rotted.
		corrupt map[uint64]error
	}
}

// markCorrupt records that checkpoint id failed validation with err.
func (s *Store) markCorrupt(id uint64, err error) {
	if s == nil || !IsCorruption(err) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.corrupt[id] = err
}

type sharedEntry struct {
	name string
	size int64
	crc  uint32
}

// Open opens (creating if needed) the checkpoint store of job under root,
// which is normally <state-dir>/checkpoints.
func Open(root, job string, opts Options) (*Store, error) {
	if err := checkTaskName(job); err != nil {
		return nil, fmt.Errorf("store: job: %v", err)
	}
	opts.EnsureDefaults()
	s := &Store{
		opts:      opts,
		job:       job,
		dir:       filepath.Join(root, job),
		sharedDir: filepath.Join(root, job, sharedDirName),
	}
	s.mu.pending = make(map[uint64]*Pending)
	s.mu.byInode = make(map[fileID]sharedEntry)
	s.mu.corrupt = make(map[uint64]error)
	// The deepest directory that exists already: the entries MkdirAll
	// creates below it become durable by fsyncing it and every new one.
	existing := filepath.Clean(s.sharedDir)
	for {
		if _, err := os.Stat(existing); err == nil || filepath.Dir(existing) == existing {
			break
		}
		existing = filepath.Dir(existing)
	}
	if err := opts.fs.MkdirAll(s.sharedDir); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if opts.Sync {
		for d := s.sharedDir; ; d = filepath.Dir(d) {
			if err := opts.fs.SyncDir(d); err != nil {
				return nil, fmt.Errorf("store: open: %w", err)
			}
			if d == existing || filepath.Dir(d) == d {
				break
			}
		}
	}
	return s, nil
}

// Dir returns the job directory, <root>/<job>.
func (s *Store) Dir() string { return s.dir }

// Info describes a complete checkpoint.
type Info struct {
	ID        uint64
	Savepoint bool
	Timestamp int64 // Unix milliseconds
	Dir       string
}

// entry is a chk-<n> directory as found on disk.
type entry struct {
	id         uint64
	dir        string
	inprogress bool
	meta       *Metadata // nil when err != nil or inprogress
	err        error     // why _metadata did not decode
}

// scan lists the job directory: complete checkpoints with their decoded
// metadata (or the reason it did not decode), and in-progress directories.
// Sorted by id, complete before in-progress.
func (s *Store) scan() ([]entry, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var out []entry
	for _, de := range des {
		id, inprogress, ok := parseChkDirName(de.Name())
		if !ok || !de.IsDir() {
			continue
		}
		e := entry{id: id, dir: filepath.Join(s.dir, de.Name()), inprogress: inprogress}
		if !inprogress {
			e.meta, e.err = readMetadata(e.dir)
			if e.err != nil && !IsCorruption(e.err) {
				return nil, e.err
			}
			if e.err == nil && (e.meta.ID != id || e.meta.Job != s.job) {
				e.meta, e.err = nil, corruptf(metadataName, "describes %s/%s, found in %s/%s",
					e.meta.Job, chkDirName(e.meta.ID), s.job, de.Name())
			}
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].id != out[j].id {
			return out[i].id < out[j].id
		}
		return !out[i].inprogress
	})
	return out, nil
}

// readMetadata reads and decodes <dir>/_metadata. A missing file is
// corruption ("_metadata: missing"); other I/O errors are returned as is.
func readMetadata(dir string) (*Metadata, error) {
	b, err := os.ReadFile(filepath.Join(dir, metadataName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, corruptf(metadataName, "missing")
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return decodeMetadata(b)
}

// List returns the complete checkpoints whose metadata decodes, oldest
// first. It does not verify their files; Latest and Load do.
func (s *Store) List() ([]Info, error) {
	es, err := s.scan()
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range es {
		if e.inprogress || e.meta == nil {
			continue
		}
		out = append(out, Info{ID: e.id, Savepoint: e.meta.Savepoint, Timestamp: e.meta.Timestamp, Dir: e.dir})
	}
	return out, nil
}

// Latest returns the newest complete checkpoint that validates: its
// metadata decodes and passes its checksum, and every referenced file
// exists with the recorded size and crc32c. skipped lists, newest first,
// every newer checkpoint passed over and why ("chk-7: _metadata:
// truncated"). It returns a nil checkpoint when none validates. A
// non-corruption I/O error stops the search and is returned as err: falling
// back past a checkpoint that may be intact would lose committed output.
func (s *Store) Latest() (c *Checkpoint, skipped []error, err error) {
	es, err := s.scan()
	if err != nil {
		return nil, nil, err
	}
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if e.inprogress {
			continue
		}
		if e.err == nil {
			c = &Checkpoint{Meta: *e.meta, Dir: e.dir, sharedDir: s.sharedDir, s: s}
			e.err = c.verify()
			if e.err == nil {
				return c, skipped, nil
			}
			if !IsCorruption(e.err) {
				return nil, skipped, fmt.Errorf("store: %s: %w", chkDirName(e.id), e.err)
			}
		}
		err := fmt.Errorf("%s: %w", chkDirName(e.id), e.err)
		s.markCorrupt(e.id, e.err)
		s.opts.Logger.Warn("checkpoint store: skipping corrupt checkpoint", "job", s.job, "id", e.id, "reason", e.err.Error())
		skipped = append(skipped, err)
	}
	return nil, skipped, nil
}

// Load returns checkpoint id, validated like Latest. It returns ErrNotFound
// when there is no complete checkpoint id and a corruption error when it
// does not validate.
func (s *Store) Load(id uint64) (*Checkpoint, error) {
	dir := filepath.Join(s.dir, chkDirName(id))
	c, err := loadDir(dir, s.sharedDir, s)
	if err != nil {
		s.markCorrupt(id, err)
		return nil, fmt.Errorf("%s: %w", chkDirName(id), err)
	}
	if c.Meta.ID != id || c.Meta.Job != s.job {
		return nil, fmt.Errorf("%s: %w", chkDirName(id), corruptf(metadataName, "describes %s/%s", c.Meta.Job, chkDirName(c.Meta.ID)))
	}
	return c, nil
}

// Retain keeps the newest n complete checkpoints and deletes the older
// ones, then every in-progress leftover not being written by this Store,
// then every file in shared/ that no remaining checkpoint (or pending one)
// references. Savepoints are never deleted and do not count towards n.
// Checkpoints whose metadata does not decode, and those this Store found
// corrupt (by Latest, Load, ReadFile or MaterializePebble), do not count
// towards n: they are deleted once older than the n-th newest good one
// (kept until then, for inspection). So after Latest skipped a rotten
// chk-7 and restored chk-6, Retain keeps chk-6. The exception is intact
// metadata of an unknown format version: such checkpoints are kept and
// shared/ is not collected at all while one exists.
//
// Deletion first removes a checkpoint's _metadata, so a crash half-way
// leaves a directory that is invisible, and removes shared files only
// after the checkpoint deletions are durable.
func (s *Store) Retain(n int) error {
	if n < 1 {
		return fmt.Errorf("store: Retain(%d): must keep at least one checkpoint", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	es, err := s.scan()
	if err != nil {
		return err
	}
	var good []uint64 // complete, decodable, not known corrupt, not savepoints: newest last
	for _, e := range es {
		if !e.inprogress && e.meta != nil && !e.meta.Savepoint && s.mu.corrupt[e.id] == nil {
			good = append(good, e.id)
		}
	}
	var cutoff uint64 // delete below this id
	if len(good) >= n {
		cutoff = good[len(good)-n]
	}
	fsys := s.opts.fs
	var errs []error
	var deleted []uint64
	live := make(map[string]bool)
	unknownVersion := false
	for _, e := range es {
		var ce *CorruptionError
		switch {
		case e.inprogress:
			if _, active := s.mu.pending[e.id]; active {
				continue
			}
		case e.meta != nil && (e.meta.Savepoint || e.id >= cutoff):
			for _, t := range e.meta.Tasks {
				for _, f := range t.Files {
					if f.Shared != "" {
						live[f.Shared] = true
					}
				}
			}
			continue
		case e.meta == nil && errors.As(e.err, &ce) && ce.unsupported:
			unknownVersion = true
			continue
		case e.meta == nil && e.id >= cutoff:
			continue
		}
		if !e.inprogress {
			if err := fsys.Remove(filepath.Join(e.dir, metadataName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
		}
		if err := fsys.RemoveAll(e.dir); err != nil {
			errs = append(errs, err)
			continue
		}
		if !e.inprogress {
			deleted = append(deleted, e.id)
			delete(s.mu.corrupt, e.id)
		}
	}
	if s.opts.Sync {
		if err := fsys.SyncDir(s.dir); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	var removedShared int
	if unknownVersion {
		s.opts.Logger.Warn("checkpoint store: not collecting shared files: a checkpoint has metadata of an unknown format version", "job", s.job)
	} else if len(errs) == 0 {
		removedShared, err = s.collectLocked(live)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(deleted) > 0 || removedShared > 0 {
		s.opts.Logger.Debug("checkpoint store: retained", "job", s.job, "keep", n,
			"deleted", deleted, "shared_files_removed", removedShared)
	}
	return errors.Join(errs...)
}

// collectLocked deletes the files in shared/ that are neither in live nor
// referenced by a pending checkpoint, and temporary files when nothing is
// pending. It returns how many it removed.
// REQUIRES: s.mu held.
func (s *Store) collectLocked(live map[string]bool) (int, error) {
	for _, p := range s.mu.pending {
		for name := range p.sharedRefs {
			live[name] = true
		}
	}
	des, err := os.ReadDir(s.sharedDir)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	removed := 0
	var errs []error
	for _, de := range des {
		name := de.Name()
		if live[name] || (strings.HasPrefix(name, tmpPrefix) && len(s.mu.pending) > 0) {
			continue
		}
		if err := s.opts.fs.RemoveAll(filepath.Join(s.sharedDir, name)); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	for id, e := range s.mu.byInode {
		if !live[e.name] {
			delete(s.mu.byInode, id)
		}
	}
	if removed > 0 && s.opts.Sync {
		if err := s.opts.fs.SyncDir(s.sharedDir); err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}
