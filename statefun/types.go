package statefun

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/proto"
)

// SimpleType interface is a type convertible to and from bytes,
// identified by a TypeName. Implementations are shared between
// goroutines and must therefore be safe for concurrent use.
type SimpleType interface {
	// GetTypeName returns the TypeName that identifies values of this type
	// in messages and persisted state.
	GetTypeName() TypeName

	// Deserialize reads a serialized value from r and stores it in the value
	// pointed to by receiver.
	Deserialize(r io.Reader, receiver interface{}) error

	// Serialize writes the serialized form of data to writer.
	Serialize(writer io.Writer, data interface{}) error
}

// PrimitiveType is one of the built-in types, whose values are encoded as the
// io.statefun.types wrapper messages shared by all StateFun SDKs.
//
// Serialize accepts the Go type named below or a non-nil pointer to it;
// Deserialize requires a non-nil pointer to it:
//
//	BoolType     bool     io.statefun.types/bool
//	Int32Type    int32    io.statefun.types/int
//	Int64Type    int64    io.statefun.types/long
//	Float32Type  float32  io.statefun.types/float
//	Float64Type  float64  io.statefun.types/double
//	StringType   string   io.statefun.types/string
//
// The zero value of each type serializes to an empty byte string.
type PrimitiveType int

// The built-in primitive types.
const (
	BoolType PrimitiveType = iota
	Int32Type
	Int64Type
	Float32Type
	Float64Type
	StringType
)

// GetTypeName returns the typename of the primitive type, for example
// io.statefun.types/long for Int64Type. It returns nil for a PrimitiveType
// value that is not one of the declared constants (the official SDK exits
// the process in that case).
func (p PrimitiveType) GetTypeName() TypeName {
	switch p {
	case BoolType:
		return boolTypeName
	case Int32Type:
		return int32TypeName
	case Int64Type:
		return int64TypeName
	case Float32Type:
		return float32TypeName
	case Float64Type:
		return float64TypeName
	case StringType:
		return stringTypeName
	default:
		return nil
	}
}

// typeNameString returns the canonical typename string without allocating.
func (p PrimitiveType) typeNameString() string {
	switch p {
	case BoolType:
		return boolTypeNameString
	case Int32Type:
		return int32TypeNameString
	case Int64Type:
		return int64TypeNameString
	case Float32Type:
		return float32TypeNameString
	case Float64Type:
		return float64TypeNameString
	case StringType:
		return stringTypeNameString
	default:
		return ""
	}
}

func (p PrimitiveType) unknown() error {
	return fmt.Errorf("unknown primitive type %d", int(p))
}

