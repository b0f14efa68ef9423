package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Address names one function instance: namespace/type/id.
type Address struct {
	Namespace string
	Type      string
	ID        string
}

// String renders the address as namespace/type/id.
func (a Address) String() string { return a.Namespace + "/" + a.Type + "/" + a.ID }

// FunctionType renders namespace/type.
func (a Address) FunctionType() string { return a.Namespace + "/" + a.Type }

// IsZero reports whether a is the zero address.
func (a Address) IsZero() bool { return a.Namespace == "" && a.Type == "" && a.ID == "" }

// Kind tells what an envelope carries.
type Kind uint8

const (
	// KindMessage is a message to a function (Target is a function address).
	KindMessage Kind = iota
	// KindEgress is a message to an egress: Target.Namespace/Target.Type name
	// the egress, Target.ID is empty.
	KindEgress
)

// Envelope is one message in flight.
type Envelope struct {
	Kind      Kind
	Target    Address
	Caller    Address // valid only when HasCaller
	HasCaller bool
	// Typename is the TypedValue typename, "namespace/name".
	Typename string
	// Value is the serialized payload (TypedValue.value). Owned by the
	// envelope; never mutated after creation.
	Value []byte
}

// Size estimates the heap bytes the envelope holds, for memory budgets.
func (e *Envelope) Size() int {
	return 96 + len(e.Target.Namespace) + len(e.Target.Type) + len(e.Target.ID) +
		len(e.Caller.Namespace) + len(e.Caller.Type) + len(e.Caller.ID) +
		len(e.Typename) + len(e.Value)
}

// ErrCorrupt is returned by Decode for malformed input.
var ErrCorrupt = errors.New("envelope: corrupt encoding")

const codecVersion = 1

// AppendEncode appends the binary encoding of e to dst and returns it.
//
// Layout: version u8, kind u8, flags u8 (bit0: has caller), then the strings
// target.ns, target.type, target.id, [caller.ns, caller.type, caller.id],
// typename, and value, each as uvarint length + bytes.
func AppendEncode(dst []byte, e *Envelope) []byte {
	var flags byte
	if e.HasCaller {
		flags |= 1
	}
	dst = append(dst, codecVersion, byte(e.Kind), flags)
	dst = appendString(dst, e.Target.Namespace)
	dst = appendString(dst, e.Target.Type)
	dst = appendString(dst, e.Target.ID)
	if e.HasCaller {
		dst = appendString(dst, e.Caller.Namespace)
		dst = appendString(dst, e.Caller.Type)
		dst = appendString(dst, e.Caller.ID)
	}
	dst = appendString(dst, e.Typename)
	dst = binary.AppendUvarint(dst, uint64(len(e.Value)))
	return append(dst, e.Value...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Decode parses one envelope from the front of src and returns it with the
// number of bytes consumed. The returned envelope does not alias src.
func Decode(src []byte) (*Envelope, int, error) {
	if len(src) < 3 {
		return nil, 0, fmt.Errorf("%w: %d bytes is too short for a header", ErrCorrupt, len(src))
	}
	if src[0] != codecVersion {
		return nil, 0, fmt.Errorf("%w: unknown version %d", ErrCorrupt, src[0])
	}
	if src[1] > byte(KindEgress) {
		return nil, 0, fmt.Errorf("%w: unknown kind %d", ErrCorrupt, src[1])
	}
	e := &Envelope{Kind: Kind(src[1]), HasCaller: src[2]&1 != 0}
	if src[2]&^1 != 0 {
		return nil, 0, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, src[2])
	}
	d := decoder{buf: src, off: 3}
	e.Target.Namespace = d.str()
	e.Target.Type = d.str()
	e.Target.ID = d.str()
	if e.HasCaller {
		e.Caller.Namespace = d.str()
		e.Caller.Type = d.str()
		e.Caller.ID = d.str()
	}
	e.Typename = d.str()
	e.Value = d.bytes()
	if d.err != nil {
		return nil, 0, d.err
	}
	return e, d.off, nil
}

type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) raw() []byte {
	if d.err != nil {
		return nil
	}
	n, k := binary.Uvarint(d.buf[d.off:])
	if k <= 0 {
		d.err = fmt.Errorf("%w: bad length at offset %d", ErrCorrupt, d.off)
		return nil
	}
	d.off += k
	if n > uint64(len(d.buf)-d.off) {
		d.err = fmt.Errorf("%w: length %d overruns buffer at offset %d", ErrCorrupt, n, d.off)
		return nil
	}
	b := d.buf[d.off : d.off+int(n)]
	d.off += int(n)
	return b
}

func (d *decoder) str() string { return string(d.raw()) }

func (d *decoder) bytes() []byte {
	b := d.raw()
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
