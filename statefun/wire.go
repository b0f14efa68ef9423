package statefun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file implements the proto3 encoding of the io.statefun.types wrapper
// messages by hand. Each wrapper has a single field `value` with number 1:
//
//	BooleanWrapper { bool     value = 1; }  varint
//	IntWrapper     { sfixed32 value = 1; }  fixed32
//	LongWrapper    { sfixed64 value = 1; }  fixed64
//	FloatWrapper   { float    value = 1; }  fixed32
//	DoubleWrapper  { double   value = 1; }  fixed64
//	StringWrapper  { string   value = 1; }  length-delimited
//
// Encoding follows proto3 implicit presence: a zero value (false, 0, +0.0,
// "") is the empty message. Decoding behaves like proto.Unmarshal: the last
// occurrence of field 1 wins, unknown fields (and field 1 with an unexpected
// wire type) are skipped, and malformed input is an error.

const (
	tagVarint  = byte(1<<3 | protowire.VarintType)  // 0x08
	tagFixed64 = byte(1<<3 | protowire.Fixed64Type) // 0x09
	tagBytes   = byte(1<<3 | protowire.BytesType)   // 0x0A
	tagFixed32 = byte(1<<3 | protowire.Fixed32Type) // 0x0D
)

var (
	errInvalidUTF8 = errors.New("string field contains invalid UTF-8")
	emptyValue     = []byte{}
)

// Error codes understood by protowire.ParseError.
const (
	errCodeTruncated   = -1
	errCodeFieldNumber = -2
)

func wireError(what string, n int) error {
	return fmt.Errorf("malformed %s: %w", what, protowire.ParseError(n))
}

func encodeBoolWrapper(v bool) []byte {
	if !v {
		return emptyValue
	}
	return []byte{tagVarint, 1}
}

func encodeFixed32Wrapper(v uint32) []byte {
	if v == 0 {
		return emptyValue
	}
	b := make([]byte, 5)
	b[0] = tagFixed32
	binary.LittleEndian.PutUint32(b[1:], v)
	return b
}

func encodeFixed64Wrapper(v uint64) []byte {
	if v == 0 {
		return emptyValue
	}
	b := make([]byte, 9)
	b[0] = tagFixed64
	binary.LittleEndian.PutUint64(b[1:], v)
	return b
}

func encodeStringWrapper(v string) ([]byte, error) {
	if len(v) == 0 {
		return emptyValue, nil
	}
	if !utf8.ValidString(v) {
		return nil, errInvalidUTF8
	}
	b := make([]byte, 0, 1+protowire.SizeVarint(uint64(len(v)))+len(v))
	b = append(b, tagBytes)
	b = protowire.AppendVarint(b, uint64(len(v)))
	return append(b, v...), nil
}

// scanWrapper walks a wrapper message and returns the payload of the last
// occurrence of field 1 with wire type want, as the raw bytes of that field's
// value (for varints the decoded value is returned in v). found reports
// whether such a field was present. Length-delimited values (the only one is
// StringWrapper's) must be valid UTF-8.
func scanWrapper(b []byte, want protowire.Type, what string) (raw []byte, v uint64, found bool, err error) {
	for len(b) > 0 {
		// Fast path for the common single-byte tag of field 1.
		num, typ, n := protowire.Number(b[0]>>3), protowire.Type(b[0]&7), 1
		if b[0] >= 0x80 || b[0]>>3 == 0 {
			num, typ, n = protowire.ConsumeTag(b)
			if n < 0 {
				return nil, 0, false, wireError(what, n)
			}
			if num > protowire.MaxValidNumber {
				return nil, 0, false, wireError(what, errCodeFieldNumber)
			}
		}
		b = b[n:]
		if num == 1 && typ == want {
			switch want {
			case protowire.VarintType:
				x, m := protowire.ConsumeVarint(b)
				if m < 0 {
					return nil, 0, false, wireError(what, m)
				}
				v, found, b = x, true, b[m:]
			case protowire.Fixed32Type:
				if len(b) < 4 {
					return nil, 0, false, wireError(what, errCodeTruncated)
				}
				raw, found, b = b[:4], true, b[4:]
			case protowire.Fixed64Type:
				if len(b) < 8 {
					return nil, 0, false, wireError(what, errCodeTruncated)
				}
				raw, found, b = b[:8], true, b[8:]
			case protowire.BytesType:
				x, m := protowire.ConsumeBytes(b)
				if m < 0 {
					return nil, 0, false, wireError(what, m)
				}
				// Like proto.Unmarshal, validate every occurrence, not
				// only the last one.
				if !utf8.Valid(x) {
					return nil, 0, false, errInvalidUTF8
				}
				raw, found, b = x, true, b[m:]
			}
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, 0, false, wireError(what, m)
		}
		b = b[m:]
	}
	return raw, v, found, nil
}

func decodeBoolWrapper(b []byte) (bool, error) {
	if len(b) == 2 && b[0] == tagVarint && b[1] < 0x80 {
		return b[1] != 0, nil
	}
	_, v, _, err := scanWrapper(b, protowire.VarintType, "BooleanWrapper")
	return v != 0, err
}

func decodeFixed32Wrapper(b []byte, what string) (uint32, error) {
	if len(b) == 5 && b[0] == tagFixed32 {
		return binary.LittleEndian.Uint32(b[1:]), nil
	}
	raw, _, found, err := scanWrapper(b, protowire.Fixed32Type, what)
	if err != nil || !found {
		return 0, err
	}
	return binary.LittleEndian.Uint32(raw), nil
}

func decodeFixed64Wrapper(b []byte, what string) (uint64, error) {
	if len(b) == 9 && b[0] == tagFixed64 {
		return binary.LittleEndian.Uint64(b[1:]), nil
	}
	raw, _, found, err := scanWrapper(b, protowire.Fixed64Type, what)
	if err != nil || !found {
		return 0, err
	}
	return binary.LittleEndian.Uint64(raw), nil
}

func decodeStringWrapper(b []byte) (string, error) {
	raw, _, _, err := scanWrapper(b, protowire.BytesType, "StringWrapper")
	if err != nil {
		return "", err
	}
	return string(raw), nil
}
