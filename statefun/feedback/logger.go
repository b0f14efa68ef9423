package feedback

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// LoggerOptions configures a Logger. The zero value is usable: a 32 MiB
// budget and no spilling.
type LoggerOptions struct {
	// MemoryBytes is the budget of encoded records held in memory; beyond it
	// pages spill to disk. Zero or negative means DefaultMemoryBytes.
	MemoryBytes int64
	// SpillDir is the directory of the spill file, created when the first
	// page spills and removed by Close (of the Logger, or of the Log it was
	// sealed into). Empty disables spilling.
	SpillDir string
}

// minSpillPage is the smallest open page that is spilled when the logger is
// over budget and has no sealed page left in memory. It bounds the overdraft
// to about minSpillPage per key group.
const minSpillPage = 4 << 10

// Logger records the feedback records of one checkpoint, partitioned by the
// key group of their target id, as upstream's UnboundedFeedbackLogger: the
// feedback head opens one when it snapshots checkpoint n, appends every
// feedback record it then consumes, and seals it when the marker of n comes
// back. The sealed Log is part of snapshot n and is replayed first on restore.
//
// Records are framed (u32 length + envelope.AppendEncode) into pages of about
// 64 KiB per key group. Beyond the memory budget, full pages (oldest first),
// then the open page of the key group being appended to, are written to a
// spill file; a spilled page is checksummed (crc32c) and read back at replay.
//
// A Logger is used by one goroutine (the feedback head's). Not safe for
// concurrent use.
type Logger struct {
	maxParallelism int
	keyGroupOf     func(id string) dataflow.KeyGroup
	dir            string
	budget         int64
	err            error // configuration error, returned by Append and Seal

	streams  []*stream // indexed by key group; nil until used
	memPages []pageRef // sealed pages in memory, oldest first (may be stale)
	memBytes int64
	records  int
	spill    *spillFile
	done     bool // sealed or closed
}

type stream struct {
	pages    []page // sealed pages, in append order
	cur      []byte // open page: framed records
	curCount int
	count    int // records in pages and cur
}

// page is a sealed run of framed records of one key group, in memory (mem !=
// nil) or in the spill file at [off, off+n).
type page struct {
	mem   []byte
	off   int64
	n     int
	count int
	crc   uint32 // of the payload, for spilled pages
}

type pageRef struct {
	kg  dataflow.KeyGroup
	idx int
}

type spillFile struct {
	f    *os.File
	path string
	size int64
}

// LoggerStats is a view of a Logger's counters.
type LoggerStats struct {
	Records      int
	MemoryBytes  int64 // encoded records held in memory
	SpilledBytes int64 // bytes in the spill file
}

// NewLogger returns a Logger for key groups [0, maxParallelism). keyGroupOf
// maps a target id to its key group; nil means dataflow.KeyGroupFor(id,
// maxParallelism). An invalid maxParallelism makes Append and Seal fail.
func NewLogger(maxParallelism int, keyGroupOf func(id string) dataflow.KeyGroup, opts LoggerOptions) *Logger {
	l := &Logger{maxParallelism: maxParallelism, keyGroupOf: keyGroupOf, dir: opts.SpillDir, budget: opts.MemoryBytes}
	if l.budget <= 0 {
		l.budget = DefaultMemoryBytes
	}
	if maxParallelism < 1 || maxParallelism > dataflow.MaxKeyGroups {
		l.err = fmt.Errorf("feedback: logger max parallelism %d is not in [1, %d]", maxParallelism, dataflow.MaxKeyGroups)
		return l
	}
	if l.keyGroupOf == nil {
		l.keyGroupOf = func(id string) dataflow.KeyGroup { return dataflow.KeyGroupFor(id, maxParallelism) }
	}
	l.streams = make([]*stream, maxParallelism)
	return l
}

