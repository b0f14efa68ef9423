package statefun

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

var kafkaEgress = TypeNameFrom("example/kafka")

func TestKafkaEgressBuilder(t *testing.T) {
	rec, err := KafkaEgressBuilder{Target: kafkaEgress, Topic: "topic", Key: "key", Value: "value"}.ToEgress()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Target != kafkaEgress {
		t.Fatalf("Target = %v", rec.Target)
	}
	if KafkaProducerRecordTypeName != "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord" || rec.Typename != KafkaProducerRecordTypeName {
		t.Fatalf("Typename = %s", rec.Typename)
	}
	want := h("0A 03 6B6579 12 05 76616C7565 1A 05 746F706963")
	if !bytes.Equal(rec.Value, want) {
		t.Fatalf("Value = % X, want % X", rec.Value, want)
	}
	ref := refMarshal(t, "KafkaProducerRecord", map[string]interface{}{"key": "key", "value_bytes": []byte("value"), "topic": "topic"})
	if !bytes.Equal(rec.Value, ref) {
		t.Fatalf("Value = % X, reference % X", rec.Value, ref)
	}
	key, topic, value, err := DecodeKafkaProducerRecord(rec.Value)
	if err != nil || key != "key" || topic != "topic" || string(value) != "value" {
		t.Fatalf("decoded (%q, %q, %q, %v)", key, topic, value, err)
	}

	// Through a pointer, as upstream examples do.
	var b EgressBuilder = &KafkaEgressBuilder{Target: kafkaEgress, Topic: "topic", Key: "key", Value: "value"}
	rec2, err := b.ToEgress()
	if err != nil || !bytes.Equal(rec2.Value, rec.Value) {
		t.Fatalf("pointer builder = % X, %v", rec2.Value, err)
	}
}

func TestKafkaEgressEmptyKeyStaysEmpty(t *testing.T) {
	rec, err := KafkaEgressBuilder{Target: kafkaEgress, Topic: "t", Value: []byte{1, 2}}.ToEgress()
	if err != nil {
		t.Fatal(err)
	}
	// No key field at all on the wire.
	if want := h("12 02 0102 1A 01 74"); !bytes.Equal(rec.Value, want) {
		t.Fatalf("Value = % X, want % X", rec.Value, want)
	}
	key, topic, value, err := DecodeKafkaProducerRecord(rec.Value)
	if err != nil || key != "" || topic != "t" || !bytes.Equal(value, []byte{1, 2}) {
		t.Fatalf("decoded (%q, %q, %v, %v)", key, topic, value, err)
	}
	m, err := refUnmarshal("KafkaProducerRecord", rec.Value)
	if err != nil || refField(m, "key") != "" {
		t.Fatalf("reference decode: %v %v", m, err)
	}
}

func TestKafkaEgressValueEncodings(t *testing.T) {
	raw := []byte{9, 8, 7}
	tests := []struct {
		name      string
		value     interface{}
		valueType SimpleType
		want      []byte
	}{
		{"string", "héllo", nil, []byte("héllo")},
		{"bytes", raw, nil, raw},
		{"empty-bytes", []byte{}, nil, nil},
		{"int32", int32(-2), nil, h("FFFFFFFE")},
		{"int64", int64(0x0102030405060708), nil, h("0102030405060708")},
		{"float32", float32(1), nil, h("3F800000")},
		{"float64", -2.5, nil, h("C004000000000000")},
		{"with-primitive-type", int64(1), Int64Type, h("09 0100000000000000")},
		{"with-string-type", "hi", StringType, h("0A 02 6869")},
		{"with-json-type", user{"a", "b"}, MakeJsonType(TypeNameFrom("com.example/User")), []byte("{\"first_name\":\"a\",\"last_name\":\"b\"}\n")},
		{"with-proto-type", wrapperspb.String("x"), MakeProtobufType(&wrapperspb.StringValue{}), h("0A 01 78")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := KafkaEgressBuilder{Target: kafkaEgress, Topic: "t", Key: "k", Value: tc.value, ValueType: tc.valueType}.ToEgress()
			if err != nil {
				t.Fatal(err)
			}
			_, _, value, err := DecodeKafkaProducerRecord(rec.Value)
			if err != nil || !bytes.Equal(value, tc.want) {
				t.Fatalf("value = % X, %v; want % X", value, err, tc.want)
			}
		})
	}

	// The []byte value is copied.
	rec, _ := KafkaEgressBuilder{Target: kafkaEgress, Topic: "t", Value: raw}.ToEgress()
	raw[0] = 0
	if _, _, value, _ := DecodeKafkaProducerRecord(rec.Value); value[0] != 9 {
		t.Fatal("the builder's []byte value is aliased")
	}
}

