// Package opstate is the codec of a function subtask's queued work in a
// snapshot (the "operator" blob): remote invocations in flight and queued,
// the local FIFO, and delayed messages with their owners and tokens.
//
// The dispatcher writes and restores it; the savepoint converter reads and
// writes it. It is a leaf (only the envelope codec), versioned by its first
// byte, and Decode never panics on bad input.
//
// Layout: version u8 (1), then three sections, each a uvarint count:
// remote invocations (envelopes, per address in order), the FIFO
// (envelopes), delayed messages (owner namespace, type, id, token as
// length-prefixed strings, fire time as a varint of unix ms, envelope).
// Every envelope is length-prefixed envelope.AppendEncode output.
package opstate

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/statefun-go/statefun/statefun/envelope"
)

// Version is the first byte of the encoding.
const Version = 1

// ErrCorrupt marks undecodable input.
var ErrCorrupt = errors.New("opstate: corrupt operator snapshot")

// Delayed is one pending delayed message.
type Delayed struct {
	Owner    envelope.Address // the sender; tokens are scoped to it
	Token    string           // "" when not cancellable
	FireAt   int64            // unix milliseconds
	Envelope *envelope.Envelope
}

// State is the queued work of one subtask.
type State struct {
	Remote  []*envelope.Envelope // remote invocations: in flight first, then queued, per address
	Queued  []*envelope.Envelope // the local FIFO, front first
	Delayed []Delayed
}

// Encode returns the encoding of s.
func Encode(s *State) []byte {
	b := []byte{Version}
	var buf []byte
	for _, list := range [][]*envelope.Envelope{s.Remote, s.Queued} {
		b = binary.AppendUvarint(b, uint64(len(list)))
		for _, e := range list {
			buf = envelope.AppendEncode(buf[:0], e)
			b = appendBytes(b, buf)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.Delayed)))
	for i := range s.Delayed {
		d := &s.Delayed[i]
		b = appendBytes(b, []byte(d.Owner.Namespace))
		b = appendBytes(b, []byte(d.Owner.Type))
		b = appendBytes(b, []byte(d.Owner.ID))
		b = appendBytes(b, []byte(d.Token))
		b = binary.AppendVarint(b, d.FireAt)
		buf = envelope.AppendEncode(buf[:0], d.Envelope)
		b = appendBytes(b, buf)
	}
	return b
}

// Decode parses an encoding made by Encode.
func Decode(blob []byte) (*State, error) {
	if len(blob) == 0 || blob[0] != Version {
		return nil, fmt.Errorf("%w: unknown version", ErrCorrupt)
	}
	r := &reader{b: blob[1:]}
	s := &State{}
	for _, list := range []*[]*envelope.Envelope{&s.Remote, &s.Queued} {
		for n := r.uvarint(); n > 0 && r.err == nil; n-- {
			if e := r.envelope(); r.err == nil {
				*list = append(*list, e)
			}
		}
	}
	for n := r.uvarint(); n > 0 && r.err == nil; n-- {
		d := Delayed{Owner: envelope.Address{Namespace: string(r.bytes()), Type: string(r.bytes()), ID: string(r.bytes())}}
		d.Token = string(r.bytes())
		d.FireAt = r.varint()
		d.Envelope = r.envelope()
		if r.err == nil {
			s.Delayed = append(s.Delayed, d)
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, r.err)
	}
	return s, nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// reader decodes; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errors.New("truncated")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) envelope() *envelope.Envelope {
	raw := r.bytes()
	if r.err != nil {
		return nil
	}
	e, used, err := envelope.Decode(raw)
	if err != nil {
		r.err = err
		return nil
	}
	if used != len(raw) {
		r.err = fmt.Errorf("envelope uses %d of %d bytes", used, len(raw))
	}
	return e
}
