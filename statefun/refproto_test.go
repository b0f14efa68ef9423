package statefun

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The reference messages below are built at test time from descriptors that
// are resolved in a private registry (never the global one), so they do not
// clash with the official SDK's registrations. They let the tests compare the
// hand-written codecs with the real protobuf implementation.

var refMessages = buildRefMessages()

func buildRefMessages() map[string]protoreflect.MessageDescriptor {
	field := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{
			Name:     proto.String(name),
			JsonName: proto.String(name),
			Number:   proto.Int32(num),
			Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			Type:     typ.Enum(),
		}
	}
	msg := func(name string, fields ...*descriptorpb.FieldDescriptorProto) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: fields}
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("statefun_go_test_reference.proto"),
		Package: proto.String("statefungotest"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			msg("BooleanWrapper", field("value", 1, descriptorpb.FieldDescriptorProto_TYPE_BOOL)),
			msg("IntWrapper", field("value", 1, descriptorpb.FieldDescriptorProto_TYPE_SFIXED32)),
			msg("LongWrapper", field("value", 1, descriptorpb.FieldDescriptorProto_TYPE_SFIXED64)),
			msg("FloatWrapper", field("value", 1, descriptorpb.FieldDescriptorProto_TYPE_FLOAT)),
			msg("DoubleWrapper", field("value", 1, descriptorpb.FieldDescriptorProto_TYPE_DOUBLE)),
			msg("StringWrapper", field("value", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING)),
			msg("KafkaProducerRecord",
				field("key", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING),
				field("value_bytes", 2, descriptorpb.FieldDescriptorProto_TYPE_BYTES),
				field("topic", 3, descriptorpb.FieldDescriptorProto_TYPE_STRING)),
			msg("KinesisEgressRecord",
				field("partition_key", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING),
				field("value_bytes", 2, descriptorpb.FieldDescriptorProto_TYPE_BYTES),
				field("stream", 3, descriptorpb.FieldDescriptorProto_TYPE_STRING),
				field("explicit_hash_key", 4, descriptorpb.FieldDescriptorProto_TYPE_STRING)),
		},
	}
	fd, err := protodesc.NewFile(fdp, new(protoregistry.Files))
	if err != nil {
		panic(err)
	}
	out := map[string]protoreflect.MessageDescriptor{}
	for i := 0; i < fd.Messages().Len(); i++ {
		md := fd.Messages().Get(i)
		out[string(md.Name())] = md
	}
	return out
}

// refWrapperName maps each primitive to its reference wrapper message.
var refWrapperName = map[PrimitiveType]string{
	BoolType:    "BooleanWrapper",
	Int32Type:   "IntWrapper",
	Int64Type:   "LongWrapper",
	Float32Type: "FloatWrapper",
	Float64Type: "DoubleWrapper",
	StringType:  "StringWrapper",
}

// refMarshal marshals a reference message whose fields are set by name.
func refMarshal(t testing.TB, name string, fields map[string]interface{}) []byte {
	t.Helper()
	md := refMessages[name]
	m := dynamicpb.NewMessage(md)
	for k, v := range fields {
		m.Set(md.Fields().ByName(protoreflect.Name(k)), protoreflect.ValueOf(v))
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatalf("reference marshal %s: %v", name, err)
	}
	return b
}

// refUnmarshal unmarshals b as the named reference message.
func refUnmarshal(name string, b []byte) (*dynamicpb.Message, error) {
	m := dynamicpb.NewMessage(refMessages[name])
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

// refField returns the value of the named field of m.
func refField(m *dynamicpb.Message, name string) interface{} {
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(name))).Interface()
}
