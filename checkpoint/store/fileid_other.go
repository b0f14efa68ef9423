//go:build !unix

package store

import "os"

type fileID struct{ dev, ino uint64 }

func fileIDOf(os.FileInfo) (fileID, bool) { return fileID{}, false }

func linkCount(os.FileInfo) uint64 { return 0 }
