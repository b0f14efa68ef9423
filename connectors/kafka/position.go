package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Offsets are next offsets to read, by topic and partition.
type Offsets map[string]map[int32]int64

// set records offset o for topic t partition p.
func (o Offsets) set(t string, p int32, off int64) {
	ps := o[t]
	if ps == nil {
		ps = map[int32]int64{}
		o[t] = ps
	}
	ps[p] = off
}

// lookup returns the offset of t/p.
func (o Offsets) lookup(t string, p int32) (int64, bool) {
	off, ok := o[t][p]
	return off, ok
}

// clone returns a deep copy.
func (o Offsets) clone() Offsets {
	c := make(Offsets, len(o))
	for t, ps := range o {
		c[t] = maps.Clone(ps)
	}
	return c
}

// Position encodings. Each starts with a version byte.
const (
	offsetsVersion = 1
	handleVersion  = 1
)

var errCorrupt = errors.New("kafka: corrupt position")

// encodeOffsets encodes o compactly and deterministically: version,
// topic count, then per topic (sorted) its name, its partition count and
// (partition, offset) pairs sorted by partition, all as uvarints.
func encodeOffsets(o Offsets) []byte {
	b := []byte{offsetsVersion}
	b = binary.AppendUvarint(b, uint64(len(o)))
	for _, t := range slices.Sorted(maps.Keys(o)) {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
		ps := o[t]
		b = binary.AppendUvarint(b, uint64(len(ps)))
		for _, p := range slices.Sorted(maps.Keys(ps)) {
			b = binary.AppendUvarint(b, uint64(uint32(p)))
			b = binary.AppendUvarint(b, uint64(ps[p]))
		}
	}
	return b
}

// decodeOffsets decodes encodeOffsets' output. It never panics.
func decodeOffsets(b []byte) (Offsets, error) {
	if len(b) == 0 || b[0] != offsetsVersion {
		return nil, fmt.Errorf("%w: unknown offsets encoding", errCorrupt)
	}
	d := decoder{b: b[1:]}
	o := Offsets{}
	nt := d.uvarint()
	for i := uint64(0); i < nt && d.err == nil; i++ {
		t := d.str()
		np := d.uvarint()
		for j := uint64(0); j < np && d.err == nil; j++ {
			p, off := d.uvarint(), d.uvarint()
			if p > 1<<31-1 || off > 1<<63-1 {
				d.err = errCorrupt
			}
			if d.err == nil {
				o.set(t, int32(p), int64(off))
			}
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	if d.err != nil {
		return nil, d.err
	}
	return o, nil
}

// txnHandle is the pre-commit handle of an exactly-once sink subtask: the
// transaction that checkpoint n covers, to commit once n is complete (or on
// restore from n).
type txnHandle struct {
	// Open is false when no transaction was pending at the checkpoint.
	Open            bool
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
}

func encodeHandle(h txnHandle) []byte {
	b := []byte{handleVersion}
	if !h.Open {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(h.TransactionalID)))
	b = append(b, h.TransactionalID...)
	b = binary.AppendVarint(b, h.ProducerID)
	return binary.AppendVarint(b, int64(h.ProducerEpoch))
}

func decodeHandle(b []byte) (txnHandle, error) {
	if len(b) < 2 || b[0] != handleVersion || b[1] > 1 {
		return txnHandle{}, fmt.Errorf("%w: unknown transaction handle encoding", errCorrupt)
	}
	if b[1] == 0 {
		if len(b) != 2 {
			return txnHandle{}, errCorrupt
		}
		return txnHandle{}, nil
	}
	d := decoder{b: b[2:]}
	h := txnHandle{Open: true, TransactionalID: d.str(), ProducerID: d.varint()}
	e := d.varint()
	if e < -1<<15 || e > 1<<15-1 || h.ProducerID < 0 || h.TransactionalID == "" {
		d.err = errCorrupt
	}
	h.ProducerEpoch = int16(e)
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	if d.err != nil {
		return txnHandle{}, d.err
	}
	return h, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
