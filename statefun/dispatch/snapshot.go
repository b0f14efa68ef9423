package dispatch

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/state"
	"github.com/statefun-go/statefun/statefun/dispatch/opstate"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/feedback"
	"github.com/statefun-go/statefun/statefun/protocol"
)

// Snapshot layout of a function subtask (one part per subtask):
//
//	pebble      the state store (a Pebble checkpoint: hard links)
//	operator    queued work: remote invocations (in flight, then queued),
//	            the local FIFO, and delayed messages with their tokens
//	feedback    the ABS feedback log: records drained from the feedback
//	            queue between this subtask's snapshot and the tail's marker,
//	            per key group (written when the marker arrives; the ack is
//	            deferred until then)
//
// On restore every record is routed by key group, so a snapshot restores
// into any parallelism with the same max parallelism: queued work is
// replayed first (remote invocations, FIFO, feedback log, in that order,
// which keeps per-address order), delayed messages go back to the delay
// buffer.
const (
	snapOperator = "operator" // opstate encoding
	snapFeedback = "feedback"
)

// pendingLog is the feedback log of the checkpoint being taken.
type pendingLog struct {
	id     dataflow.CheckpointID
	logger *feedback.Logger
	snap   dataflow.Snapshot
	done   func(error)
}

// SnapshotState implements dataflow.Snapshotter.
//
// The synchronous part is short: flush the write-back cache into Pebble and
// encode the queued work. The Pebble checkpoint (hard links, WAL synced;
// the store writes nothing to Pebble meanwhile) and storing the files
// (checksums, sharing SSTables with earlier checkpoints) run on a goroutine
// owned by the operator, and the feedback log completes when the tail's
// marker comes around; the checkpoint is acked when both are done.
func (o *Operator) SnapshotState(s dataflow.Snapshot) error {
	start := time.Now()
	tmp := s.TempDir()
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	db := filepath.Join(tmp, "pebble")
	wait, err := o.store.CheckpointAsync(db)
	if err != nil {
		return fmt.Errorf("state checkpoint: %w", err)
	}
	blob, err := o.encodeOperatorState()
	if err != nil {
		return err
	}
	if o.fbLog != nil {
		// A new barrier before the previous marker: cannot happen with
		// aligned checkpoints and one in flight.
		o.fbLog.logger.Close()
		o.fbLog.done(fmt.Errorf("checkpoint %d superseded by %d before its feedback marker", o.fbLog.id, s.Barrier().ID))
	}
	ack := newJoin(2, s.Defer())
	o.fbLog = &pendingLog{
		id:     s.Barrier().ID,
		logger: feedback.NewLogger(o.maxP, nil, feedback.LoggerOptions{MemoryBytes: o.cfg.FeedbackMemoryBytes, SpillDir: filepath.Join(o.ctx.StateDir(), "feedback-log")}),
		snap:   s,
		done:   ack.done,
	}
	o.LastSnapshotPause = time.Since(start)
	o.ctx.Logger().Debug("snapshot taken", "checkpoint", s.Barrier().ID, "pause", o.LastSnapshotPause)
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		err := wait()
		if err == nil {
			err = s.AddPebble(db)
		}
		if err == nil {
			err = s.WriteFile(snapOperator, blob)
		}
		ack.done(err)
	}()
	return nil
}

// join calls done once after n completions, with the first error.
type join struct {
	mu   sync.Mutex
	n    int
	err  error
	fire func(error)
}

func newJoin(n int, fire func(error)) *join { return &join{n: n, fire: fire} }

func (j *join) done(err error) {
	j.mu.Lock()
	if err != nil && j.err == nil {
		j.err = err
	}
	j.n--
	last := j.n == 0
	err = j.err
	j.mu.Unlock()
	if last {
		j.fire(err)
	}
}

// onMarker seals the feedback log of checkpoint id when the tail's marker
// comes around.
func (o *Operator) onMarker(id uint64) {
	pl := o.fbLog
	if pl == nil || uint64(pl.id) != id {
		return
	}
	o.fbLog = nil
	err := func() error {
		lg, err := pl.logger.Seal()
		if err != nil {
			return err
		}
		defer lg.Close()
		var buf bytes.Buffer
		if _, err := lg.WriteTo(&buf); err != nil {
			return err
		}
		return pl.snap.WriteFile(snapFeedback, buf.Bytes())
	}()
	pl.logger.Close()
	pl.done(err)
}

