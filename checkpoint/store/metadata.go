package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"strconv"
)

// FormatVersion is the version of the _metadata format this package writes.
// Decoding accepts only versions it knows.
const FormatVersion = 1

// FileRef describes one stored file of a task.
type FileRef struct {
	// Name is the file's name within the task (for a Pebble task, its name
	// in the Pebble checkpoint directory, e.g. "000004.sst").
	Name string `json:"name"`
	// Size is the size in bytes of the stored bytes (after compression).
	Size int64 `json:"size"`
	// CRC32C is the Castagnoli CRC-32 of the stored bytes.
	CRC32C uint32 `json:"crc32c"`
	// Shared is the file's name in the job's shared/ directory when the
	// file is shared between checkpoints, "" when it is private to this
	// checkpoint (stored at <checkpoint>/<task>/<Name>).
	Shared string `json:"shared,omitempty"`
	// Compressed is true when the stored bytes are a zstd frame of the
	// blob given to AddFile.
	Compressed bool `json:"compressed,omitempty"`
}

// TaskMeta lists the files of one task.
type TaskMeta struct {
	Task  string    `json:"task"`
	Files []FileRef `json:"files"`
	// Pebble is true when Files form a Pebble checkpoint directory
	// (added with AddPebbleCheckpoint; see Checkpoint.MaterializePebble).
	Pebble bool `json:"pebble,omitempty"`
}

// Metadata is the content of a checkpoint's _metadata file.
type Metadata struct {
	// Version is the format version (FormatVersion); set by Commit.
	Version int    `json:"version"`
	Job     string `json:"job"`
	ID      uint64 `json:"id"`
	// Savepoint marks a savepoint; Retain never deletes one.
	Savepoint bool `json:"savepoint,omitempty"`
	// Timestamp is the trigger time in Unix milliseconds (Commit sets the
	// current time when it is 0).
	Timestamp      int64 `json:"timestamp"`
	Parallelism    int   `json:"parallelism"`
	MaxParallelism int   `json:"max_parallelism"`
	// Tasks is filled by Commit from what was added, sorted by task name;
	// files are sorted by name.
	Tasks      []TaskMeta        `json:"tasks"`
	Properties map[string]string `json:"properties,omitempty"`
}

// Task returns the task's entry, or nil.
func (m *Metadata) Task(task string) *TaskMeta {
	for i := range m.Tasks {
		if m.Tasks[i].Task == task {
			return &m.Tasks[i]
		}
	}
	return nil
}

// The _metadata file is a fixed-width text header line followed by a JSON
// body, so `tail -n +2 _metadata | jq` shows it:
//
//	statefun-checkpoint v0001 len=0000001234 crc32c=1a2b3c4d\n{...json...}
//
// len is the body length in bytes. crc32c (Castagnoli) covers the header up
// to and including "crc32c=" and the body, so a flipped byte anywhere is
// detected; a short file is reported as truncated before the checksum is
// looked at.
const (
	headerMagic = "statefun-checkpoint v"
	headerLen   = len("statefun-checkpoint v0001 len=0000000000 crc32c=00000000\n")
	crcFieldOff = len("statefun-checkpoint v0001 len=0000000000 crc32c=")
	maxBodyLen  = 1<<31 - 1
	maxTasks    = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeMetadata renders m (which must be valid) as a _metadata file.
func encodeMetadata(m *Metadata) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("store: encode metadata: %w", err)
	}
	return encodeRaw(m.Version, body)
}

func encodeRaw(version int, body []byte) ([]byte, error) {
	if len(body) > maxBodyLen {
		return nil, fmt.Errorf("store: metadata of %d bytes is too large", len(body))
	}
	if version < 0 || version > 9999 {
		return nil, fmt.Errorf("store: metadata version %d out of range", version)
	}
	out := make([]byte, 0, headerLen+len(body))
	out = fmt.Appendf(out, "%s%04d len=%010d crc32c=", headerMagic, version, len(body))
	crc := crc32.Update(crc32.Checksum(out, castagnoli), castagnoli, body)
	out = fmt.Appendf(out, "%08x\n", crc)
	return append(out, body...), nil
}

