package state

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/statefun-go/statefun/dataflow"
)

// Default budgets.
const (
	DefaultCacheBytes     = 64 << 20 // Pebble block cache
	DefaultWriteBackBytes = 64 << 20 // write-back cache
)

// ErrClosed is returned by every method of a closed Store (except Close).
var ErrClosed = errors.New("state: store closed")

// Options configures Open.
type Options struct {
	// Dir is the Pebble directory; it is created if missing. Required unless
	// FS is an in-memory FS (*vfs.MemFS), where it defaults to "/".
	Dir string
	// FS is the file system; default vfs.Default. Tests use vfs.NewMem().
	FS vfs.FS
	// CacheBytes is the size of Pebble's block cache; 0 means
	// DefaultCacheBytes.
	CacheBytes int64
	// WriteBackBytes is the budget of the in-memory write-back cache: the
	// bytes of its arena (keys, values, record headers) and index. 0 means
	// DefaultWriteBackBytes; values above 2 GiB are clamped to 2 GiB. A
	// negative value disables the cache, so that every Get reads Pebble and
	// every Set/Touch/Delete commits its own Pebble batch (NoSync).
	WriteBackBytes int64
	// Now is the clock used for TTL, in unix nanoseconds; default
	// time.Now().UnixNano().
	Now func() int64
	// Logger receives Pebble's log output. The default drops Pebble's
	// informational messages (e.g. "Found 0 WALs") and passes errors to the
	// standard logger.
	Logger pebble.Logger
}

// Stats are counters of one Store. Hits and Misses count Get/Touch lookups
// answered by the write-back cache or by Pebble (with the cache disabled
// every lookup is a miss).
type Stats struct {
	Hits, Misses   uint64
	Entries        int   // cached entries, including cached absent keys
	Dirty          int   // cached entries not yet written to Pebble
	Bytes          int64 // bytes of the cache counted against WriteBackBytes
	Flushes        uint64
	FlushedEntries uint64 // dirty entries written by all flushes
	Evictions      uint64 // clean entries dropped to stay within budget
	Expired        uint64 // expired values deleted (lazily on read, or swept)
}

// Store is the keyed state of one subtask: a Pebble instance behind a
// write-back cache. It is owned by one goroutine and is not safe for
// concurrent use.
type Store struct {
	db     *pebble.DB
	now    func() int64
	closed bool

	// write-back cache (see cache.go); disabled when budget < 0.
	budget int64 // flush, evict and compact when cacheBytes exceeds it
	low    int64 // evict down to this (75% of budget)
	seed   maphash.Seed
	arena  []byte
	slots  []uint64
	mask   uint64
	n      int      // records in the index
	live   int64    // arena bytes of records in the index
	dirty  []uint32 // offsets of records made dirty since the last flush
	ndirty int      // dirty records (dirty may also list dead ones)
	hand   uint32   // eviction clock hand: an arena offset
	last   uint32   // offset+1 of the last record looked up, 0 if none

	kbuf   []byte // encoded key of the current call
	tmp    []byte // scratch
	vbuf   []byte // encoded value (cache disabled)
	cursor []byte // where the next SweepExpired starts
	stats  Stats

	// ckpt is the asynchronous checkpoint in progress (nil: none). While
	// it runs nothing is written to Pebble: the cache absorbs writes (up to
	// twice its budget), and a write that must reach Pebble waits for it.
	ckpt *asyncCheckpoint
}

type asyncCheckpoint struct {
	done chan struct{}
	err  error
}

