package statefun

import (
	"bytes"
	"math"
	"testing"
)

func isNaN(v interface{}) bool {
	switch v := v.(type) {
	case float32:
		return v != v
	case float64:
		return math.IsNaN(v)
	}
	return false
}

// FuzzPrimitiveDecoders checks every primitive decoder against the reference
// protobuf implementation: they must never panic, must accept exactly the
// inputs the reference accepts, must decode the same value, and re-encoding
// a decoded value must give the canonical encoding.
func FuzzPrimitiveDecoders(f *testing.F) {
	for _, v := range encodingVectors {
		f.Add(v.enc)
	}
	for _, v := range decodeVectors {
		f.Add(v.enc)
	}
	for _, v := range malformedVectors {
		f.Add(v.enc)
	}
	// Regressions found by fuzzing: a signalling NaN float, a string
	// shadowed by a later occurrence.
	f.Add(h("0D 303080FF"))
	f.Add(h("0A 01 FF 0A 01 61"))
	types := []PrimitiveType{BoolType, Int32Type, Int64Type, Float32Type, Float64Type, StringType}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range types {
			r := newReceiver(typ)
			err := DecodeValue(typ, data, r)
			ref, refErr := refUnmarshal(refWrapperName[typ], data)
			if (err == nil) != (refErr == nil) {
				t.Fatalf("%s: DecodeValue(% X) err = %v, reference err = %v", refWrapperName[typ], data, err, refErr)
			}
			r2 := newReceiver(typ)
			if err2 := typ.Deserialize(bytes.NewReader(data), r2); (err2 == nil) != (err == nil) {
				t.Fatalf("%s: Deserialize and DecodeValue disagree: %v vs %v", refWrapperName[typ], err2, err)
			}
			if err != nil {
				continue
			}
			got := deref(r)
			want := refField(ref, "value")
			// The reference stores a float32 as a float64, which quiets a
			// signalling NaN; this package preserves NaN payloads exactly,
			// so for NaN only check that both are NaN.
			nan := isNaN(got)
			if nan != isNaN(want) || (!nan && !sameValue(got, want)) {
				t.Fatalf("%s: DecodeValue(% X) = %v, reference %v", refWrapperName[typ], data, got, want)
			}
			enc, err := EncodeValue(typ, got)
			if err != nil {
				t.Fatalf("%s: re-encoding %v: %v", refWrapperName[typ], got, err)
			}
			if !nan {
				canonical := refMarshal(t, refWrapperName[typ], map[string]interface{}{"value": got})
				if !bytes.Equal(enc, canonical) {
					t.Fatalf("%s: re-encoding %v = % X, reference % X", refWrapperName[typ], got, enc, canonical)
				}
			}
			r3 := newReceiver(typ)
			if err := DecodeValue(typ, enc, r3); err != nil || !sameValue(deref(r3), got) {
				t.Fatalf("%s: round trip of %v gave %v, %v", refWrapperName[typ], got, deref(r3), err)
			}
		}
	})
}

// FuzzEgressRecordDecoders checks the egress record decoders against the
// reference protobuf implementation.
func FuzzEgressRecordDecoders(f *testing.F) {
	f.Add(h("0A 03 6B6579 12 05 76616C7565 1A 05 746F706963"))
	f.Add(h("0A 02 706B 12 05 76616C7565 1A 06 73747265616D 22 02 686B"))
	f.Add(h("12 02 0102 1A 01 74"))
	// Regression found by fuzzing: invalid UTF-8 in a shadowed occurrence.
	f.Add(h("22 02 3084 22 02 3030"))
	f.Fuzz(func(t *testing.T, data []byte) {
		key, topic, value, err := DecodeKafkaProducerRecord(data)
		ref, refErr := refUnmarshal("KafkaProducerRecord", data)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("kafka % X: err = %v, reference err = %v", data, err, refErr)
		}
		if err == nil && (key != refField(ref, "key") || topic != refField(ref, "topic") || !bytes.Equal(value, refField(ref, "value_bytes").([]byte))) {
			t.Fatalf("kafka % X: decoded (%q, %q, % X), reference %v", data, key, topic, value, ref)
		}

		pk, stream, hk, value, err := DecodeKinesisEgressRecord(data)
		ref, refErr = refUnmarshal("KinesisEgressRecord", data)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("kinesis % X: err = %v, reference err = %v", data, err, refErr)
		}
		if err == nil && (pk != refField(ref, "partition_key") || stream != refField(ref, "stream") ||
			hk != refField(ref, "explicit_hash_key") || !bytes.Equal(value, refField(ref, "value_bytes").([]byte))) {
			t.Fatalf("kinesis % X: decoded (%q, %q, %q, % X), reference %v", data, pk, stream, hk, value, ref)
		}
	})
}
