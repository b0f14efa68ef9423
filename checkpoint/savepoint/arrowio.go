package savepoint

import (
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/state"
	"github.com/statefun-go/statefun/statefun/envelope"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// hashWriter counts and checksums what goes through it.
type hashWriter struct {
	w   io.Writer
	crc hash.Hash32
	n   int64
}

func (h *hashWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.crc.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// tableWriter writes one Arrow IPC file (zstd) in record batches of at most
// batchRows rows / about batchBytes bytes. The file is fsynced by close.
// Writing is deterministic: the same rows give the same bytes.
type tableWriter struct {
	name    string
	f       *os.File
	hw      *hashWriter
	w       *ipc.FileWriter
	b       *array.RecordBuilder
	pending int // rows in b
	bytes   int // variable-length bytes in b
	rows    int64
}

func newTableWriter(dir, name string, schema *arrow.Schema) (*tableWriter, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	hw := &hashWriter{w: f, crc: crc32.New(castagnoli)}
	w, err := ipc.NewFileWriter(hw, ipc.WithSchema(schema), ipc.WithZstd(), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("savepoint: %s: %w", name, err)
	}
	return &tableWriter{name: name, f: f, hw: hw, w: w, b: array.NewRecordBuilder(memory.DefaultAllocator, schema)}, nil
}

func (t *tableWriter) rowAdded(varBytes int) error {
	t.pending++
	t.rows++
	t.bytes += varBytes
	if t.pending >= batchRows || t.bytes >= batchBytes {
		return t.flush()
	}
	return nil
}

func (t *tableWriter) flush() error {
	if t.pending == 0 {
		return nil
	}
	rec := t.b.NewRecordBatch()
	defer rec.Release()
	t.pending, t.bytes = 0, 0
	if err := t.w.Write(rec); err != nil {
		return fmt.Errorf("savepoint: write %s: %w", t.name, err)
	}
	return nil
}

// close flushes, writes the footer, fsyncs and closes the file, and returns
// its manifest entry.
func (t *tableWriter) close() (FileInfo, error) {
	defer t.b.Release()
	err := t.flush()
	if cerr := t.w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("savepoint: write %s: %w", t.name, cerr)
	}
	if err == nil {
		err = t.f.Sync()
	}
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	return FileInfo{Name: t.name, Size: t.hw.n, CRC32C: t.hw.crc.Sum32(), Rows: t.rows}, err
}

// abort closes and leaves the file to the caller's cleanup.
func (t *tableWriter) abort() {
	t.b.Release()
	_ = t.f.Close()
}

func (t *tableWriter) appendState(r *StateRow) error {
	b := t.b
	b.Field(0).(*array.Uint16Builder).Append(uint16(r.KeyGroup))
	b.Field(1).(*array.Uint8Builder).Append(uint8(r.Space))
	b.Field(2).(*array.StringBuilder).Append(r.Namespace)
	b.Field(3).(*array.StringBuilder).Append(r.Type)
	b.Field(4).(*array.StringBuilder).Append(r.ID)
	b.Field(5).(*array.StringBuilder).Append(r.Name)
	b.Field(6).(*array.BinaryBuilder).Append(r.Value)
	b.Field(7).(*array.Int64Builder).Append(r.ExpiresAt)
	return t.rowAdded(len(r.Namespace) + len(r.Type) + len(r.ID) + len(r.Name) + len(r.Value))
}

func appendOptString(b array.Builder, s string, ok bool) {
	if ok {
		b.(*array.StringBuilder).Append(s)
	} else {
		b.AppendNull()
	}
}

func (t *tableWriter) appendMessage(r *MessageRow) error {
	b := t.b
	e := &r.Envelope
	b.Field(0).(*array.Uint16Builder).Append(uint16(r.KeyGroup))
	b.Field(1).(*array.StringBuilder).Append(string(r.Kind))
	b.Field(2).(*array.Int64Builder).Append(r.Order)
	b.Field(3).(*array.Uint8Builder).Append(uint8(e.Kind))
	b.Field(4).(*array.StringBuilder).Append(e.Target.Namespace)
	b.Field(5).(*array.StringBuilder).Append(e.Target.Type)
	b.Field(6).(*array.StringBuilder).Append(e.Target.ID)
	appendOptString(b.Field(7), e.Caller.Namespace, e.HasCaller)
	appendOptString(b.Field(8), e.Caller.Type, e.HasCaller)
	appendOptString(b.Field(9), e.Caller.ID, e.HasCaller)
	b.Field(10).(*array.StringBuilder).Append(e.Typename)
	b.Field(11).(*array.BinaryBuilder).Append(e.Value)
	delayed := r.Kind == KindDelayed
	appendOptString(b.Field(12), r.Owner.Namespace, delayed)
	appendOptString(b.Field(13), r.Owner.Type, delayed)
	appendOptString(b.Field(14), r.Owner.ID, delayed)
	appendOptString(b.Field(15), r.Token, delayed)
	if delayed {
		b.Field(16).(*array.Int64Builder).Append(r.FireAt)
	} else {
		b.Field(16).AppendNull()
	}
	return t.rowAdded(e.Size() + len(r.Owner.ID) + len(r.Token))
}

func (t *tableWriter) appendSource(r *SourceRow) error {
	b := t.b
	b.Field(0).(*array.StringBuilder).Append(r.Vertex)
	b.Field(1).(*array.StringBuilder).Append(r.Task)
	b.Field(2).(*array.Int32Builder).Append(int32(r.Subtask))
	b.Field(3).(*array.Uint16Builder).Append(uint16(r.KeyGroups.Start))
	b.Field(4).(*array.Uint16Builder).Append(uint16(r.KeyGroups.End))
	if r.Position != nil {
		b.Field(5).(*array.BinaryBuilder).Append(r.Position)
	} else {
		b.Field(5).AppendNull()
	}
	b.Field(6).(*array.BooleanBuilder).Append(r.Finished)
	return t.rowAdded(len(r.Vertex) + len(r.Task) + len(r.Position))
}

// --- reading ---

// batchSource yields record batches; each is released after fn returns.
type batchSource func(fn func(rec arrow.RecordBatch) error) error

// arrowFile reads an Arrow IPC file (or, failing that, an IPC stream).
func arrowFile(path string) batchSource {
	return func(fn func(rec arrow.RecordBatch) error) error {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		defer f.Close()
		fr, ferr := ipc.NewFileReader(f, ipc.WithAllocator(memory.DefaultAllocator))
		if ferr == nil {
			defer fr.Close()
			for i := 0; i < fr.NumRecords(); i++ {
				rec, err := fr.RecordBatchAt(i)
				if err != nil {
					return corruptf("%s: record batch %d: %v", path, i, err)
				}
				err = fn(rec)
				rec.Release()
				if err != nil {
					return err
				}
			}
			return nil
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		sr, err := ipc.NewReader(f, ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			return corruptf("%s: not an Arrow IPC file or stream: %v", path, ferr)
		}
		defer sr.Release()
		for sr.Next() {
			if err := fn(sr.RecordBatch()); err != nil {
				return err
			}
		}
		if err := sr.Err(); err != nil {
			return corruptf("%s: %v", path, err)
		}
		return nil
	}
}

// column reads one column of a record batch by name, converting between
// compatible physical types (any integer width, string or binary) so that
// files written by other tools (or read back from Parquet) are accepted.
// A missing column reads as null.
type column struct {
	name string
	a    arrow.Array
}

func col(rec arrow.RecordBatch, name string) column {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return column{name: name}
	}
	return column{name: name, a: rec.Column(idx[0])}
}

func (c column) present() bool { return c.a != nil }

func (c column) null(i int) bool { return c.a == nil || c.a.IsNull(i) }

func (c column) str(i int) (string, bool, error) {
	if c.null(i) {
		return "", false, nil
	}
	switch a := c.a.(type) {
	case *array.String:
		return a.Value(i), true, nil
	case *array.LargeString:
		return a.Value(i), true, nil
	case *array.StringView:
		return a.Value(i), true, nil
	case *array.Binary:
		return a.ValueString(i), true, nil
	case *array.LargeBinary:
		return string(a.Value(i)), true, nil
	case *array.BinaryView:
		return string(a.Value(i)), true, nil
	}
	return "", false, fmt.Errorf("column %s: type %s is not a string", c.name, c.a.DataType())
}

// bytes returns a copy of the value.
func (c column) bytes(i int) ([]byte, bool, error) {
	if c.null(i) {
		return nil, false, nil
	}
	var v []byte
	switch a := c.a.(type) {
	case *array.Binary:
		v = a.Value(i)
	case *array.LargeBinary:
		v = a.Value(i)
	case *array.BinaryView:
		v = a.Value(i)
	case *array.String, *array.LargeString, *array.StringView:
		s, _, _ := c.str(i)
		return []byte(s), true, nil
	default:
		return nil, false, fmt.Errorf("column %s: type %s is not binary", c.name, c.a.DataType())
	}
	return append(make([]byte, 0, len(v)), v...), true, nil
}

func (c column) int(i int) (int64, bool, error) {
	if c.null(i) {
		return 0, false, nil
	}
	switch a := c.a.(type) {
	case *array.Int8:
		return int64(a.Value(i)), true, nil
	case *array.Int16:
		return int64(a.Value(i)), true, nil
	case *array.Int32:
		return int64(a.Value(i)), true, nil
	case *array.Int64:
		return a.Value(i), true, nil
	case *array.Uint8:
		return int64(a.Value(i)), true, nil
	case *array.Uint16:
		return int64(a.Value(i)), true, nil
	case *array.Uint32:
		return int64(a.Value(i)), true, nil
	case *array.Uint64:
		v := a.Value(i)
		if v > 1<<63-1 {
			return 0, false, fmt.Errorf("column %s: %d overflows int64", c.name, v)
		}
		return int64(v), true, nil
	}
	return 0, false, fmt.Errorf("column %s: type %s is not an integer", c.name, c.a.DataType())
}

func (c column) bool(i int) (bool, bool, error) {
	if c.null(i) {
		return false, false, nil
	}
	if a, ok := c.a.(*array.Boolean); ok {
		return a.Value(i), true, nil
	}
	return false, false, fmt.Errorf("column %s: type %s is not a boolean", c.name, c.a.DataType())
}

// rowErr collects the first error of a row's column reads.
type rowErr struct{ err error }

func (e *rowErr) str(c column, i int) (string, bool) {
	v, ok, err := c.str(i)
	e.set(err)
	return v, ok
}

func (e *rowErr) bytes(c column, i int) ([]byte, bool) {
	v, ok, err := c.bytes(i)
	e.set(err)
	return v, ok
}

func (e *rowErr) int(c column, i int) (int64, bool) {
	v, ok, err := c.int(i)
	e.set(err)
	return v, ok
}

func (e *rowErr) bool(c column, i int) (bool, bool) {
	v, ok, err := c.bool(i)
	e.set(err)
	return v, ok
}

func (e *rowErr) set(err error) {
	if err != nil && e.err == nil {
		e.err = err
	}
}

// stateRows decodes the state rows of rec. Missing columns read as zero
// values (space: SpaceValue); the caller validates what it needs.
func stateRows(rec arrow.RecordBatch, fn func(*StateRow) error) error {
	kg, sp, ns, ty, id, nm, val, exp := col(rec, "key_group"), col(rec, "space"), col(rec, "namespace"),
		col(rec, "type"), col(rec, "id"), col(rec, "name"), col(rec, "value"), col(rec, "expires_at")
	for i := 0; i < int(rec.NumRows()); i++ {
		var e rowErr
		var r StateRow
		k, _ := e.int(kg, i)
		s, ok := e.int(sp, i)
		if !ok {
			s = int64(state.SpaceValue)
		}
		r.Namespace, _ = e.str(ns, i)
		r.Type, _ = e.str(ty, i)
		r.ID, _ = e.str(id, i)
		r.Name, _ = e.str(nm, i)
		r.Value, _ = e.bytes(val, i)
		if r.Value == nil {
			r.Value = []byte{}
		}
		r.ExpiresAt, _ = e.int(exp, i)
		if e.err != nil {
			return e.err
		}
		if k < 0 || k >= dataflow.MaxKeyGroups || s < 0 || s > 255 {
			return fmt.Errorf("row %d: key group %d or space %d out of range", i, k, s)
		}
		r.KeyGroup, r.Space = dataflow.KeyGroup(k), state.Space(s)
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

func addrOf(e *rowErr, ns, ty, id column, i int) (envelope.Address, bool) {
	n, ok1 := e.str(ns, i)
	t, ok2 := e.str(ty, i)
	d, ok3 := e.str(id, i)
	return envelope.Address{Namespace: n, Type: t, ID: d}, ok1 || ok2 || ok3
}

// messageRows decodes the message rows of rec. order is -1 when absent.
func messageRows(rec arrow.RecordBatch, fn func(*MessageRow) error) error {
	kg, kind, order, ek := col(rec, "key_group"), col(rec, "kind"), col(rec, "order"), col(rec, "envelope_kind")
	tns, tty, tid := col(rec, "target_namespace"), col(rec, "target_type"), col(rec, "target_id")
	cns, cty, cid := col(rec, "caller_namespace"), col(rec, "caller_type"), col(rec, "caller_id")
	tn, val := col(rec, "typename"), col(rec, "value")
	ons, oty, oid, tok, fire := col(rec, "owner_namespace"), col(rec, "owner_type"), col(rec, "owner_id"), col(rec, "token"), col(rec, "fire_at")
	for i := 0; i < int(rec.NumRows()); i++ {
		var e rowErr
		var r MessageRow
		k, _ := e.int(kg, i)
		ks, _ := e.str(kind, i)
		r.Kind = MessageKind(ks)
		var ok bool
		if r.Order, ok = e.int(order, i); !ok {
			r.Order = -1
		}
		x, _ := e.int(ek, i)
		r.Envelope.Target, _ = addrOf(&e, tns, tty, tid, i)
		r.Envelope.Caller, r.Envelope.HasCaller = addrOf(&e, cns, cty, cid, i)
		r.Envelope.Typename, _ = e.str(tn, i)
		r.Envelope.Value, _ = e.bytes(val, i)
		var hasOwner bool
		r.Owner, hasOwner = addrOf(&e, ons, oty, oid, i)
		r.Token, _ = e.str(tok, i)
		var hasFire bool
		r.FireAt, hasFire = e.int(fire, i)
		if e.err != nil {
			return e.err
		}
		if !r.Kind.valid() {
			return fmt.Errorf("row %d: unknown kind %q (want queued, feedback or delayed)", i, ks)
		}
		if k < 0 || k >= dataflow.MaxKeyGroups || x < 0 || x > int64(envelope.KindEgress) {
			return fmt.Errorf("row %d: key group %d or envelope kind %d out of range", i, k, x)
		}
		if r.Kind == KindDelayed && (!hasOwner || !hasFire) {
			return fmt.Errorf("row %d: a delayed message needs owner_* and fire_at", i)
		}
		if r.Kind != KindDelayed {
			r.Owner, r.Token, r.FireAt = envelope.Address{}, "", 0
		}
		r.KeyGroup, r.Envelope.Kind = dataflow.KeyGroup(k), envelope.Kind(x)
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

// sourceRows decodes the source rows of rec. Subtask is -1 and KeyGroups
// empty when the columns are absent.
func sourceRows(rec arrow.RecordBatch, fn func(*SourceRow) error) error {
	vx, tk, st, ks, ke, pos, fin := col(rec, "vertex"), col(rec, "task"), col(rec, "subtask"),
		col(rec, "key_group_start"), col(rec, "key_group_end"), col(rec, "position"), col(rec, "finished")
	for i := 0; i < int(rec.NumRows()); i++ {
		var e rowErr
		var r SourceRow
		r.Vertex, _ = e.str(vx, i)
		r.Task, _ = e.str(tk, i)
		sub, ok := e.int(st, i)
		if !ok {
			sub = -1
		}
		s, _ := e.int(ks, i)
		en, _ := e.int(ke, i)
		r.Position, _ = e.bytes(pos, i)
		r.Finished, _ = e.bool(fin, i)
		if e.err != nil {
			return e.err
		}
		if s < 0 || en < s || en > dataflow.MaxKeyGroups || sub < -1 || sub > 1<<30 {
			return fmt.Errorf("row %d: bad subtask %d or key groups [%d,%d)", i, sub, s, en)
		}
		r.Subtask, r.KeyGroups = int(sub), dataflow.KeyGroupRange{Start: dataflow.KeyGroup(s), End: dataflow.KeyGroup(en)}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

var errStop = errors.New("stop")