// Append logs e under the key group of e.Target.ID. The error is a
// configuration error, a key group out of range, a spill write failure, or
// use after Seal or Close.
func (l *Logger) Append(e *envelope.Envelope) error {
	if l.err != nil {
		return l.err
	}
	if l.done {
		return errors.New("feedback: Append on a sealed or closed logger")
	}
	if e == nil {
		return errors.New("feedback: Append of a nil envelope")
	}
	kg := l.keyGroupOf(e.Target.ID)
	if int(kg) >= l.maxParallelism {
		return fmt.Errorf("feedback: key group %d of id %q is out of range [0, %d)", kg, e.Target.ID, l.maxParallelism)
	}
	s := l.streams[kg]
	if s == nil {
		s = &stream{}
		l.streams[kg] = s
	}
	before := len(s.cur)
	s.cur = appendRecord(s.cur, e)
	l.memBytes += int64(len(s.cur) - before)
	s.curCount++
	s.count++
	l.records++
	if len(s.cur) >= pageSize {
		s.pages = append(s.pages, page{mem: s.cur, n: len(s.cur), count: s.curCount})
		l.memPages = append(l.memPages, pageRef{kg: kg, idx: len(s.pages) - 1})
		s.cur, s.curCount = nil, 0
	}
	if l.memBytes > l.budget && l.dir != "" {
		return l.spillSome(kg)
	}
	return nil
}

// spillSome writes sealed in-memory pages, oldest first, then if still over
// budget the open page of kg, until the logger is within budget.
func (l *Logger) spillSome(kg dataflow.KeyGroup) error {
	for l.memBytes > l.budget && len(l.memPages) > 0 {
		ref := l.memPages[0]
		l.memPages = l.memPages[1:]
		p := &l.streams[ref.kg].pages[ref.idx]
		if p.mem == nil {
			continue
		}
		if err := l.spillPage(p); err != nil {
			return err
		}
	}
	if s := l.streams[kg]; l.memBytes > l.budget && len(s.cur) >= minSpillPage {
		s.pages = append(s.pages, page{mem: s.cur, n: len(s.cur), count: s.curCount})
		s.cur, s.curCount = nil, 0
		return l.spillPage(&s.pages[len(s.pages)-1])
	}
	return nil
}

func (l *Logger) spillPage(p *page) error {
	if l.spill == nil {
		f, err := os.CreateTemp(l.dir, "feedback-log-*.spill")
		if err != nil {
			l.err = fmt.Errorf("feedback: create log spill file: %w", err)
			return l.err
		}
		l.spill = &spillFile{f: f, path: f.Name()}
	}
	if _, err := l.spill.f.WriteAt(p.mem, l.spill.size); err != nil {
		l.err = fmt.Errorf("feedback: write log spill file %s: %w", l.spill.path, err)
		return l.err
	}
	p.crc = crc32.Checksum(p.mem, crcTable)
	p.off = l.spill.size
	l.spill.size += int64(p.n)
	l.memBytes -= int64(p.n)
	p.mem = nil
	return nil
}

// appendRecord frames e as a u32 length then its envelope encoding.
func appendRecord(dst []byte, e *envelope.Envelope) []byte {
	dst = append(dst, 0, 0, 0, 0)
	at := len(dst)
	dst = envelope.AppendEncode(dst, e)
	binary.LittleEndian.PutUint32(dst[at-4:], uint32(len(dst)-at))
	return dst
}

// Stats returns the logger's counters.
func (l *Logger) Stats() LoggerStats {
	s := LoggerStats{Records: l.records, MemoryBytes: l.memBytes}
	if l.spill != nil {
		s.SpilledBytes = l.spill.size
	}
	return s
}

// Seal ends logging and returns the log. The Log owns the spill file from
// then on; the Logger accepts nothing more, and its Close is a no-op.
func (l *Logger) Seal() (*Log, error) {
	if l.err != nil {
		return nil, l.err
	}
	if l.done {
		return nil, errors.New("feedback: Seal on a sealed or closed logger")
	}
	l.done = true
	for _, s := range l.streams {
		if s != nil && len(s.cur) > 0 {
			s.pages = append(s.pages, page{mem: s.cur, n: len(s.cur), count: s.curCount})
			s.cur, s.curCount = nil, 0
		}
	}
	lg := &Log{maxParallelism: l.maxParallelism, streams: l.streams, records: l.records, spill: l.spill}
	l.streams, l.memPages, l.spill = nil, nil, nil
	return lg, nil
}

