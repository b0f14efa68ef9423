package statefun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Typenames of the egress record messages understood by the Kafka and
// Kinesis egresses.
const (
	KafkaProducerRecordTypeName = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
	KinesisEgressRecordTypeName = "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord"
)

// EgressRecord is a message for an egress, as produced by an EgressBuilder:
// the egress it is addressed to and a typed value.
type EgressRecord struct {
	// Target is the TypeName of the egress.
	Target TypeName

	// Typename is the typename of Value, for example
	// KafkaProducerRecordTypeName.
	Typename string

	// Value is the serialized value.
	Value []byte
}

// EgressBuilder is a type that can build an outgoing egress message. It is
// implemented by KafkaEgressBuilder, KinesisEgressBuilder and
// GenericEgressBuilder (and pointers to them).
//
// The official SDK seals this interface with an unexported method; here the
// method is exported so that the engine (in another package) can call it.
type EgressBuilder interface {
	// ToEgress validates the builder and serializes the record.
	ToEgress() (EgressRecord, error)
}

// KafkaEgressBuilder builds a message that can be emitted to a Kafka generic
// egress. If a ValueType is provided, then Value will be serialized according
// to the provided ValueType's serializer. Otherwise we will try to convert
// Value to bytes if it is one of:
//   - utf-8 string
//   - []byte
//   - int32, int64 (big-endian)
//   - float32, float64 (big-endian IEEE 754)
//
// A plain int is rejected.
type KafkaEgressBuilder struct {
	// The TypeName as specified in module.yaml
	Target TypeName

	// The Kafka destination topic for that record
	Topic string

	// The utf8 encoded string key to produce (can be empty)
	Key string

	// The value to produce
	Value interface{}

	// An optional hint to this values type
	ValueType SimpleType
}

// ToEgress validates the builder (Target, Topic and Value are required) and
// returns the serialized io.statefun.sdk.egress.KafkaProducerRecord with
// typename KafkaProducerRecordTypeName.
func (k KafkaEgressBuilder) ToEgress() (EgressRecord, error) {
	if k.Target == nil {
		return EgressRecord{}, errors.New("an egress record requires a Target")
	}
	if k.Topic == "" {
		return EgressRecord{}, errors.New("a Kafka record requires a topic")
	}
	if k.Value == nil {
		return EgressRecord{}, errors.New("a Kafka record requires a value")
	}
	if !utf8.ValidString(k.Topic) || !utf8.ValidString(k.Key) {
		return EgressRecord{}, errors.New("a Kafka record's topic and key must be valid utf-8")
	}

	b, err := encodeEgressValue(k.ValueType, k.Value, true)
	if err != nil {
		return EgressRecord{}, fmt.Errorf("failed to encode Kafka egress value: %w", err)
	}

	// KafkaProducerRecord { string key = 1; bytes value_bytes = 2; string topic = 3; }
	out := make([]byte, 0, sizeBytesField(1, len(k.Key))+sizeBytesField(2, len(b))+sizeBytesField(3, len(k.Topic)))
	out = appendStringField(out, 1, k.Key)
	out = appendBytesField(out, 2, b)
	out = appendStringField(out, 3, k.Topic)

	return EgressRecord{Target: k.Target, Typename: KafkaProducerRecordTypeName, Value: out}, nil
}

// KinesisEgressBuilder builds a message that can be emitted to a Kinesis
// generic egress. If a ValueType is provided, then Value will be serialized
// according to the provided ValueType's serializer. Otherwise we will try to
// convert Value to bytes if it is one of:
//   - utf-8 string
//   - []byte
type KinesisEgressBuilder struct {
	// The TypeName as specified in module.yaml
	Target TypeName

	// The Kinesis destination stream for that record
	Stream string

	// The value to produce
	Value interface{}

	// An optional hint to this value type
	ValueType SimpleType

	// The utf8 encoded string partition key to use
	PartitionKey string

	// A utf8 encoded string explicit hash key to use (can be empty)
	ExplicitHashKey string
}

// ToEgress validates the builder (Target, Stream, Value and PartitionKey
// are required) and returns the serialized
// io.statefun.sdk.egress.KinesisEgressRecord with typename
// KinesisEgressRecordTypeName.
func (k KinesisEgressBuilder) ToEgress() (EgressRecord, error) {
	if k.Target == nil {
		return EgressRecord{}, errors.New("an egress record requires a Target")
	} else if k.Stream == "" {
		return EgressRecord{}, errors.New("missing destination Kinesis stream")
	} else if k.Value == nil {
		return EgressRecord{}, errors.New("missing for Kinesis egress value")
	} else if k.PartitionKey == "" {
		return EgressRecord{}, errors.New("missing partition key for Kinesis egress value")
	}
	if !utf8.ValidString(k.Stream) || !utf8.ValidString(k.PartitionKey) || !utf8.ValidString(k.ExplicitHashKey) {
		return EgressRecord{}, errors.New("a Kinesis record's stream, partition key and explicit hash key must be valid utf-8")
	}

	b, err := encodeEgressValue(k.ValueType, k.Value, false)
	if err != nil {
		return EgressRecord{}, fmt.Errorf("failed to encode Kinesis egress value: %w", err)
	}

	// KinesisEgressRecord { string partition_key = 1; bytes value_bytes = 2;
	//                       string stream = 3; string explicit_hash_key = 4; }
	out := make([]byte, 0, sizeBytesField(1, len(k.PartitionKey))+sizeBytesField(2, len(b))+
		sizeBytesField(3, len(k.Stream))+sizeBytesField(4, len(k.ExplicitHashKey)))
	out = appendStringField(out, 1, k.PartitionKey)
	out = appendBytesField(out, 2, b)
	out = appendStringField(out, 3, k.Stream)
	out = appendStringField(out, 4, k.ExplicitHashKey)

	return EgressRecord{Target: k.Target, Typename: KinesisEgressRecordTypeName, Value: out}, nil
}

