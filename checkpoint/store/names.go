package store

import (
	"fmt"
	"strconv"
	"strings"
)

// maxNameLen bounds every name the store turns into a path component; it is
// the common NAME_MAX.
const maxNameLen = 255

// checkName reports why name cannot be used as a single path component:
// it must be non-empty, at most 255 bytes, not "." or "..", and hold no
// separator ('/' or '\\'), NUL or other control character. Names read from
// metadata pass through here too, so a crafted _metadata cannot make the
// store read or link outside the checkpoint (path traversal).
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case len(name) > maxNameLen:
		return fmt.Errorf("name of %d bytes exceeds %d", len(name), maxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("name %q: path traversal", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '/' || c == '\\':
			return fmt.Errorf("name %q: contains a path separator", name)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("name %q: contains a control character", name)
		}
	}
	return nil
}

// checkTaskName is checkName plus the store's reservation: names starting
// with '_' or '.' are the store's own (_metadata, temporary files), so a
// task directory cannot shadow them. Job names follow the same rule.
func checkTaskName(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if name[0] == '_' || name[0] == '.' {
		return fmt.Errorf("name %q: names starting with '_' or '.' are reserved", name)
	}
	return nil
}

const (
	chkPrefix        = "chk-"
	inProgressSuffix = ".inprogress"
	sharedDirName    = "shared"
	metadataName     = "_metadata"
	metadataTmpName  = "_metadata.tmp"
	tmpPrefix        = ".tmp-"
)

func chkDirName(id uint64) string        { return chkPrefix + strconv.FormatUint(id, 10) }
func inProgressDirName(id uint64) string { return chkDirName(id) + inProgressSuffix }

// parseChkDirName parses "chk-<n>" (canonical decimal, no sign or leading
// zeros) and, when inprogress, "chk-<n>.inprogress".
func parseChkDirName(name string) (id uint64, inprogress, ok bool) {
	rest, found := strings.CutPrefix(name, chkPrefix)
	if !found {
		return 0, false, false
	}
	if r, cut := strings.CutSuffix(rest, inProgressSuffix); cut {
		rest, inprogress = r, true
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || strconv.FormatUint(id, 10) != rest {
		return 0, false, false
	}
	return id, inprogress, true
}

// immutable reports whether a file of a Pebble checkpoint is immutable and
// so may be shared between checkpoints: sstables and (v2) blob files.
// Everything else (MANIFEST-*, OPTIONS-*, *.log WALs, marker.* files) is
// copied privately.
func immutable(name string) bool {
	return strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob")
}

// sharedName is the content-derived name of an immutable file in shared/:
// "<crc32c as 8 hex digits>-<size>-<original name>". Equal names mean equal
// content with high probability; the store still confirms reuse of an
// existing shared file by identity (same inode) or by comparing bytes.
func sharedName(crc uint32, size int64, name string) string {
	return fmt.Sprintf("%08x-%d-%s", crc, size, name)
}
