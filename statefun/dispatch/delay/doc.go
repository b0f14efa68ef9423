// Package delay owns the delayed-message buffer of one function subtask: the
// messages that functions sent with a delay, the sender-scoped index of their
// cancellation tokens, and the order in which they fire.
//
// The Buffer is a deterministic state machine, in the spirit of etcd-io/raft's
// core: no goroutines, no clocks, no I/O, no randomness. Time is passed in as
// int64 unix milliseconds by the caller, who also owns the timer that wakes it
// up at NextDeadline. The same inputs always give the same outputs, so the
// buffer is tested with a data-driven script (testdata/*.txt) and against a
// naive model with seeded random operations.
//
// Semantics (reference/statefun-contract.md §2.7):
//   - Every delayed message goes through the buffer, a delay of 0 included: the
//     caller never delivers inline; it is delivered by the next PopDue.
//   - A non-empty cancellation token is indexed under the sender's full
//     address (Owner). Upstream scopes tokens by the sender's key (its id);
//     scoping by the full address is strictly narrower and lets two function
//     types with the same id use the same token independently.
//   - Adding a message whose (owner, token) is held by a pending message is an
//     error (upstream fails the job with IllegalStateException). A token is
//     free again once its message fired (PopDue) or was cancelled.
//   - Cancel with an empty token is an error (upstream: IllegalArgumentException);
//     cancelling an unknown token is a best-effort no-op.
//   - The caller applies the sends and cancellations of one reply in list
//     order, so "send T, cancel T" removes the message and "cancel T, send T"
//     leaves it pending.
//   - Messages fire in (fireAt, insertion order) order: two messages due at the
//     same millisecond fire in the order they were added.
//
// Invariants:
//   - Every pending message is in the heap exactly once; a pending message with
//     a token is in the token index exactly once, and the index holds nothing
//     else.
//   - heap entries carry their own index, so Cancel removes in O(log n) without
//     tombstones.
//
// Who calls it: the function dispatcher (statefun/dispatch) of a subtask, on
// its mailbox goroutine. It calls Add/Cancel while applying a function's
// reply, PopDue when its processing-time timer fires, and Snapshot/Restore
// when it checkpoints and restores (the checkpoint format belongs to the
// caller). Not safe for concurrent use.
package delay
