// Package checkpoint holds the deterministic cores of the checkpoint
// protocol: the barrier Aligner of a subtask with several input channels,
// and the Coordinator that triggers, completes, aborts and times out
// checkpoints and savepoints. Storage lives in checkpoint/store; the driver
// that performs the coordinator's effects is in app (checkpoints.go).
//
// Everything here is a pure state machine: no goroutines, clocks or I/O.
// The runtime (dataflow/runtime) drives it and performs the effects.
package checkpoint
