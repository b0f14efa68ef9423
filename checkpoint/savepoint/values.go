package savepoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/statefun-go/statefun/statefun"
)

// Well-known types: the io.statefun.types wrappers of the SDK.
var wellKnown = map[string]statefun.PrimitiveType{
	"io.statefun.types/bool":   statefun.BoolType,
	"io.statefun.types/int":    statefun.Int32Type,
	"io.statefun.types/long":   statefun.Int64Type,
	"io.statefun.types/float":  statefun.Float32Type,
	"io.statefun.types/double": statefun.Float64Type,
	"io.statefun.types/string": statefun.StringType,
}

// typeAliases are the short names Import accepts for value_type.
var typeAliases = map[string]string{
	"bool": "io.statefun.types/bool", "boolean": "io.statefun.types/bool",
	"int": "io.statefun.types/int", "int32": "io.statefun.types/int",
	"long": "io.statefun.types/long", "int64": "io.statefun.types/long",
	"float": "io.statefun.types/float", "float32": "io.statefun.types/float",
	"double": "io.statefun.types/double", "float64": "io.statefun.types/double",
	"string": "io.statefun.types/string",
}

func canonicalType(t string) string {
	if full, ok := typeAliases[strings.ToLower(t)]; ok {
		return full
	}
	return t
}

// decodeWellKnown decodes v as the well-known typename and returns the
// value as JSON. ok is false when typename is not well-known, v does not
// decode, or re-encoding the value would not give v back byte for byte
// (so that importing the decoded form reproduces the savepoint exactly).
func decodeWellKnown(typename string, v []byte) (json.RawMessage, bool) {
	pt, known := wellKnown[typename]
	if !known {
		return nil, false
	}
	var x any
	switch pt {
	case statefun.BoolType:
		var b bool
		x = &b
	case statefun.Int32Type:
		var i int32
		x = &i
	case statefun.Int64Type:
		var i int64
		x = &i
	case statefun.Float32Type:
		var f float32
		x = &f
	case statefun.Float64Type:
		var f float64
		x = &f
	case statefun.StringType:
		var s string
		x = &s
	}
	if statefun.DecodeValue(pt, v, x) != nil {
		return nil, false
	}
	again, err := statefun.EncodeValue(pt, x)
	if err != nil || !bytes.Equal(again, v) {
		return nil, false
	}
	switch f := x.(type) {
	case *float32:
		if math.IsNaN(float64(*f)) || math.IsInf(float64(*f), 0) {
			return nil, false
		}
	case *float64:
		if math.IsNaN(*f) || math.IsInf(*f, 0) {
			return nil, false
		}
	}
	out, err := json.Marshal(x)
	if err != nil {
		return nil, false
	}
	return out, true
}

// inferState guesses the type of a state value, whose typename is not
// stored. Among the well-known types only two encodings are unambiguous:
// a StringWrapper (tag 0x0a, length, UTF-8) and a BooleanWrapper holding
// true (0x08 0x01). A 5-byte fixed32 wrapper is an int or a float and a
// 9-byte fixed64 wrapper a long or a double: both readings are returned as
// candidates. Empty values (the zero value of every type) are left alone.
// NB: a user protobuf message can have the same bytes; the guess is only
// about io.statefun.types.
func inferState(v []byte) (typename string, decoded json.RawMessage, candidates map[string]json.RawMessage) {
	switch {
	case len(v) == 2 && v[0] == 0x08 && v[1] == 0x01:
		return "io.statefun.types/bool", json.RawMessage("true"), nil
	case len(v) > 1 && v[0] == 0x0a:
		if d, ok := decodeWellKnown("io.statefun.types/string", v); ok {
			return "io.statefun.types/string", d, nil
		}
	case len(v) == 5 && v[0] == 0x0d:
		return "", nil, candidatesOf(v, "io.statefun.types/int", "io.statefun.types/float")
	case len(v) == 9 && v[0] == 0x09:
		return "", nil, candidatesOf(v, "io.statefun.types/long", "io.statefun.types/double")
	}
	return "", nil, nil
}

func candidatesOf(v []byte, types ...string) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for _, t := range types {
		if d, ok := decodeWellKnown(t, v); ok {
			m[t] = d
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// jsonValue returns v as JSON when it is a compact JSON object or array
// (a value of a JSON type, statefun.MakeJsonType), so that importing it
// gives v back.
func jsonValue(v []byte) json.RawMessage {
	if len(v) == 0 || (v[0] != '{' && v[0] != '[') || !json.Valid(v) {
		return nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) != nil || !bytes.Equal(buf.Bytes(), v) {
		return nil
	}
	return json.RawMessage(v)
}

// encodeDecoded turns a value_decoded of the declared type back into bytes:
// a well-known type (full name or alias) with the SDK's encoding, any other
// type as compact JSON (the encoding of statefun.MakeJsonType).
func encodeDecoded(typename string, raw json.RawMessage) ([]byte, error) {
	pt, known := wellKnown[canonicalType(typename)]
	if !known {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, fmt.Errorf("value_decoded: %w", err)
		}
		return buf.Bytes(), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("value_decoded: %w", err)
	}
	bad := func() ([]byte, error) {
		return nil, fmt.Errorf("value_decoded %s is not a %s", raw, canonicalType(typename))
	}
	var v any
	switch pt {
	case statefun.BoolType:
		b, ok := x.(bool)
		if !ok {
			return bad()
		}
		v = b
	case statefun.StringType:
		s, ok := x.(string)
		if !ok {
			return bad()
		}
		v = s
	case statefun.Int32Type, statefun.Int64Type:
		n, ok := x.(json.Number)
		if !ok {
			return bad()
		}
		bits := 64
		if pt == statefun.Int32Type {
			bits = 32
		}
		i, err := strconv.ParseInt(n.String(), 10, bits)
		if err != nil {
			return bad()
		}
		if bits == 32 {
			v = int32(i)
		} else {
			v = i
		}
	case statefun.Float32Type, statefun.Float64Type:
		n, ok := x.(json.Number)
		if !ok {
			return bad()
		}
		bits := 64
		if pt == statefun.Float32Type {
			bits = 32
		}
		f, err := strconv.ParseFloat(n.String(), bits)
		if err != nil {
			return bad()
		}
		if bits == 32 {
			v = float32(f)
		} else {
			v = f
		}
	}
	return statefun.EncodeValue(pt, v)
}
