package state

import (
	"encoding/binary"
	"hash/maphash"
	"unsafe"
)

// The write-back cache keeps every cached key and value in one byte arena,
// indexed by an open-addressing hash table of uint64 slots. It holds no Go
// pointers per entry (the garbage collector never scans it), and a lookup
// touches one slot and one record, usually two cache lines.
//
// Record at arena offset off:
//
//	flags      u8       fPresent|fDirty|fRef|fExp|fDead
//	klen       uvarint
//	vcap       uvarint  capacity of the value area
//	vlen       uvarint  padded to the width of vcap, so it can be rewritten in place
//	expiresAt  8 bytes  big-endian, only if fExp (0 = never)
//	key        klen bytes (the encoded Key)
//	value      vcap bytes, the first vlen are the value
//
// A Set whose value fits the value area (and whose expiry fits the header)
// rewrites the record in place; otherwise it appends a new record and marks
// the old one dead. Dead records and evicted records are reclaimed by
// compaction, which copies the live records into a fresh arena and rebuilds
// the index. A fresh arena is allocated (never the old one reused) so that a
// slice returned by Get stays intact. Value bytes are only ever overwritten
// by a Set of the same key (in place, or by rewriting the last record of
// the arena); Touch passes the record's own value and therefore relocates
// instead of rewriting.
//
// Index slot: 0 = empty, else hash32<<32 | (offset+1); linear probing, at
// most 75% full. There are no deletions: a record leaves the index only when
// compaction rebuilds it. The home slot of an entry is hash32 & mask, so the
// index grows without touching the arena.

// record flags.
const (
	fPresent = 1 << iota // the key has a value (otherwise: known absent)
	fDirty               // differs from Pebble; its offset is in Store.dirty
	fRef                 // accessed since the eviction hand last passed
	fExp                 // the header has an expiresAt field
	fDead                // superseded or evicted; reclaimed by compaction
)

const (
	// maxWriteBack bounds WriteBackBytes so that arena offsets fit in 32 bits
	// (arena ≤ budget + one record ≤ 2 GiB + 1 GiB).
	maxWriteBack = 2 << 30
	// MaxValueLen is the largest value Set accepts.
	MaxValueLen = 1 << 30
	minSlots    = 8
	minArena    = 1 << 10
)

// rec is a parsed record header.
type rec struct {
	off    uint32
	keyAt  uint32 // the expiresAt field, if any, is the 8 bytes before
	klen   uint32
	vlen   uint32
	vcap   uint32
	vlenAt uint32 // offset of the vlen field
	vlenW  uint8  // its width
	flags  byte
}

func (r *rec) valAt() uint32 { return r.keyAt + r.klen }
func (r *rec) end() uint32   { return r.keyAt + r.klen + r.vcap }

func (s *Store) parse(off uint32) rec {
	a := s.arena[off:]
	r := rec{off: off, flags: a[0]}
	var p uint32
	if len(a) >= 4 && a[1]|a[2]|a[3] < 0x80 {
		// Fast path: key and value shorter than 128 bytes.
		r.klen, r.vcap, r.vlen = uint32(a[1]), uint32(a[2]), uint32(a[3])
		r.vlenAt, r.vlenW = off+3, 1
		p = off + 4
	} else {
		r.klen, p = uvarintAt(s.arena, off+1)
		r.vcap, p = uvarintAt(s.arena, p)
		r.vlenAt = p
		r.vlen, p = uvarintAt(s.arena, p)
		r.vlenW = uint8(p - r.vlenAt)
	}
	if r.flags&fExp != 0 {
		p += 8
	}
	r.keyAt = p
	return r
}

func (s *Store) key(r *rec) []byte { return s.arena[r.keyAt : r.keyAt+r.klen] }

func (s *Store) value(r *rec) []byte {
	v := r.valAt()
	return s.arena[v : v+r.vlen : v+r.vlen]
}

func (s *Store) putExpiresAt(r *rec, expiresAt int64) {
	binary.BigEndian.PutUint64(s.arena[r.keyAt-8:], uint64(expiresAt))
}

func (s *Store) expiresAt(r *rec) int64 {
	if r.flags&fExp == 0 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(s.arena[r.keyAt-8:]))
}

func uvarintAt(a []byte, p uint32) (uint32, uint32) {
	c := a[p]
	if c < 0x80 {
		return uint32(c), p + 1
	}
	var v uint32
	var shift uint
	for {
		c = a[p]
		p++
		v |= uint32(c&0x7f) << shift
		if c < 0x80 {
			return v, p
		}
		shift += 7
	}
}

// putUvarintN writes v as a uvarint of exactly n bytes (n ≥ its minimal
// width) at b[0:n].
func putUvarintN(b []byte, v uint32, n uint32) {
	for i := uint32(0); i < n-1; i++ {
		b[i] = byte(v) | 0x80
		v >>= 7
	}
	b[n-1] = byte(v)
}

