package state

import "fmt"

// checkInvariants verifies the cache's internal consistency.
func (s *Store) checkInvariants() error {
	if !s.cacheOn() || s.closed {
		return nil
	}
	if len(s.slots) == 0 || len(s.slots)&(len(s.slots)-1) != 0 || s.mask != uint64(len(s.slots)-1) {
		return fmt.Errorf("index size %d mask %d", len(s.slots), s.mask)
	}
	var live int64
	n, dirty := 0, 0
	inDirtyList := map[uint32]bool{}
	for _, off := range s.dirty {
		inDirtyList[off] = true
	}
	handOK := s.hand == uint32(len(s.arena))
	for off := uint32(0); off < uint32(len(s.arena)); {
		if off == s.hand {
			handOK = true
		}
		r := s.parse(off)
		if r.end() > uint32(len(s.arena)) || r.vlen > r.vcap {
			return fmt.Errorf("record %d: end %d > arena %d or vlen %d > vcap %d", off, r.end(), len(s.arena), r.vlen, r.vcap)
		}
		if r.flags&fDead == 0 {
			n++
			live += int64(r.end() - off)
			key := s.key(&r)
			if _, err := DecodeKey(key); err != nil {
				return fmt.Errorf("record %d: %v", off, err)
			}
			if _, got, ok := s.find(key, s.hash(key)); !ok || got.off != off {
				return fmt.Errorf("record %d key %x: index has %d,%v", off, key, got.off, ok)
			}
			if r.flags&fPresent == 0 && r.vlen != 0 {
				return fmt.Errorf("record %d: absent with %d value bytes", off, r.vlen)
			}
			if r.flags&fDirty != 0 {
				dirty++
				if !inDirtyList[off] {
					return fmt.Errorf("record %d: dirty but not listed", off)
				}
			}
		} else if r.flags&^(fDead|fExp) != 0 {
			return fmt.Errorf("record %d: dead with flags %b", off, r.flags)
		}
		off = r.end()
	}
	if !handOK {
		return fmt.Errorf("hand %d is not at a record boundary", s.hand)
	}
	used := 0
	for _, v := range s.slots {
		if v != 0 {
			used++
			if off := uint32(v) - 1; off >= uint32(len(s.arena)) || s.arena[off]&fDead != 0 {
				return fmt.Errorf("slot points to %d: dead or out of range", off)
			}
		}
	}
	if n != s.n || used != n {
		return fmt.Errorf("%d live records, n=%d, %d slots used", n, s.n, used)
	}
	if used*4 > len(s.slots)*3 {
		return fmt.Errorf("index overloaded: %d of %d", used, len(s.slots))
	}
	if live != s.live {
		return fmt.Errorf("live %d, accounted %d", live, s.live)
	}
	if dirty != s.ndirty {
		return fmt.Errorf("%d dirty records, ndirty %d", dirty, s.ndirty)
	}
	return nil
}
