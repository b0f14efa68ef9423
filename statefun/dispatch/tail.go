package dispatch

import (
	"errors"
	"fmt"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/feedback"
)

// Tail is the feedback tail of one subtask: it receives the messages that
// function subtasks shuffled to this subtask and hands them to the
// co-located head's feedback queue, which never blocks.
type Tail struct {
	broker  *Broker
	subtask int
	q       *feedback.Queue
}

// NewTail returns the feedback tail of subtask i.
func NewTail(b *Broker, i int) *Tail { return &Tail{broker: b, subtask: i} }

// Open implements dataflow.Operator.
func (t *Tail) Open(dataflow.Context) error { return nil }

// ProcessRecord implements dataflow.Operator.
func (t *Tail) ProcessRecord(_ int, r dataflow.Record) error {
	if t.q == nil {
		// Heads open before any subtask runs, so the queue exists now.
		t.q = t.broker.get(t.subtask)
		if t.q == nil {
			return fmt.Errorf("dispatch: no feedback queue for subtask %d", t.subtask)
		}
	}
	return t.q.Add(r.Value.(*envelope.Envelope))
}

// SnapshotState implements dataflow.Snapshotter: the tail has aligned the
// barrier from every function subtask, so every record those subtasks sent
// before their snapshot is already in the queue; the marker follows them
// (the ABS back-edge protocol).
func (t *Tail) SnapshotState(s dataflow.Snapshot) error {
	if t.q == nil {
		t.q = t.broker.get(t.subtask)
	}
	if err := t.q.AddMarker(uint64(s.Barrier().ID)); err != nil {
		if errors.Is(err, feedback.ErrClosed) {
			// The head finished (a bounded job ending): this checkpoint
			// cannot complete, which is no failure.
			return fmt.Errorf("%w: the feedback head of subtask %d has finished", dataflow.ErrCheckpointAborted, t.subtask)
		}
		return err
	}
	return nil
}

// Close implements dataflow.Operator.
func (t *Tail) Close() error { return nil }
