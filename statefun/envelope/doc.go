// Package envelope defines the engine's in-flight StateFun message (Envelope)
// and its compact binary codec.
//
// An Envelope is what moves between the router, the function dispatcher, the
// feedback loop and the egress sinks. Its payload is always a StateFun
// TypedValue (typename plus bytes), exactly as the request-reply protocol
// carries it, so embedded and remote functions exchange messages unchanged.
//
// The codec is used wherever an envelope leaves the heap: the feedback
// channel's spill file, snapshots of queued messages and (later) network
// frames. It is versioned by a leading byte and never panics on bad input.
//
// Invariants:
//   - Target.ID is the routing key: the key group of an envelope is computed
//     from Target.ID only (as upstream), so every function type with the same
//     id lives on the same subtask.
//   - An envelope from an ingress has no caller (HasCaller == false).
package envelope