func (o *Operator) encodeOperatorState() ([]byte, error) {
	var st opstate.State
	for _, rf := range o.remotes {
		rf.m.Snapshot(func(id string, invs []protocol.Invocation) {
			for _, inv := range invs {
				st.Remote = append(st.Remote, invocationEnvelope(rf.typ, id, inv))
			}
		})
	}
	for i := 0; i < o.fifo.len(); i++ {
		st.Queued = append(st.Queued, o.fifo.at(i))
	}
	err := o.delays.Snapshot(func(owner envelope.Address, token string, fireAt int64, e *envelope.Envelope) error {
		st.Delayed = append(st.Delayed, opstate.Delayed{Owner: owner, Token: token, FireAt: fireAt, Envelope: e})
		return nil
	})
	return opstate.Encode(&st), err
}

func invocationEnvelope(ft FunctionType, id string, inv protocol.Invocation) *envelope.Envelope {
	e := &envelope.Envelope{Target: envelope.Address{Namespace: ft.Namespace, Type: ft.Name, ID: id}}
	if inv.Caller != nil {
		e.HasCaller = true
		e.Caller = envelope.Address{Namespace: inv.Caller.Namespace, Type: inv.Caller.Type, ID: inv.Caller.ID}
	}
	if inv.Argument != nil {
		e.Typename, e.Value = inv.Argument.Typename, inv.Argument.Value
	}
	return e
}

// restore loads this subtask's key groups from the restored snapshot:
// state from every overlapping part's store, then queued work.
func (o *Operator) restore(r dataflow.Restore, storeDir string) error {
	if r.MaxParallelism() != o.maxP {
		return fmt.Errorf("restore: the snapshot has max parallelism %d, the job %d: key groups cannot change", r.MaxParallelism(), o.maxP)
	}
	var parts []dataflow.RestorePart
	for _, p := range r.Parts("functions") {
		if overlap(p.KeyGroups(), o.owned) {
			parts = append(parts, p)
		}
	}
	// State. Fast path: one part with exactly our key groups becomes our
	// store as is (hard links).
	if len(parts) == 1 && parts[0].KeyGroups() == o.owned && parts[0].HasPebble() {
		if err := parts[0].MaterializePebble(storeDir); err != nil {
			return fmt.Errorf("restore state of %s: %w", parts[0].TaskID(), err)
		}
		if err := o.openStore(storeDir); err != nil {
			return err
		}
	} else {
		if err := o.openStore(storeDir); err != nil {
			return err
		}
		for _, p := range parts {
			if err := o.copyState(p); err != nil {
				return fmt.Errorf("restore state of %s: %w", p.TaskID(), err)
			}
		}
	}
	// Queued work, in the order that keeps per-address FIFO.
	for _, p := range parts {
		if err := o.restoreWork(p); err != nil {
			return fmt.Errorf("restore %s: %w", p.TaskID(), err)
		}
	}
	o.scheduleNext()
	return nil
}

func overlap(a, b dataflow.KeyGroupRange) bool { return a.Start < b.End && b.Start < a.End }

func (o *Operator) copyState(p dataflow.RestorePart) error {
	if !p.HasPebble() {
		return nil
	}
	tmp := filepath.Join(o.ctx.StateDir(), "restore-"+p.TaskID())
	_ = os.RemoveAll(tmp)
	if err := p.MaterializePebble(tmp); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src, err := state.Open(state.Options{Dir: tmp, WriteBackBytes: -1})
	if err != nil {
		return err
	}
	defer src.Close()
	r := dataflow.KeyGroupRange{Start: max(p.KeyGroups().Start, o.owned.Start), End: min(p.KeyGroups().End, o.owned.End)}
	return src.Scan(r, func(k state.Key, v []byte, expiresAt int64) error {
		return o.store.Set(k, v, expiresAt)
	})
}

func (o *Operator) mine(id string) bool { return o.owned.Contains(dataflow.KeyGroupFor(id, o.maxP)) }

func (o *Operator) restoreWork(p dataflow.RestorePart) error {
	blob, err := p.ReadFile(snapOperator)
	if err != nil {
		return err
	}
	st, err := opstate.Decode(blob)
	if err != nil {
		return err
	}
	push := func(e *envelope.Envelope) {
		if o.mine(e.Target.ID) {
			o.fifo.push(e)
			o.created++
		}
	}
	for _, e := range st.Remote {
		push(e)
	}
	for _, e := range st.Queued {
		push(e)
	}
	// The feedback log follows the FIFO: its records arrived later.
	if fb, err := p.ReadFile(snapFeedback); err == nil {
		lg, err := feedback.ReadLog(bytes.NewReader(fb))
		if err != nil {
			return err
		}
		err = lg.Replay(o.owned, func(e *envelope.Envelope) error { push(e); return nil })
		lg.Close()
		if err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, d := range st.Delayed {
		if !o.mine(d.Owner.ID) {
			continue
		}
		if err := o.delays.Restore(d.Owner, d.Token, d.FireAt, d.Envelope); err != nil {
			return err
		}
		o.created++
	}
	return nil
}
