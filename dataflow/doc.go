// Package dataflow is the vocabulary of the engine's dataflow layer: records,
// key groups, control events (barriers, end of input), the operator and
// source contracts, the injected clock, and the logical Graph with its
// validation.
//
// It is a leaf: it imports nothing else from this repository. The physical
// plan lives in dataflow/plan, execution in dataflow/runtime, keyed state in
// dataflow/state, and channels in network.
//
// Invariants:
//   - A key belongs to exactly one key group (KeyGroupFor), and a key group to
//     exactly one subtask (SubtaskFor); each subtask owns a contiguous
//     KeyGroupRange. The hash is part of the state format and never changes.
//   - Operators are single-threaded: the runtime calls every method of an
//     Operator (and every function passed to Context.Post) on the subtask's
//     own goroutine, so operator state needs no locks.
//   - Control events travel in-band, in order with the records of their
//     channel.
package dataflow
