// Package network is the data plane between subtasks: buffers of records,
// and channels with credit-based flow control.
//
// A consumer subtask has one Gate; every producer subtask that feeds it owns
// one Channel into that gate. A channel starts with Credits credits (one per
// buffer the receiver can hold). Send takes one credit, blocking while there
// is none; the consumer returns the credit (Gate.Release) only after it has
// processed the buffer. So a slow consumer stops its producers within
// Credits buffers per channel, and a blocked channel (held back by barrier
// alignment) stops only its own producer: this is Flink's credit-based flow
// control, with record-count buffers instead of byte buffers because local
// channels hand over pointers.
//
// Events (barriers, end of input) travel in-band inside a buffer, after its
// records. Unlike Flink they consume a credit; since the consumer always
// returns credits, this only orders them behind data, which aligned
// checkpoints do anyway.
//
// The TCP transport of the cluster mode will implement the same Sender
// interface with the same credit accounting.
//
// Invariants:
//   - Per channel, buffers are delivered in send order.
//   - Gate.deliveries has capacity sum(credits), so a Send that holds a
//     credit never blocks on the gate.
//   - Every bound is explicit: BufferRecords records per buffer, Credits
//     buffers per channel.
package network