func TestKafkaEgressErrors(t *testing.T) {
	tests := []struct {
		name string
		b    KafkaEgressBuilder
	}{
		{"no-target", KafkaEgressBuilder{Topic: "t", Value: "v"}},
		{"no-topic", KafkaEgressBuilder{Target: kafkaEgress, Value: "v"}},
		{"no-value", KafkaEgressBuilder{Target: kafkaEgress, Topic: "t"}},
		{"invalid-utf8-value", KafkaEgressBuilder{Target: kafkaEgress, Topic: "t", Value: string([]byte{0xff, 0xfe, 0xfd})}},
		{"invalid-utf8-key", KafkaEgressBuilder{Target: kafkaEgress, Topic: "t", Key: "\xff", Value: "v"}},
		{"int", KafkaEgressBuilder{Target: kafkaEgress, Topic: "t", Value: 1}},
		{"bool", KafkaEgressBuilder{Target: kafkaEgress, Topic: "t", Value: true}},
		{"pointer", KafkaEgressBuilder{Target: kafkaEgress, Topic: "t", Value: new(string)}},
		{"wrong-value-type", KafkaEgressBuilder{Target: kafkaEgress, Topic: "t", Value: "v", ValueType: Int32Type}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.b.ToEgress(); err == nil {
				t.Fatal("ToEgress succeeded")
			}
		})
	}
}

var kinesisEgress = TypeNameFrom("example/kinesis")

func TestKinesisEgressBuilder(t *testing.T) {
	rec, err := KinesisEgressBuilder{Target: kinesisEgress, Stream: "stream", PartitionKey: "pk", ExplicitHashKey: "hk", Value: "value"}.ToEgress()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Target != kinesisEgress || KinesisEgressRecordTypeName != "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord" || rec.Typename != KinesisEgressRecordTypeName {
		t.Fatalf("record = %v %s", rec.Target, rec.Typename)
	}
	want := h("0A 02 706B 12 05 76616C7565 1A 06 73747265616D 22 02 686B")
	if !bytes.Equal(rec.Value, want) {
		t.Fatalf("Value = % X, want % X", rec.Value, want)
	}
	ref := refMarshal(t, "KinesisEgressRecord", map[string]interface{}{
		"partition_key": "pk", "value_bytes": []byte("value"), "stream": "stream", "explicit_hash_key": "hk"})
	if !bytes.Equal(rec.Value, ref) {
		t.Fatalf("Value = % X, reference % X", rec.Value, ref)
	}
	pk, stream, hk, value, err := DecodeKinesisEgressRecord(rec.Value)
	if err != nil || pk != "pk" || stream != "stream" || hk != "hk" || string(value) != "value" {
		t.Fatalf("decoded (%q, %q, %q, %q, %v)", pk, stream, hk, value, err)
	}

	// Without an explicit hash key, with bytes and with a value type.
	rec, err = KinesisEgressBuilder{Target: kinesisEgress, Stream: "s", PartitionKey: "p", Value: []byte{1}}.ToEgress()
	if err != nil || !bytes.Equal(rec.Value, h("0A 01 70 12 01 01 1A 01 73")) {
		t.Fatalf("Value = % X, %v", rec.Value, err)
	}
	rec, err = KinesisEgressBuilder{Target: kinesisEgress, Stream: "s", PartitionKey: "p", Value: true, ValueType: BoolType}.ToEgress()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, hk, value, err := DecodeKinesisEgressRecord(rec.Value); err != nil || hk != "" || !bytes.Equal(value, h("08 01")) {
		t.Fatalf("decoded %q % X %v", hk, value, err)
	}
}

