package savepoint

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/state"
)

// Savepoint is an opened, validated canonical savepoint directory.
type Savepoint struct {
	// Dir is the savepoint directory.
	Dir      string
	Manifest Manifest
	sources  []SourceRow
}

const maxManifestBytes = 64 << 20

// IsSavepointDir reports whether dir looks like a canonical savepoint (it
// holds _savepoint.json), as opposed to a stored checkpoint or savepoint
// (_metadata). It does not validate it; Open does.
func IsSavepointDir(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, ManifestName))
	return err == nil && fi.Mode().IsRegular()
}

var tableSchemas = map[string]*arrow.Schema{StateFile: stateSchema, MessagesFile: messagesSchema, SourcesFile: sourcesSchema}

// Open opens and validates the savepoint in dir: the manifest's format and
// version, every table file's size, crc32c and Arrow schema, and the source
// positions (sources.arrow against the manifest). A mismatch is an error
// wrapping ErrCorrupt; an unknown version wraps ErrUnsupported. Row-level
// invariants (sorted keys, key groups in range, row counts) are checked as
// the tables are scanned.
func Open(dir string) (*Savepoint, error) {
	dir = filepath.Clean(dir)
	f, err := os.Open(filepath.Join(dir, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("savepoint: %s is not a savepoint: no %s", dir, ManifestName)
	} else if err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	if len(b) > maxManifestBytes {
		return nil, corruptf("%s: larger than %d bytes", ManifestName, maxManifestBytes)
	}
	sp := &Savepoint{Dir: dir}
	if err := json.Unmarshal(b, &sp.Manifest); err != nil {
		return nil, corruptf("%s: %v", ManifestName, err)
	}
	m := &sp.Manifest
	switch {
	case m.Format != Format:
		return nil, corruptf("%s: format %q, want %q", ManifestName, m.Format, Format)
	case m.Version != Version:
		return nil, fmt.Errorf("%w: %s: version %d (this build reads version %d)", ErrUnsupported, ManifestName, m.Version, Version)
	case m.MaxParallelism < 1 || m.MaxParallelism > dataflow.MaxKeyGroups:
		return nil, corruptf("%s: max parallelism %d", ManifestName, m.MaxParallelism)
	}
	for name, schema := range tableSchemas {
		fi := m.File(name)
		if fi == nil {
			return nil, corruptf("%s does not list %s", ManifestName, name)
		}
		if err := verifyTable(filepath.Join(dir, name), fi, schema); err != nil {
			return nil, err
		}
	}
	var rows []SourceRow
	err = sp.scan(SourcesFile, func(rec arrow.RecordBatch) error {
		return sourceRows(rec, func(r *SourceRow) error {
			rows = append(rows, *r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if got := manifestSources(rows); !reflect.DeepEqual(got, m.Sources) && (len(got) > 0 || len(m.Sources) > 0) {
		return nil, corruptf("%s: the sources differ from %s", ManifestName, SourcesFile)
	}
	sp.sources = rows
	return sp, nil
}

// verifyTable checks a table file's size, checksum and schema.
func verifyTable(path string, fi *FileInfo, schema *arrow.Schema) error {
	name := filepath.Base(path)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return corruptf("%s: missing", name)
	} else if err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("savepoint: read %s: %w", name, err)
	}
	if n != fi.Size {
		return corruptf("%s: size %d, want %d", name, n, fi.Size)
	}
	if h.Sum32() != fi.CRC32C {
		return corruptf("%s: checksum mismatch", name)
	}
	r, err := ipc.NewFileReader(f, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return corruptf("%s: %v", name, err)
	}
	defer r.Close()
	if !r.Schema().Equal(schema) {
		return corruptf("%s: schema %s, want %s", name, r.Schema(), schema)
	}
	return nil
}

// MaxParallelism is the number of key groups of the savepoint's job.
func (sp *Savepoint) MaxParallelism() int { return sp.Manifest.MaxParallelism }

// Sources returns the rows of sources.arrow, sorted by vertex and subtask.
func (sp *Savepoint) Sources() []SourceRow { return sp.sources }

func (sp *Savepoint) scan(name string, fn func(rec arrow.RecordBatch) error) error {
	err := arrowFile(filepath.Join(sp.Dir, name))(fn)
	if err != nil && !IsCorruption(err) && !errors.Is(err, errStop) {
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			err = fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
		}
	}
	return err
}

// ScanState calls fn for every state row in order (key group, then
// encoded key). The row is fn's to keep. It checks the order, the key
// groups and the row count.
func (sp *Savepoint) ScanState(fn func(*StateRow) error) error {
	maxP := sp.MaxParallelism()
	var prev, cur []byte
	var n int64
	var fnErr error
	err := sp.scan(StateFile, func(rec arrow.RecordBatch) error {
		return stateRows(rec, func(r *StateRow) error {
			if int(r.KeyGroup) >= maxP || !r.Space.Valid() {
				return corruptf("%s: row %d: key group %d, space %d", StateFile, n, r.KeyGroup, r.Space)
			}
			cur = state.EncodeKey(cur[:0], r.Key())
			if n > 0 && bytes.Compare(prev, cur) >= 0 {
				return corruptf("%s: row %d: %v is not after the previous key", StateFile, n, r.Key())
			}
			prev, cur = cur, prev
			n++
			if err := fn(r); err != nil {
				fnErr = err
				return errStop
			}
			return nil
		})
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return err
	}
	if fi := sp.Manifest.File(StateFile); n != fi.Rows {
		return corruptf("%s: %d rows, manifest says %d", StateFile, n, fi.Rows)
	}
	return nil
}

// ScanMessages calls fn for every message row in order (key group, kind
// as restored: queued, feedback, delayed; order). The row is fn's to keep.
func (sp *Savepoint) ScanMessages(fn func(*MessageRow) error) error {
	maxP := sp.MaxParallelism()
	var prev MessageRow
	var n int64
	var fnErr error
	err := sp.scan(MessagesFile, func(rec arrow.RecordBatch) error {
		return messageRows(rec, func(r *MessageRow) error {
			if int(r.KeyGroup) >= maxP {
				return corruptf("%s: row %d: key group %d", MessagesFile, n, r.KeyGroup)
			}
			c := cmp.Or(cmp.Compare(prev.KeyGroup, r.KeyGroup), cmp.Compare(prev.Kind.rank(), r.Kind.rank()), cmp.Compare(prev.Order, r.Order))
			if n > 0 && c >= 0 || r.Order < 0 {
				return corruptf("%s: row %d: (key group %d, %s, order %d) out of order", MessagesFile, n, r.KeyGroup, r.Kind, r.Order)
			}
			prev = *r
			n++
			if err := fn(r); err != nil {
				fnErr = err
				return errStop
			}
			return nil
		})
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return err
	}
	if fi := sp.Manifest.File(MessagesFile); n != fi.Rows {
		return corruptf("%s: %d rows, manifest says %d", MessagesFile, n, fi.Rows)
	}
	return nil
}