// Open opens (creating if needed) the Pebble database in opts.Dir.
func Open(opts Options) (*Store, error) {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	dir := opts.Dir
	if dir == "" {
		if _, mem := fs.(*vfs.MemFS); !mem {
			return nil, errors.New("state: Options.Dir is required")
		}
		dir = "/"
	}
	cacheBytes := opts.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	logger := opts.Logger
	if logger == nil {
		logger = quietLogger{}
	}
	cache := pebble.NewCache(cacheBytes)
	defer cache.Unref() // the DB holds its own reference

	po := &pebble.Options{
		FS:                 fs,
		Cache:              cache,
		Logger:             logger,
		FormatMajorVersion: pebble.FormatNewest,
		// The write-back cache hands Pebble one large batch per checkpoint:
		// a memtable that holds it avoids a flush per checkpoint, and a high
		// L0 stop threshold keeps a burst of flushes from stalling the
		// subtask (compactions catch up in the background).
		MemTableSize:                16 << 20,
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       64,
	}
	// Bloom filters make Gets of absent keys (new keys) cheap.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		po.Levels[i].FilterType = pebble.TableFilter
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("state: open %q: %w", dir, err)
	}

	s := &Store{db: db, now: opts.Now}
	if s.now == nil {
		s.now = func() int64 { return time.Now().UnixNano() }
	}
	switch wb := opts.WriteBackBytes; {
	case wb < 0:
		s.budget = -1
	case wb == 0:
		s.budget = DefaultWriteBackBytes
	default:
		s.budget = min(wb, maxWriteBack)
	}
	if s.budget >= 0 {
		s.low = s.budget / 4 * 3
		s.seed = maphash.MakeSeed()
		s.slots = make([]uint64, minSlots)
		s.mask = minSlots - 1
	}
	return s, nil
}

func (s *Store) cacheOn() bool { return s.budget >= 0 }

func (s *Store) check(k Key) error {
	if s.closed {
		return ErrClosed
	}
	if !k.Space.Valid() {
		return fmt.Errorf("%w: undefined space %d", ErrInvalidKey, uint8(k.Space))
	}
	return nil
}

func (s *Store) expired(expiresAt int64) bool {
	return expiresAt != 0 && s.now() >= expiresAt
}

// Get returns the value stored under k. Expired values are not returned
// (and are deleted lazily). The returned slice is owned by the store and
// must not be modified. Its bytes stay intact until the next Set of the
// same key: other Gets, Touch, Delete, writes of other keys, flushes,
// evictions and compactions never overwrite them. Copy it to keep it
// across a Set of k.
func (s *Store) Get(k Key) (value []byte, ok bool, err error) {
	if err := s.check(k); err != nil {
		return nil, false, err
	}
	if !s.cacheOn() {
		s.kbuf = EncodeKey(s.kbuf[:0], k)
		return s.getDirect()
	}
	r, err := s.load(k, false)
	if err != nil {
		return nil, false, err
	}
	if r.flags&fPresent == 0 {
		return nil, false, s.maybeShrink()
	}
	if s.expired(s.expiresAt(&r)) {
		s.stats.Expired++
		s.write(r, nil, 0, false)
		return nil, false, s.maybeShrink()
	}
	// Compaction (in maybeShrink) moves records to a fresh arena and leaves
	// this slice's bytes untouched.
	v := s.value(&r)
	return v, true, s.maybeShrink()
}

// load returns the record of k, reading Pebble on a miss (absence is cached
// too). It leaves the encoded key in s.kbuf and does not shrink the cache.
func (s *Store) load(k Key, memo bool) (rec, error) {
	r, ok := s.lookup(k, memo)
	if ok {
		s.stats.Hits++
		if r.flags&fRef == 0 {
			r.flags |= fRef
			s.arena[r.off] = r.flags
		}
		return r, nil
	}
	s.stats.Misses++
	raw, closer, err := s.db.Get(s.kbuf)
	if errors.Is(err, pebble.ErrNotFound) {
		return s.insert(nil, 0, fRef), nil
	}
	if err != nil {
		return rec{}, err
	}
	defer closer.Close()
	v, exp, err := decodeValue(raw)
	if err != nil {
		return rec{}, fmt.Errorf("state: key %x: %w", s.kbuf, err)
	}
	return s.insert(v, exp, fPresent|fRef), nil
}

// Set stores value under k, expiring at expiresAt (unix ns; 0 = never).
// The store copies value; the caller may reuse it.
func (s *Store) Set(k Key, value []byte, expiresAt int64) error {
	if err := s.check(k); err != nil {
		return err
	}
	if len(value) > MaxValueLen {
		return fmt.Errorf("state: value of %d bytes exceeds %d", len(value), MaxValueLen)
	}
	if !s.cacheOn() {
		s.kbuf = EncodeKey(s.kbuf[:0], k)
		return s.setDirect(value, expiresAt)
	}
	if r, ok := s.lookup(k, true); ok {
		s.write(r, value, expiresAt, true)
	} else {
		s.insert(value, expiresAt, fPresent|fDirty|fRef)
	}
	return s.maybeShrink()
}

