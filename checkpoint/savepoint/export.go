package savepoint

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/statefun-go/statefun/dataflow/state"
)

// Export formats.
const (
	FormatArrow   = "arrow"
	FormatParquet = "parquet"
	FormatJSONL   = "jsonl"
)

var tables = []string{"state", "messages", "sources"}

func tableFile(table, format string) string { return table + "." + format }

// Export writes the savepoint's three tables to the directory out (created
// if needed; existing files of the same names are replaced):
//
//   - "arrow": a copy of the savepoint (state.arrow, messages.arrow,
//     sources.arrow and _savepoint.json), itself a savepoint;
//   - "parquet": state.parquet, messages.parquet, sources.parquet, with the
//     same columns (pqarrow, zstd, the Arrow schema stored in the file);
//   - "jsonl": state.jsonl, messages.jsonl, sources.jsonl, one JSON object
//     per row: binary columns in base64, nulls omitted, and readable forms
//     of the values (see below).
//
// Values in JSONL. A message's typename is stored, so a value of a
// well-known type (io.statefun.types/*) is also given decoded in
// "value_decoded". A state value's typename is not stored (the function's
// ValueSpec knows it), so the type is inferred only where the bytes are
// unambiguous among the well-known types: a StringWrapper or a
// BooleanWrapper holding true, given as "value_type" + "value_decoded" with
// "value_type_inferred": true. A fixed32 wrapper (int or float) or fixed64
// wrapper (long or double) gets "value_candidates" with both readings; an
// empty value (the zero value of any type) gets nothing. In both tables a
// value that is a compact JSON object or array (statefun.MakeJsonType) is
// also given as "value_json". Decoded forms are emitted only when encoding
// them again gives the stored bytes, so Import of the export reproduces the
// savepoint.
func Export(sp *Savepoint, format, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	switch format {
	case FormatArrow:
		for _, name := range []string{StateFile, MessagesFile, SourcesFile, ManifestName} {
			if err := writeAtomic(filepath.Join(out, name), func(w io.Writer) error {
				f, err := os.Open(filepath.Join(sp.Dir, name))
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(w, f)
				return err
			}); err != nil {
				return err
			}
		}
		// The copy must be the savepoint, not what the disk returned.
		if _, err := Open(out); err != nil {
			return fmt.Errorf("savepoint: export copy: %w", err)
		}
		return nil
	case FormatParquet:
		for _, t := range tables {
			if err := writeAtomic(filepath.Join(out, tableFile(t, format)), func(w io.Writer) error {
				return sp.exportParquet(t+".arrow", w)
			}); err != nil {
				return err
			}
		}
		return nil
	case FormatJSONL:
		for _, t := range tables {
			if err := writeAtomic(filepath.Join(out, tableFile(t, format)), func(w io.Writer) error {
				return sp.exportJSONL(t, w)
			}); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("savepoint: unknown export format %q (want arrow, parquet or jsonl)", format)
}

// writeAtomic writes path through path+".tmp", fsync and rename.
func writeAtomic(path string, fn func(w io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = fn(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("savepoint: write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// parquetProps: zstd, row groups of batchRows, statistics on.
func parquetProps() *parquet.WriterProperties {
	return parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithMaxRowGroupLength(batchRows), parquet.WithAllocator(memory.DefaultAllocator))
}

func (sp *Savepoint) exportParquet(name string, w io.Writer) error {
	fw, err := pqarrow.NewFileWriter(tableSchemas[name], w, parquetProps(),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(memory.DefaultAllocator)))
	if err != nil {
		return err
	}
	err = sp.scan(name, func(rec arrow.RecordBatch) error { return fw.Write(rec) })
	if cerr := fw.Close(); err == nil {
		err = cerr
	}
	return err
}

// JSONL rows. Field names are the Arrow column names.

type jsonState struct {
	KeyGroup        int                        `json:"key_group"`
	Space           string                     `json:"space"`
	Namespace       string                     `json:"namespace"`
	Type            string                     `json:"type"`
	ID              string                     `json:"id"`
	Name            string                     `json:"name"`
	Value           []byte                     `json:"value"`
	ExpiresAt       int64                      `json:"expires_at"`
	ValueType       string                     `json:"value_type,omitempty"`
	ValueDecoded    json.RawMessage            `json:"value_decoded,omitempty"`
	ValueInferred   bool                       `json:"value_type_inferred,omitempty"`
	ValueCandidates map[string]json.RawMessage `json:"value_candidates,omitempty"`
	ValueJSON       json.RawMessage            `json:"value_json,omitempty"`
}

type jsonMessage struct {
	KeyGroup        int             `json:"key_group"`
	Kind            string          `json:"kind"`
	Order           int64           `json:"order"`
	EnvelopeKind    int             `json:"envelope_kind,omitempty"`
	TargetNamespace string          `json:"target_namespace"`
	TargetType      string          `json:"target_type"`
	TargetID        string          `json:"target_id"`
	CallerNamespace *string         `json:"caller_namespace,omitempty"`
	CallerType      *string         `json:"caller_type,omitempty"`
	CallerID        *string         `json:"caller_id,omitempty"`
	Typename        string          `json:"typename"`
	Value           []byte          `json:"value"`
	ValueDecoded    json.RawMessage `json:"value_decoded,omitempty"`
	ValueJSON       json.RawMessage `json:"value_json,omitempty"`
	OwnerNamespace  *string         `json:"owner_namespace,omitempty"`
	OwnerType       *string         `json:"owner_type,omitempty"`
	OwnerID         *string         `json:"owner_id,omitempty"`
	Token           *string         `json:"token,omitempty"`
	FireAt          *int64          `json:"fire_at,omitempty"`
}

type jsonSource struct {
	Vertex        string `json:"vertex"`
	Task          string `json:"task"`
	Subtask       int    `json:"subtask"`
	KeyGroupStart int    `json:"key_group_start"`
	KeyGroupEnd   int    `json:"key_group_end"`
	Position      []byte `json:"position"`
	Finished      bool   `json:"finished"`
}

func ptr[T any](v T) *T { return &v }

func (sp *Savepoint) exportJSONL(table string, w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	switch table {
	case "state":
		return sp.ScanState(func(r *StateRow) error {
			j := jsonState{KeyGroup: int(r.KeyGroup), Space: r.Space.String(), Namespace: r.Namespace, Type: r.Type,
				ID: r.ID, Name: r.Name, Value: r.Value, ExpiresAt: r.ExpiresAt}
			if r.Space == state.SpaceValue {
				j.ValueType, j.ValueDecoded, j.ValueCandidates = inferState(r.Value)
				j.ValueInferred = j.ValueType != ""
			}
			j.ValueJSON = jsonValue(r.Value)
			return enc.Encode(&j)
		})
	case "messages":
		return sp.ScanMessages(func(r *MessageRow) error {
			e := &r.Envelope
			j := jsonMessage{KeyGroup: int(r.KeyGroup), Kind: string(r.Kind), Order: r.Order, EnvelopeKind: int(e.Kind),
				TargetNamespace: e.Target.Namespace, TargetType: e.Target.Type, TargetID: e.Target.ID,
				Typename: e.Typename, Value: e.Value}
			if j.Value == nil {
				j.Value = []byte{}
			}
			if e.HasCaller {
				j.CallerNamespace, j.CallerType, j.CallerID = ptr(e.Caller.Namespace), ptr(e.Caller.Type), ptr(e.Caller.ID)
			}
			j.ValueDecoded, _ = decodeWellKnown(e.Typename, e.Value)
			j.ValueJSON = jsonValue(e.Value)
			if r.Kind == KindDelayed {
				j.OwnerNamespace, j.OwnerType, j.OwnerID = ptr(r.Owner.Namespace), ptr(r.Owner.Type), ptr(r.Owner.ID)
				j.Token, j.FireAt = ptr(r.Token), ptr(r.FireAt)
			}
			return enc.Encode(&j)
		})
	case "sources":
		for _, r := range sp.sources {
			j := jsonSource{Vertex: r.Vertex, Task: r.Task, Subtask: r.Subtask, KeyGroupStart: int(r.KeyGroups.Start),
				KeyGroupEnd: int(r.KeyGroups.End), Position: r.Position, Finished: r.Finished}
			if err := enc.Encode(&j); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown table %q", table)
}

func spaceByName(s string) (state.Space, bool) {
	for sp := state.SpaceValue; sp.Valid(); sp++ {
		if strings.EqualFold(sp.String(), s) {
			return sp, true
		}
	}
	return 0, false
}