func TestKinesisEgressErrors(t *testing.T) {
	tests := []struct {
		name string
		b    KinesisEgressBuilder
	}{
		{"no-target", KinesisEgressBuilder{Stream: "s", PartitionKey: "p", Value: "v"}},
		{"no-stream", KinesisEgressBuilder{Target: kinesisEgress, PartitionKey: "p", Value: "v"}},
		{"no-value", KinesisEgressBuilder{Target: kinesisEgress, Stream: "s", PartitionKey: "p"}},
		{"no-partition-key", KinesisEgressBuilder{Target: kinesisEgress, Stream: "s", Value: "v"}},
		{"invalid-utf8", KinesisEgressBuilder{Target: kinesisEgress, Stream: "s", PartitionKey: "p", Value: string([]byte{0xff, 0xfe, 0xfd})}},
		{"invalid-utf8-hash-key", KinesisEgressBuilder{Target: kinesisEgress, Stream: "s", PartitionKey: "p", ExplicitHashKey: "\xff", Value: "v"}},
		// Unlike Kafka, numbers are not converted (as upstream).
		{"int64", KinesisEgressBuilder{Target: kinesisEgress, Stream: "s", PartitionKey: "p", Value: int64(1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.b.ToEgress(); err == nil {
				t.Fatal("ToEgress succeeded")
			}
		})
	}
}

func TestGenericEgressBuilder(t *testing.T) {
	target := TypeNameFrom("example/generic")
	rec, err := GenericEgressBuilder{Target: target, Value: int32(5), ValueType: Int32Type}.ToEgress()
	if err != nil || rec.Target != target || rec.Typename != "io.statefun.types/int" || !bytes.Equal(rec.Value, h("0D 05000000")) {
		t.Fatalf("record = %+v, %v", rec, err)
	}
	pt := MakeProtobufType(&wrapperspb.BoolValue{})
	rec, err = GenericEgressBuilder{Target: target, Value: wrapperspb.Bool(true), ValueType: pt}.ToEgress()
	if err != nil || rec.Typename != "type.googleapis.com/google.protobuf.BoolValue" || !bytes.Equal(rec.Value, h("08 01")) {
		t.Fatalf("record = %+v, %v", rec, err)
	}
	for name, b := range map[string]GenericEgressBuilder{
		"no-target":     {Value: int32(1), ValueType: Int32Type},
		"no-type":       {Target: target, Value: int32(1)},
		"no-value":      {Target: target, ValueType: Int32Type},
		"wrong-type":    {Target: target, Value: "x", ValueType: Int32Type},
		"typeless-type": {Target: target, Value: wrapperspb.Bool(true), ValueType: MakeProtobufType(nil)},
	} {
		if _, err := b.ToEgress(); err == nil {
			t.Errorf("%s: ToEgress succeeded", name)
		}
	}
}

func TestDecodeEgressRecords(t *testing.T) {
	// Empty input: all fields absent.
	if k, tp, v, err := DecodeKafkaProducerRecord(nil); err != nil || k != "" || tp != "" || v != nil {
		t.Fatalf("empty kafka record: %q %q %v %v", k, tp, v, err)
	}
	if p, s, e, v, err := DecodeKinesisEgressRecord(nil); err != nil || p != "" || s != "" || e != "" || v != nil {
		t.Fatalf("empty kinesis record: %q %q %q %v %v", p, s, e, v, err)
	}

	// Unknown fields are skipped, the last occurrence wins, and a known field
	// with an unexpected wire type is skipped.
	in := cat(h("08 01"), h("1A 01 61"), h("2A 02 7A7A"), h("1A 01 62"), h("0D 01020304"), h("12 01 FF"))
	k, tp, v, err := DecodeKafkaProducerRecord(in)
	if err != nil || k != "" || tp != "b" || !bytes.Equal(v, h("FF")) {
		t.Fatalf("kafka: %q %q % X %v", k, tp, v, err)
	}
	m, err := refUnmarshal("KafkaProducerRecord", in)
	if err != nil || refField(m, "topic") != "b" {
		t.Fatalf("reference: %v %v", m, err)
	}
	p, s, e, v, err := DecodeKinesisEgressRecord(cat(h("22 01 65"), h("30 01"), h("0A 01 70"), h("1A 01 73")))
	if err != nil || p != "p" || s != "s" || e != "e" || v != nil {
		t.Fatalf("kinesis: %q %q %q %v %v", p, s, e, v, err)
	}

	malformed := [][]byte{
		h("0A"), h("0A 05 61"), h("00"), h("80"), h("0C"), h("0F"), h("12 FFFFFFFFFFFFFFFFFF01"),
		h("0A 01 FF"), // invalid UTF-8 key / partition key
		h("1A 01 FF"), // invalid UTF-8 topic / stream
		cat(tagOf(protowire.MaxValidNumber+1, protowire.BytesType), h("00")),
	}
	for _, in := range malformed {
		if _, _, _, err := DecodeKafkaProducerRecord(in); err == nil {
			t.Errorf("kafka decoder accepted % X", in)
		}
		if _, err := refUnmarshal("KafkaProducerRecord", in); err == nil {
			t.Errorf("reference kafka decoder accepts % X", in)
		}
		if _, _, _, _, err := DecodeKinesisEgressRecord(in); err == nil {
			t.Errorf("kinesis decoder accepted % X", in)
		}
	}
	// Shadowed occurrences are validated too, as proto.Unmarshal does.
	for _, in := range [][]byte{h("0A 01 FF 0A 01 61"), h("1A 01 FF 1A 01 61")} {
		if _, _, _, err := DecodeKafkaProducerRecord(in); err == nil {
			t.Errorf("kafka decoder accepted % X", in)
		}
		if _, err := refUnmarshal("KafkaProducerRecord", in); err == nil {
			t.Errorf("reference kafka decoder accepts % X", in)
		}
	}
	if _, _, _, _, err := DecodeKinesisEgressRecord(h("22 01 FF 22 00")); err == nil {
		t.Error("kinesis decoder accepted an invalid UTF-8 explicit hash key")
	}
}

func TestEgressLargeFields(t *testing.T) {
	big := strings.Repeat("v", 70000)
	rec, err := KafkaEgressBuilder{Target: kafkaEgress, Topic: strings.Repeat("t", 200), Key: "k", Value: big}.ToEgress()
	if err != nil {
		t.Fatal(err)
	}
	ref := refMarshal(t, "KafkaProducerRecord", map[string]interface{}{"key": "k", "value_bytes": []byte(big), "topic": strings.Repeat("t", 200)})
	if !bytes.Equal(rec.Value, ref) || cap(rec.Value) != len(rec.Value) {
		t.Fatalf("large record differs from reference (len %d vs %d, cap %d)", len(rec.Value), len(ref), cap(rec.Value))
	}
}
