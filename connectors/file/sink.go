package file

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// SinkConfig configures the file egress.
type SinkConfig struct {
	Path   string
	Format connectors.Format
	Append bool
}

// Sink writes egress messages to a file, one per line. Flush (every step)
// hands the data to the OS; Close syncs it to disk.
type Sink struct {
	cfg     SinkConfig
	f       *os.File
	w       *bufio.Writer
	scratch []byte
}

// NewSink returns a file sink.
func NewSink(cfg SinkConfig) *Sink { return &Sink{cfg: cfg} }

// Open implements connectors.Sink.
func (s *Sink) Open(ctx dataflow.Context) error {
	if ctx.Parallelism() != 1 {
		return fmt.Errorf("file egress %s: parallelism must be 1", s.cfg.Path)
	}
	if err := os.MkdirAll(filepath.Dir(s.cfg.Path), 0o755); err != nil {
		return fmt.Errorf("file egress: %w", err)
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if s.cfg.Append {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(s.cfg.Path, flags, 0o644)
	if err != nil {
		return fmt.Errorf("file egress: %w", err)
	}
	s.f, s.w = f, bufio.NewWriterSize(f, 256<<10)
	return nil
}

// Write implements connectors.Sink.
func (s *Sink) Write(e *envelope.Envelope) error {
	s.scratch = connectors.AppendRendered(s.scratch[:0], s.cfg.Format, e)
	_, err := s.w.Write(s.scratch)
	return err
}

// Flush implements connectors.Sink.
func (s *Sink) Flush() error { return s.w.Flush() }

// Close implements connectors.Sink.
func (s *Sink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.w.Flush()
	if serr := s.f.Sync(); err == nil {
		err = serr
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}