func (s *Store) setVlen(r *rec, n uint32) {
	putUvarintN(s.arena[r.vlenAt:], n, uint32(r.vlenW))
	r.vlen = n
}

func (s *Store) hash(key []byte) uint32 { return uint32(maphash.Bytes(s.seed, key)) }

// find looks key up in the index: its record if found, otherwise the empty
// slot where it would be inserted.
func (s *Store) find(key []byte, h uint32) (slot uint64, r rec, found bool) {
	i := uint64(h) & s.mask
	for {
		v := s.slots[i]
		if v == 0 {
			return i, rec{}, false
		}
		if uint32(v>>32) == h {
			r := s.parse(uint32(v) - 1)
			if string(s.key(&r)) == string(key) {
				return i, r, true
			}
		}
		i = (i + 1) & s.mask
	}
}

// lookup encodes k into s.kbuf and finds its record. With memo, it first
// checks the record of the previous lookup: Get then Set of the same key is
// the common pattern, and the check saves the second hash and probe.
func (s *Store) lookup(k Key, memo bool) (rec, bool) {
	s.kbuf = EncodeKey(s.kbuf[:0], k)
	if l := s.last; memo && l != 0 {
		r := s.parse(l - 1)
		if r.flags&fDead == 0 && string(s.key(&r)) == string(s.kbuf) {
			return r, true
		}
	}
	_, r, ok := s.find(s.kbuf, s.hash(s.kbuf))
	if ok {
		s.last = r.off + 1
	}
	return r, ok
}

// reserve makes room for n more arena bytes. Growth doubles, but not beyond
// the budget unless a single record needs it.
func (s *Store) reserve(n int) {
	l := len(s.arena)
	if l+n <= cap(s.arena) {
		return
	}
	c := max(2*cap(s.arena), minArena)
	c = min(c, max(int(s.budget), minArena))
	c = max(c, l+n)
	a := make([]byte, l, c)
	copy(a, s.arena)
	s.arena = a
}

// appendRecord appends a record for key and returns its offset. The value
// area is exactly len(val) bytes. The caller lists it in s.dirty if needed.
func (s *Store) appendRecord(key, val []byte, expiresAt int64, flags byte) uint32 {
	flags &^= fExp
	if expiresAt != 0 {
		flags |= fExp
	}
	klen, vlen := uint32(len(key)), uint32(len(val))
	vw := uint32(uvarintLen(int(vlen)))
	n := 1 + uvarintLen(int(klen)) + 2*int(vw) + len(key) + len(val)
	if flags&fExp != 0 {
		n += 8
	}
	s.reserve(n)
	off := uint32(len(s.arena))
	a := s.arena[:int(off)+n]
	a[off] = flags
	p := off + 1
	p += uint32(binary.PutUvarint(a[p:], uint64(klen)))
	putUvarintN(a[p:], vlen, vw)
	p += vw
	putUvarintN(a[p:], vlen, vw)
	p += vw
	if flags&fExp != 0 {
		binary.BigEndian.PutUint64(a[p:], uint64(expiresAt))
		p += 8
	}
	p += uint32(copy(a[p:], key))
	copy(a[p:], val)
	s.arena = a
	s.live += int64(n)
	return off
}

// insert adds a new record for the key in s.kbuf (which is not cached).
func (s *Store) insert(val []byte, expiresAt int64, flags byte) rec {
	if (s.n+1)*4 > len(s.slots)*3 {
		s.rehash(len(s.slots) * 2)
	}
	h := s.hash(s.kbuf)
	slot, _, _ := s.find(s.kbuf, h)
	off := s.appendRecord(s.kbuf, val, expiresAt, flags)
	if flags&fDirty != 0 {
		s.dirty = append(s.dirty, off)
		s.ndirty++
	}
	s.slots[slot] = uint64(h)<<32 | uint64(off+1)
	s.n++
	s.last = off + 1
	return s.parse(off)
}

// rehash rebuilds the index with size slots from the current one.
func (s *Store) rehash(size int) {
	old := s.slots
	s.slots = make([]uint64, size)
	s.mask = uint64(size - 1)
	for _, v := range old {
		if v == 0 {
			continue
		}
		i := uint64(uint32(v>>32)) & s.mask
		for s.slots[i] != 0 {
			i = (i + 1) & s.mask
		}
		s.slots[i] = v
	}
}

func slotsFor(n int) int {
	size := minSlots
	for size*3 < n*4 {
		size *= 2
	}
	return size
}

// markDirty flags record r dirty (listing it once).
func (s *Store) markDirty(r *rec) {
	if r.flags&fDirty == 0 {
		s.dirty = append(s.dirty, r.off)
		s.ndirty++
	}
	r.flags |= fDirty | fRef
	s.arena[r.off] = r.flags
}