// Touch sets the expiry of the live value under k to expiresAt (0 = never),
// e.g. for expire-after-call TTL. It is a no-op if k has no live value.
func (s *Store) Touch(k Key, expiresAt int64) error {
	if err := s.check(k); err != nil {
		return err
	}
	if !s.cacheOn() {
		s.kbuf = EncodeKey(s.kbuf[:0], k)
		return s.touchDirect(expiresAt)
	}
	r, err := s.load(k, true)
	if err != nil {
		return err
	}
	if r.flags&fPresent != 0 {
		switch exp := s.expiresAt(&r); {
		case s.expired(exp):
			s.stats.Expired++
			s.write(r, nil, 0, false)
		case exp != expiresAt:
			s.write(r, s.value(&r), expiresAt, true)
		}
	}
	return s.maybeShrink()
}

// Delete removes the value under k, if any.
func (s *Store) Delete(k Key) error {
	if err := s.check(k); err != nil {
		return err
	}
	if !s.cacheOn() {
		if err := s.awaitCheckpoint(); err != nil {
			return err
		}
		s.kbuf = EncodeKey(s.kbuf[:0], k)
		return s.db.Delete(s.kbuf, pebble.NoSync)
	}
	if r, ok := s.lookup(k, true); ok {
		// A cached absent record is either already a pending delete, or
		// clean, which means Pebble holds nothing live.
		if r.flags&fPresent != 0 {
			s.write(r, nil, 0, false)
		}
	} else {
		s.insert(nil, 0, fDirty|fRef)
	}
	return s.maybeShrink()
}

// Flush writes every dirty cache entry to Pebble in one batch (NoSync, so
// it is durable only once the WAL is synced, e.g. by Checkpoint). Clean
// entries stay cached.
func (s *Store) Flush() error {
	if s.closed {
		return ErrClosed
	}
	return s.flush()
}

func (s *Store) flush() error {
	if !s.cacheOn() || len(s.dirty) == 0 {
		return nil
	}
	if err := s.awaitCheckpoint(); err != nil {
		return err
	}
	b := s.db.NewBatch()
	written := 0
	for _, off := range s.dirty {
		r := s.parse(off)
		if r.flags&(fDead|fDirty) != fDirty {
			continue // superseded by a relocated record
		}
		key := s.key(&r)
		var err error
		if r.flags&fPresent != 0 {
			exp := s.expiresAt(&r)
			op := b.SetDeferred(len(key), valueHeaderLen(exp)+int(r.vlen))
			copy(op.Key, key)
			putValue(op.Value, s.value(&r), exp)
			err = op.Finish()
		} else {
			op := b.DeleteDeferred(len(key))
			copy(op.Key, key)
			err = op.Finish()
		}
		if err != nil {
			_ = b.Close()
			return err
		}
		written++
	}
	err := b.Commit(pebble.NoSync)
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("state: flush: %w", err)
	}
	for _, off := range s.dirty {
		if f := s.arena[off]; f&fDead == 0 {
			s.arena[off] = f &^ fDirty
		}
	}
	s.stats.Flushes++
	s.stats.FlushedEntries += uint64(written)
	s.dirty = s.dirty[:0]
	s.ndirty = 0
	return nil
}

// maybeShrink keeps the cache within its budget: when over it, flush every
// dirty record in one batch, evict clean records down to 75% of the budget
// (CLOCK over the arena: records used since the hand last passed get a
// second chance) and compact. A shrink frees at least a quarter of the
// budget and costs O(cache size), so it is amortised O(1) per inserted
// byte.
func (s *Store) maybeShrink() error {
	if s.cacheBytes() <= s.budget {
		return nil
	}
	if s.checkpointing() && s.cacheBytes() <= 2*s.budget {
		return nil // let the checkpoint finish before writing to Pebble
	}
	if err := s.flush(); err != nil {
		return err
	}
	s.evictAndCompact()
	return nil
}

// Cache-disabled paths: every call goes to Pebble.

