package protocol

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The reference implementation used by the tests: the upstream
// sdk/request-reply.proto, written out as a FileDescriptorProto from the field
// tables of the contract, resolved in a PRIVATE protoregistry.Files and used
// through dynamicpb. Nothing is registered in the global registry, so these
// descriptors may keep the upstream package name even though the official SDK
// (linked into this test binary by sdk_test.go) registers the same names
// globally. TestReferenceDescriptorMatchesSDK checks this file against the
// SDK's embedded descriptor.

const refPackage = "io.statefun.sdk.reqreply"

type refDescriptors struct {
	file         protoreflect.FileDescriptor
	toFunction   protoreflect.MessageDescriptor
	fromFunction protoreflect.MessageDescriptor
}

var ref = buildRef()

func refFileProto() *descriptorpb.FileDescriptorProto {
	const (
		tString = descriptorpb.FieldDescriptorProto_TYPE_STRING
		tBool   = descriptorpb.FieldDescriptorProto_TYPE_BOOL
		tBytes  = descriptorpb.FieldDescriptorProto_TYPE_BYTES
		tInt64  = descriptorpb.FieldDescriptorProto_TYPE_INT64
		tEnum   = descriptorpb.FieldDescriptorProto_TYPE_ENUM
		tMsg    = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	)
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED
	field := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{
			Name:   proto.String(name),
			Number: proto.Int32(num),
			Label:  opt.Enum(),
			Type:   typ.Enum(),
		}
		if typeName != "" {
			f.TypeName = proto.String("." + refPackage + "." + typeName)
		}
		return f
	}
	repeated := func(f *descriptorpb.FieldDescriptorProto) *descriptorpb.FieldDescriptorProto {
		f.Label = rep.Enum()
		return f
	}
	oneof := func(f *descriptorpb.FieldDescriptorProto) *descriptorpb.FieldDescriptorProto {
		f.OneofIndex = proto.Int32(0)
		return f
	}
	msg := func(name string, fields ...*descriptorpb.FieldDescriptorProto) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: fields}
	}
	enum := func(name string, values ...string) *descriptorpb.EnumDescriptorProto {
		e := &descriptorpb.EnumDescriptorProto{Name: proto.String(name)}
		for i, v := range values {
			e.Value = append(e.Value, &descriptorpb.EnumValueDescriptorProto{Name: proto.String(v), Number: proto.Int32(int32(i))})
		}
		return e
	}

	toFunction := msg("ToFunction",
		oneof(field("invocation", 100, tMsg, "ToFunction.InvocationBatchRequest")))
	toFunction.OneofDecl = []*descriptorpb.OneofDescriptorProto{{Name: proto.String("request")}}
	toFunction.NestedType = []*descriptorpb.DescriptorProto{
		msg("PersistedValue",
			field("state_name", 1, tString, ""),
			field("state_value", 2, tMsg, "TypedValue")),
		msg("Invocation",
			field("caller", 1, tMsg, "Address"),
			field("argument", 2, tMsg, "TypedValue")),
		msg("InvocationBatchRequest",
			field("target", 1, tMsg, "Address"),
			repeated(field("state", 2, tMsg, "ToFunction.PersistedValue")),
			repeated(field("invocations", 3, tMsg, "ToFunction.Invocation"))),
	}

	mutation := msg("PersistedValueMutation",
		field("mutation_type", 1, tEnum, "FromFunction.PersistedValueMutation.MutationType"),
		field("state_name", 2, tString, ""),
		field("state_value", 3, tMsg, "TypedValue"))
	mutation.EnumType = []*descriptorpb.EnumDescriptorProto{enum("MutationType", "DELETE", "MODIFY")}
	expiration := msg("ExpirationSpec",
		field("mode", 1, tEnum, "FromFunction.ExpirationSpec.ExpireMode"),
		field("expire_after_millis", 2, tInt64, ""))
	expiration.EnumType = []*descriptorpb.EnumDescriptorProto{enum("ExpireMode", "NONE", "AFTER_WRITE", "AFTER_INVOKE")}

	fromFunction := msg("FromFunction",
		oneof(field("invocation_result", 100, tMsg, "FromFunction.InvocationResponse")),
		oneof(field("incomplete_invocation_context", 101, tMsg, "FromFunction.IncompleteInvocationContext")))
	fromFunction.OneofDecl = []*descriptorpb.OneofDescriptorProto{{Name: proto.String("response")}}
	fromFunction.NestedType = []*descriptorpb.DescriptorProto{
		mutation,
		msg("Invocation",
			field("target", 1, tMsg, "Address"),
			field("argument", 2, tMsg, "TypedValue")),
		msg("DelayedInvocation", // declared in upstream order: 10, 11, 1, 2, 3
			field("is_cancellation_request", 10, tBool, ""),
			field("cancellation_token", 11, tString, ""),
			field("delay_in_ms", 1, tInt64, ""),
			field("target", 2, tMsg, "Address"),
			field("argument", 3, tMsg, "TypedValue")),
		msg("EgressMessage",
			field("egress_namespace", 1, tString, ""),
			field("egress_type", 2, tString, ""),
			field("argument", 3, tMsg, "TypedValue")),
		msg("InvocationResponse",
			repeated(field("state_mutations", 1, tMsg, "FromFunction.PersistedValueMutation")),
			repeated(field("outgoing_messages", 2, tMsg, "FromFunction.Invocation")),
			repeated(field("delayed_invocations", 3, tMsg, "FromFunction.DelayedInvocation")),
			repeated(field("outgoing_egresses", 4, tMsg, "FromFunction.EgressMessage"))),
		expiration,
		msg("PersistedValueSpec",
			field("state_name", 1, tString, ""),
			field("expiration_spec", 2, tMsg, "FromFunction.ExpirationSpec"),
			field("type_typename", 3, tString, "")),
		msg("IncompleteInvocationContext",
			repeated(field("missing_values", 1, tMsg, "FromFunction.PersistedValueSpec"))),
	}

	return &descriptorpb.FileDescriptorProto{
		Name:    proto.String("statefun-go-test/request-reply.proto"),
		Package: proto.String(refPackage),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			msg("Address",
				field("namespace", 1, tString, ""),
				field("type", 2, tString, ""),
				field("id", 3, tString, "")),
			msg("TypedValue",
				field("typename", 1, tString, ""),
				field("has_value", 2, tBool, ""),
				field("value", 3, tBytes, "")),
			toFunction,
			fromFunction,
		},
	}
}