// Deserialize reads an encoded wrapper message from r and stores its value in
// receiver, which must be a non-nil pointer of the primitive's Go type.
// Malformed input is reported as an error.
func (p PrimitiveType) Deserialize(r io.Reader, receiver interface{}) error {
	if r == nil {
		return errors.New("nil reader")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return p.decode(data, receiver)
}

// Serialize writes the wrapper message encoding of data to writer. data must
// be the primitive's Go type or a non-nil pointer to it.
func (p PrimitiveType) Serialize(writer io.Writer, data interface{}) error {
	b, err := p.encode(data)
	if err != nil {
		return err
	}
	if writer == nil {
		return errors.New("nil writer")
	}
	_, err = writer.Write(b)
	return err
}

var errNilPointer = errors.New("data must not be a nil pointer")

// encode is the allocation-minimal encoder behind Serialize and EncodeValue:
// it allocates only the returned slice (none at all for zero values).
func (p PrimitiveType) encode(data interface{}) ([]byte, error) {
	switch p {
	case BoolType:
		switch v := data.(type) {
		case bool:
			return encodeBoolWrapper(v), nil
		case *bool:
			if v == nil {
				return nil, errNilPointer
			}
			return encodeBoolWrapper(*v), nil
		default:
			return nil, errors.New("data must be of type bool or *bool")
		}
	case Int32Type:
		switch v := data.(type) {
		case int32:
			return encodeFixed32Wrapper(uint32(v)), nil
		case *int32:
			if v == nil {
				return nil, errNilPointer
			}
			return encodeFixed32Wrapper(uint32(*v)), nil
		default:
			return nil, errors.New("data must be of type int32 or *int32")
		}
	case Int64Type:
		switch v := data.(type) {
		case int64:
			return encodeFixed64Wrapper(uint64(v)), nil
		case *int64:
			if v == nil {
				return nil, errNilPointer
			}
			return encodeFixed64Wrapper(uint64(*v)), nil
		default:
			return nil, errors.New("data must be of type int64 or *int64")
		}
	case Float32Type:
		switch v := data.(type) {
		case float32:
			return encodeFixed32Wrapper(math.Float32bits(v)), nil
		case *float32:
			if v == nil {
				return nil, errNilPointer
			}
			return encodeFixed32Wrapper(math.Float32bits(*v)), nil
		default:
			return nil, errors.New("data must be of type float32 or *float32")
		}
	case Float64Type:
		switch v := data.(type) {
		case float64:
			return encodeFixed64Wrapper(math.Float64bits(v)), nil
		case *float64:
			if v == nil {
				return nil, errNilPointer
			}
			return encodeFixed64Wrapper(math.Float64bits(*v)), nil
		default:
			return nil, errors.New("data must be of type float64 or *float64")
		}
	case StringType:
		switch v := data.(type) {
		case string:
			return encodeStringWrapper(v)
		case *string:
			if v == nil {
				return nil, errNilPointer
			}
			return encodeStringWrapper(*v)
		default:
			return nil, errors.New("data must be of type string or *string")
		}
	default:
		return nil, p.unknown()
	}
}

// decode is the allocation-free decoder behind Deserialize and DecodeValue
// (decoding a string allocates the string itself).
func (p PrimitiveType) decode(data []byte, receiver interface{}) error {
	switch p {
	case BoolType:
		r, ok := receiver.(*bool)
		if !ok || r == nil {
			return errors.New("receiver must be of type *bool")
		}
		v, err := decodeBoolWrapper(data)
		if err != nil {
			return err
		}
		*r = v
	case Int32Type:
		r, ok := receiver.(*int32)
		if !ok || r == nil {
			return errors.New("receiver must be of type *int32")
		}
		v, err := decodeFixed32Wrapper(data, "IntWrapper")
		if err != nil {
			return err
		}
		*r = int32(v)
	case Int64Type:
		r, ok := receiver.(*int64)
		if !ok || r == nil {
			return errors.New("receiver must be of type *int64")
		}
		v, err := decodeFixed64Wrapper(data, "LongWrapper")
		if err != nil {
			return err
		}
		*r = int64(v)
	case Float32Type:
		r, ok := receiver.(*float32)
		if !ok || r == nil {
			return errors.New("receiver must be of type *float32")
		}
		v, err := decodeFixed32Wrapper(data, "FloatWrapper")
		if err != nil {
			return err
		}
		*r = math.Float32frombits(v)
	case Float64Type:
		r, ok := receiver.(*float64)
		if !ok || r == nil {
			return errors.New("receiver must be of type *float64")
		}
		v, err := decodeFixed64Wrapper(data, "DoubleWrapper")
		if err != nil {
			return err
		}
		*r = math.Float64frombits(v)
	case StringType:
		r, ok := receiver.(*string)
		if !ok || r == nil {
			return errors.New("receiver must be of type *string")
		}
		v, err := decodeStringWrapper(data)
		if err != nil {
			return err
		}
		*r = v
	default:
		return p.unknown()
	}
	return nil
}

type jsonType struct {
	typeName TypeName
}

// MakeJsonType creates a new SimpleType with a given TypeName
// using the standard Go JSON library (encoding/json). Values are
// written with json.Encoder (so the encoding ends with a newline)
// and read with json.Decoder, exactly as the official SDK.
func MakeJsonType(name TypeName) SimpleType {
	return jsonType{typeName: name}
}

func (j jsonType) GetTypeName() TypeName {
	return j.typeName
}

func (j jsonType) Deserialize(r io.Reader, receiver interface{}) error {
	return json.NewDecoder(r).Decode(receiver)
}

func (j jsonType) Serialize(writer io.Writer, data interface{}) error {
	return json.NewEncoder(writer).Encode(data)
}

type protoType struct {
	typeName TypeName
}

// MakeProtobufType creates a new SimpleType for the given protobuf Message.
// Its typename is `type.googleapis.com/<full message name>`, as used by
// google.protobuf.Any. A nil message yields a type with a nil TypeName,
// which is rejected wherever the type is used.
func MakeProtobufType(m proto.Message) SimpleType {
	if m == nil {
		return protoType{}
	}
	name := proto.MessageName(m)
	tName, _ := TypeNameFromParts("type.googleapis.com", string(name))
	return MakeProtobufTypeWithTypeName(tName)
}

// MakeProtobufTypeWithTypeName creates a new SimpleType for protobuf messages
// with the given TypeName. Values must implement proto.Message.
func MakeProtobufTypeWithTypeName(typeName TypeName) SimpleType {
	return protoType{typeName: typeName}
}

func (p protoType) GetTypeName() TypeName {
	return p.typeName
}

func (p protoType) Deserialize(r io.Reader, receiver interface{}) error {
	m, ok := receiver.(proto.Message)
	if !ok {
		return errors.New("receiver must implement proto.Message")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return proto.Unmarshal(data, m)
}

func (p protoType) Serialize(writer io.Writer, data interface{}) error {
	m, ok := data.(proto.Message)
	if !ok {
		return errors.New("data must implement proto.Message")
	}
	value, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	_, err = writer.Write(value)
	return err
}

// TypeNameString returns the canonical typename string of t, or "" if t or
// its TypeName is nil. For the PrimitiveTypes it returns a constant and does
// not allocate.
func TypeNameString(t SimpleType) string {
	switch t := t.(type) {
	case nil:
		return ""
	case PrimitiveType:
		return t.typeNameString()
	default:
		name := t.GetTypeName()
		if name == nil {
			return ""
		}
		return name.String()
	}
}

// EncodeValue serializes v with t and returns the bytes. It is equivalent to
// t.Serialize into a fresh buffer, with fast paths: for the PrimitiveTypes it
// allocates only the returned slice (nothing for zero values, which encode to
// an empty, non-nil slice), and protobuf types are marshalled directly.
func EncodeValue(t SimpleType, v interface{}) ([]byte, error) {
	switch t := t.(type) {
	case nil:
		return nil, errors.New("missing value type")
	case PrimitiveType:
		return t.encode(v)
	case protoType:
		m, ok := v.(proto.Message)
		if !ok {
			return nil, errors.New("data must implement proto.Message")
		}
		return proto.Marshal(m)
	default:
		var buf bytes.Buffer
		if err := t.Serialize(&buf, v); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
}

// DecodeValue deserializes data with t into receiver. It is equivalent to
// t.Deserialize(bytes.NewReader(data), receiver), with fast paths: for the
// PrimitiveTypes it does not allocate (except for the decoded string of
// StringType), and protobuf types are unmarshalled directly. Malformed data
// is reported as an error, never a panic.
func DecodeValue(t SimpleType, data []byte, receiver interface{}) error {
	switch t := t.(type) {
	case nil:
		return errors.New("missing value type")
	case PrimitiveType:
		return t.decode(data, receiver)
	case protoType:
		m, ok := receiver.(proto.Message)
		if !ok {
			return errors.New("receiver must implement proto.Message")
		}
		return proto.Unmarshal(data, m)
	default:
		return t.Deserialize(bytes.NewReader(data), receiver)
	}
}
