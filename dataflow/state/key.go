package state

import (
	"errors"
	"fmt"

	"github.com/statefun-go/statefun/dataflow"
)

// Space separates the kinds of keyed state stored under one key group. It is
// the third byte of every encoded key, so all keys of one (key group, space)
// pair form one contiguous span. The byte values are part of the on-disk
// format and must never change.
type Space uint8

const (
	// SpaceValue holds function state: one value per (function address,
	// state name). Name is the state name declared by the function.
	SpaceValue Space = 1
	// SpaceDelayed holds delayed messages waiting for their delivery time.
	// The dispatcher chooses Name (e.g. a big-endian due time and sequence
	// number so that a span scan returns them in due order).
	SpaceDelayed Space = 2
	// SpaceTokenIndex maps the cancellation token of a delayed message to the
	// delayed message's key, so a cancellation can find it.
	SpaceTokenIndex Space = 3
	// SpaceRequest holds the per-address state of remote functions: the
	// pending batch and the request in flight (re-sent on restore).
	SpaceRequest Space = 4
	// SpaceMeta holds bookkeeping of the key group itself (not tied to an
	// address; Namespace/Type/ID are usually empty).
	SpaceMeta Space = 5

	maxSpace = SpaceMeta
)

// Valid reports whether s is one of the defined spaces.
func (s Space) Valid() bool { return s-1 < maxSpace }

func (s Space) String() string {
	switch s {
	case SpaceValue:
		return "value"
	case SpaceDelayed:
		return "delayed"
	case SpaceTokenIndex:
		return "token-index"
	case SpaceRequest:
		return "request"
	case SpaceMeta:
		return "meta"
	}
	return fmt.Sprintf("space(%d)", uint8(s))
}

// Key addresses one stored value. All fields are part of the key; Key is
// comparable. The encoded form (see EncodeKey) orders keys by key group,
// then space, then address (namespace, type, id), then name.
type Key struct {
	KeyGroup  dataflow.KeyGroup
	Space     Space
	Namespace string
	Type      string
	ID        string
	Name      string
}

func (k Key) String() string {
	return fmt.Sprintf("kg=%d %s %s/%s/%s:%s", k.KeyGroup, k.Space, k.Namespace, k.Type, k.ID, k.Name)
}

// ErrInvalidKey is returned for a Key with an undefined Space, and wraps
// every DecodeKey error.
var ErrInvalidKey = errors.New("state: invalid key")

// EncodedLen is the length of EncodeKey's output for k.
func EncodedLen(k Key) int {
	return 3 + uvarintLen(len(k.Namespace)) + len(k.Namespace) +
		uvarintLen(len(k.Type)) + len(k.Type) +
		uvarintLen(len(k.ID)) + len(k.ID) + len(k.Name)
}

// EncodeKey appends the encoding of k to dst and returns the extended slice:
//
//	[keyGroup u16 big-endian][space u8]
//	[uvarint len][namespace][uvarint len][type][uvarint len][id]
//	[name: the remaining bytes]
//
// Lengths are canonical (minimal) uvarints. The length-prefixed fields make
// the encoding prefix-free per address, so all names of one address are
// contiguous too.
func EncodeKey(dst []byte, k Key) []byte {
	dst = append(dst, byte(k.KeyGroup>>8), byte(k.KeyGroup), byte(k.Space))
	dst = appendField(dst, k.Namespace)
	dst = appendField(dst, k.Type)
	dst = appendField(dst, k.ID)
	return append(dst, k.Name...)
}

func appendField(dst []byte, s string) []byte {
	n := len(s)
	if n < 0x80 {
		dst = append(dst, byte(n))
	} else {
		for n >= 0x80 {
			dst = append(dst, byte(n)|0x80)
			n >>= 7
		}
		dst = append(dst, byte(n))
	}
	return append(dst, s...)
}

func uvarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// DecodeKey parses an encoded key. It never panics: truncated input, an
// undefined space, a non-canonical or oversized length returns an error
// wrapping ErrInvalidKey. For every b that decodes without error,
// EncodeKey(nil, k) equals b.
func DecodeKey(b []byte) (Key, error) {
	var k Key
	if len(b) < 3 {
		return k, fmt.Errorf("%w: %d bytes, need at least 3", ErrInvalidKey, len(b))
	}
	k.KeyGroup = dataflow.KeyGroup(uint16(b[0])<<8 | uint16(b[1]))
	k.Space = Space(b[2])
	if !k.Space.Valid() {
		return Key{}, fmt.Errorf("%w: undefined space %d", ErrInvalidKey, b[2])
	}
	rest := b[3:]
	var err error
	if k.Namespace, rest, err = readField(rest, "namespace"); err != nil {
		return Key{}, err
	}
	if k.Type, rest, err = readField(rest, "type"); err != nil {
		return Key{}, err
	}
	if k.ID, rest, err = readField(rest, "id"); err != nil {
		return Key{}, err
	}
	k.Name = string(rest)
	return k, nil
}

func readField(b []byte, what string) (string, []byte, error) {
	var n uint64
	for i := 0; ; i++ {
		if i >= len(b) {
			return "", nil, fmt.Errorf("%w: truncated %s length", ErrInvalidKey, what)
		}
		if i >= 5 { // lengths are < 2^35; keys are far shorter
			return "", nil, fmt.Errorf("%w: %s length too long", ErrInvalidKey, what)
		}
		c := b[i]
		n |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c == 0 && i > 0 {
				return "", nil, fmt.Errorf("%w: non-canonical %s length", ErrInvalidKey, what)
			}
			b = b[i+1:]
			break
		}
	}
	if n > uint64(len(b)) {
		return "", nil, fmt.Errorf("%w: %s length %d exceeds remaining %d bytes", ErrInvalidKey, what, n, len(b))
	}
	return string(b[:n]), b[n:], nil
}

// keyGroupPrefix returns the 2-byte encoding of kg, the inclusive lower
// bound of all keys of kg.
func keyGroupPrefix(kg dataflow.KeyGroup) []byte {
	return []byte{byte(kg >> 8), byte(kg)}
}
