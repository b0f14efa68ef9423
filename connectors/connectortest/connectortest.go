// Package connectortest has connectors for tests: a source of fixed records,
// a paced source, and a sink that captures what it receives. End-to-end and
// conformance tests declare them as code ingresses and egresses.
package connectortest

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// SliceSource emits Records from subtask 0 (other subtasks end at once), at
// most Batch per Read (0: as many as fit).
type SliceSource struct {
	Records []connectors.Record
	Batch   int
	pos     int
	done    bool
}

// Open implements connectors.Source.
func (s *SliceSource) Open(ctx dataflow.Context) error {
	s.done = ctx.SubtaskIndex() != 0
	return nil
}

// Read implements connectors.Source.
func (s *SliceSource) Read(dst []connectors.Record) ([]connectors.Record, time.Duration, error) {
	if s.done || s.pos >= len(s.Records) {
		return dst, 0, dataflow.ErrEndOfInput
	}
	n := 0
	for s.pos < len(s.Records) && len(dst) < cap(dst) && (s.Batch <= 0 || n < s.Batch) {
		r := s.Records[s.pos]
		r.Value = slices.Clone(r.Value)
		dst = append(dst, r)
		s.pos++
		n++
	}
	return dst, 0, nil
}

// Close implements connectors.Source.
func (s *SliceSource) Close() error { return nil }

// PacedSource emits Records from subtask 0, one every Interval (the first
// after one Interval when StartAfterInterval).
type PacedSource struct {
	Records            []connectors.Record
	Interval           time.Duration
	StartAfterInterval bool
	next               time.Time
	pos                int
	done               bool
}

// Open implements connectors.Source.
func (s *PacedSource) Open(ctx dataflow.Context) error {
	s.done = ctx.SubtaskIndex() != 0
	if s.StartAfterInterval {
		s.next = time.Now().Add(s.Interval)
	}
	return nil
}

// Read implements connectors.Source.
func (s *PacedSource) Read(dst []connectors.Record) ([]connectors.Record, time.Duration, error) {
	if s.done || s.pos >= len(s.Records) {
		return dst, 0, dataflow.ErrEndOfInput
	}
	if now := time.Now(); now.Before(s.next) {
		return dst, s.next.Sub(now), nil
	}
	dst = append(dst, s.Records[s.pos])
	s.pos++
	s.next = time.Now().Add(s.Interval)
	return dst, 0, nil
}

// Close implements connectors.Source.
func (s *PacedSource) Close() error { return nil }

// StringRecords makes keyed records from key, value pairs; each value is a
// StringType value; origins are origin:1, origin:2, ...
func StringRecords(origin string, kv ...string) []connectors.Record {
	var out []connectors.Record
	for i := 0; i+1 < len(kv); i += 2 {
		v, err := statefun.EncodeValue(statefun.StringType, kv[i+1])
		if err != nil {
			panic(err)
		}
		out = append(out, connectors.Record{Key: kv[i], HasKey: true, Value: v, Origin: fmt.Sprintf("%s:%d", origin, i/2+1)})
	}
	return out
}

// Capture collects every envelope written to its sinks, in arrival order.
type Capture struct {
	mu   sync.Mutex
	envs []envelope.Envelope
}

// Sink returns a sink writing into c (a translate.SinkFactory).
func (c *Capture) Sink(int) connectors.Sink { return &captureSink{c: c} }

// All returns a copy of what was captured.
func (c *Capture) All() []envelope.Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.envs)
}

type captureSink struct{ c *Capture }

func (s *captureSink) Open(dataflow.Context) error { return nil }
func (s *captureSink) Write(e *envelope.Envelope) error {
	cp := *e
	cp.Value = slices.Clone(e.Value)
	s.c.mu.Lock()
	s.c.envs = append(s.c.envs, cp)
	s.c.mu.Unlock()
	return nil
}
func (s *captureSink) Flush() error { return nil }
func (s *captureSink) Close() error { return nil }
