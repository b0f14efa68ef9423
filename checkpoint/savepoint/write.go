package savepoint

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/statefun-go/statefun/checkpoint/store"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/state"
	"github.com/statefun-go/statefun/statefun/dispatch/opstate"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/feedback"
)

// taskInfo is one subtask of a stored checkpoint, from its "task/<id>"
// metadata property ("<subtask>:<kgStart>:<kgEnd>:<vertex>").
type taskInfo struct {
	id        string
	subtask   int
	keyGroups dataflow.KeyGroupRange
	vertex    string
}

func parseTasks(m *store.Metadata) ([]taskInfo, error) {
	var out []taskInfo
	for k, v := range m.Properties {
		id, ok := strings.CutPrefix(k, taskPropPrefix)
		if !ok {
			continue
		}
		f := strings.SplitN(v, ":", 4)
		if len(f) != 4 {
			return nil, fmt.Errorf("%w: checkpoint %d: bad task property %q=%q", ErrCorrupt, m.ID, k, v)
		}
		sub, err1 := strconv.Atoi(f[0])
		start, err2 := strconv.Atoi(f[1])
		end, err3 := strconv.Atoi(f[2])
		if err := errors.Join(err1, err2, err3); err != nil || sub < 0 || start < 0 || end < start || end > m.MaxParallelism {
			return nil, fmt.Errorf("%w: checkpoint %d: bad task property %q=%q", ErrCorrupt, m.ID, k, v)
		}
		out = append(out, taskInfo{id: id, subtask: sub, vertex: f[3],
			keyGroups: dataflow.KeyGroupRange{Start: dataflow.KeyGroup(start), End: dataflow.KeyGroup(end)}})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: checkpoint %d has no task properties (written by an older version?)", ErrUnsupported, m.ID)
	}
	slices.SortFunc(out, func(a, b taskInfo) int {
		return cmp.Or(cmp.Compare(a.vertex, b.vertex), cmp.Compare(a.subtask, b.subtask), cmp.Compare(a.id, b.id))
	})
	return out, nil
}

func isConnector(vertex string) bool {
	return strings.HasPrefix(vertex, "ingress ") || strings.HasPrefix(vertex, "egress ")
}

// checkKnownFiles fails on any stored file Write would not carry over, so
// a savepoint never silently drops part of a checkpoint.
func checkKnownFiles(m *store.Metadata, tasks []taskInfo) error {
	byID := map[string]taskInfo{}
	for _, t := range tasks {
		byID[t.id] = t
	}
	for _, tm := range m.Tasks {
		if tm.Pebble {
			t, ok := byID[strings.TrimSuffix(tm.Task, pebbleSuffix)]
			if !ok || !strings.HasSuffix(tm.Task, pebbleSuffix) || t.vertex != functionsVertex {
				return fmt.Errorf("%w: checkpoint %d: Pebble checkpoint of task %q, which is not a function subtask", ErrUnsupported, m.ID, tm.Task)
			}
			continue
		}
		t, ok := byID[tm.Task]
		if !ok {
			return fmt.Errorf("%w: checkpoint %d: files of task %q, which has no task property", ErrUnsupported, m.ID, tm.Task)
		}
		for _, f := range tm.Files {
			known := false
			switch {
			case t.vertex == functionsVertex:
				known = f.Name == operatorBlob || f.Name == feedbackBlob
			case isConnector(t.vertex):
				known = f.Name == positionBlob || f.Name == finishedBlob
			}
			if !known {
				return fmt.Errorf("%w: checkpoint %d: file %s/%s (vertex %q) is not part of the savepoint format", ErrUnsupported, m.ID, tm.Task, f.Name, t.vertex)
			}
		}
	}
	return nil
}

