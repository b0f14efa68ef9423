// Package dispatch is the StateFun function operator: the feedback head and
// the function dispatcher chained in one subtask, plus the feedback tail
// operator, the function registry and the job's quiescence detector.
//
// Data path inside one function subtask:
//
//	router input ─┐
//	feedback queue ┼─> local FIFO ─> invoke(function of target type, address)
//	delayed timers ┘        ^              │ Send: target owned here ──┘
//	                        │              │ Send: other subtask ──> port 0 (keyed) ──> feedback tail there
//	                        │              │ SendAfter ──> delay.Buffer + timer
//	                        │              └ SendEgress ──> port 1+k (egress k)
//
// Invariants:
//   - Per-address FIFO: every message for an address owned by this subtask
//     passes through the one local FIFO, in arrival order, whatever its path
//     (router, feedback, timer, local send).
//   - The dispatcher never blocks on the feedback edge: the tail side is an
//     unbounded queue that spills to disk (package feedback).
//   - Quiescence counts every message that reaches a function subtask
//     (router input, local, shuffled, delayed, or in a remote request) until
//     it has been processed; a count is published before the message can be
//     seen by another subtask, and decrements only after processing. Zero
//     with every input ended means the job has drained.
//   - Remote functions (remote.go) follow the request-reply algorithm of
//     package reqreply: at most one request in flight per address, later
//     messages batched in order; replies come back through the mailbox and
//     are applied in the contract's order.
//   - State lives in one dataflow/state Store per subtask under
//     (key group, SpaceValue, namespace, type, id, state name).
//   - A function's error or panic fails the job with an error that names the
//     address; nothing is dropped silently.
package dispatch