// write stores value/expiresAt/presence into record r, in place when it
// fits, otherwise by relocating the record. The record becomes dirty.
func (s *Store) write(r rec, val []byte, expiresAt int64, present bool) {
	off := r.off
	if uint32(len(val)) <= r.vcap && (expiresAt == 0 || r.flags&fExp != 0) {
		s.markDirty(&r)
		if present {
			r.flags |= fPresent
		} else {
			r.flags &^= fPresent
		}
		s.arena[r.off] = r.flags
		copy(s.arena[r.valAt():], val)
		s.setVlen(&r, uint32(len(val)))
		if r.flags&fExp != 0 {
			s.putExpiresAt(&r, expiresAt)
		}
		return
	}
	flags := byte(fDirty | fRef)
	if present {
		flags |= fPresent
	}
	if r.end() == uint32(len(s.arena)) {
		// The last record (typically just inserted by a Get miss): rewrite it
		// at the same offset, so neither the index nor the dirty list change.
		// The old bytes are only overwritten when val does not alias them.
		if !aliases(s.arena[r.off:r.end()], val) {
			if r.flags&fDirty == 0 {
				s.dirty = append(s.dirty, off)
				s.ndirty++
			}
			s.tmp = append(s.tmp[:0], s.key(&r)...) // the rewrite overwrites it
			s.arena = s.arena[:off]
			s.live -= int64(r.end() - r.off)
			s.appendRecord(s.tmp, val, expiresAt, flags)
			return
		}
	}
	// Relocate: the old record dies, a new dirty one takes its slot.
	if r.flags&fDirty != 0 {
		s.ndirty-- // its dirty-list entry is skipped from now on
	}
	s.arena[off] = r.flags&fExp | fDead // fExp stays: it shapes the header
	s.live -= int64(r.end() - r.off)
	key := s.key(&r) // the old bytes stay in place (dead) while copied
	h := s.hash(key)
	i := uint64(h) & s.mask
	for uint32(s.slots[i])-1 != off || uint32(s.slots[i]>>32) != h {
		i = (i + 1) & s.mask
	}
	noff := s.appendRecord(key, val, expiresAt, flags) // may move s.arena; key aliases the old one
	s.dirty = append(s.dirty, noff)
	s.ndirty++
	s.slots[i] = uint64(h)<<32 | uint64(noff+1)
	s.last = noff + 1
}

// evictAndCompact evicts clean records (CLOCK: a record with fRef set gets
// a second chance) until the cache fits in s.low, then compacts. It must be
// called with no dirty records.
func (s *Store) evictAndCompact() {
	arenaLen := uint32(len(s.arena))
	fits := func() bool { return s.live+8*int64(slotsFor(s.n)) <= s.low }
	for walked := uint64(0); !fits() && walked < 2*uint64(arenaLen); {
		if s.hand >= arenaLen {
			s.hand = 0
		}
		r := s.parse(s.hand)
		size := r.end() - r.off
		walked += uint64(size)
		s.hand = r.end()
		switch {
		case r.flags&fDead != 0:
		case r.flags&fRef != 0:
			s.arena[r.off] = r.flags &^ fRef
		default:
			s.arena[r.off] = r.flags&fExp | fDead
			s.live -= int64(size)
			s.n--
			s.stats.Evictions++
		}
	}
	s.compact()
}

// compact copies the live records into a fresh arena and rebuilds the index.
func (s *Store) compact() {
	old := s.arena
	c := max(minArena, int(s.live))
	if int64(cap(old)) <= s.budget {
		c = max(c, cap(old)) // it grew to that size before; avoid regrowing
	}
	na := make([]byte, 0, c)
	size := slotsFor(s.n)
	if size == len(s.slots) {
		clear(s.slots)
	} else {
		s.slots = make([]uint64, size)
		s.mask = uint64(size - 1)
	}
	hand, handSet := uint32(0), false
	for off := uint32(0); off < uint32(len(old)); {
		r := s.parse(off)
		end := r.end()
		if !handSet && off >= s.hand {
			hand, handSet = uint32(len(na)), true
		}
		if r.flags&fDead == 0 {
			noff := uint32(len(na))
			na = append(na, old[off:end]...)
			h := s.hash(old[r.keyAt : r.keyAt+r.klen])
			i := uint64(h) & s.mask
			for s.slots[i] != 0 {
				i = (i + 1) & s.mask
			}
			s.slots[i] = uint64(h)<<32 | uint64(noff+1)
		}
		off = end
	}
	s.arena = na
	s.live = int64(len(na))
	s.hand = hand
	s.last = 0
	s.dirty = s.dirty[:0]
}

// cacheBytes is the cache's memory estimate: arena plus index.
func (s *Store) cacheBytes() int64 { return int64(len(s.arena)) + 8*int64(len(s.slots)) }

// aliases reports whether a and b share memory.
func aliases(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	a0, b0 := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&b[0]))
	return a0 < b0+uintptr(len(b)) && b0 < a0+uintptr(len(a))
}
