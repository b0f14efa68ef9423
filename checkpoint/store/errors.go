package store

import (
	"errors"
	"fmt"
)

var (
	// ErrCorrupt marks a checkpoint that fails validation: its _metadata is
	// truncated, malformed or fails its checksum, or a referenced file is
	// missing or has the wrong size or crc32c. Test with IsCorruption or
	// errors.Is; the concrete error is a *CorruptionError naming the file.
	ErrCorrupt = errors.New("store: corrupt checkpoint")
	// ErrNotFound is returned for a checkpoint, task or file that does not
	// exist (Load of an unknown id, ReadFile of an absent name).
	ErrNotFound = errors.New("store: not found")
	// ErrExists is returned by Begin for an id that is already complete or
	// in progress in this process.
	ErrExists = errors.New("store: checkpoint exists")
	// ErrClosed is returned by a Pending used after Commit or Abort.
	ErrClosed = errors.New("store: pending checkpoint closed")
)

// CorruptionError describes what failed validation. Path is relative to the
// checkpoint directory for private files ("_metadata", "<task>/<name>") and
// to the job directory for shared ones ("shared/<name>"). Its message is
// "<path>: <reason>", e.g. "_metadata: truncated" or
// "shared/1a2b3c4d-4096-000004.sst: checksum mismatch".
type CorruptionError struct {
	Path   string
	Reason string
	// unsupported marks intact metadata of a format version this build does
	// not know (written by a newer one): Retain keeps such checkpoints and
	// their shared files instead of treating them as garbage.
	unsupported bool
}

func (e *CorruptionError) Error() string { return e.Path + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

// IsCorruption reports whether err (or an error it wraps) marks corruption.
func IsCorruption(err error) bool { return errors.Is(err, ErrCorrupt) }

func corruptf(path, format string, args ...any) error {
	return &CorruptionError{Path: path, Reason: fmt.Sprintf(format, args...)}
}
