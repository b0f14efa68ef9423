package savepoint

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/state"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// ImportOption configures Import.
type ImportOption func(*importConfig)

type importConfig struct {
	maxP int
}

// WithMaxParallelism sets the max parallelism (number of key groups) of
// the job the savepoint is for; default dataflow.DefaultMaxParallelism.
// It must equal the --max-parallelism of the job that restores it.
func WithMaxParallelism(n int) ImportOption { return func(c *importConfig) { c.maxP = n } }

// Import reads tables shaped like an Export and writes a canonical
// savepoint to dir (which must not exist), so users can bootstrap or
// repair state.
//
// in is a directory holding state.<format> and optionally
// messages.<format> and sources.<format>, or a single file, read as the
// state table. format is "jsonl", "arrow" (IPC file or stream) or
// "parquet". Columns are found by name; columns Import does not need are
// ignored, integer widths and string/binary types are converted.
//
// State rows need namespace, type, id, name and a value; space defaults
// to "value" and expires_at (unix ns, or an RFC 3339 string in JSONL) to 0.
// In JSONL the value is, by precedence: "value_decoded" with its
// "value_type" (io.statefun.types/* or an alias such as "long" or
// "string" is encoded as the SDK does; any other type name as compact JSON,
// the encoding of statefun.MakeJsonType), else "value_json" (compact
// JSON), else "value" (base64). Messages take the same value fields with
// "typename" as the type, and need kind, target_* and, for delayed
// messages, owner_* and fire_at (unix ms); their order is "order" when
// given, else the input order. Sources need vertex and task; subtask
// defaults to the task id's "-<n>" suffix, the key groups to that
// subtask's range.
//
// Key groups are recomputed: dataflow.KeyGroupFor(id, maxParallelism) for
// function state and for the target (queued, feedback) or owner (delayed)
// id of messages. Rows of other state spaces keep their key_group.
// The whole state is sorted in memory.
func Import(in, format, dir string, opts ...ImportOption) error {
	cfg := importConfig{maxP: dataflow.DefaultMaxParallelism}
	for _, o := range opts {
		o(&cfg)
	}
	maxP := cfg.maxP
	if maxP < 1 || maxP > dataflow.MaxKeyGroups {
		return fmt.Errorf("savepoint: max parallelism %d is not in [1, %d]", maxP, dataflow.MaxKeyGroups)
	}
	switch format {
	case FormatJSONL, FormatArrow, FormatParquet:
	default:
		return fmt.Errorf("savepoint: unknown import format %q (want jsonl, arrow or parquet)", format)
	}
	paths, err := importPaths(in, format)
	if err != nil {
		return err
	}

	type keyed struct {
		key []byte
		row StateRow
	}
	var rows []keyed
	if p := paths["state"]; p != "" {
		n := 0
		err := readStateTable(p, format, func(r *StateRow) error {
			n++
			if err := fixStateRow(r, maxP); err != nil {
				return fmt.Errorf("%s: row %d: %w", filepath.Base(p), n, err)
			}
			rows = append(rows, keyed{state.EncodeKey(nil, r.Key()), *r})
			return nil
		})
		if err != nil {
			return err
		}
	}
	slices.SortFunc(rows, func(a, b keyed) int { return bytes.Compare(a.key, b.key) })
	for i := 1; i < len(rows); i++ {
		if bytes.Equal(rows[i-1].key, rows[i].key) {
			return fmt.Errorf("savepoint: import: state key %v appears twice", rows[i].row.Key())
		}
	}

	var msgs []MessageRow
	if p := paths["messages"]; p != "" {
		n := 0
		err := readMessageTable(p, format, func(r *MessageRow) error {
			by := r.Envelope.Target.ID
			if r.Kind == KindDelayed {
				by = r.Owner.ID
			}
			r.KeyGroup = dataflow.KeyGroupFor(by, maxP)
			if r.Order < 0 {
				r.Order = int64(n)
			}
			n++
			msgs = append(msgs, *r)
			return nil
		})
		if err != nil {
			return err
		}
		// writeMessages keeps the relative order within (key group, kind).
		slices.SortStableFunc(msgs, func(a, b MessageRow) int {
			return cmp.Or(cmp.Compare(a.KeyGroup, b.KeyGroup), cmp.Compare(a.Kind.rank(), b.Kind.rank()), cmp.Compare(a.Order, b.Order))
		})
	}

	var sources []SourceRow
	if p := paths["sources"]; p != "" {
		if sources, err = readSourceTable(p, format, maxP); err != nil {
			return err
		}
	}

	dir = filepath.Clean(dir)
	tmp, work, err := begin(dir)
	if err != nil {
		return err
	}
	_ = os.RemoveAll(work)
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	man := Manifest{Format: Format, Version: Version, CreatedBy: "import", MaxParallelism: maxP, Sources: manifestSources(sources)}
	fi, err := writeState(tmp, func(emit func(*StateRow) error) error {
		for i := range rows {
			if err := emit(&rows[i].row); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	man.Files = append(man.Files, fi)
	if fi, err = writeMessages(tmp, msgs); err != nil {
		return err
	}
	man.Files = append(man.Files, fi)
	if fi, err = writeSources(tmp, sources); err != nil {
		return err
	}
	man.Files = append(man.Files, fi)
	return commit(tmp, dir, &man)
}

// importPaths finds the table files of in.
func importPaths(in, format string) (map[string]string, error) {
	fi, err := os.Stat(in)
	if err != nil {
		return nil, fmt.Errorf("savepoint: import: %w", err)
	}
	if !fi.IsDir() {
		return map[string]string{"state": in}, nil
	}
	paths := map[string]string{}
	for _, t := range tables {
		p := filepath.Join(in, tableFile(t, format))
		if _, err := os.Stat(p); err == nil {
			paths[t] = p
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("savepoint: import: %w", err)
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("savepoint: import: %s holds none of state.%s, messages.%s, sources.%s", in, format, format, format)
	}
	return paths, nil
}

// fixStateRow validates an imported row and sets its key group.
func fixStateRow(r *StateRow, maxP int) error {
	if !r.Space.Valid() {
		return fmt.Errorf("undefined space %d", r.Space)
	}
	if r.Space == state.SpaceValue {
		if r.Namespace == "" || r.Type == "" || r.Name == "" {
			return fmt.Errorf("function state needs namespace, type and name")
		}
		r.KeyGroup = dataflow.KeyGroupFor(r.ID, maxP)
	} else if int(r.KeyGroup) >= maxP {
		return fmt.Errorf("key group %d is not below the max parallelism %d", r.KeyGroup, maxP)
	}
	if r.ExpiresAt < 0 {
		return fmt.Errorf("negative expires_at")
	}
	return nil
}

// parquetFile reads a Parquet file as record batches.
func parquetFile(path string) batchSource {
	return func(fn func(rec arrow.RecordBatch) error) error {
		rdr, err := file.OpenParquetFile(path, false)
		if err != nil {
			return fmt.Errorf("savepoint: %s: %w", path, err)
		}
		defer rdr.Close()
		fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: batchRows}, memory.DefaultAllocator)
		if err != nil {
			return fmt.Errorf("savepoint: %s: %w", path, err)
		}
		rr, err := fr.GetRecordReader(context.Background(), nil, nil)
		if err != nil {
			return fmt.Errorf("savepoint: %s: %w", path, err)
		}
		defer rr.Release()
		for rr.Next() {
			if err := fn(rr.RecordBatch()); err != nil {
				return err
			}
		}
		if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("savepoint: %s: %w", path, err)
		}
		return nil
	}
}

func batches(path, format string) batchSource {
	if format == FormatParquet {
		return parquetFile(path)
	}
	return arrowFile(path)
}

func wrapRead(path string, err error) error {
	if err == nil || strings.HasPrefix(err.Error(), "savepoint:") {
		return err
	}
	return fmt.Errorf("savepoint: import %s: %w", filepath.Base(path), err)
}

// jsonLines decodes the JSON objects of path into fresh values of T.
func jsonLines[T any](path string, fn func(n int, v *T) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	for n := 1; ; n++ {
		v := new(T)
		if err := dec.Decode(v); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("savepoint: import %s: row %d: %w", filepath.Base(path), n, err)
		}
		if err := fn(n, v); err != nil {
			return fmt.Errorf("savepoint: import %s: row %d: %w", filepath.Base(path), n, err)
		}
	}
}

