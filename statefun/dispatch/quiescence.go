package dispatch

import (
	"sync"
	"sync/atomic"
)

// Quiescence detects that a bounded job has drained: every function subtask
// has seen the end of its router input, and no message is still queued, in
// flight (also to a remote function), or delayed.
//
// Invariant: live is the number of published, unprocessed messages that
// reached a function subtask (from a router or a function). A subtask publishes +1 before a message can reach another
// subtask, and publishes its decrements only after processing (see the
// package doc), so live never reaches zero while work remains.
type Quiescence struct {
	live     atomic.Int64
	ended    atomic.Int32
	subtasks int32

	mu      sync.Mutex
	fired   bool
	onQuiet []func()
}

// NewQuiescence returns a detector for n function subtasks.
func NewQuiescence(n int) *Quiescence { return &Quiescence{subtasks: int32(n)} }

// OnQuiet registers fn, called once (from whichever goroutine detects it)
// when the job is quiescent. Register before the job starts.
func (q *Quiescence) OnQuiet(fn func()) { q.onQuiet = append(q.onQuiet, fn) }

// add publishes a delta of live messages.
func (q *Quiescence) add(d int64) {
	if d == 0 {
		return
	}
	if q.live.Add(d) == 0 {
		q.check()
	}
}

// inputEnded records that one subtask's router input ended.
func (q *Quiescence) inputEnded() {
	q.ended.Add(1)
	q.check()
}

// Live returns the number of live function-created messages.
func (q *Quiescence) Live() int64 { return q.live.Load() }

func (q *Quiescence) check() {
	if q.ended.Load() < q.subtasks || q.live.Load() != 0 {
		return
	}
	q.mu.Lock()
	if q.fired {
		q.mu.Unlock()
		return
	}
	q.fired = true
	q.mu.Unlock()
	for _, fn := range q.onQuiet {
		fn()
	}
}
