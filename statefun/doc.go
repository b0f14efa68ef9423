// Package statefun is the Go SDK for embedded stateful functions of this
// Stateful Functions engine, a reimplementation of Apache Flink StateFun.
//
// # What this package owns
//
// The package defines everything a function author touches: typenames
// ([TypeName], [Address]), values and their wire encodings ([SimpleType],
// [PrimitiveType], [MakeJsonType], [MakeProtobufType]), messages
// ([MessageBuilder], [Message]), persisted state declarations ([ValueSpec],
// [Expiration], [AddressScopedStorage]), the invocation [Context], egress
// records ([KafkaEgressBuilder], [KinesisEgressBuilder],
// [GenericEgressBuilder]) and function registration
// ([StatefulFunctionsBuilder], [StatefulFunctionSpec]).
//
// It is a leaf package: it imports only the standard library and
// google.golang.org/protobuf, and nothing else from this repository. The
// engine (router, dispatcher, state backend, egresses) lives in other
// packages and depends on this one, never the other way round.
//
// # Compatibility with the official SDK
//
// The exported API mirrors the official StateFun Go SDK
// (github.com/apache/flink-statefun/statefun-sdk-go/v3, version 3.3.0):
// a function written against the official SDK is ported by changing its
// import path only, provided it does not call AsHandler (see below). The
// byte encodings are identical to upstream, so values written by either
// implementation can be read by the other and by remote functions:
//
//   - the primitive types use the io.statefun.types wrapper messages
//     (BooleanWrapper, IntWrapper, LongWrapper, FloatWrapper, DoubleWrapper,
//     StringWrapper) in their proto3 encoding, where the zero value is the
//     empty byte string;
//   - JSON types use encoding/json exactly as upstream (including the
//     trailing newline written by json.Encoder);
//   - protobuf types use proto.Marshal and the typename
//     "type.googleapis.com/<full message name>";
//   - Kafka and Kinesis egress records are the serialized
//     io.statefun.sdk.egress.KafkaProducerRecord and KinesisEgressRecord
//     messages. They are encoded by hand with protowire; no descriptors are
//     registered, so a binary may link this package and the official SDK at
//     the same time.
//
// Like upstream, typenames are split on the last '/', and the package panics
// only where upstream does: [TypeNameFrom] on a malformed typename, the
// Message.AsXxx accessors when the payload cannot be decoded, Context
// methods handed an invalid builder, [DeriveContext] on a nil context, and
// [AddressScopedStorage] implementations on unregistered specs or values of
// the wrong type. Malformed bytes never cause a panic in a decoder; they are
// reported as errors.
//
// # Deviations from the official SDK
//
//   - StatefulFunctions has no AsHandler method and there is no
//     RequestReplyHandler: the HTTP request-reply protocol is not part of this
//     package yet. Instead, [StatefulFunctions.Specs] returns the registered
//     specs, in registration order, for the embedded engine to run.
//   - WithSpec additionally rejects a nil FunctionType, a nil state
//     ValueType and duplicate state names; it does not log.
//   - [EgressBuilder] has the exported method ToEgress (upstream's is
//     unexported), returning an [EgressRecord]; [DecodeKafkaProducerRecord]
//     and [DecodeKinesisEgressRecord] decode the records for the engine's
//     egresses.
//   - [Expiration] exposes its mode and duration through [Expiration.Mode] and
//     [Expiration.Duration], and [ValidateValueSpec] is exported. The
//     [ExpirationMode] constants are named ExpireNone, ExpireAfterCallMode and
//     ExpireAfterWriteMode, because ExpireAfterCall and ExpireAfterWrite are
//     already the constructor functions.
//   - [Message.ValueTypeName] does not panic on a typename that is not of the
//     form namespace/name; see its documentation.
//   - [DeriveContext] works with any [Context] implementation (upstream
//     accepts only its own), and implementations may take it over through
//     [ContextDeriver].
//
// # Engine hooks
//
// The runtime uses a few additional functions that function authors do not
// need: [MessageFromTypedValue] and [Message.Target] to hand a message to a
// function, [MessageBuilder.Build] to turn what a function sends into an
// envelope, [EncodeValue], [DecodeValue] and [TypeNameString] for the state
// backend (with allocation-free paths for the primitive types),
// [EgressBuilder.ToEgress] and the egress record decoders, and
// [StatefulFunctions.Specs].
package statefun
