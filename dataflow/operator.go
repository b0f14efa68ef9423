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

// Snapshotter is implemented by operators with state: called when barrier b
// has been aligned on all inputs, before the barrier is forwarded.
type Snapshotter interface {
	SnapshotState(b Barrier) error
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

// SourceSnapshotter is implemented by sources with a checkpointable position.
type SourceSnapshotter interface {
	SnapshotPosition(b Barrier) error
}
