package store

import (
	"io"
	"os"
)

// writeFS is the set of mutating file-system operations the write path uses.
// Reads go straight to package os. Production uses osFS; tests substitute a
// crash-injecting wrapper (crashfs_test.go) that fails every operation from
// the n-th on and can then drop whatever was not made durable, to prove the
// ordering of fsyncs and renames.
type writeFS interface {
	MkdirAll(path string) error
	Mkdir(path string) error
	// Create creates a new file for writing; it fails if path exists.
	Create(path string) (writableFile, error)
	Rename(oldpath, newpath string) error
	// Link creates newpath as a hard link of oldpath; it fails if newpath
	// exists.
	Link(oldpath, newpath string) error
	Remove(path string) error
	RemoveAll(path string) error
	// SyncDir fsyncs a directory, making the entries created, renamed or
	// removed in it durable.
	SyncDir(path string) error
}

type writableFile interface {
	io.Writer
	Sync() error
	Close() error
}

type osFS struct{}

func (osFS) MkdirAll(path string) error { return os.MkdirAll(path, 0o755) }
func (osFS) Mkdir(path string) error    { return os.Mkdir(path, 0o755) }
func (osFS) Create(path string) (writableFile, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}
func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (osFS) Link(oldpath, newpath string) error   { return os.Link(oldpath, newpath) }
func (osFS) Remove(path string) error             { return os.Remove(path) }
func (osFS) RemoveAll(path string) error          { return os.RemoveAll(path) }
func (osFS) SyncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
