package delay

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"

	"github.com/statefun-go/statefun/statefun/envelope"
)

// Owner is the address of the function that sent a delayed message. The
// cancellation-token index is scoped to it: only the sender can cancel its
// own messages, and two senders may use the same token independently.
type Owner = envelope.Address

// ErrEmptyToken is returned by Cancel for an empty cancellation token.
var ErrEmptyToken = errors.New("delay: a cancellation request needs a non-empty cancellation token")

// Buffer holds the pending delayed messages of one subtask. It is a pure state
// machine (no clock, no goroutines): see the package documentation. The zero
// value is not usable; call NewBuffer. Not safe for concurrent use.
type Buffer struct {
	// h orders the pending messages by (fireAt, seq).
	// Invariant: h[i].index == i for every i.
	h entryHeap
	// tokens indexes the pending messages that have a non-empty token.
	// Invariant: tokens[k].index >= 0 and tokens[k] is in h, for every k.
	tokens map[tokenKey]*entry
	// seq is the insertion counter; it breaks fireAt ties in insertion order.
	seq uint64
	// due is PopDue's scratch slice, kept to avoid an allocation per call.
	due []*entry
}

type tokenKey struct {
	owner Owner
	token string
}

type entry struct {
	owner  Owner
	token  string
	fireAt int64
	seq    uint64
	env    *envelope.Envelope
	index  int // position in the heap; -1 once removed
}

// NewBuffer returns an empty buffer.
func NewBuffer() *Buffer {
	return &Buffer{tokens: make(map[tokenKey]*entry)}
}

// Add buffers e, sent by owner, to fire at fireAt (unix milliseconds). An
// empty token makes the message not cancellable. A non-empty token already
// held by a pending message of the same owner is an error, and the buffer is
// left unchanged.
//
// The caller computes fireAt as now + delay and never delivers inline, even
// for a delay of 0: the message fires on the next PopDue with now >= fireAt.
func (b *Buffer) Add(owner Owner, token string, fireAt int64, e *envelope.Envelope) error {
	if e == nil {
		return fmt.Errorf("delay: nil envelope for a delayed message of %s", owner)
	}
	var k tokenKey
	if token != "" {
		k = tokenKey{owner: owner, token: token}
		if _, dup := b.tokens[k]; dup {
			return fmt.Errorf("delay: cancellation token %q of %s is already used by a pending delayed message", token, owner)
		}
	}
	en := &entry{owner: owner, token: token, fireAt: fireAt, seq: b.seq, env: e}
	b.seq++
	heap.Push(&b.h, en)
	if token != "" {
		b.tokens[k] = en
	}
	return nil
}

// Restore re-adds a message read from a snapshot. It is Add: restoring the
// messages in Snapshot's order reproduces the firing order.
func (b *Buffer) Restore(owner Owner, token string, fireAt int64, e *envelope.Envelope) error {
	return b.Add(owner, token, fireAt, e)
}

// Cancel removes the pending message that owner sent with token. It reports
// whether a message was removed; an unknown token (already fired, already
// cancelled, or never used) is a no-op that returns (false, nil). An empty
// token is an error (ErrEmptyToken). O(log n).
func (b *Buffer) Cancel(owner Owner, token string) (found bool, err error) {
	if token == "" {
		return false, fmt.Errorf("%w (sender %s)", ErrEmptyToken, owner)
	}
	k := tokenKey{owner: owner, token: token}
	en, ok := b.tokens[k]
	if !ok {
		return false, nil
	}
	delete(b.tokens, k)
	heap.Remove(&b.h, en.index)
	en.env = nil
	return true, nil
}

// NextDeadline returns the earliest fireAt of the pending messages, and false
// when there is none. The caller arms its timer for it.
func (b *Buffer) NextDeadline() (int64, bool) {
	if len(b.h) == 0 {
		return 0, false
	}
	return b.h[0].fireAt, true
}

// PopDue removes every message with fireAt <= now and calls fn for each, in
// (fireAt, insertion) order, then returns how many it delivered. Their tokens
// are free again when fn is called.
//
// All due messages are removed before the first call to fn, so fn may call
// Add and Cancel: a message it adds is delivered by a later PopDue even when it
// is already due, and cancelling a message of this batch finds nothing.
// fn must not call PopDue.
func (b *Buffer) PopDue(now int64, fn func(e *envelope.Envelope)) int {
	due := b.due[:0]
	b.due = nil // NB: not reused while fn runs, in case fn misbehaves and re-enters.
	for len(b.h) > 0 && b.h[0].fireAt <= now {
		en := heap.Pop(&b.h).(*entry)
		if en.token != "" {
			delete(b.tokens, tokenKey{owner: en.owner, token: en.token})
		}
		due = append(due, en)
	}
	for i, en := range due {
		e := en.env
		en.env = nil
		due[i] = nil
		fn(e)
	}
	b.due = due[:0]
	return len(due)
}

// Len returns the number of pending messages.
func (b *Buffer) Len() int { return len(b.h) }

// Snapshot calls fn for every pending message in (fireAt, insertion) order,
// the order in which they would fire, and stops at fn's first error. It does
// not change the buffer. fn must not call Add, Cancel or PopDue.
func (b *Buffer) Snapshot(fn func(owner Owner, token string, fireAt int64, e *envelope.Envelope) error) error {
	all := slices.Clone([]*entry(b.h))
	slices.SortFunc(all, func(x, y *entry) int { return x.compare(y) })
	for _, en := range all {
		if err := fn(en.owner, en.token, en.fireAt, en.env); err != nil {
			return err
		}
	}
	return nil
}

func (x *entry) compare(y *entry) int {
	switch {
	case x.fireAt < y.fireAt:
		return -1
	case x.fireAt > y.fireAt:
		return 1
	case x.seq < y.seq:
		return -1
	case x.seq > y.seq:
		return 1
	}
	return 0
}

// entryHeap is a container/heap min-heap of entries by (fireAt, seq) that
// keeps every entry's index current, for O(log n) removal.
type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].compare(h[j]) < 0 }
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *entryHeap) Push(x any) {
	en := x.(*entry)
	en.index = len(*h)
	*h = append(*h, en)
}

func (h *entryHeap) Pop() any {
	old := *h
	n := len(old)
	en := old[n-1]
	old[n-1] = nil
	en.index = -1
	*h = old[:n-1]
	return en
}
