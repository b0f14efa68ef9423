package savepoint

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/statefun-go/statefun/checkpoint/store"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/runtime"
	"github.com/statefun-go/statefun/dataflow/state"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/feedback"
)

// ToCheckpoint builds a regular checkpoint of st from the savepoint, laid
// out for a job of the given parallelism (and the savepoint's max
// parallelism), and returns it validated (st.Load). An id of 0 takes the
// next id after every checkpoint st holds.
//
// Per function subtask i ("functions-<i>", key groups
// dataflow.RangeForSubtask(i, parallelism, maxP)) it stores:
//   - "functions-<i>.state": a Pebble checkpoint with the subtask's state
//     rows, written through dataflow/state;
//   - "operator": the queued messages, in order, in the local FIFO section,
//     and the delayed messages (in the format restoreWork reads);
//   - "feedback": a feedback log of the feedback messages.
//
// Ingress and egress subtasks keep their task ids and get back their
// "position" and "finished" blobs. The metadata has a "task/<id>" property
// for every function, feedback, ingress and egress subtask, as the app
// writes them, so app.newRestore restores the result like any checkpoint.
func (sp *Savepoint) ToCheckpoint(st *store.Store, id uint64, parallelism int) (cp *store.Checkpoint, err error) {
	maxP := sp.MaxParallelism()
	if parallelism < 1 || parallelism > maxP {
		return nil, fmt.Errorf("savepoint: parallelism %d is not in [1, %d] (the max parallelism)", parallelism, maxP)
	}
	if id == 0 {
		infos, err := st.List()
		if err != nil {
			return nil, err
		}
		id = 1
		for _, in := range infos {
			id = max(id, in.ID+1)
		}
	}
	work, err := os.MkdirTemp(filepath.Dir(st.Dir()), ".savepoint-"+strconv.FormatUint(id, 10)+"-")
	if err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	defer os.RemoveAll(work)
	pend, err := st.Begin(id)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = pend.Abort()
		}
	}()

	props := map[string]string{"savepoint": sp.Dir}
	ranges := make([]dataflow.KeyGroupRange, parallelism)
	for i := range ranges {
		ranges[i] = dataflow.RangeForSubtask(i, parallelism, maxP)
		for _, v := range []string{functionsVertex, feedbackVertex} {
			props[taskPropPrefix+runtime.TaskID(v, i)] = fmt.Sprintf("%d:%d:%d:%s", i, ranges[i].Start, ranges[i].End, v)
		}
	}

	// Messages, per subtask.
	queued := make([][]*envelope.Envelope, parallelism)
	delayed := make([][]MessageRow, parallelism)
	logs := make([]*feedback.Logger, parallelism)
	for i := range logs {
		logs[i] = feedback.NewLogger(maxP, nil, feedback.LoggerOptions{})
	}
	defer func() {
		for _, l := range logs {
			_ = l.Close()
		}
	}()
	err = sp.ScanMessages(func(r *MessageRow) error {
		by := r.Envelope.Target.ID
		if r.Kind == KindDelayed {
			by = r.Owner.ID
		}
		if kg := dataflow.KeyGroupFor(by, maxP); kg != r.KeyGroup {
			return corruptf("%s: a %s message for %s is in key group %d, its id's key group is %d", MessagesFile, r.Kind, r.Envelope.Target, r.KeyGroup, kg)
		}
		i := dataflow.SubtaskFor(r.KeyGroup, maxP, parallelism)
		switch r.Kind {
		case KindQueued:
			queued[i] = append(queued[i], &r.Envelope)
		case KindFeedback:
			return logs[i].Append(&r.Envelope)
		case KindDelayed:
			delayed[i] = append(delayed[i], *r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	// State: rows come in key-group order, so subtask by subtask.
	cur := -1
	var db *state.Store
	finish := func() error {
		if db == nil {
			return nil
		}
		d := db
		db = nil
		ck := filepath.Join(work, "checkpoint-"+strconv.Itoa(cur))
		err := d.Checkpoint(ck)
		if cerr := d.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		task := runtime.TaskID(functionsVertex, cur)
		if err := pend.AddPebbleCheckpoint(task+pebbleSuffix, ck); err != nil {
			return err
		}
		_ = os.RemoveAll(ck)
		_ = os.RemoveAll(filepath.Join(work, "db-"+strconv.Itoa(cur)))
		return nil
	}
	advance := func(to int) error {
		for cur < to {
			if err := finish(); err != nil {
				return err
			}
			cur++
			d, err := state.Open(state.Options{Dir: filepath.Join(work, "db-"+strconv.Itoa(cur)), CacheBytes: 8 << 20, WriteBackBytes: 32 << 20})
			if err != nil {
				return err
			}
			db = d
		}
		return nil
	}
	defer func() {
		if db != nil {
			_ = db.Close()
		}
	}()
	err = sp.ScanState(func(r *StateRow) error {
		if r.Space == state.SpaceValue {
			if kg := dataflow.KeyGroupFor(r.ID, maxP); kg != r.KeyGroup {
				return corruptf("%s: %v: its id's key group is %d", StateFile, r.Key(), kg)
			}
		}
		if err := advance(dataflow.SubtaskFor(r.KeyGroup, maxP, parallelism)); err != nil {
			return err
		}
		return db.Set(r.Key(), r.Value, r.ExpiresAt)
	})
	if err == nil {
		err = advance(parallelism - 1)
	}
	if err == nil {
		err = finish()
	}
	if err != nil {
		return nil, err
	}

	for i := range parallelism {
		task := runtime.TaskID(functionsVertex, i)
		if err := pend.AddFile(task, operatorBlob, encodeOperatorBlob(queued[i], delayed[i])); err != nil {
			return nil, err
		}
		lg, err := logs[i].Seal()
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		_, err = lg.WriteTo(&buf)
		lg.Close()
		if err != nil {
			return nil, err
		}
		if err := pend.AddFile(task, feedbackBlob, buf.Bytes()); err != nil {
			return nil, err
		}
	}

	for _, s := range sp.sources {
		props[taskPropPrefix+s.Task] = fmt.Sprintf("%d:%d:%d:%s", s.Subtask, s.KeyGroups.Start, s.KeyGroups.End, s.Vertex)
		if s.Position != nil {
			if err := pend.AddFile(s.Task, positionBlob, s.Position); err != nil {
				return nil, err
			}
		}
		if s.Finished {
			if err := pend.AddFile(s.Task, finishedBlob, []byte{1}); err != nil {
				return nil, err
			}
		}
	}
	// The savepoint's time (0 for an import: now), so that Write of the
	// result drops no value the savepoint holds.
	meta := store.Metadata{ID: id, Parallelism: parallelism, MaxParallelism: maxP, Properties: props, Timestamp: sp.Manifest.Timestamp}
	if err := pend.Commit(meta); err != nil {
		return nil, err
	}
	return st.Load(id)
}

// Restore opens the canonical savepoint in dir and converts it into the
// next checkpoint of st for a job of the given parallelism: what
// `statefun run --from-savepoint DIR` does when IsSavepointDir(DIR).
func Restore(dir string, st *store.Store, parallelism int) (*store.Checkpoint, error) {
	sp, err := Open(dir)
	if err != nil {
		return nil, err
	}
	return sp.ToCheckpoint(st, 0, parallelism)
}