func buildRef() refDescriptors {
	// A private registry: protodesc resolves the file against it, and the
	// file is registered only there (never in protoregistry.GlobalFiles).
	files := new(protoregistry.Files)
	fd, err := protodesc.NewFile(refFileProto(), files)
	if err != nil {
		panic(err)
	}
	if err := files.RegisterFile(fd); err != nil {
		panic(err)
	}
	find := func(name string) protoreflect.MessageDescriptor {
		d, err := files.FindDescriptorByName(protoreflect.FullName(refPackage + "." + name))
		if err != nil {
			panic(err)
		}
		return d.(protoreflect.MessageDescriptor)
	}
	return refDescriptors{file: fd, toFunction: find("ToFunction"), fromFunction: find("FromFunction")}
}

func newRefTo() *dynamicpb.Message   { return dynamicpb.NewMessage(ref.toFunction) }
func newRefFrom() *dynamicpb.Message { return dynamicpb.NewMessage(ref.fromFunction) }

var deterministic = proto.MarshalOptions{Deterministic: true}

// --- conversion between our structs and any protoreflect.Message of the same
// schema (dynamicpb here, or the SDK's generated types) --------------------

func fdOf(m protoreflect.Message, name string) protoreflect.FieldDescriptor {
	f := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if f == nil {
		panic(fmt.Sprintf("no field %s in %s", name, m.Descriptor().FullName()))
	}
	return f
}

func setStr(m protoreflect.Message, name, v string) {
	if v != "" {
		m.Set(fdOf(m, name), protoreflect.ValueOfString(v))
	}
}

func setBytes(m protoreflect.Message, name string, v []byte) {
	if len(v) != 0 {
		m.Set(fdOf(m, name), protoreflect.ValueOfBytes(v))
	}
}

func setBool(m protoreflect.Message, name string, v bool) {
	if v {
		m.Set(fdOf(m, name), protoreflect.ValueOfBool(v))
	}
}

func setInt64(m protoreflect.Message, name string, v int64) {
	if v != 0 {
		m.Set(fdOf(m, name), protoreflect.ValueOfInt64(v))
	}
}

func setEnum(m protoreflect.Message, name string, v int32) {
	if v != 0 {
		m.Set(fdOf(m, name), protoreflect.ValueOfEnum(protoreflect.EnumNumber(v)))
	}
}

// sub returns the (created) sub-message of a singular message field.
func sub(m protoreflect.Message, name string) protoreflect.Message {
	return m.Mutable(fdOf(m, name)).Message()
}