func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// valueOf picks a JSONL row's value by precedence (see Import).
func valueOf(typename string, decoded, js json.RawMessage, b64 *[]byte) ([]byte, error) {
	switch {
	case present(decoded):
		if typename == "" {
			return nil, errors.New("value_decoded needs a value_type")
		}
		return encodeDecoded(typename, decoded)
	case present(js):
		var buf bytes.Buffer
		if err := json.Compact(&buf, js); err != nil {
			return nil, fmt.Errorf("value_json: %w", err)
		}
		return buf.Bytes(), nil
	case b64 != nil:
		if *b64 == nil {
			return []byte{}, nil
		}
		return *b64, nil
	}
	return nil, errors.New("no value (value, value_decoded or value_json)")
}

type jsonStateIn struct {
	KeyGroup        *int            `json:"key_group"`
	Space           json.RawMessage `json:"space"`
	Namespace       string          `json:"namespace"`
	Type            string          `json:"type"`
	ID              string          `json:"id"`
	Name            string          `json:"name"`
	Value           *[]byte         `json:"value"`
	ExpiresAt       json.RawMessage `json:"expires_at"`
	ValueType       string          `json:"value_type"`
	ValueDecoded    json.RawMessage `json:"value_decoded"`
	ValueInferred   bool            `json:"value_type_inferred"`
	ValueCandidates json.RawMessage `json:"value_candidates"`
	ValueJSON       json.RawMessage `json:"value_json"`
}

