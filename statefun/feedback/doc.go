// Package feedback owns the in-memory feedback channel of one subtask and the
// feedback log that makes the loop part of a checkpoint.
//
// # The channel (Queue)
//
// In the StateFun job graph the function dispatcher sends a message for an
// address owned by another subtask through the keyed shuffle to that
// subtask's feedback tail, which hands it to the co-located feedback head
// (the union in front of the dispatcher) through a Queue. The tail is the
// only producer, the head the only consumer
// (reference/flink-internals.md §3.3).
//
// Invariants:
//   - Add never waits for the consumer: the channel closes a cycle, and a
//     bounded queue there deadlocks. Memory is bounded instead by spilling:
//     beyond Options.MemoryBytes (measured with Envelope.Size()) items go to a
//     checksummed spill file and are read back on the consumer's goroutine.
//   - FIFO: Drain delivers items in the order they were added, records and
//     checkpoint markers alike, across memory -> spill -> memory
//     transitions. Once an item took the spill path, every later item does,
//     until the consumer has taken every spilled item.
//   - Wake-up: Notify is called when the queue goes from empty to non-empty
//     (as upstream: the producer schedules a drain only on the 0 -> 1
//     transition); a consumer that calls Drain after every notification never
//     leaves items behind.
//   - Corruption is reported (errors wrapping ErrCorrupt), never skipped and
//     never a panic.
//
// # The log (Logger, Log)
//
// Checkpointing the loop follows the ABS paper and upstream's
// FeedbackUnionOperator (flink-internals.md §3.4): when the head snapshots
// checkpoint n it opens a Logger; every feedback record it consumes
// afterwards is appended to it; the tail puts a marker for n (AddMarker) into
// the Queue just before it forwards barrier n; when the head drains that
// marker it seals the Logger, and the Log becomes part of snapshot n. The log
// is partitioned by key group (of the target id), so it rescales with keyed
// state: on restore each subtask replays, before anything else, the records
// of the key groups it now owns (Log.Replay with its range).
//
// Invariants:
//   - Replay yields each key group's records in append order.
//   - The serialized form (Log.WriteTo, ReadLog) is versioned and checksummed
//     per key-group section; truncated or corrupt input is rejected.
//   - A Logger's memory is bounded like the Queue's: pages beyond
//     LoggerOptions.MemoryBytes spill to a checksummed file.
//
// Who calls it: the feedback head and tail operators (operators / statefun
// dispatch wiring) of one subtask, and the checkpoint code that stores and
// restores the head's snapshot. Queue is safe for one producer goroutine and
// one consumer goroutine; Logger is used by the head's goroutine only; a
// sealed Log is immutable and may be read concurrently.
package feedback
