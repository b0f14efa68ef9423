// Package checkpoint holds the deterministic cores of the checkpoint
// protocol: the barrier Aligner of a subtask with several input channels
// (and, in later work, the Coordinator and the metadata codec).
//
// Everything here is a pure state machine: no goroutines, clocks or I/O.
// The runtime (dataflow/runtime) drives it and performs the effects.
package checkpoint
