// Package runtime executes a physical plan (dataflow/plan) in one process:
// one goroutine and one mailbox per subtask, local credit-based channels
// (network) between them, barrier alignment (checkpoint.Aligner) on every
// gate, timers on the injected clock, and the job lifecycle.
//
// Mailbox loop of an operator subtask, one step at a time:
//
//	run posted mailbox actions -> fire due timers -> take one input buffer
//	(unless the operator is Paused) -> process its records -> handle its
//	event (barrier: align, snapshot, forward; end of input) -> EndOfStep ->
//	flush output buffers
//
// Output buffers are flushed at the end of every step, so batching costs no
// latency beyond one step, and no flush timer is needed.
//
// Lifecycle: Start(ctx) launches the subtasks; Shutdown(ctx) stops the
// sources gracefully (they emit end of input) and waits for the job to drain;
// Close() cancels everything at once and is idempotent. A failing subtask
// (an error or a panic) fails the whole job: the first error is returned by
// Wait, named by the subtask that raised it.
//
// Lock order: Job.mu, then task.mbox.mu; neither is held while calling into
// an operator.
package runtime
