package statefun

import (
	"errors"
	"fmt"
)

// MessageBuilder describes a message to be sent to a function: its Target
// address, its Value and, optionally, the SimpleType used to serialize the
// value.
//
// When ValueType is nil, it is chosen from the dynamic type of Value:
// bool, int32, int64, float32, float64 and string (or a pointer to one of
// them) map to the corresponding PrimitiveType. A plain int is rejected as
// ambiguous, and any other value requires an explicit ValueType.
type MessageBuilder struct {
	// Target is the address of the receiving function instance.
	Target Address

	// Value is the payload; it must not be nil.
	Value interface{}

	// ValueType is the optional SimpleType of Value.
	ValueType SimpleType
}

// valueType returns the SimpleType to serialize Value with.
func (m *MessageBuilder) valueType() (SimpleType, error) {
	if m.ValueType != nil {
		return m.ValueType, nil
	}
	switch m.Value.(type) {
	case int:
		return nil, errors.New("ambiguous integer type; please specify int32 or int64")
	case bool, *bool:
		return BoolType, nil
	case int32, *int32:
		return Int32Type, nil
	case int64, *int64:
		return Int64Type, nil
	case float32, *float32:
		return Float32Type, nil
	case float64, *float64:
		return Float64Type, nil
	case string, *string:
		return StringType, nil
	default:
		return nil, errors.New("message contains non-primitive type, please supply a non-nil SimpleType")
	}
}

// Build validates the builder and serializes its value. It returns the
// target address, the typename of the value and the serialized value; this
// is what the engine turns into an envelope. It fails if the target has no
// FunctionType, if Value is nil, if no ValueType is given and none can be
// inferred, or if serialization fails.
func (m MessageBuilder) Build() (target Address, typename string, value []byte, err error) {
	if m.Target.FunctionType == nil {
		return Address{}, "", nil, errors.New("a message must have a non-empty target")
	}
	if m.Value == nil {
		return Address{}, "", nil, errors.New("a message cannot have a nil value")
	}
	t, err := m.valueType()
	if err != nil {
		return Address{}, "", nil, err
	}
	typename = TypeNameString(t)
	if typename == "" {
		return Address{}, "", nil, errors.New("the message value type has no typename")
	}
	value, err = EncodeValue(t, m.Value)
	if err != nil {
		return Address{}, "", nil, err
	}
	return m.Target, typename, value, nil
}

// ToMessage validates the builder and serializes its value into a Message,
// as Build.
func (m MessageBuilder) ToMessage() (Message, error) {
	target, typename, value, err := m.Build()
	if err != nil {
		return Message{}, err
	}
	return MessageFromTypedValue(&target, typename, value), nil
}

// Message is a message received by a function: a typed value (typename plus
// serialized bytes) and the address it was sent to.
//
// The Is* methods test the value's typename, the As* methods decode it. As
// in the official SDK, the typed accessors (AsBool, AsInt32, ...) panic if
// the value cannot be decoded as the requested type; use As for an error
// instead.
type Message struct {
	target   *Address
	typename string
	value    []byte
}

// MessageFromTypedValue builds the Message handed to a function from a
// target address (may be nil), the value's typename and its serialized
// bytes. It does not copy value or parse typename, so it is cheap; value
// must not be modified afterwards.
func MessageFromTypedValue(target *Address, typename string, value []byte) Message {
	return Message{target: target, typename: typename, value: value}
}

// Target returns the address the message was sent to, or nil if unknown.
func (m *Message) Target() *Address {
	return m.target
}

func (m *Message) mustDecode(t PrimitiveType, receiver interface{}) {
	if err := t.decode(m.value, receiver); err != nil {
		panic(fmt.Errorf("failed to deserialize message: %w", err))
	}
}

// IsBool reports whether the value's typename is that of BoolType.
func (m *Message) IsBool() bool {
	return m.typename == boolTypeNameString
}

// AsBool decodes the value as a BoolType. It panics if that fails.
func (m *Message) AsBool() bool {
	var receiver bool
	m.mustDecode(BoolType, &receiver)
	return receiver
}

// IsInt32 reports whether the value's typename is that of Int32Type.
func (m *Message) IsInt32() bool {
	return m.typename == int32TypeNameString
}

// AsInt32 decodes the value as an Int32Type. It panics if that fails.
func (m *Message) AsInt32() int32 {
	var receiver int32
	m.mustDecode(Int32Type, &receiver)
	return receiver
}

// IsInt64 reports whether the value's typename is that of Int64Type.
func (m *Message) IsInt64() bool {
	return m.typename == int64TypeNameString
}

// AsInt64 decodes the value as an Int64Type. It panics if that fails.
func (m *Message) AsInt64() int64 {
	var receiver int64
	m.mustDecode(Int64Type, &receiver)
	return receiver
}

// IsFloat32 reports whether the value's typename is that of Float32Type.
func (m *Message) IsFloat32() bool {
	return m.typename == float32TypeNameString
}

// AsFloat32 decodes the value as a Float32Type. It panics if that fails.
func (m *Message) AsFloat32() float32 {
	var receiver float32
	m.mustDecode(Float32Type, &receiver)
	return receiver
}

// IsFloat64 reports whether the value's typename is that of Float64Type.
func (m *Message) IsFloat64() bool {
	return m.typename == float64TypeNameString
}

// AsFloat64 decodes the value as a Float64Type. It panics if that fails.
func (m *Message) AsFloat64() float64 {
	var receiver float64
	m.mustDecode(Float64Type, &receiver)
	return receiver
}

// IsString reports whether the value's typename is that of StringType.
func (m *Message) IsString() bool {
	return m.typename == stringTypeNameString
}

// AsString decodes the value as a StringType. It panics if that fails.
func (m *Message) AsString() string {
	var receiver string
	m.mustDecode(StringType, &receiver)
	return receiver
}

// Is reports whether the value's typename equals the typename of t.
func (m *Message) Is(t SimpleType) bool {
	name := TypeNameString(t)
	return name != "" && name == m.typename
}

// As decodes the value with t into receiver. It does not check the
// typename; see Is.
func (m *Message) As(t SimpleType, receiver interface{}) error {
	return DecodeValue(t, m.value, receiver)
}

// ValueTypeName returns the TypeName of the value. The typename is parsed
// on each call. Unlike the official SDK, which panics, a typename that is
// not of the form namespace/name is returned as a TypeName whose String and
// GetType are the raw typename and whose GetNamespace is empty.
func (m *Message) ValueTypeName() TypeName {
	name, err := ParseTypeName(m.typename)
	if err != nil {
		return rawTypeName(m.typename)
	}
	return name
}

// RawValue returns the serialized value. The slice is shared with the
// message and must not be modified.
func (m *Message) RawValue() []byte {
	return m.value
}