func readStateTable(path, format string, fn func(*StateRow) error) error {
	if format != FormatJSONL {
		return wrapRead(path, batches(path, format)(func(rec arrow.RecordBatch) error {
			if !col(rec, "id").present() || !col(rec, "value").present() {
				return fmt.Errorf("the state table needs at least the columns namespace, type, id, name and value")
			}
			return stateRows(rec, fn)
		}))
	}
	return jsonLines(path, func(_ int, j *jsonStateIn) error {
		r := StateRow{Space: state.SpaceValue, Namespace: j.Namespace, Type: j.Type, ID: j.ID, Name: j.Name}
		if present(j.Space) {
			var name string
			var num int
			if json.Unmarshal(j.Space, &name) == nil {
				sp, ok := spaceByName(name)
				if !ok {
					return fmt.Errorf("unknown space %q", name)
				}
				r.Space = sp
			} else if json.Unmarshal(j.Space, &num) == nil && num > 0 && num < 256 {
				r.Space = state.Space(num)
			} else {
				return fmt.Errorf("bad space %s", j.Space)
			}
		}
		if j.KeyGroup != nil {
			if *j.KeyGroup < 0 || *j.KeyGroup >= dataflow.MaxKeyGroups {
				return fmt.Errorf("key_group %d out of range", *j.KeyGroup)
			}
			r.KeyGroup = dataflow.KeyGroup(*j.KeyGroup)
		}
		if present(j.ExpiresAt) {
			var s string
			if json.Unmarshal(j.ExpiresAt, &s) == nil {
				t, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					return fmt.Errorf("expires_at: %w", err)
				}
				r.ExpiresAt = t.UnixNano()
			} else if err := json.Unmarshal(j.ExpiresAt, &r.ExpiresAt); err != nil {
				return fmt.Errorf("expires_at: %w", err)
			}
		}
		v, err := valueOf(canonicalType(j.ValueType), j.ValueDecoded, j.ValueJSON, j.Value)
		if err != nil {
			return err
		}
		r.Value = v
		return fn(&r)
	})
}