// add appends a new element to a repeated message field and returns it.
func add(m protoreflect.Message, name string, fill func(protoreflect.Message)) {
	l := m.Mutable(fdOf(m, name)).List()
	e := l.NewElement()
	fill(e.Message())
	l.Append(e)
}

func getStr(m protoreflect.Message, name string) string { return m.Get(fdOf(m, name)).String() }
func getBool(m protoreflect.Message, name string) bool  { return m.Get(fdOf(m, name)).Bool() }
func getInt64(m protoreflect.Message, name string) int64 {
	return m.Get(fdOf(m, name)).Int()
}
func getEnum(m protoreflect.Message, name string) int32 {
	return int32(m.Get(fdOf(m, name)).Enum())
}

func getBytes(m protoreflect.Message, name string) []byte {
	b := m.Get(fdOf(m, name)).Bytes()
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func getSub(m protoreflect.Message, name string) (protoreflect.Message, bool) {
	f := fdOf(m, name)
	if !m.Has(f) {
		return nil, false
	}
	return m.Get(f).Message(), true
}

func each(m protoreflect.Message, name string, fn func(protoreflect.Message)) {
	l := m.Get(fdOf(m, name)).List()
	for i := 0; i < l.Len(); i++ {
		fn(l.Get(i).Message())
	}
}

func addressToRef(a *Address, m protoreflect.Message) {
	setStr(m, "namespace", a.Namespace)
	setStr(m, "type", a.Type)
	setStr(m, "id", a.ID)
}

func typedValueToRef(v *TypedValue, m protoreflect.Message) {
	setStr(m, "typename", v.Typename)
	setBool(m, "has_value", v.HasValue)
	setBytes(m, "value", v.Value)
}

func subAddressToRef(m protoreflect.Message, name string, a *Address) {
	if a != nil {
		addressToRef(a, sub(m, name))
	}
}

func subTypedValueToRef(m protoreflect.Message, name string, v *TypedValue) {
	if v != nil {
		typedValueToRef(v, sub(m, name))
	}
}

func addressFromRef(m protoreflect.Message, name string) *Address {
	s, ok := getSub(m, name)
	if !ok {
		return nil
	}
	return &Address{Namespace: getStr(s, "namespace"), Type: getStr(s, "type"), ID: getStr(s, "id")}
}

func typedValueFromRef(m protoreflect.Message, name string) *TypedValue {
	s, ok := getSub(m, name)
	if !ok {
		return nil
	}
	return &TypedValue{Typename: getStr(s, "typename"), HasValue: getBool(s, "has_value"), Value: getBytes(s, "value")}
}

// toFunctionToRef fills m (a ToFunction of any implementation) from t.
func toFunctionToRef(t *ToFunction, m protoreflect.Message) {
	if t.Invocation == nil {
		return
	}
	b := sub(m, "invocation")
	subAddressToRef(b, "target", t.Invocation.Target)
	for _, s := range t.Invocation.State {
		add(b, "state", func(e protoreflect.Message) {
			setStr(e, "state_name", s.StateName)
			subTypedValueToRef(e, "state_value", s.StateValue)
		})
	}
	for _, inv := range t.Invocation.Invocations {
		add(b, "invocations", func(e protoreflect.Message) {
			subAddressToRef(e, "caller", inv.Caller)
			subTypedValueToRef(e, "argument", inv.Argument)
		})
	}
}

func toFunctionFromRef(m protoreflect.Message) *ToFunction {
	t := &ToFunction{}
	b, ok := getSub(m, "invocation")
	if !ok {
		return t
	}
	t.Invocation = &InvocationBatchRequest{Target: addressFromRef(b, "target")}
	each(b, "state", func(e protoreflect.Message) {
		t.Invocation.State = append(t.Invocation.State, PersistedValue{
			StateName:  getStr(e, "state_name"),
			StateValue: typedValueFromRef(e, "state_value"),
		})
	})
	each(b, "invocations", func(e protoreflect.Message) {
		t.Invocation.Invocations = append(t.Invocation.Invocations, Invocation{
			Caller:   addressFromRef(e, "caller"),
			Argument: typedValueFromRef(e, "argument"),
		})
	})
	return t
}

// fromFunctionToRef fills m (a FromFunction of any implementation) from f.
// Only one oneof member may be set in f.
func fromFunctionToRef(f *FromFunction, m protoreflect.Message) {
	if f.InvocationResult != nil && f.IncompleteInvocationContext != nil {
		panic("both oneof members set")
	}
	if r := f.InvocationResult; r != nil {
		b := sub(m, "invocation_result")
		for _, x := range r.StateMutations {
			add(b, "state_mutations", func(e protoreflect.Message) {
				setEnum(e, "mutation_type", int32(x.MutationType))
				setStr(e, "state_name", x.StateName)
				subTypedValueToRef(e, "state_value", x.StateValue)
			})
		}
		for _, x := range r.OutgoingMessages {
			add(b, "outgoing_messages", func(e protoreflect.Message) {
				subAddressToRef(e, "target", x.Target)
				subTypedValueToRef(e, "argument", x.Argument)
			})
		}
		for _, x := range r.DelayedInvocations {
			add(b, "delayed_invocations", func(e protoreflect.Message) {
				setBool(e, "is_cancellation_request", x.IsCancellationRequest)
				setStr(e, "cancellation_token", x.CancellationToken)
				setInt64(e, "delay_in_ms", x.DelayInMs)
				subAddressToRef(e, "target", x.Target)
				subTypedValueToRef(e, "argument", x.Argument)
			})
		}
		for _, x := range r.OutgoingEgresses {
			add(b, "outgoing_egresses", func(e protoreflect.Message) {
				setStr(e, "egress_namespace", x.EgressNamespace)
				setStr(e, "egress_type", x.EgressType)
				subTypedValueToRef(e, "argument", x.Argument)
			})
		}
	}
	if c := f.IncompleteInvocationContext; c != nil {
		b := sub(m, "incomplete_invocation_context")
		for _, x := range c.MissingValues {
			add(b, "missing_values", func(e protoreflect.Message) {
				setStr(e, "state_name", x.StateName)
				if x.ExpirationSpec != nil {
					s := sub(e, "expiration_spec")
					setEnum(s, "mode", int32(x.ExpirationSpec.Mode))
					setInt64(s, "expire_after_millis", x.ExpirationSpec.ExpireAfterMillis)
				}
				setStr(e, "type_typename", x.TypeTypename)
			})
		}
	}
}

func fromFunctionFromRef(m protoreflect.Message) *FromFunction {
	f := &FromFunction{}
	if b, ok := getSub(m, "invocation_result"); ok {
		r := &InvocationResponse{}
		each(b, "state_mutations", func(e protoreflect.Message) {
			r.StateMutations = append(r.StateMutations, PersistedValueMutation{
				MutationType: MutationType(getEnum(e, "mutation_type")),
				StateName:    getStr(e, "state_name"),
				StateValue:   typedValueFromRef(e, "state_value"),
			})
		})
		each(b, "outgoing_messages", func(e protoreflect.Message) {
			r.OutgoingMessages = append(r.OutgoingMessages, OutgoingMessage{
				Target:   addressFromRef(e, "target"),
				Argument: typedValueFromRef(e, "argument"),
			})
		})
		each(b, "delayed_invocations", func(e protoreflect.Message) {
			r.DelayedInvocations = append(r.DelayedInvocations, DelayedInvocation{
				IsCancellationRequest: getBool(e, "is_cancellation_request"),
				CancellationToken:     getStr(e, "cancellation_token"),
				DelayInMs:             getInt64(e, "delay_in_ms"),
				Target:                addressFromRef(e, "target"),
				Argument:              typedValueFromRef(e, "argument"),
			})
		})
		each(b, "outgoing_egresses", func(e protoreflect.Message) {
			r.OutgoingEgresses = append(r.OutgoingEgresses, EgressMessage{
				EgressNamespace: getStr(e, "egress_namespace"),
				EgressType:      getStr(e, "egress_type"),
				Argument:        typedValueFromRef(e, "argument"),
			})
		})
		f.InvocationResult = r
	}
	if b, ok := getSub(m, "incomplete_invocation_context"); ok {
		c := &IncompleteInvocationContext{}
		each(b, "missing_values", func(e protoreflect.Message) {
			spec := PersistedValueSpec{StateName: getStr(e, "state_name"), TypeTypename: getStr(e, "type_typename")}
			if s, ok := getSub(e, "expiration_spec"); ok {
				spec.ExpirationSpec = &ExpirationSpec{
					Mode:              ExpireMode(getEnum(s, "mode")),
					ExpireAfterMillis: getInt64(s, "expire_after_millis"),
				}
			}
			c.MissingValues = append(c.MissingValues, spec)
		})
		f.IncompleteInvocationContext = c
	}
	return f
}
