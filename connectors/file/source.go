// Package file is the file ingress (io.statefun.file.v1/ingress:
// newline-delimited JSON or raw lines) and the file egress
// (io.statefun.file.v1/egress).
//
// The ingress is read by source subtask 0 only (a file has one reader, so
// the order of its lines is kept); other subtasks end at once. A record it
// cannot decode fails the job with file:line, or with OnError "skip" is
// logged and counted; it is never dropped silently.
package file

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun"
)

// SourceConfig configures the file ingress.
type SourceConfig struct {
	Path       string
	JSONL      bool   // else raw lines
	KeyField   string // jsonl: the field holding the id
	ValueField string // jsonl: the field holding the message; "" = whole line
	Delimiter  string // lines: id<delimiter>value; "" = the line is both
	// ValueType: for io.statefun.types/string the text is wrapped in a
	// StringWrapper; any other typename carries the bytes as they are.
	ValueType string
	Skip      bool // OnError skip instead of fail
}

// MaxLineBytes bounds one input line.
const MaxLineBytes = 16 << 20

// Source reads one file.
type Source struct {
	cfg     SourceConfig
	ctx     dataflow.Context
	f       *os.File
	r       *bufio.Reader
	line    int
	offset  int64 // bytes consumed
	done    bool
	Skipped int64
}

// NewSource returns a file source.
func NewSource(cfg SourceConfig) *Source { return &Source{cfg: cfg} }

// Open implements connectors.Source.
func (s *Source) Open(ctx dataflow.Context) error {
	s.ctx = ctx
	if ctx.SubtaskIndex() != 0 {
		s.done = true
		return nil
	}
	f, err := os.Open(s.cfg.Path)
	if err != nil {
		return fmt.Errorf("file ingress: %w", err)
	}
	if s.offset > 0 {
		if _, err := f.Seek(s.offset, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("file ingress: restore to offset %d: %w", s.offset, err)
		}
	}
	s.f, s.r = f, bufio.NewReaderSize(f, 256<<10)
	return nil
}

// Position implements connectors.Checkpointed: the byte offset and line
// number after the records read so far.
func (s *Source) Position() ([]byte, error) {
	return binary.AppendVarint(binary.AppendVarint(nil, s.offset), int64(s.line)), nil
}

// RestorePosition implements connectors.Checkpointed.
func (s *Source) RestorePosition(pos []byte) error {
	off, n := binary.Varint(pos)
	line, m := binary.Varint(pos[max(n, 0):])
	if n <= 0 || m <= 0 || off < 0 {
		return fmt.Errorf("file ingress: corrupt position")
	}
	s.offset, s.line = off, int(line)
	return nil
}

// Read implements connectors.Source.
func (s *Source) Read(dst []connectors.Record) ([]connectors.Record, time.Duration, error) {
	if s.done {
		return dst, 0, dataflow.ErrEndOfInput
	}
	for len(dst) < cap(dst) {
		raw, err := s.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Long line: accumulate.
			buf := append([]byte(nil), raw...)
			for errors.Is(err, bufio.ErrBufferFull) && len(buf) <= MaxLineBytes {
				raw, err = s.r.ReadSlice('\n')
				buf = append(buf, raw...)
			}
			if len(buf) > MaxLineBytes {
				return dst, 0, fmt.Errorf("%s:%d: line longer than %d bytes", s.cfg.Path, s.line+1, MaxLineBytes)
			}
			raw = buf
		}
		if len(raw) > 0 {
			s.offset += int64(len(raw))
			s.line++
			line := strings.TrimRight(string(raw), "\r\n")
			if line != "" {
				rec, derr := s.decode(line)
				if derr != nil {
					if !s.cfg.Skip {
						return dst, 0, derr
					}
					s.Skipped++
					s.ctx.Logger().Warn("skipping record", "err", derr)
				} else {
					dst = append(dst, rec)
				}
			}
		}
		if err == io.EOF {
			s.done = true
			if len(dst) == 0 {
				return dst, 0, dataflow.ErrEndOfInput
			}
			return dst, 0, nil
		}
		if err != nil {
			return dst, 0, fmt.Errorf("%s:%d: %w", s.cfg.Path, s.line+1, err)
		}
	}
	return dst, 0, nil
}

func (s *Source) origin() string { return s.cfg.Path + ":" + strconv.Itoa(s.line) }

func (s *Source) decode(line string) (connectors.Record, error) {
	rec := connectors.Record{Origin: s.origin(), HasKey: true}
	var text string
	if !s.cfg.JSONL {
		rec.Key, text = line, line
		if s.cfg.Delimiter != "" {
			k, v, ok := strings.Cut(line, s.cfg.Delimiter)
			if !ok {
				return rec, fmt.Errorf("%s: no delimiter %q in line", rec.Origin, s.cfg.Delimiter)
			}
			rec.Key, text = k, v
		}
		rec.Value = s.encode(text, []byte(text))
		return rec, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &obj); err != nil {
		return rec, fmt.Errorf("%s: invalid JSON: %v", rec.Origin, err)
	}
	kraw, ok := obj[s.cfg.KeyField]
	if !ok {
		return rec, fmt.Errorf("%s: key field %q is missing", rec.Origin, s.cfg.KeyField)
	}
	var ks string
	if string(kraw) == "null" {
		return rec, fmt.Errorf("%s: key field %q is null: every record needs a key, the target address id", rec.Origin, s.cfg.KeyField)
	}
	if json.Unmarshal(kraw, &ks) == nil {
		rec.Key = ks
	} else if n := json.Number(""); json.Unmarshal(kraw, &n) == nil {
		rec.Key = n.String()
	} else {
		return rec, fmt.Errorf("%s: key field %q must be a string or a number, got %s", rec.Origin, s.cfg.KeyField, kraw)
	}
	val := []byte(line)
	if s.cfg.ValueField != "" {
		v, ok := obj[s.cfg.ValueField]
		if !ok {
			return rec, fmt.Errorf("%s: value field %q is missing", rec.Origin, s.cfg.ValueField)
		}
		val = v
	}
	var str string
	if s.cfg.ValueType == "io.statefun.types/string" {
		if err := json.Unmarshal(val, &str); err != nil {
			str = string(val)
		}
	}
	rec.Value = s.encode(str, val)
	return rec, nil
}

func (s *Source) encode(text string, raw []byte) []byte {
	if s.cfg.ValueType == "io.statefun.types/string" {
		b, _ := statefun.EncodeValue(statefun.StringType, text)
		return b
	}
	return append([]byte(nil), raw...)
}

// Close implements connectors.Source.
func (s *Source) Close() error {
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}