// Close discards an unsealed logger and removes its spill file (an aborted
// checkpoint). Idempotent; a no-op after Seal.
func (l *Logger) Close() error {
	l.done = true
	l.streams, l.memPages = nil, nil
	sp := l.spill
	l.spill = nil
	return sp.remove()
}

func (sp *spillFile) remove() error {
	if sp == nil {
		return nil
	}
	return errors.Join(sp.f.Close(), os.Remove(sp.path))
}

// Log is a sealed feedback log: the records of one checkpoint, per key group,
// in append order. It is immutable; Replay and WriteTo may run concurrently
// with each other, but not with Close.
type Log struct {
	maxParallelism int
	streams        []*stream
	records        int
	spill          *spillFile
	closed         bool
}

// Len returns the number of records in the log.
func (lg *Log) Len() int { return lg.records }

// MaxParallelism returns the number of key groups the log was written for.
func (lg *Log) MaxParallelism() int { return lg.maxParallelism }

// Replay calls fn for every record of the key groups in r, key group by key
// group in ascending order, each in its original order. It stops at fn's
// first error. A corrupt spilled page returns an error wrapping ErrCorrupt.
// Key groups of r beyond the log's max parallelism hold nothing.
func (lg *Log) Replay(r dataflow.KeyGroupRange, fn func(*envelope.Envelope) error) error {
	if lg.closed {
		return errors.New("feedback: Replay of a closed log")
	}
	if r.Start > r.End {
		return fmt.Errorf("feedback: invalid key-group range %s", r)
	}
	var buf []byte
	for kg := int(r.Start); kg < int(r.End) && kg < lg.maxParallelism; kg++ {
		s := lg.streams[kg]
		if s == nil {
			continue
		}
		for i := range s.pages {
			data, err := lg.pageData(&s.pages[i], &buf)
			if err != nil {
				return fmt.Errorf("feedback: log key group %d, page %d: %w", kg, i, err)
			}
			if err := forEachRecord(data, s.pages[i].count, fn); err != nil {
				if _, ok := err.(*corruptError); ok { // not fn's error
					return fmt.Errorf("feedback: corrupt log: key group %d, page %d: %w", kg, i, err)
				}
				return err
			}
		}
	}
	return nil
}

// pageData returns the payload of p, reading spilled pages into *buf.
func (lg *Log) pageData(p *page, buf *[]byte) ([]byte, error) {
	if p.mem != nil {
		return p.mem, nil
	}
	if lg.spill == nil {
		return nil, corruptf("spilled page without a spill file")
	}
	if cap(*buf) < p.n {
		*buf = make([]byte, p.n)
	}
	data := (*buf)[:p.n]
	if _, err := lg.spill.f.ReadAt(data, p.off); err != nil {
		return nil, fmt.Errorf("read spill file %s at %d: %w", lg.spill.path, p.off, err)
	}
	if got := crc32.Checksum(data, crcTable); got != p.crc {
		return nil, corruptf("corrupt spill file %s at offset %d: checksum mismatch (stored %#08x, computed %#08x)",
			lg.spill.path, p.off, p.crc, got)
	}
	return data, nil
}