// decodeMetadata parses and validates a _metadata file. Every failure is a
// *CorruptionError with path "_metadata"; it never panics on any input.
func decodeMetadata(b []byte) (*Metadata, error) {
	fail := func(format string, args ...any) (*Metadata, error) {
		return nil, corruptf(metadataName, format, args...)
	}
	if len(b) == 0 {
		return fail("truncated (empty)")
	}
	n := min(len(b), len(headerMagic))
	if !bytes.Equal(b[:n], []byte(headerMagic)[:n]) {
		return fail("bad magic")
	}
	if len(b) < headerLen {
		return fail("truncated (%d bytes, header is %d)", len(b), headerLen)
	}
	h := b[:headerLen]
	version, ok1 := parseDigits(h[len(headerMagic) : len(headerMagic)+4])
	bodyLen, ok2 := parseDigits(h[len(headerMagic)+9 : len(headerMagic)+19])
	crc, err := strconv.ParseUint(string(h[crcFieldOff:crcFieldOff+8]), 16, 32)
	if !ok1 || !ok2 || err != nil ||
		string(h[len(headerMagic)+4:len(headerMagic)+9]) != " len=" ||
		string(h[len(headerMagic)+19:crcFieldOff]) != " crc32c=" || h[headerLen-1] != '\n' {
		return fail("malformed header")
	}
	if want := headerLen + bodyLen; len(b) < want {
		return fail("truncated (%d of %d bytes)", len(b), want)
	} else if len(b) > want {
		return fail("%d trailing bytes", len(b)-want)
	}
	body := b[headerLen:]
	got := crc32.Update(crc32.Checksum(b[:crcFieldOff], castagnoli), castagnoli, body)
	if got != uint32(crc) {
		return fail("checksum mismatch")
	}
	if version != FormatVersion {
		return nil, &CorruptionError{Path: metadataName, Reason: fmt.Sprintf("unsupported version %d", version), unsupported: true}
	}
	var m Metadata
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return fail("malformed body: %v", err)
	}
	if dec.More() {
		return fail("malformed body: data after the object")
	}
	if m.Version != version {
		return fail("body version %d differs from header version %d", m.Version, version)
	}
	if err := m.validate(); err != nil {
		return fail("invalid: %v", err)
	}
	return &m, nil
}

func parseDigits(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// validate checks what the store relies on when it turns metadata into
// paths and reads: valid, unique task and file names (no path traversal),
// non-negative sizes, uncompressed Pebble files.
func (m *Metadata) validate() error {
	if err := checkTaskName(m.Job); err != nil {
		return fmt.Errorf("job: %v", err)
	}
	if m.Parallelism < 0 || m.MaxParallelism < 0 {
		return fmt.Errorf("negative parallelism")
	}
	if len(m.Tasks) > maxTasks {
		return fmt.Errorf("%d tasks", len(m.Tasks))
	}
	tasks := make(map[string]bool, len(m.Tasks))
	for i := range m.Tasks {
		t := &m.Tasks[i]
		if err := checkTaskName(t.Task); err != nil {
			return fmt.Errorf("task %d: %v", i, err)
		}
		if tasks[t.Task] {
			return fmt.Errorf("task %q listed twice", t.Task)
		}
		tasks[t.Task] = true
		names := make(map[string]bool, len(t.Files))
		for j := range t.Files {
			f := &t.Files[j]
			if err := checkName(f.Name); err != nil {
				return fmt.Errorf("task %q file %d: %v", t.Task, j, err)
			}
			if names[f.Name] {
				return fmt.Errorf("task %q: file %q listed twice", t.Task, f.Name)
			}
			names[f.Name] = true
			if f.Shared != "" {
				if err := checkName(f.Shared); err != nil {
					return fmt.Errorf("task %q file %q: shared %v", t.Task, f.Name, err)
				}
			}
			if f.Size < 0 {
				return fmt.Errorf("task %q file %q: negative size", t.Task, f.Name)
			}
			if t.Pebble && f.Compressed {
				return fmt.Errorf("task %q file %q: Pebble files are never compressed", t.Task, f.Name)
			}
		}
	}
	return nil
}
