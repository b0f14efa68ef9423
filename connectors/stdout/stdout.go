// Package stdout is the stdout egress (io.statefun.stdout.v1/egress): one
// line per egress message on the process's standard output.
package stdout

import (
	"bufio"
	"io"
	"os"
	"sync"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// mu serialises writers of the shared standard output.
var mu sync.Mutex

// Sink writes to an io.Writer (os.Stdout by default).
type Sink struct {
	format  connectors.Format
	out     io.Writer
	w       *bufio.Writer
	scratch []byte
}

// New returns a stdout sink; out nil means os.Stdout.
func New(format connectors.Format, out io.Writer) *Sink {
	if out == nil {
		out = os.Stdout
	}
	return &Sink{format: format, out: out}
}

// Open implements connectors.Sink.
func (s *Sink) Open(dataflow.Context) error {
	s.w = bufio.NewWriterSize(s.out, 64<<10)
	return nil
}

// Write implements connectors.Sink.
func (s *Sink) Write(e *envelope.Envelope) error {
	s.scratch = connectors.AppendRendered(s.scratch[:0], s.format, e)
	mu.Lock()
	defer mu.Unlock()
	if len(s.scratch) > s.w.Available() && s.w.Buffered() > 0 {
		// Flush whole lines first, so a line is never split between two
		// writes to the shared stdout.
		if err := s.w.Flush(); err != nil {
			return err
		}
	}
	_, err := s.w.Write(s.scratch)
	return err
}

// Flush implements connectors.Sink.
func (s *Sink) Flush() error {
	mu.Lock()
	defer mu.Unlock()
	return s.w.Flush()
}

// Close implements connectors.Sink.
func (s *Sink) Close() error { return s.Flush() }
