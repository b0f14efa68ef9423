package dataflow

import (
	"errors"
	"fmt"
)

// Record is the unit of data on an edge. Value is owned by the receiver after
// Emit: a producer must not mutate a value it has emitted.
type Record struct {
	// KeyGroup routes the record on keyed edges. The producing operator sets
	// it (it knows the key); other partitionings ignore it.
	KeyGroup KeyGroup
	Value    any
}

// CheckpointID numbers checkpoints of a job, starting at 1 and increasing.
type CheckpointID uint64

// Barrier is the Chandy-Lamport marker of checkpoint ID. It travels in-band.
type Barrier struct {
	ID        CheckpointID
	Timestamp int64 // unix milliseconds at trigger time
	Savepoint bool
}

// EventKind tells which control event a channel buffer carries.
type EventKind uint8

const (
	// EventNone: the buffer carries records only.
	EventNone EventKind = iota
	// EventBarrier: a checkpoint barrier follows the buffer's records.
	EventBarrier
	// EventEndOfInput: the producer subtask will send nothing more on this
	// channel.
	EventEndOfInput
)

func (k EventKind) String() string {
	switch k {
	case EventNone:
		return "none"
	case EventBarrier:
		return "barrier"
	case EventEndOfInput:
		return "end-of-input"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is an in-band control event.
type Event struct {
	Kind    EventKind
	Barrier Barrier // valid when Kind == EventBarrier
}

// ErrEndOfInput is returned by Source.Poll when the source is exhausted.
var ErrEndOfInput = errors.New("dataflow: end of input")

// ErrCheckpointAborted marks a snapshot that cannot be taken because its
// checkpoint is void (aborted, or a co-located operator has finished): the
// runtime declines the checkpoint and the task goes on.
var ErrCheckpointAborted = errors.New("dataflow: checkpoint aborted")

// ErrClosed is returned by Output.Emit and other blocking calls when the job
// is being torn down; operators should return it unchanged.
var ErrClosed = errors.New("dataflow: job closed")