// forEachRecord decodes count framed records of data and calls fn for each.
// fn == nil only checks the framing. Framing errors are *corruptError; fn's
// errors are returned as they are.
func forEachRecord(data []byte, count int, fn func(*envelope.Envelope) error) error {
	for i := 0; i < count; i++ {
		if len(data) < 4 {
			return corruptf("record %d of %d: truncated length", i, count)
		}
		n := binary.LittleEndian.Uint32(data)
		if uint64(n) > uint64(len(data)-4) {
			return corruptf("record %d of %d: length %d overruns the data", i, count, n)
		}
		rec := data[4 : 4+n]
		data = data[4+n:]
		if fn == nil {
			continue
		}
		e, used, err := envelope.Decode(rec)
		if err != nil {
			return corruptf("record %d of %d: %v", i, count, err)
		}
		if used != int(n) {
			return corruptf("record %d of %d: envelope uses %d of %d bytes", i, count, used, n)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if len(data) != 0 {
		return corruptf("%d trailing bytes after %d records", len(data), count)
	}
	return nil
}

// Close releases the log and removes its spill file. Idempotent.
func (lg *Log) Close() error {
	if lg.closed {
		return nil
	}
	lg.closed = true
	lg.streams = nil
	sp := lg.spill
	lg.spill = nil
	return sp.remove()
}

// The serialized log (WriteTo, ReadLog), all integers little endian:
//
//	header  magic "SFFL", version u16 (1), flags u16 (0), max parallelism u32,
//	        section count u32, crc32c u32 of the 16 bytes before it
//	section key group u16, reserved u16 (0), record count u32, payload length u64,
//	        payload (framed records: u32 length + envelope encoding),
//	        crc32c u32 of the 16-byte section header and the payload
//	trailer magic "SFLE", total record count u64, crc32c u32 of the 12 bytes before it
//
// There is one section per non-empty key group, in ascending key-group order,
// so a reader can keep the key groups it owns after rescaling. The trailer
// makes truncation at a section boundary detectable.
const (
	logVersion     = 1
	logHeaderSize  = 20
	sectionHdrSize = 16
	trailerSize    = 16
)

var (
	logMagic     = [4]byte{'S', 'F', 'F', 'L'}
	trailerMagic = [4]byte{'S', 'F', 'L', 'E'}
)

// WriteTo writes the log in its versioned, checksummed, per-key-group format
// (see ReadLog). It implements io.WriterTo.
func (lg *Log) WriteTo(w io.Writer) (int64, error) {
	if lg.closed {
		return 0, errors.New("feedback: WriteTo of a closed log")
	}
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	sections := 0
	for _, s := range lg.streams {
		if s != nil && s.count > 0 {
			sections++
		}
	}
	var hdr [logHeaderSize]byte
	copy(hdr[0:], logMagic[:])
	binary.LittleEndian.PutUint16(hdr[4:], logVersion)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(lg.maxParallelism))
	binary.LittleEndian.PutUint32(hdr[12:], uint32(sections))
	binary.LittleEndian.PutUint32(hdr[16:], crc32.Checksum(hdr[:16], crcTable))
	_, _ = bw.Write(hdr[:])

	var buf []byte
	for kg, s := range lg.streams {
		if s == nil || s.count == 0 {
			continue
		}
		var length int
		for _, p := range s.pages {
			length += p.n
		}
		var sh [sectionHdrSize]byte
		binary.LittleEndian.PutUint16(sh[0:], uint16(kg))
		binary.LittleEndian.PutUint32(sh[4:], uint32(s.count))
		binary.LittleEndian.PutUint64(sh[8:], uint64(length))
		crc := crc32.Checksum(sh[:], crcTable)
		_, _ = bw.Write(sh[:])
		for i := range s.pages {
			data, err := lg.pageData(&s.pages[i], &buf)
			if err != nil {
				return cw.n, fmt.Errorf("feedback: write log: key group %d, page %d: %w", kg, i, err) // NB: the output is incomplete
			}
			crc = crc32.Update(crc, crcTable, data)
			_, _ = bw.Write(data)
		}
		_, _ = bw.Write(binary.LittleEndian.AppendUint32(nil, crc))
	}
	var tr [trailerSize]byte
	copy(tr[0:], trailerMagic[:])
	binary.LittleEndian.PutUint64(tr[4:], uint64(lg.records))
	binary.LittleEndian.PutUint32(tr[12:], crc32.Checksum(tr[:12], crcTable))
	_, _ = bw.Write(tr[:])
	// NB: bufio.Writer is sticky: the first write error surfaces here.
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("feedback: write log: %w", err)
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadLog reads a log written by WriteTo. The log is held in memory. It reads
// exactly the log's bytes from r (nothing past the trailer), and rejects
// truncated, corrupt or unknown-version input with an error wrapping
// ErrCorrupt.
func ReadLog(r io.Reader) (*Log, error) {
	corrupt := func(format string, args ...any) error {
		return corruptf("feedback: corrupt log: "+format, args...)
	}
	readFull := func(what string, b []byte) error {
		if _, err := io.ReadFull(r, b); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return corrupt("truncated in %s", what)
			}
			return fmt.Errorf("feedback: read log %s: %w", what, err)
		}
		return nil
	}
	var hdr [logHeaderSize]byte
	if err := readFull("header", hdr[:]); err != nil {
		return nil, err
	}
	if !bytes.Equal(hdr[0:4], logMagic[:]) {
		return nil, corrupt("bad magic %q", hdr[0:4])
	}
	if got, want := crc32.Checksum(hdr[:16], crcTable), binary.LittleEndian.Uint32(hdr[16:]); got != want {
		return nil, corrupt("header checksum mismatch (stored %#08x, computed %#08x)", want, got)
	}
	if v := binary.LittleEndian.Uint16(hdr[4:]); v != logVersion {
		return nil, corrupt("unsupported version %d (this build reads version %d)", v, logVersion)
	}
	if f := binary.LittleEndian.Uint16(hdr[6:]); f != 0 {
		return nil, corrupt("unknown flags %#x", f)
	}
	maxP := binary.LittleEndian.Uint32(hdr[8:])
	sections := binary.LittleEndian.Uint32(hdr[12:])
	if maxP < 1 || maxP > dataflow.MaxKeyGroups {
		return nil, corrupt("max parallelism %d is not in [1, %d]", maxP, dataflow.MaxKeyGroups)
	}
	if sections > maxP {
		return nil, corrupt("%d sections for %d key groups", sections, maxP)
	}
	lg := &Log{maxParallelism: int(maxP), streams: make([]*stream, maxP)}
	prev := -1
	for i := 0; i < int(sections); i++ {
		var sh [sectionHdrSize]byte
		if err := readFull(fmt.Sprintf("section %d header", i), sh[:]); err != nil {
			return nil, err
		}
		kg := int(binary.LittleEndian.Uint16(sh[0:]))
		count := binary.LittleEndian.Uint32(sh[4:])
		length := binary.LittleEndian.Uint64(sh[8:])
		switch {
		case binary.LittleEndian.Uint16(sh[2:]) != 0:
			return nil, corrupt("section %d: reserved field is not zero", i)
		case kg <= prev || kg >= int(maxP):
			return nil, corrupt("section %d: key group %d after %d, max parallelism %d", i, kg, prev, maxP)
		case count == 0 || uint64(count)*4 > length:
			return nil, corrupt("section %d: %d records in %d bytes", i, count, length)
		}
		prev = kg
		// NB: copy instead of allocating length bytes upfront, so a corrupt
		// length cannot allocate more than the input holds.
		var payload bytes.Buffer
		if n, err := io.CopyN(&payload, r, int64(min(length, 1<<62))); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, corrupt("truncated in section %d (key group %d): %d of %d payload bytes", i, kg, n, length)
			}
			return nil, fmt.Errorf("feedback: read log section %d: %w", i, err)
		}
		var crcb [4]byte
		if err := readFull(fmt.Sprintf("section %d checksum", i), crcb[:]); err != nil {
			return nil, err
		}
		data := payload.Bytes()
		crc := crc32.Update(crc32.Checksum(sh[:], crcTable), crcTable, data)
		if want := binary.LittleEndian.Uint32(crcb[:]); crc != want {
			return nil, corrupt("section %d (key group %d): checksum mismatch (stored %#08x, computed %#08x)", i, kg, want, crc)
		}
		if err := forEachRecord(data, int(count), nil); err != nil {
			return nil, corrupt("section %d (key group %d): %v", i, kg, err)
		}
		lg.streams[kg] = &stream{pages: []page{{mem: data, n: len(data), count: int(count)}}, count: int(count)}
		lg.records += int(count)
	}
	var tr [trailerSize]byte
	if err := readFull("trailer", tr[:]); err != nil {
		return nil, err
	}
	if !bytes.Equal(tr[0:4], trailerMagic[:]) {
		return nil, corrupt("bad trailer magic %q", tr[0:4])
	}
	if got, want := crc32.Checksum(tr[:12], crcTable), binary.LittleEndian.Uint32(tr[12:]); got != want {
		return nil, corrupt("trailer checksum mismatch (stored %#08x, computed %#08x)", want, got)
	}
	if n := binary.LittleEndian.Uint64(tr[4:]); n != uint64(lg.records) {
		return nil, corrupt("trailer counts %d records, sections hold %d", n, lg.records)
	}
	return lg, nil
}