// read reads and decodes key from Pebble; the payload is a fresh copy.
func (s *Store) read(key []byte) (payload []byte, expiresAt int64, found bool, err error) {
	raw, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	p, exp, err := decodeValue(raw)
	if err == nil {
		payload = make([]byte, len(p))
		copy(payload, p)
	}
	if cerr := closer.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("state: key %x: %w", key, err)
	}
	return payload, exp, true, nil
}

func (s *Store) getDirect() ([]byte, bool, error) {
	s.stats.Misses++
	v, exp, found, err := s.read(s.kbuf)
	if err != nil || !found {
		return nil, false, err
	}
	if s.expired(exp) {
		s.stats.Expired++
		if err := s.awaitCheckpoint(); err != nil {
			return nil, false, err
		}
		return nil, false, s.db.Delete(s.kbuf, pebble.NoSync)
	}
	return v, true, nil
}

func (s *Store) setDirect(value []byte, expiresAt int64) error {
	if err := s.awaitCheckpoint(); err != nil {
		return err
	}
	n := valueHeaderLen(expiresAt) + len(value)
	if cap(s.vbuf) < n {
		s.vbuf = make([]byte, n, 2*n)
	}
	s.vbuf = s.vbuf[:n]
	putValue(s.vbuf, value, expiresAt)
	return s.db.Set(s.kbuf, s.vbuf, pebble.NoSync)
}

func (s *Store) touchDirect(expiresAt int64) error {
	s.stats.Misses++
	v, exp, found, err := s.read(s.kbuf)
	if err != nil || !found {
		return err
	}
	if s.expired(exp) {
		s.stats.Expired++
		if err := s.awaitCheckpoint(); err != nil {
			return err
		}
		return s.db.Delete(s.kbuf, pebble.NoSync)
	}
	if exp == expiresAt {
		return nil
	}
	return s.setDirect(v, expiresAt)
}

// Checkpoint flushes the cache and writes a Pebble checkpoint (hard links,
// WAL synced first) to dir, which must not exist. The checkpoint opens as a
// Store with the contents at the time of the call.
func (s *Store) Checkpoint(dir string) error {
	wait, err := s.CheckpointAsync(dir)
	if err != nil {
		return err
	}
	return wait()
}

// CheckpointAsync is Checkpoint with a short synchronous part: it flushes
// the cache, then writes the Pebble checkpoint on another goroutine and
// returns a function that waits for it. Until the checkpoint is done the
// store writes nothing to Pebble (the cache absorbs writes, up to twice its
// budget; a write that must reach Pebble waits), so the checkpoint holds
// exactly the contents at the time of the call. wait may be called from
// any goroutine.
func (s *Store) CheckpointAsync(dir string) (wait func() error, err error) {
	if s.closed {
		return nil, ErrClosed
	}
	if err := s.flush(); err != nil {
		return nil, err
	}
	if err := s.awaitCheckpoint(); err != nil {
		return nil, err
	}
	c := &asyncCheckpoint{done: make(chan struct{})}
	s.ckpt = c
	go func() {
		defer close(c.done)
		if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
			c.err = fmt.Errorf("state: checkpoint %q: %w", dir, err)
		}
	}()
	return func() error { <-c.done; return c.err }, nil
}

func (s *Store) checkpointing() bool {
	if s.ckpt == nil {
		return false
	}
	select {
	case <-s.ckpt.done:
		return false
	default:
		return true
	}
}

// awaitCheckpoint waits for the asynchronous checkpoint in progress, if
// any. Its outcome goes to its waiter, not to the write that waited.
func (s *Store) awaitCheckpoint() error {
	if s.ckpt == nil {
		return nil
	}
	<-s.ckpt.done
	s.ckpt = nil
	return nil
}

// Scan flushes the cache, then calls fn for every live value in the key
// groups of r, in encoded-key order (key group, space, address, name).
// value is valid only during the call. Scan stops at and returns the first
// error of fn. Writes made by fn are not seen by the running scan.
func (s *Store) Scan(r dataflow.KeyGroupRange, fn func(k Key, value []byte, expiresAt int64) error) error {
	if s.closed {
		return ErrClosed
	}
	if err := s.flush(); err != nil {
		return err
	}
	if r.End <= r.Start {
		return nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: keyGroupPrefix(r.Start),
		UpperBound: keyGroupPrefix(r.End),
	})
	if err != nil {
		return err
	}
	now := s.now()
	for ok := it.First(); ok; ok = it.Next() {
		k, err := DecodeKey(it.Key())
		if err != nil {
			_ = it.Close()
			return err
		}
		raw, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		v, exp, err := decodeValue(raw)
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("state: %v: %w", k, err)
		}
		if exp != 0 && now >= exp {
			continue
		}
		if err := fn(k, v, exp); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// SweepExpired deletes up to limit expired values from Pebble (background
