// Package dataflowtest is the harness for operator and connector tests: a
// fake dataflow.Context that drives one operator (or source, or sink) on the
// test goroutine, deterministically.
//
// The fake has no goroutines of its own and never sleeps. Everything the
// runtime would do asynchronously is recorded and left to the test:
//
//   - Time is a dataflow.ManualClock (Context.Clock, Context.Advance).
//   - Output records every Emit as (port, record), in emission order
//     (Context.Emitted, Context.TakeEmitted). SetEmitHook checks invariants
//     at the moment of emission; SetEmitError simulates a closing job.
//   - Post queues functions; the test runs them with RunMailbox, which, like
//     the runtime, runs the functions queued at the time of the call (those
//     they post wait for the next call).
//   - ScheduleTimer records deadlines; DueTimers lists those the clock has
//     reached and FireTimers calls the operator's OnTimer, as the runtime does
//     (every due timer is consumed and OnTimer is called once with the
//     current time). FireNextTimer first advances the clock to the earliest
//     pending deadline.
//   - Finish and Fail are recorded (Finished, Errors).
//   - Logger writes to a buffer the test can read (Logs).
//
// The step helpers mirror the runtime's task loop so that operator code sees
// the same call sequence as in a job: Step calls EndOfStep (Flusher) the way
// the runtime ends every step; Mailbox runs the mailbox and ends the step if
// anything ran; Settle repeats mailbox and due timers until nothing is left
// to do without moving the clock.
//
// Typical use:
//
//	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Parallelism: 2, Subtask: 1})
//	op := mypkg.NewOperator(...)
//	if err := op.Open(ctx); err != nil { t.Fatal(err) }
//	defer op.Close()
//	_ = op.ProcessRecord(0, dataflow.Record{Value: ...})
//	_ = ctx.Step(op)
//	for _, e := range ctx.TakeEmitted() { ... }
//	ctx.Advance(10 * time.Millisecond)
//	_, _ = ctx.FireTimers(op)
//
// The Context is safe for the calls the dataflow.Context contract allows from
// other goroutines (Post, Fail), so it also serves operators that hand work
// to helper goroutines; every other method belongs to the test goroutine.
package dataflowtest
