package dataflow

import (
	"log/slog"
	"time"
)

// Output sends records downstream. Port is the index of the out-edge in the
// order the edges were connected from the vertex (Graph.Connect). Emit may
// block while the receiver has no credit; it returns ErrClosed when the job is
// torn down.
type Output interface {
	Emit(port int, r Record) error
}

// Context is what the runtime gives an operator. All methods except Post,
// Wake and Fail must be called on the subtask goroutine.
type Context interface {
	// TaskName is "vertex (i/n)", for errors and logs.
	TaskName() string
	SubtaskIndex() int
	Parallelism() int
	MaxParallelism() int
	// KeyGroups is the contiguous key-group range this subtask owns.
	KeyGroups() KeyGroupRange
	Output() Output
	Clock() Clock
	// ScheduleTimer asks for OnTimer to be called at or after at. Several
	// timers may be pending; each fires once.
	ScheduleTimer(at time.Time)
	// Post runs fn on the subtask goroutine. Safe from any goroutine; never
	// blocks. A nil fn only wakes the subtask.
	Post(fn func())
	// Finish tells the runtime that a Finisher operator whose inputs have
	// ended may now end its outputs.
	Finish()
	// Fail fails the job with err. Safe from any goroutine.
	Fail(err error)
	Logger() *slog.Logger
	// StateDir is a directory private to this subtask for the current run.
	StateDir() string
	// TaskID names this subtask stably across runs and rescaling:
	// "<vertex>-<index>" (sanitized). Snapshots are stored under it.
	TaskID() string
	// Restore is the snapshot this job was restored from, or nil for a
	// fresh start. Operators read their state from it in Open.
	Restore() Restore
}

// Snapshot is what an operator writes its part of checkpoint Barrier().ID
// to. Methods are safe from any goroutine until the snapshot is acked.
type Snapshot interface {
	Barrier() Barrier
	// WriteFile stores a blob of this task.
	WriteFile(name string, data []byte) error
	// AddPebble stores a Pebble checkpoint directory (db.Checkpoint output)
	// of this task; the directory is consumed.
	AddPebble(dir string) error
	// TempDir is a scratch directory for building the snapshot.
	TempDir() string
	// Defer postpones the acknowledgement: the runtime acks after
	// SnapshotState returns unless Defer was called; then the operator calls
	// the returned function exactly once (nil error: ack; else decline).
	Defer() func(err error)
}

// Restore gives access to the restored snapshot.
type Restore interface {
	// ID of the restored checkpoint or savepoint.
	ID() CheckpointID
	// MaxParallelism of the job that wrote it (key groups never change).
	MaxParallelism() int
	// Parts are the snapshots of the subtasks of a vertex, whatever the
	// parallelism they ran with.
	Parts(vertex string) []RestorePart
}

// RestorePart is the snapshot of one subtask.
type RestorePart interface {
	TaskID() string
	// KeyGroups the subtask owned when it wrote the snapshot.
	KeyGroups() KeyGroupRange
	// ReadFile returns a blob written with Snapshot.WriteFile, or an error
	// wrapping fs.ErrNotExist.
	ReadFile(name string) ([]byte, error)
	// HasPebble reports whether a Pebble checkpoint was stored.
	HasPebble() bool
	// MaterializePebble recreates the stored Pebble checkpoint at dst
	// (which must not exist).
	MaterializePebble(dst string) error
}

// Operator processes records of one subtask.
type Operator interface {
	Open(ctx Context) error
	// ProcessRecord handles r from input port `input` (the index of the
	// in-edge at this vertex, in connection order).
	ProcessRecord(input int, r Record) error
	// Close releases resources. It is called once, also after a failure.
	Close() error
}

// TimerHandler is implemented by operators that schedule timers.
type TimerHandler interface {
	OnTimer(now time.Time) error
}

// InputEnder is implemented by operators that want to know when all
// channels of one input port have ended.
type InputEnder interface {
	EndInput(input int) error
}

// Finisher is implemented by operators whose output does not end with their
// inputs (the function dispatcher: feedback and timers may still produce
// records). After all inputs ended the runtime calls Drain; if it returns
// false the subtask keeps running its mailbox and timers until the operator
// calls Context.Finish.
type Finisher interface {
	Drain() (done bool, err error)
}

// Flusher is implemented by operators that buffer output and want a hook at
// the end of every step, before the runtime flushes channels.
type Flusher interface {
	EndOfStep() error
}

// Snapshotter is implemented by operators with state: called when the
// barrier has been aligned on all inputs, before it is forwarded.
type Snapshotter interface {
	SnapshotState(s Snapshot) error
}

// CheckpointListener is implemented by operators that act when a
// checkpoint is complete (durable): two-phase-commit sinks commit here.
type CheckpointListener interface {
	NotifyCheckpointComplete(id CheckpointID) error
}

// Pauser is implemented by operators that apply backpressure from inside
// (the async valve): while Paused is true the runtime takes no new input
// records but still runs mailbox actions and timers.
type Pauser interface {
	Paused() bool
}

// Source produces the records of a source subtask.
type Source interface {
	Open(ctx Context) error
	// Poll emits the next batch of records through ctx.Output(). It must not
	// block for long: when nothing is available it returns a wait hint and
	// the runtime calls it again after at most that long (or earlier, after
	// Context.Post). It returns ErrEndOfInput once exhausted.
	Poll() (wait time.Duration, err error)
	Close() error
}

// SourceSnapshotter is implemented by sources with a checkpointable
// position: called when a barrier is injected, before it is emitted.
type SourceSnapshotter interface {
	SnapshotPosition(s Snapshot) error
}