// GenericEgressBuilder create a generic egress record. For Kafka
// and Kinesis see KafkaEgressBuilder and KinesisEgressBuilder
// respectively.
type GenericEgressBuilder struct {
	// The TypeName as specified when registered
	Target TypeName

	// The value to produce
	Value interface{}

	// The values type
	ValueType SimpleType
}

// ToEgress validates the builder (Target, ValueType and Value are required)
// and returns Value serialized with ValueType, typed with ValueType's
// typename.
func (g GenericEgressBuilder) ToEgress() (EgressRecord, error) {
	if g.Target == nil {
		return EgressRecord{}, errors.New("an egress record requires a Target")
	} else if g.ValueType == nil {
		return EgressRecord{}, errors.New("missing value type")
	} else if g.Value == nil {
		return EgressRecord{}, errors.New("missing value")
	}
	typename := TypeNameString(g.ValueType)
	if typename == "" {
		return EgressRecord{}, errors.New("the egress value type has no typename")
	}
	b, err := EncodeValue(g.ValueType, g.Value)
	if err != nil {
		return EgressRecord{}, err
	}
	return EgressRecord{Target: g.Target, Typename: typename, Value: b}, nil
}

// encodeEgressValue converts the value of a Kafka or Kinesis egress builder
// to bytes, as the official SDK: with valueType if given, otherwise from a
// string, a []byte (copied) or, for Kafka only, a fixed-size number in
// big-endian order.
func encodeEgressValue(valueType SimpleType, value interface{}, numbers bool) ([]byte, error) {
	if valueType != nil {
		return EncodeValue(valueType, value)
	}
	switch v := value.(type) {
	case string:
		if !utf8.ValidString(v) {
			return nil, errors.New("strings must be valid utf-8")
		}
		return []byte(v), nil
	case []byte:
		return append([]byte{}, v...), nil
	}
	if numbers {
		switch v := value.(type) {
		case int:
			return nil, errors.New("ambiguous integer type; please specify int32 or int64")
		case int32:
			return binary.BigEndian.AppendUint32(nil, uint32(v)), nil
		case int64:
			return binary.BigEndian.AppendUint64(nil, uint64(v)), nil
		case float32:
			return binary.BigEndian.AppendUint32(nil, math.Float32bits(v)), nil
		case float64:
			return binary.BigEndian.AppendUint64(nil, math.Float64bits(v)), nil
		}
	}
	return nil, errors.New("unable to convert value to bytes")
}

// sizeBytesField is the encoded size of a proto3 length-delimited field with
// the given number and payload length, or 0 if the payload is empty.
func sizeBytesField(num protowire.Number, n int) int {
	if n == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

// appendStringField appends a proto3 string field, omitted when empty.
func appendStringField(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

// appendBytesField appends a proto3 bytes field, omitted when empty.
func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// decodeRecord walks a proto3 message whose fields 1..len(fields) are all
// length-delimited, storing the last occurrence of each in fields. Unknown
// fields and fields with an unexpected wire type are skipped, as
// proto.Unmarshal does. Every occurrence of the string fields (those
// whose names are non-empty) must be valid UTF-8.
func decodeRecord(b []byte, what string, fields [][]byte, names []string) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireError(what, n)
		}
		if num > protowire.MaxValidNumber {
			return wireError(what, errCodeFieldNumber)
		}
		b = b[n:]
		if typ == protowire.BytesType && num >= 1 && int(num) <= len(fields) {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return wireError(what, m)
			}
			if names[num-1] != "" && !utf8.Valid(v) {
				return fmt.Errorf("malformed %s: field %s contains invalid UTF-8", what, names[num-1])
			}
			fields[num-1] = v
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return wireError(what, m)
		}
		b = b[m:]
	}
	return nil
}

// DecodeKafkaProducerRecord decodes a serialized
// io.statefun.sdk.egress.KafkaProducerRecord, as produced by
// KafkaEgressBuilder. Absent fields decode as empty. The returned value
// aliases b. Malformed input, including strings that are not valid UTF-8,
// is an error.
func DecodeKafkaProducerRecord(b []byte) (key, topic string, value []byte, err error) {
	var f [3][]byte
	if err = decodeRecord(b, "KafkaProducerRecord", f[:], kafkaFieldNames); err != nil {
		return "", "", nil, err
	}
	return string(f[0]), string(f[2]), f[1], nil
}

var (
	kafkaFieldNames   = []string{"key", "", "topic"}
	kinesisFieldNames = []string{"partition_key", "", "stream", "explicit_hash_key"}
)

// DecodeKinesisEgressRecord decodes a serialized
// io.statefun.sdk.egress.KinesisEgressRecord, as produced by
// KinesisEgressBuilder. Absent fields decode as empty. The returned value
// aliases b. Malformed input, including strings that are not valid UTF-8,
// is an error.
func DecodeKinesisEgressRecord(b []byte) (partitionKey, stream, explicitHashKey string, value []byte, err error) {
	var f [4][]byte
	if err = decodeRecord(b, "KinesisEgressRecord", f[:], kinesisFieldNames); err != nil {
		return "", "", "", nil, err
	}
	return string(f[0]), string(f[2]), string(f[3]), f[1], nil
}
