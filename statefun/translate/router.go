package translate

import (
	"fmt"
	"time"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// route is one routing entry of an ingress: messages of this route become
// TypedValue{valueType, bytes} sent to (target, record key) for every target.
type route struct {
	valueType string
	targets   []envelope.Address // ID unset
}

// routerSource chains an ingress connector with its router (as upstream
// chains source and router): one subtask reads records and emits one
// envelope per target, keyed by the record key.
type routerSource struct {
	id     string
	src    connectors.Source
	routes map[string]*route
	ctx    dataflow.Context
	maxP   int
	buf    []connectors.Record
	// Records counts raw records read (for metrics).
	Records int64
	// finished: the restored snapshot says this source had ended.
	finished bool
}

const readBatch = 512

func (r *routerSource) Open(ctx dataflow.Context) error {
	r.ctx, r.maxP = ctx, ctx.MaxParallelism()
	r.buf = make([]connectors.Record, 0, readBatch)
	finished, err := restorePosition(ctx, "ingress "+r.id, r.src)
	if err != nil {
		return fmt.Errorf("ingress %s: %w", r.id, err)
	}
	r.finished = finished
	if err := r.src.Open(ctx); err != nil {
		return fmt.Errorf("ingress %s: %w", r.id, err)
	}
	return nil
}

func (r *routerSource) Poll() (time.Duration, error) {
	if r.finished {
		return 0, dataflow.ErrEndOfInput
	}
	recs, wait, err := r.src.Read(r.buf[:0])
	out := r.ctx.Output()
	for i := range recs {
		rec := &recs[i]
		rt := r.routes[rec.Route]
		if rt == nil {
			return 0, fmt.Errorf("ingress %s: record %s comes from %q, which has no routing entry", r.id, rec.Origin, rec.Route)
		}
		if !rec.HasKey {
			return 0, fmt.Errorf("ingress %s: record %s has no key: every record needs a UTF-8 key, which is the id of the target address", r.id, rec.Origin)
		}
		kg := dataflow.KeyGroupFor(rec.Key, r.maxP)
		for _, t := range rt.targets {
			e := &envelope.Envelope{
				Target:   envelope.Address{Namespace: t.Namespace, Type: t.Type, ID: rec.Key},
				Typename: rt.valueType,
				Value:    rec.Value,
			}
			if err := out.Emit(0, dataflow.Record{KeyGroup: kg, Value: e}); err != nil {
				return 0, err
			}
		}
		recs[i] = connectors.Record{}
	}
	r.Records += int64(len(recs))
	if err != nil && err != dataflow.ErrEndOfInput {
		return 0, fmt.Errorf("ingress %s: %w", r.id, err)
	}
	return wait, err
}

func (r *routerSource) Close() error { return r.src.Close() }

// NotifyCheckpointComplete implements dataflow.CheckpointListener: it
// forwards the completion of a checkpoint to the ingress connector (Kafka:
// committing the checkpointed offsets to the consumer group).
func (r *routerSource) NotifyCheckpointComplete(id dataflow.CheckpointID) error {
	if l, ok := r.src.(dataflow.CheckpointListener); ok {
		if err := l.NotifyCheckpointComplete(id); err != nil {
			return fmt.Errorf("ingress %s: %w", r.id, err)
		}
	}
	return nil
}

// SnapshotPosition implements dataflow.SourceSnapshotter.
func (r *routerSource) SnapshotPosition(s dataflow.Snapshot) error {
	return snapshotPosition(s, r.src)
}

const (
	positionFile = "position"
	// FinishedFile marks, in a snapshot, a source task that had ended
	// before the checkpoint (written by the checkpoint driver).
	FinishedFile = "finished"
)

// positionerAt is implemented by connectors that must know which
// checkpoint a position belongs to (a two-phase-commit sink commits the
// transaction of checkpoint n only when n completes).
type positionerAt interface {
	PositionAt(id dataflow.CheckpointID) ([]byte, error)
}

func snapshotPosition(s dataflow.Snapshot, c any) error {
	cp, ok := c.(connectors.Checkpointed)
	if !ok {
		return nil
	}
	var pos []byte
	var err error
	if pa, ok := c.(positionerAt); ok {
		pos, err = pa.PositionAt(s.Barrier().ID)
	} else {
		pos, err = cp.Position()
	}
	if err != nil {
		return err
	}
	return s.WriteFile(positionFile, pos)
}

// restorePosition hands a connector its position from the restored
// snapshot. A connector whose vertex is absent from the snapshot starts
// fresh; one whose subtask is missing (the vertex was rescaled) cannot be
// restored.
//
// It reports whether the restored subtask had finished (then it must end at
// once instead of reading again).
func restorePosition(ctx dataflow.Context, vertex string, c any) (finished bool, err error) {
	r := ctx.Restore()
	if r == nil {
		return false, nil
	}
	parts := r.Parts(vertex)
	if len(parts) == 0 {
		ctx.Logger().Info("not in the restored snapshot: starting fresh", "vertex", vertex)
		return false, nil
	}
	isFinished := func(p dataflow.RestorePart) bool {
		_, err := p.ReadFile(FinishedFile)
		return err == nil
	}
	allFinished := true
	for _, p := range parts {
		allFinished = allFinished && isFinished(p)
	}
	if allFinished {
		return true, nil
	}
	cp, ok := c.(connectors.Checkpointed)
	for _, p := range parts {
		if p.TaskID() != ctx.TaskID() {
			continue
		}
		if isFinished(p) {
			return true, nil
		}
		if !ok {
			return false, nil
		}
		pos, err := p.ReadFile(positionFile)
		if err != nil {
			return false, fmt.Errorf("restore position: %w", err)
		}
		return false, cp.RestorePosition(pos)
	}
	if !ok {
		return false, nil
	}
	return false, fmt.Errorf("cannot restore %s: the snapshot has %d subtask(s) of it, this job %d, and its position cannot be split", vertex, len(parts), ctx.Parallelism())
}

// sinkOperator runs an egress connector.
type sinkOperator struct {
	id   string
	sink connectors.Sink
}

func (s *sinkOperator) Open(ctx dataflow.Context) error {
	if _, err := restorePosition(ctx, "egress "+s.id, s.sink); err != nil {
		return fmt.Errorf("egress %s: %w", s.id, err)
	}
	if err := s.sink.Open(ctx); err != nil {
		return fmt.Errorf("egress %s: %w", s.id, err)
	}
	return nil
}

func (s *sinkOperator) ProcessRecord(_ int, r dataflow.Record) error {
	if err := s.sink.Write(r.Value.(*envelope.Envelope)); err != nil {
		return fmt.Errorf("egress %s: %w", s.id, err)
	}
	return nil
}

func (s *sinkOperator) EndOfStep() error {
	if err := s.sink.Flush(); err != nil {
		return fmt.Errorf("egress %s: %w", s.id, err)
	}
	return nil
}

func (s *sinkOperator) Close() error { return s.sink.Close() }

// NotifyCheckpointComplete implements dataflow.CheckpointListener:
// two-phase-commit sinks commit the output of checkpoint id.
func (s *sinkOperator) NotifyCheckpointComplete(id dataflow.CheckpointID) error {
	if l, ok := s.sink.(dataflow.CheckpointListener); ok {
		if err := l.NotifyCheckpointComplete(id); err != nil {
			return fmt.Errorf("egress %s: %w", s.id, err)
		}
	}
	return nil
}

// Paused implements dataflow.Pauser for sinks that apply backpressure (the
// exactly-once Kafka sink while it holds records behind a pre-committed
// transaction).
func (s *sinkOperator) Paused() bool {
	p, ok := s.sink.(dataflow.Pauser)
	return ok && p.Paused()
}

// SnapshotState implements dataflow.Snapshotter.
func (s *sinkOperator) SnapshotState(snap dataflow.Snapshot) error {
	return snapshotPosition(snap, s.sink)
}
