package file

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
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
	// restoreTo, when >= 0, is the committed length to truncate to on
	// restore (output after the checkpoint is discarded: exactly once).
	restoreTo int64
	written   int64
}

// NewSink returns a file sink.
func NewSink(cfg SinkConfig) *Sink { return &Sink{cfg: cfg, restoreTo: -1} }

// Open implements connectors.Sink.
func (s *Sink) Open(ctx dataflow.Context) error {
	if ctx.Parallelism() != 1 {
		return fmt.Errorf("file egress %s: parallelism must be 1", s.cfg.Path)
	}
	if err := os.MkdirAll(filepath.Dir(s.cfg.Path), 0o755); err != nil {
		return fmt.Errorf("file egress: %w", err)
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if s.cfg.Append || s.restoreTo >= 0 {
		flags = os.O_CREATE | os.O_WRONLY
	}
	f, err := os.OpenFile(s.cfg.Path, flags, 0o644)
	if err != nil {
		return fmt.Errorf("file egress: %w", err)
	}
	if s.restoreTo >= 0 {
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("file egress: %w", err)
		}
		if fi.Size() < s.restoreTo {
			f.Close()
			return fmt.Errorf("file egress %s: the restored checkpoint wrote %d bytes but the file has %d: it was replaced or truncated since; restore it or start with --fresh", s.cfg.Path, s.restoreTo, fi.Size())
		}
		if err := f.Truncate(s.restoreTo); err != nil {
			f.Close()
			return fmt.Errorf("file egress: restore to %d bytes: %w", s.restoreTo, err)
		}
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return fmt.Errorf("file egress: %w", err)
	}
	s.written = end
	s.f, s.w = f, bufio.NewWriterSize(f, 256<<10)
	return nil
}

// Position implements connectors.Checkpointed: flushes, syncs, and returns
// the file length. A restore truncates the file back to it, so the file
// holds exactly the output of the restored checkpoint.
func (s *Sink) Position() ([]byte, error) {
	if err := s.w.Flush(); err != nil {
		return nil, err
	}
	if err := s.f.Sync(); err != nil {
		return nil, err
	}
	return binary.AppendVarint(nil, s.written), nil
}

// RestorePosition implements connectors.Checkpointed.
func (s *Sink) RestorePosition(pos []byte) error {
	n, k := binary.Varint(pos)
	if k <= 0 || n < 0 {
		return fmt.Errorf("file egress: corrupt position")
	}
	s.restoreTo = n
	return nil
}

// Write implements connectors.Sink.
func (s *Sink) Write(e *envelope.Envelope) error {
	s.scratch = connectors.AppendRendered(s.scratch[:0], s.cfg.Format, e)
	n, err := s.w.Write(s.scratch)
	s.written += int64(n)
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