type jsonMessageIn struct {
	KeyGroup        *int            `json:"key_group"`
	Kind            string          `json:"kind"`
	Order           *int64          `json:"order"`
	EnvelopeKind    int             `json:"envelope_kind"`
	TargetNamespace string          `json:"target_namespace"`
	TargetType      string          `json:"target_type"`
	TargetID        string          `json:"target_id"`
	CallerNamespace *string         `json:"caller_namespace"`
	CallerType      *string         `json:"caller_type"`
	CallerID        *string         `json:"caller_id"`
	Typename        string          `json:"typename"`
	Value           *[]byte         `json:"value"`
	ValueDecoded    json.RawMessage `json:"value_decoded"`
	ValueJSON       json.RawMessage `json:"value_json"`
	OwnerNamespace  *string         `json:"owner_namespace"`
	OwnerType       *string         `json:"owner_type"`
	OwnerID         *string         `json:"owner_id"`
	Token           *string         `json:"token"`
	FireAt          *int64          `json:"fire_at"`
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func readMessageTable(path, format string, fn func(*MessageRow) error) error {
	if format != FormatJSONL {
		return wrapRead(path, batches(path, format)(func(rec arrow.RecordBatch) error { return messageRows(rec, fn) }))
	}
	return jsonLines(path, func(_ int, j *jsonMessageIn) error {
		r := MessageRow{Kind: MessageKind(j.Kind), Order: -1}
		if !r.Kind.valid() {
			return fmt.Errorf("unknown kind %q (want queued, feedback or delayed)", j.Kind)
		}
		if j.Order != nil {
			if *j.Order < 0 {
				return fmt.Errorf("negative order")
			}
			r.Order = *j.Order
		}
		if j.EnvelopeKind < 0 || j.EnvelopeKind > int(envelope.KindEgress) {
			return fmt.Errorf("envelope_kind %d", j.EnvelopeKind)
		}
		e := &r.Envelope
		e.Kind = envelope.Kind(j.EnvelopeKind)
		e.Target = envelope.Address{Namespace: j.TargetNamespace, Type: j.TargetType, ID: j.TargetID}
		if j.CallerNamespace != nil || j.CallerType != nil || j.CallerID != nil {
			e.HasCaller = true
			e.Caller = envelope.Address{Namespace: deref(j.CallerNamespace), Type: deref(j.CallerType), ID: deref(j.CallerID)}
		}
		e.Typename = j.Typename
		v, err := valueOf(j.Typename, j.ValueDecoded, j.ValueJSON, j.Value)
		if err != nil {
			return err
		}
		e.Value = v
		if r.Kind == KindDelayed {
			if j.OwnerID == nil || j.FireAt == nil {
				return fmt.Errorf("a delayed message needs owner_* and fire_at")
			}
			r.Owner = envelope.Address{Namespace: deref(j.OwnerNamespace), Type: deref(j.OwnerType), ID: deref(j.OwnerID)}
			r.Token, r.FireAt = deref(j.Token), *j.FireAt
		}
		return fn(&r)
	})
}

type jsonSourceIn struct {
	Vertex        string  `json:"vertex"`
	Task          string  `json:"task"`
	Subtask       *int    `json:"subtask"`
	KeyGroupStart *int    `json:"key_group_start"`
	KeyGroupEnd   *int    `json:"key_group_end"`
	Position      *[]byte `json:"position"`
	Finished      bool    `json:"finished"`
}

func readSourceTable(path, format string, maxP int) ([]SourceRow, error) {
	var rows []SourceRow
	hasRange := map[int]bool{}
	if format != FormatJSONL {
		err := wrapRead(path, batches(path, format)(func(rec arrow.RecordBatch) error {
			ranged := col(rec, "key_group_start").present() && col(rec, "key_group_end").present()
			return sourceRows(rec, func(r *SourceRow) error {
				hasRange[len(rows)] = ranged
				rows = append(rows, *r)
				return nil
			})
		}))
		if err != nil {
			return nil, err
		}
	} else {
		err := jsonLines(path, func(_ int, j *jsonSourceIn) error {
			r := SourceRow{Vertex: j.Vertex, Task: j.Task, Subtask: -1, Finished: j.Finished}
			if j.Subtask != nil {
				r.Subtask = *j.Subtask
			}
			if j.KeyGroupStart != nil && j.KeyGroupEnd != nil {
				s, e := *j.KeyGroupStart, *j.KeyGroupEnd
				if s < 0 || e < s || e > maxP {
					return fmt.Errorf("key groups [%d,%d) out of range", s, e)
				}
				r.KeyGroups = dataflow.KeyGroupRange{Start: dataflow.KeyGroup(s), End: dataflow.KeyGroup(e)}
				hasRange[len(rows)] = true
			}
			if j.Position != nil {
				r.Position = *j.Position
				if r.Position == nil {
					r.Position = []byte{}
				}
			}
			rows = append(rows, r)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	perVertex := map[string]int{}
	tasks := map[string]bool{}
	for i := range rows {
		r := &rows[i]
		if !isConnector(r.Vertex) {
			return nil, fmt.Errorf("savepoint: import %s: row %d: vertex %q is not \"ingress <id>\" or \"egress <id>\"", filepath.Base(path), i+1, r.Vertex)
		}
		if r.Task == "" || tasks[r.Task] || strings.ContainsAny(r.Task, "/\\") || r.Task == "." || r.Task == ".." {
			return nil, fmt.Errorf("savepoint: import %s: row %d: task %q is empty, a path or a duplicate", filepath.Base(path), i+1, r.Task)
		}
		tasks[r.Task] = true
		if r.Subtask < 0 {
			dash := strings.LastIndexByte(r.Task, '-')
			n, err := strconv.Atoi(r.Task[dash+1:])
			if dash < 0 || err != nil || n < 0 {
				return nil, fmt.Errorf("savepoint: import %s: row %d: no subtask, and task %q does not end in -<subtask>", filepath.Base(path), i+1, r.Task)
			}
			r.Subtask = n
		}
		perVertex[r.Vertex]++
	}
	for i := range rows {
		r := &rows[i]
		if !hasRange[i] {
			if n := perVertex[r.Vertex]; r.Subtask < n && n <= maxP {
				r.KeyGroups = dataflow.RangeForSubtask(r.Subtask, n, maxP)
			}
		}
		if int(r.KeyGroups.End) > maxP {
			return nil, fmt.Errorf("savepoint: import %s: task %s: key groups %s beyond the max parallelism %d", filepath.Base(path), r.Task, r.KeyGroups, maxP)
		}
	}
	sortSources(rows)
	return rows, nil
}
