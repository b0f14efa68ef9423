package feedback

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"sync"

	"github.com/statefun-go/statefun/statefun/envelope"
)

// DefaultMemoryBytes is the default in-memory budget of a Queue and of a
// Logger, as upstream's statefun.feedback.memory.size (32 MiB).
const DefaultMemoryBytes = 32 << 20

const (
	// pageSize is the payload size at which a spill page is sealed and
	// written (upstream uses 64 KiB memory segments).
	pageSize = 64 << 10
	// pageHeaderSize: payload length u32, item count u32, crc32c u32 (of the
	// count bytes followed by the payload), all little endian.
	pageHeaderSize = 12
	// markerBytes is what a checkpoint marker counts against the memory
	// budget.
	markerBytes = 16

	tagEnvelope byte = 1
	tagMarker   byte = 2
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrClosed is returned by the methods of a closed Queue.
var ErrClosed = errors.New("feedback: queue is closed")

// ErrCorrupt marks errors caused by corrupt spill or log data. Test with
// errors.Is(err, ErrCorrupt).
var ErrCorrupt = errors.New("feedback: corrupt data")

// corruptError is a corruption report: its message is the detail, and it
// matches ErrCorrupt with errors.Is.
type corruptError struct{ msg string }

func (e *corruptError) Error() string        { return e.msg }
func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

func corruptf(format string, args ...any) error {
	return &corruptError{msg: fmt.Sprintf(format, args...)}
}

// Options configures a Queue. The zero value is usable: a 32 MiB budget and
// no spilling.
type Options struct {
	// MemoryBytes is the budget of items held in memory, measured with
	// Envelope.Size() (a marker counts 16 bytes). Beyond it items spill to
	// disk. Zero or negative means DefaultMemoryBytes.
	MemoryBytes int64
	// SpillDir is the directory of the spill file. The file is created in it
	// when the first spill page is written and removed by Close. Empty
	// disables spilling: the queue then stays in memory, unbounded.
	SpillDir string
	// Notify is called when the queue goes from empty to non-empty (and by
	// Drain, see there). It runs on the producer's goroutine and must not
	// block: the engine's does a non-blocking send on a chan struct{} of
	// capacity 1. May be nil.
	Notify func()
}

// Item is one entry of the queue: an envelope, or a checkpoint marker.
type Item struct {
	// Envelope is the record, when !IsMarker.
	Envelope *envelope.Envelope
	// Marker is the checkpoint id, when IsMarker.
	Marker uint64
	// IsMarker tells a checkpoint marker from a record.
	IsMarker bool
}

func (it Item) size() int64 {
	if it.IsMarker {
		return markerBytes
	}
	return int64(it.Envelope.Size())
}

// Stats is a point-in-time view of a Queue.
type Stats struct {
	// Items is the number of queued items: in memory, spilled, and handed to
	// the consumer but not yet delivered.
	Items int
	// MemoryBytes is the budgeted size (Envelope.Size()) of the items held
	// in memory.
	MemoryBytes int64
	// SpilledItems and SpilledBytes (encoded) describe the items currently on
	// the spill path: written pages not yet read back, plus the open page.
	SpilledItems int
	SpilledBytes int64
	// SpillFiles is the number of spill files on disk now (0 or 1). The file
	// is created by the first page written and kept, truncated when the spill
	// path empties, until Close.
	SpillFiles int
	// SpilledItemsTotal counts every item that ever took the spill path.
	SpilledItemsTotal uint64
	// SpillPagesWritten counts every page ever written to the spill file.
	SpillPagesWritten uint64
}

// Queue is the in-memory feedback channel of one subtask: the feedback tail
// (the single producer) adds envelopes and checkpoint markers, the feedback
// head (the single consumer) drains them in FIFO order.
//
// Algorithm. As upstream's MpscQueue, the producer appends to an active slice
// under a mutex and the consumer swaps it with its own (emptied) slice under
// the mutex, then delivers the items without holding it. A producer never
// waits for the consumer to make progress, so the cycle
// dispatcher -> shuffle -> tail -> head -> dispatcher cannot deadlock here.
//
// Spilling. While the in-memory items are within the budget, Add appends to
// the active slice. Beyond it, items are encoded into an open page, and a
// full page (64 KiB) is checksummed and written at the end of the spill file.
// Once anything is on the spill path, every later item takes it too, until
// the consumer has taken every spilled item: the logical queue is always
//
//	consumer's batch ++ active slice ++ spilled pages ++ open page
//
// so FIFO order holds across memory -> spill -> memory transitions. The
// consumer reads written pages back (outside the lock: pages below the
// written offset are immutable) and, when it has caught up with the file,
// takes the open page straight from memory. When the spill path is empty the
// file is truncated and new items go to memory again.
//
// Rejected alternatives: a bounded channel (blocks the producer, deadlocks the
// cycle); a lock-free ring (the mutex is held for an append or a slice swap
// only, and the benchmark shows it is far from being the bottleneck); one file
// per page (more syscalls, more cleanup to get wrong).
//
// Memory bound: MemoryBytes, plus the open page and one decoded page (about
// 64 KiB of encoded items each), plus the two slices' backing arrays.
type Queue struct {
	opts   Options
	budget int64
	notify func()

	mu struct {
		sync.Mutex
		// closed is set by Close.
		closed bool
		// werr is the first spill write error. Sticky: Add fails after it.
		werr error
		// count is the number of queued items, including those in the
		// consumer's batch not yet delivered.
		count int
		// memBytes is the size of the in-memory items (tail and the
		// consumer's batch when it came from tail).
		memBytes int64
		// tail is the active slice the producer appends to.
		tail []Item
		// spilling is set while the spill path holds items.
		// Invariant: !spilling implies spillItems == 0 and len(wpage) == 0.
		spilling   bool
		spillItems int
		spillBytes int64
		// wpage is the open page: a header placeholder then encoded items.
		wpage      []byte
		wpageItems int
		// file is the spill file, nil until the first page is written.
		file *os.File
		path string
		// written is the end of the pages written to file. Bytes below it
		// are immutable until the spill path is empty again.
		written int64

		spilledTotal uint64
		pagesWritten uint64
	}

	// Consumer-owned: only Drain (and what it calls) touches these.
	head      []Item // the batch being delivered
	hpos      int    // next item of head to deliver
	headInMem bool   // head came from tail, so it is counted in memBytes
	readOff   int64  // next page to read from file
	rbuf      []byte // read buffer for pages
	wspare    []byte // spare open-page buffer, handed to the producer
	rerr      error  // first read or decode error. Sticky.
}

// NewQueue returns an empty queue.
func NewQueue(opts Options) *Queue {
	q := &Queue{opts: opts, budget: opts.MemoryBytes, notify: opts.Notify}
	if q.budget <= 0 {
		q.budget = DefaultMemoryBytes
	}
	return q
}

// Add queues e. It never waits for the consumer. It returns an error only
// when the queue is closed, e is nil, or writing the spill file failed; after
// a spill write error the item is still queued (its page stays in memory),
// but every later Add fails with the same error.
func (q *Queue) Add(e *envelope.Envelope) error {
	if e == nil {
		return errors.New("feedback: Add of a nil envelope")
	}
	return q.add(Item{Envelope: e})
}

// AddMarker queues the marker of checkpoint checkpointID. It travels in FIFO
// order with the records: everything added before it is drained before it.
func (q *Queue) AddMarker(checkpointID uint64) error {
	return q.add(Item{Marker: checkpointID, IsMarker: true})
}

func (q *Queue) add(it Item) error {
	size := it.size()
	q.mu.Lock()
	if q.mu.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	if q.mu.werr != nil {
		q.mu.Unlock()
		return q.mu.werr
	}
	var err error
	if !q.mu.spilling && (q.opts.SpillDir == "" || q.mu.memBytes+size <= q.budget) {
		q.mu.tail = append(q.mu.tail, it)
		q.mu.memBytes += size
	} else {
		err = q.spillLocked(it)
	}
	q.mu.count++
	wasEmpty := q.mu.count == 1
	q.mu.Unlock()
	if wasEmpty && q.notify != nil {
		q.notify()
	}
	return err
}

// spillLocked appends it to the open page and writes the page when full. The
// item is queued even when the write fails.
//
// REQUIRES: q.mu held.
func (q *Queue) spillLocked(it Item) error {
	q.mu.spilling = true
	if len(q.mu.wpage) == 0 {
		q.mu.wpage = append(q.mu.wpage[:0], make([]byte, pageHeaderSize)...)
	}
	before := len(q.mu.wpage)
	q.mu.wpage = appendItem(q.mu.wpage, it)
	q.mu.wpageItems++
	q.mu.spillItems++
	q.mu.spillBytes += int64(len(q.mu.wpage) - before)
	q.mu.spilledTotal++
	if len(q.mu.wpage)-pageHeaderSize >= pageSize {
		return q.writePageLocked()
	}
	return nil
}

// writePageLocked seals the open page and writes it at the end of the spill
// file, creating the file if needed.
//
// REQUIRES: q.mu held.
func (q *Queue) writePageLocked() error {
	if q.mu.file == nil {
		f, err := os.CreateTemp(q.opts.SpillDir, "feedback-*.spill")
		if err != nil {
			q.mu.werr = fmt.Errorf("feedback: create spill file: %w", err)
			return q.mu.werr
		}
		q.mu.file, q.mu.path = f, f.Name()
	}
	p := q.mu.wpage
	if uint64(len(p)-pageHeaderSize) > math.MaxUint32 {
		q.mu.werr = fmt.Errorf("feedback: spill page of %d bytes is too large", len(p)-pageHeaderSize)
		return q.mu.werr
	}
	sealPage(p, q.mu.wpageItems)
	if _, err := q.mu.file.WriteAt(p, q.mu.written); err != nil {
		q.mu.werr = fmt.Errorf("feedback: write spill file %s: %w", q.mu.path, err)
		return q.mu.werr
	}
	q.mu.written += int64(len(p))
	q.mu.pagesWritten++
	q.mu.wpage = p[:0]
	q.mu.wpageItems = 0
	return nil
}

// sealPage fills the header of page p (header placeholder then payload).
func sealPage(p []byte, items int) {
	binary.LittleEndian.PutUint32(p[0:], uint32(len(p)-pageHeaderSize))
	binary.LittleEndian.PutUint32(p[4:], uint32(items))
	crc := crc32.Update(crc32.Checksum(p[4:8], crcTable), crcTable, p[pageHeaderSize:])
	binary.LittleEndian.PutUint32(p[8:], crc)
}

// appendItem encodes one item: a tag byte, then for an envelope its u32
// length and envelope.AppendEncode bytes, for a marker the u64 id.
func appendItem(dst []byte, it Item) []byte {
	if it.IsMarker {
		dst = append(dst, tagMarker)
		return binary.LittleEndian.AppendUint64(dst, it.Marker)
	}
	dst = append(dst, tagEnvelope, 0, 0, 0, 0)
	at := len(dst)
	dst = envelope.AppendEncode(dst, it.Envelope)
	binary.LittleEndian.PutUint32(dst[at-4:], uint32(len(dst)-at))
	return dst
}

// decodeItems appends the count items encoded in payload to dst.
func decodeItems(dst []Item, payload []byte, count int) ([]Item, error) {
	p := payload
	for i := 0; i < count; i++ {
		if len(p) == 0 {
			return dst, fmt.Errorf("item %d of %d: page ends early", i, count)
		}
		switch p[0] {
		case tagMarker:
			if len(p) < 9 {
				return dst, fmt.Errorf("item %d of %d: truncated marker", i, count)
			}
			dst = append(dst, Item{Marker: binary.LittleEndian.Uint64(p[1:]), IsMarker: true})
			p = p[9:]
		case tagEnvelope:
			if len(p) < 5 {
				return dst, fmt.Errorf("item %d of %d: truncated length", i, count)
			}
			n := binary.LittleEndian.Uint32(p[1:])
			if uint64(n) > uint64(len(p)-5) {
				return dst, fmt.Errorf("item %d of %d: length %d overruns the page", i, count, n)
			}
			e, used, err := envelope.Decode(p[5 : 5+n])
			if err != nil {
				return dst, fmt.Errorf("item %d of %d: %w", i, count, err)
			}
			if used != int(n) {
				return dst, fmt.Errorf("item %d of %d: envelope uses %d of %d bytes", i, count, used, n)
			}
			dst = append(dst, Item{Envelope: e})
			p = p[5+n:]
		default:
			return dst, fmt.Errorf("item %d of %d: unknown tag %d", i, count, p[0])
		}
	}
	if len(p) != 0 {
		return dst, fmt.Errorf("%d trailing bytes after %d items", len(p), count)
	}
	return dst, nil
}

// Drain delivers, in FIFO order, the items that were queued when it was
// called, calling fn for each on the caller's goroutine (the single
// consumer). It stops at fn's first error and returns it: the item given to
// that call counts as delivered, the following ones stay queued, in order,
// for the next Drain.
//
// Items added while Drain runs are left for the next call (so a fast producer
// cannot keep the consumer's goroutine forever); if any are left when Drain
// returns without error, Drain calls Notify itself, so a consumer that drains
// on every notification never misses items.
//
// Spilled pages are read back here, on the consumer's goroutine. A corrupt
// page returns an error wrapping ErrCorrupt, and every later Drain returns it
// again: the queue never skips data silently.
func (q *Queue) Drain(fn func(it Item) error) error {
	if q.rerr != nil {
		return q.rerr
	}
	q.mu.Lock()
	if q.mu.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	limit := q.mu.count
	q.mu.Unlock()

	var err error
	for delivered := 0; delivered < limit && err == nil; {
		if q.hpos == len(q.head) {
			if err = q.refill(); err != nil {
				break
			}
			if q.hpos == len(q.head) {
				break // NB: unreachable while count is exact.
			}
		}
		start := q.hpos
		var bytes int64
		for q.hpos < len(q.head) && delivered < limit {
			it := q.head[q.hpos]
			q.head[q.hpos] = Item{} // drop the reference for the GC
			q.hpos++
			delivered++
			if q.headInMem {
				bytes += it.size()
			}
			if err = fn(it); err != nil {
				break
			}
		}
		q.mu.Lock()
		if !q.mu.closed { // Close zeroed the counters
			q.mu.count -= q.hpos - start
			q.mu.memBytes -= bytes
		}
		q.mu.Unlock()
	}
	if err != nil {
		return err
	}
	q.mu.Lock()
	rearm := q.mu.count > 0 && !q.mu.closed
	q.mu.Unlock()
	if rearm && q.notify != nil {
		q.notify()
	}
	return nil
}

// refill makes the next items available in q.head: the producer's active
// slice if it has items, else the next spilled page, else the open page.
// It leaves q.head empty when nothing is queued.
func (q *Queue) refill() error {
	q.head, q.hpos = q.head[:0], 0
	q.mu.Lock()
	if q.mu.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	if len(q.mu.tail) > 0 {
		q.head, q.mu.tail = q.mu.tail, q.head
		q.headInMem = true
		q.mu.Unlock()
		return nil
	}
	q.headInMem = false
	if q.mu.spillItems == 0 {
		q.mu.Unlock()
		return nil
	}
	if q.readOff < q.mu.written {
		// Pages below written are immutable: read without the lock.
		f, path, end := q.mu.file, q.mu.path, q.mu.written
		q.mu.Unlock()
		n, payload, next, err := q.readPage(f, q.readOff, end)
		if err != nil {
			q.head = q.head[:0]
			what := "spill file"
			if errors.Is(err, ErrCorrupt) {
				what = "corrupt spill file"
			}
			q.rerr = fmt.Errorf("feedback: %s %s, page at offset %d: %w", what, path, q.readOff, err)
			return q.rerr
		}
		q.mu.Lock()
		if q.mu.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		q.readOff = next
		q.mu.spillItems -= n
		q.mu.spillBytes -= int64(payload)
		q.maybeResetSpillLocked()
		q.mu.Unlock()
		return nil
	}
	// Caught up with the file: take the open page from the producer.
	p, n := q.mu.wpage, q.mu.wpageItems
	q.mu.wpage, q.wspare = q.wspare[:0], nil
	q.mu.wpageItems = 0
	q.mu.spillItems -= n
	q.mu.spillBytes -= int64(len(p) - pageHeaderSize)
	q.maybeResetSpillLocked()
	q.mu.Unlock()
	var err error
	q.head, err = decodeItems(q.head, p[pageHeaderSize:], n)
	q.wspare = p[:0]
	if err != nil {
		q.head = q.head[:0]
		q.rerr = fmt.Errorf("feedback: corrupt open spill page: %w", corruptf("%v", err))
		return q.rerr
	}
	return nil
}

// maybeResetSpillLocked ends the spill episode when the consumer has taken
// every spilled item: later items go to memory again, and the file is
// truncated so it does not grow across episodes. If truncation fails the
// offsets are kept and the file just keeps growing; that is not an error.
//
// REQUIRES: q.mu held, by the consumer.
func (q *Queue) maybeResetSpillLocked() {
	if q.mu.spillItems != 0 {
		return
	}
	q.mu.spilling = false
	if q.mu.written > 0 && q.readOff == q.mu.written {
		if err := q.mu.file.Truncate(0); err == nil {
			q.mu.written, q.readOff = 0, 0
		}
	}
}

// readPage reads and decodes the page at off (with end the end of the written
// pages) into q.head. It returns the item count, payload size and the offset
// of the next page.
func (q *Queue) readPage(f *os.File, off, end int64) (items, payload int, next int64, err error) {
	if end-off < pageHeaderSize {
		return 0, 0, 0, corruptf("%d bytes left, short of a page header", end-off)
	}
	var h [pageHeaderSize]byte
	if _, err := f.ReadAt(h[:], off); err != nil {
		return 0, 0, 0, fmt.Errorf("read page header: %w", err)
	}
	plen := int64(binary.LittleEndian.Uint32(h[0:]))
	count := binary.LittleEndian.Uint32(h[4:])
	want := binary.LittleEndian.Uint32(h[8:])
	if plen > end-off-pageHeaderSize {
		return 0, 0, 0, corruptf("page claims %d bytes, only %d written", plen, end-off-pageHeaderSize)
	}
	if int64(count) > plen {
		return 0, 0, 0, corruptf("page claims %d items in %d bytes", count, plen)
	}
	if int64(cap(q.rbuf)) < plen {
		q.rbuf = make([]byte, plen)
	}
	buf := q.rbuf[:plen]
	if _, err := f.ReadAt(buf, off+pageHeaderSize); err != nil {
		return 0, 0, 0, fmt.Errorf("read page: %w", err)
	}
	if got := crc32.Update(crc32.Checksum(h[4:8], crcTable), crcTable, buf); got != want {
		return 0, 0, 0, corruptf("checksum mismatch (stored %#08x, computed %#08x)", want, got)
	}
	q.head, err = decodeItems(q.head, buf, int(count))
	if err != nil {
		return 0, 0, 0, corruptf("%v", err)
	}
	return int(count), int(plen), off + pageHeaderSize + plen, nil
}

// Len returns the number of queued items (see Stats.Items).
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.mu.count
}

// Stats returns a snapshot of the queue's counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := Stats{
		Items:             q.mu.count,
		MemoryBytes:       q.mu.memBytes,
		SpilledItems:      q.mu.spillItems,
		SpilledBytes:      q.mu.spillBytes,
		SpilledItemsTotal: q.mu.spilledTotal,
		SpillPagesWritten: q.mu.pagesWritten,
	}
	if q.mu.file != nil {
		s.SpillFiles = 1
	}
	return s
}

// Close drops the queued items and removes the spill file. It is idempotent.
// Add and Drain return ErrClosed afterwards (a Drain running concurrently may
// instead fail on the closed file). Call it after the producer and the
// consumer have stopped.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.mu.closed {
		q.mu.Unlock()
		return nil
	}
	q.mu.closed = true
	f, path := q.mu.file, q.mu.path
	q.mu.file = nil
	q.mu.tail, q.mu.wpage = nil, nil
	q.mu.count, q.mu.memBytes, q.mu.spillItems, q.mu.spillBytes = 0, 0, 0, 0
	q.mu.Unlock()
	if f == nil {
		return nil
	}
	return errors.Join(f.Close(), os.Remove(path))
}
