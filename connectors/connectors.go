// Package connectors defines the contracts between the engine and its
// ingress and egress connectors, and the rendering of egress payloads shared
// by the text-based sinks. Implementations live in sub-packages (datagen,
// file, stdout; Kafka and Kinesis come later).
//
// A Source reads raw records; the engine's router (statefun/translate) turns
// each into one message per target function, keyed by the record key. A
// Sink receives the egress messages of one egress.
//
// Invariants: a Source never drops a record silently: a record it cannot
// decode is an error (or, when the user asked for skip, a logged and counted
// skip); a Sink's Flush makes everything written so far durable or visible.
package connectors

import (
	"time"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// Record is one raw ingress record.
type Record struct {
	// Route selects the routing entry (Kafka topic, Kinesis stream); empty
	// for single-route sources.
	Route string
	// Key is the target address id; HasKey is false for a null key.
	Key    string
	HasKey bool
	// Value is the message payload: the TypedValue value bytes.
	Value []byte
	// Origin locates the record for error messages ("names.jsonl:17").
	Origin string
}

// Source is an ingress connector of one source subtask.
type Source interface {
	Open(ctx dataflow.Context) error
	// Read appends available records to dst (at most cap(dst)-len(dst)) and
	// returns it. When nothing is available it returns a wait hint. It
	// returns dataflow.ErrEndOfInput when the source is exhausted.
	Read(dst []Record) ([]Record, time.Duration, error)
	Close() error
}

// Sink is an egress connector of one sink subtask.
type Sink interface {
	Open(ctx dataflow.Context) error
	Write(e *envelope.Envelope) error
	Flush() error
	Close() error
}

// Checkpointed is implemented by connectors with a position that exactly-once
// recovery needs: a source's read position, a sink's committed output.
type Checkpointed interface {
	// Position returns the current position: for a source, just after the
	// records returned by Read so far; for a sink, after everything written
	// and flushed durably (Position flushes and syncs).
	Position() ([]byte, error)
	// RestorePosition is called before Open when the job is restored.
	RestorePosition(pos []byte) error
}