// TTL cleanup) and returns how many it deleted. Successive calls continue
// where the previous one stopped and wrap around, and one call examines at
// most max(16*limit, 1024) stored values, so it is safe to call
// periodically on the subtask goroutine. Values overridden by dirty cache
// entries are left to the next Flush.
func (s *Store) SweepExpired(limit int) (int, error) {
	if s.closed {
		return 0, ErrClosed
	}
	if limit <= 0 {
		return 0, nil
	}
	if err := s.awaitCheckpoint(); err != nil {
		return 0, err
	}
	examine := max(1024, 16*min(limit, 1<<26))
	now := s.now()
	b := s.db.NewBatch()
	defer b.Close()
	var swept []uint32 // clean cached records whose value is deleted
	deleted := 0

	// Pass 0 covers [cursor, end), pass 1 [start, cursor).
	var newCursor []byte
	for pass := 0; pass < 2; pass++ {
		var io pebble.IterOptions
		if pass == 0 {
			io.LowerBound = s.cursor
		} else {
			if len(s.cursor) == 0 {
				break // pass 0 covered everything
			}
			io.UpperBound = s.cursor
		}
		it, err := s.db.NewIter(&io)
		if err != nil {
			return 0, err
		}
		var ok bool
		for ok = it.First(); ok && deleted < limit && examine > 0; ok = it.Next() {
			examine--
			key := it.Key()
			raw, err := it.ValueAndErr()
			if err != nil {
				_ = it.Close()
				return 0, err
			}
			_, exp, err := decodeValue(raw)
			if err != nil {
				_ = it.Close()
				return 0, fmt.Errorf("state: key %x: %w", key, err)
			}
			if exp == 0 || now < exp {
				continue
			}
			if s.cacheOn() {
				if _, r, cached := s.find(key, s.hash(key)); cached {
					if r.flags&fDirty != 0 {
						continue // the cache holds a newer write
					}
					swept = append(swept, r.off)
				}
			}
			if err := b.Delete(key, nil); err != nil {
				_ = it.Close()
				return 0, err
			}
			deleted++
		}
		stopped := ok // positioned at the first key not examined
		if stopped {
			newCursor = append([]byte(nil), it.Key()...)
		}
		if err := it.Close(); err != nil {
			return 0, err
		}
		if stopped {
			break
		}
	}
	if deleted > 0 {
		if err := b.Commit(pebble.NoSync); err != nil {
			return 0, fmt.Errorf("state: sweep: %w", err)
		}
	}
	s.cursor = newCursor
	for _, off := range swept {
		// Clean and expired: now a clean absent record, as in Pebble.
		r := s.parse(off)
		r.flags &^= fPresent
		s.arena[off] = r.flags
		s.setVlen(&r, 0)
		if r.flags&fExp != 0 {
			s.putExpiresAt(&r, 0)
		}
	}
	s.stats.Expired += uint64(deleted)
	return deleted, nil
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := s.stats
	st.Entries = s.n
	st.Dirty = s.ndirty
	st.Bytes = s.cacheBytes()
	return st
}

// Close flushes the cache and closes Pebble. It is idempotent; every other
// method returns ErrClosed afterwards.
func (s *Store) Close() error {
	if s.closed {
		return nil
	}
	err := s.flush()
	if werr := s.awaitCheckpoint(); err == nil {
		err = werr
	}
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	s.closed = true
	s.db = nil
	s.arena, s.slots, s.dirty = nil, nil, nil
	s.n, s.ndirty, s.live, s.last, s.hand = 0, 0, 0, 0, 0
	return err
}

// quietLogger drops Pebble's informational messages.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	log.Printf("pebble: "+format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	log.Fatalf("pebble: "+format, args...)
}