// Write converts the stored checkpoint cp into a canonical savepoint in
// dir, which must not exist. It is written in dir+".inprogress" (sstables
// are materialized in dir+".work") and renamed into place once every file
// is fsynced, so dir is either absent or complete.
//
// State values already expired at the checkpoint's trigger time
// (Meta.Timestamp) are left out: they are logically gone.
func Write(cp *store.Checkpoint, dir string) (err error) {
	m := &cp.Meta
	if m.MaxParallelism < 1 || m.MaxParallelism > dataflow.MaxKeyGroups {
		return fmt.Errorf("%w: checkpoint %d: max parallelism %d", ErrCorrupt, m.ID, m.MaxParallelism)
	}
	tasks, err := parseTasks(m)
	if err != nil {
		return err
	}
	if err := checkKnownFiles(m, tasks); err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	tmp, work, err := begin(dir)
	if err != nil {
		return err
	}
	defer func() {
		_ = os.RemoveAll(work)
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()

	var fns []taskInfo
	var sources []SourceRow
	for _, t := range tasks {
		switch {
		case t.vertex == functionsVertex:
			fns = append(fns, t)
		case isConnector(t.vertex):
			row, err := readSource(cp, t)
			if err != nil {
				return err
			}
			sources = append(sources, row)
		}
	}
	sortSources(sources)
	slices.SortFunc(fns, func(a, b taskInfo) int { return cmp.Compare(a.keyGroups.Start, b.keyGroups.Start) })
	for i := 1; i < len(fns); i++ {
		if fns[i].keyGroups.Start < fns[i-1].keyGroups.End {
			return fmt.Errorf("%w: checkpoint %d: function subtasks %s and %s own overlapping key groups", ErrCorrupt, m.ID, fns[i-1].id, fns[i].id)
		}
	}

	man := Manifest{Format: Format, Version: Version, CreatedBy: "checkpoint", SourceCheckpointID: m.ID,
		SourceSavepoint: m.Savepoint, Timestamp: m.Timestamp, MaxParallelism: m.MaxParallelism,
		Parallelism: m.Parallelism, Sources: manifestSources(sources)}

	// State: function subtasks in key-group order, each scanned in key
	// order, give rows sorted by encoded key.
	now := m.Timestamp * 1e6
	fi, err := writeState(tmp, func(emit func(*StateRow) error) error {
		for _, t := range fns {
			if !cp.HasTask(t.id + pebbleSuffix) {
				continue
			}
			if err := scanPebble(cp, t, filepath.Join(work, t.id), now, emit); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	man.Files = append(man.Files, fi)

	var msgs []MessageRow
	for _, t := range fns {
		if msgs, err = readWork(cp, t, m.MaxParallelism, msgs); err != nil {
			return err
		}
	}
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

// begin prepares dir's in-progress and work directories.
func begin(dir string) (tmp, work string, err error) {
	if _, err := os.Lstat(dir); err == nil {
		return "", "", fmt.Errorf("%w: %s", ErrExists, dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("savepoint: %w", err)
	}
	tmp, work = dir+".inprogress", dir+".work"
	for _, d := range []string{tmp, work} {
		if err := os.RemoveAll(d); err != nil {
			return "", "", fmt.Errorf("savepoint: %w", err)
		}
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", "", fmt.Errorf("savepoint: %w", err)
	}
	return tmp, work, nil
}

// commit writes the manifest, fsyncs, and renames tmp to dir.
func commit(tmp, dir string, man *Manifest) error {
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if err := writeFileSync(filepath.Join(tmp, ManifestName), append(b, '\n')); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	return syncDir(filepath.Dir(dir))
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("savepoint: sync %s: %w", dir, err)
	}
	return nil
}

// writeState writes state.arrow from the rows produced by gen, which must
// come sorted by (key group, encoded key) without duplicates.
func writeState(dir string, gen func(emit func(*StateRow) error) error) (FileInfo, error) {
	tw, err := newTableWriter(dir, StateFile, stateSchema)
	if err != nil {
		return FileInfo{}, err
	}
	var prev, cur []byte
	err = gen(func(r *StateRow) error {
		cur = state.EncodeKey(cur[:0], r.Key())
		if prev != nil && bytes.Compare(prev, cur) >= 0 {
			return fmt.Errorf("%w: state key %v is not after the previous key", ErrCorrupt, r.Key())
		}
		prev = append(prev[:0], cur...)
		return tw.appendState(r)
	})
	if err != nil {
		tw.abort()
		return FileInfo{}, err
	}
	return tw.close()
}

// writeMessages sorts msgs by (key group, kind as restore replays it),
// keeping their relative order, numbers them within each (key group, kind)
// and writes messages.arrow.
func writeMessages(dir string, msgs []MessageRow) (FileInfo, error) {
	slices.SortStableFunc(msgs, func(a, b MessageRow) int {
		return cmp.Or(cmp.Compare(a.KeyGroup, b.KeyGroup), cmp.Compare(a.Kind.rank(), b.Kind.rank()))
	})
	tw, err := newTableWriter(dir, MessagesFile, messagesSchema)
	if err != nil {
		return FileInfo{}, err
	}
	for i := range msgs {
		r := &msgs[i]
		r.Order = 0
		if i > 0 && msgs[i-1].KeyGroup == r.KeyGroup && msgs[i-1].Kind == r.Kind {
			r.Order = msgs[i-1].Order + 1
		}
		if err := tw.appendMessage(r); err != nil {
			tw.abort()
			return FileInfo{}, err
		}
	}
	return tw.close()
}

func writeSources(dir string, rows []SourceRow) (FileInfo, error) {
	tw, err := newTableWriter(dir, SourcesFile, sourcesSchema)
	if err != nil {
		return FileInfo{}, err
	}
	for i := range rows {
		if err := tw.appendSource(&rows[i]); err != nil {
			tw.abort()
			return FileInfo{}, err
		}
	}
	return tw.close()
}

func sortSources(rows []SourceRow) {
	slices.SortFunc(rows, func(a, b SourceRow) int {
		return cmp.Or(cmp.Compare(a.Vertex, b.Vertex), cmp.Compare(a.Subtask, b.Subtask), cmp.Compare(a.Task, b.Task))
	})
}

func readSource(cp *store.Checkpoint, t taskInfo) (SourceRow, error) {
	row := SourceRow{Vertex: t.vertex, Task: t.id, Subtask: t.subtask, KeyGroups: t.keyGroups}
	if cp.HasTask(t.id) {
		pos, err := cp.ReadFile(t.id, positionBlob)
		switch {
		case err == nil:
			row.Position = append([]byte{}, pos...)
		case !errors.Is(err, store.ErrNotFound):
			return row, err
		}
		_, err = cp.ReadFile(t.id, finishedBlob)
		switch {
		case err == nil:
			row.Finished = true
		case !errors.Is(err, store.ErrNotFound):
			return row, err
		}
	}
	return row, nil
}

// scanPebble materializes t's Pebble checkpoint in dir, scans its key
// groups and removes it. Values expired at now (unix ns) are skipped.
func scanPebble(cp *store.Checkpoint, t taskInfo, dir string, now int64, emit func(*StateRow) error) error {
	if err := cp.MaterializePebble(t.id+pebbleSuffix, dir); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := state.Open(state.Options{Dir: dir, WriteBackBytes: -1, CacheBytes: 8 << 20, Now: func() int64 { return now }})
	if err != nil {
		return err
	}
	defer db.Close()
	err = db.Scan(t.keyGroups, func(k state.Key, v []byte, exp int64) error {
		return emit(&StateRow{KeyGroup: k.KeyGroup, Space: k.Space, Namespace: k.Namespace, Type: k.Type,
			ID: k.ID, Name: k.Name, Value: v, ExpiresAt: exp})
	})
	if err != nil {
		return fmt.Errorf("savepoint: state of %s: %w", t.id, err)
	}
	return db.Close()
}

// readWork decodes t's queued work (operator blob, feedback log) and
// appends it to msgs in restore order: queued (remote invocations, then
// the local FIFO), feedback log (key group by key group), delayed.
func readWork(cp *store.Checkpoint, t taskInfo, maxP int, msgs []MessageRow) ([]MessageRow, error) {
	if !cp.HasTask(t.id) {
		return msgs, nil
	}
	blob, err := cp.ReadFile(t.id, operatorBlob)
	if errors.Is(err, store.ErrNotFound) {
		blob = nil
	} else if err != nil {
		return nil, err
	}
	var delayed []MessageRow
	if blob != nil {
		var queued []*envelope.Envelope
		queued, delayed, err = decodeOperatorBlob(blob)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", t.id, operatorBlob, err)
		}
		for _, e := range queued {
			msgs = append(msgs, MessageRow{KeyGroup: dataflow.KeyGroupFor(e.Target.ID, maxP), Kind: KindQueued, Envelope: *e})
		}
	}
	fb, err := cp.ReadFile(t.id, feedbackBlob)
	switch {
	case err == nil:
		lg, err := feedback.ReadLog(bytes.NewReader(fb))
		if err != nil {
			return nil, fmt.Errorf("%w: %s/%s: %v", ErrCorrupt, t.id, feedbackBlob, err)
		}
		if lg.MaxParallelism() != maxP {
			lg.Close()
			return nil, fmt.Errorf("%w: %s/%s: max parallelism %d, checkpoint %d", ErrCorrupt, t.id, feedbackBlob, lg.MaxParallelism(), maxP)
		}
		err = lg.Replay(dataflow.KeyGroupRange{Start: 0, End: dataflow.KeyGroup(maxP)}, func(e *envelope.Envelope) error {
			msgs = append(msgs, MessageRow{KeyGroup: dataflow.KeyGroupFor(e.Target.ID, maxP), Kind: KindFeedback, Envelope: *e})
			return nil
		})
		lg.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: %s/%s: %v", ErrCorrupt, t.id, feedbackBlob, err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	for i := range delayed {
		delayed[i].KeyGroup = dataflow.KeyGroupFor(delayed[i].Owner.ID, maxP)
	}
	return append(msgs, delayed...), nil
}

// The operator blob (statefun/dispatch/snapshot.go, encodeOperatorState and
// restoreWork), all lengths uvarint:
//
//	version u8 (1)
//	n, n × (len, envelope)       remote invocations
//	n, n × (len, envelope)       local FIFO
//	n, n × (owner ns, owner type, owner id, token as (len, bytes);
//	        fireAt varint; (len, envelope))   delayed messages, firing order
//
// NB: the format is owned by package dispatch; the engine round trip in
// this package's tests (ToCheckpoint, then restore in app.Run) guards the
// copy here.

func decodeOperatorBlob(blob []byte) (queued []*envelope.Envelope, delayed []MessageRow, err error) {
	st, err := opstate.Decode(blob)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: operator snapshot: %v", ErrCorrupt, err)
	}
	queued = append(st.Remote, st.Queued...)
	for _, d := range st.Delayed {
		delayed = append(delayed, MessageRow{Kind: KindDelayed, Envelope: *d.Envelope, Owner: d.Owner, Token: d.Token, FireAt: d.FireAt})
	}
	return queued, delayed, nil
}

func encodeOperatorBlob(queued []*envelope.Envelope, delayed []MessageRow) []byte {
	st := opstate.State{Queued: queued}
	for i := range delayed {
		d := &delayed[i]
		st.Delayed = append(st.Delayed, opstate.Delayed{Owner: d.Owner, Token: d.Token, FireAt: d.FireAt, Envelope: &d.Envelope})
	}
	return opstate.Encode(&st)
}
