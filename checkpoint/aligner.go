package checkpoint

import (
	"fmt"

	"github.com/statefun-go/statefun/dataflow"
)

// Aligner aligns the barriers of one subtask's input channels (aligned
// exactly-once checkpoints, as upstream StateFun requires).
//
// When barrier n arrives on a channel, that channel is blocked: the runtime
// must hold back its later buffers until barrier n has arrived on every
// channel that has not ended. Then the checkpoint is complete for this
// subtask: the runtime snapshots the operator, forwards the barrier, and
// unblocks all channels.
//
// Invariants: at most one checkpoint is being aligned; barriers of a channel
// arrive in increasing id order; an ended channel counts as having delivered
// every barrier.
type Aligner struct {
	blocked  []bool
	ended    []bool
	current  dataflow.Barrier
	aligning bool
	arrived  int
	live     int
}

// NewAligner returns an aligner for n channels.
func NewAligner(n int) *Aligner {
	return &Aligner{blocked: make([]bool, n), ended: make([]bool, n), live: n}
}

// Blocked reports whether channel ch is held back by an alignment.
func (a *Aligner) Blocked(ch int) bool { return a.blocked[ch] }

// Aligning reports whether an alignment is in progress, and for which barrier.
func (a *Aligner) Aligning() (dataflow.Barrier, bool) { return a.current, a.aligning }

// OnBarrier records barrier b on channel ch. It returns the barrier when the
// alignment completes with this call (the runtime then snapshots, forwards b
// and treats every channel as unblocked).
func (a *Aligner) OnBarrier(ch int, b dataflow.Barrier) (complete bool, err error) {
	if a.ended[ch] {
		return false, fmt.Errorf("checkpoint: barrier %d on channel %d after its end of input", b.ID, ch)
	}
	if a.aligning {
		switch {
		case b.ID != a.current.ID:
			return false, fmt.Errorf("checkpoint: barrier %d on channel %d while aligning %d", b.ID, ch, a.current.ID)
		case a.blocked[ch]:
			return false, fmt.Errorf("checkpoint: barrier %d twice on channel %d", b.ID, ch)
		}
	} else {
		if b.ID <= a.current.ID && a.current.ID != 0 {
			return false, fmt.Errorf("checkpoint: barrier %d on channel %d is not newer than %d", b.ID, ch, a.current.ID)
		}
		a.current, a.aligning, a.arrived = b, true, 0
	}
	a.blocked[ch] = true
	a.arrived++
	return a.maybeComplete(), nil
}

// OnEndOfInput records that channel ch ended. It may complete a pending
// alignment.
func (a *Aligner) OnEndOfInput(ch int) (complete bool) {
	if a.ended[ch] {
		return false
	}
	a.ended[ch] = true
	a.live--
	if a.blocked[ch] {
		// Its barrier already arrived; it no longer counts either way.
		a.blocked[ch] = false
		a.arrived--
	}
	return a.aligning && a.maybeComplete()
}

func (a *Aligner) maybeComplete() bool {
	if a.arrived < a.live {
		return false
	}
	for i := range a.blocked {
		a.blocked[i] = false
	}
	a.aligning = false
	return true
}
