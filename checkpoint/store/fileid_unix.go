//go:build unix

package store

import (
	"os"
	"syscall"
)

// fileID identifies an inode. The store caches, per inode, the shared name
// of an sstable it has stored, so the next checkpoint of the same Pebble DB
// (whose sstables are hard links of the same inodes) needs no read to find
// an unchanged file in shared/.
type fileID struct{ dev, ino uint64 }

func fileIDOf(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true //nolint:unconvert // types differ by platform
}

// linkCount returns the number of hard links of the file, or 0 if unknown.
func linkCount(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink) //nolint:unconvert // types differ by platform
	}
	return 0
}
