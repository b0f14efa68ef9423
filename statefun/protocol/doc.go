// Package protocol holds the StateFun 3.x request-reply wire types
// (upstream sdk/request-reply.proto, package io.statefun.sdk.reqreply) and a
// hand-written proto3 codec for them, built on
// google.golang.org/protobuf/encoding/protowire.
//
// # Why not generated code
//
// The package is byte-for-byte wire-compatible with the upstream messages,
// but it is plain Go: no .proto file, no generated code, no descriptors, and
// nothing is registered in the global protobuf registry. A binary (or test
// binary) can therefore link it next to the official StateFun Go SDK, which
// registers io.statefun.sdk.reqreply.* and io.statefun.sdk.egress.* itself;
// registering the same names twice makes protobuf-go panic at init. The wire
// format carries only field numbers, never package or message names, so no
// names are needed to interoperate.
//
// # Messages and field numbers
//
// ToFunction (runtime to function), the body of every POST:
//
//	ToFunction                      oneof request { 100 invocation InvocationBatchRequest }
//	ToFunction.InvocationBatchRequest  1 target Address; 2 state repeated PersistedValue;
//	                                   3 invocations repeated Invocation
//	ToFunction.PersistedValue          1 state_name string; 2 state_value TypedValue
//	ToFunction.Invocation              1 caller Address; 2 argument TypedValue
//
// FromFunction (function to runtime), the body of every 2xx reply:
//
//	FromFunction                    oneof response { 100 invocation_result InvocationResponse;
//	                                  101 incomplete_invocation_context IncompleteInvocationContext }
//	FromFunction.InvocationResponse    1 state_mutations repeated PersistedValueMutation;
//	                                   2 outgoing_messages repeated Invocation (OutgoingMessage here);
//	                                   3 delayed_invocations repeated DelayedInvocation;
//	                                   4 outgoing_egresses repeated EgressMessage
//	FromFunction.PersistedValueMutation 1 mutation_type enum {DELETE=0, MODIFY=1};
//	                                   2 state_name string; 3 state_value TypedValue
//	FromFunction.Invocation            1 target Address; 2 argument TypedValue
//	FromFunction.DelayedInvocation     10 is_cancellation_request bool; 11 cancellation_token string;
//	                                   1 delay_in_ms int64; 2 target Address; 3 argument TypedValue
//	FromFunction.EgressMessage         1 egress_namespace string; 2 egress_type string;
//	                                   3 argument TypedValue
//	FromFunction.IncompleteInvocationContext 1 missing_values repeated PersistedValueSpec
//	FromFunction.PersistedValueSpec    1 state_name string; 2 expiration_spec ExpirationSpec;
//	                                   3 type_typename string
//	FromFunction.ExpirationSpec        1 mode enum {NONE=0, AFTER_WRITE=1, AFTER_INVOKE=2};
//	                                   2 expire_after_millis int64
//
// Shared: Address (1 namespace, 2 type, 3 id, all strings) and TypedValue
// (1 typename string, 2 has_value bool, 3 value bytes).
//
// Handy first bytes: a ToFunction starts with 0xA2 0x06 (field 100,
// length-delimited); a FromFunction with 0xA2 0x06 for invocation_result and
// 0xAA 0x06 for incomplete_invocation_context. The DelayedInvocation tags of
// is_cancellation_request and cancellation_token are 0x50 and 0x5A.
//
// # Compatibility rules
//
// Encoding (AppendMarshal, Size) produces exactly the bytes of protobuf-go's
// deterministic marshalling of the same message: fields in field-number
// order (so a DelayedInvocation is written 1, 2, 3, 10, 11), proto3 default
// values omitted (empty strings and bytes, false, zero numbers, enum value
// 0), non-nil sub-messages always written even when empty, negative enum
// values sign-extended to ten bytes. Strings are not checked on the way out;
// see ValidateUTF8.
//
// Decoding (Unmarshal) accepts exactly what protobuf-go accepts and yields
// the same message, minus unknown fields, which are skipped and dropped:
//
//   - a known field with an unexpected wire type is treated as unknown;
//   - the last occurrence of a scalar field wins;
//   - repeated fields append;
//   - a sub-message that occurs more than once is merged;
//   - when both members of a oneof occur, the last one wins;
//   - enum values outside the known set are kept as the raw number (the
//     engine rejects them with a clear message, not the codec);
//   - string fields must be valid UTF-8. proto3 requires it, protobuf-go
//     (and so the official Go SDK's generated code) rejects such input, and
//     so does Unmarshal;
//   - field numbers outside [1, 2^29-1], truncated data, overlong varints,
//     stray end-group markers and reserved wire types are errors.
//
// Errors wrap ErrMalformed and name the field path, e.g.
// "protocol: FromFunction.invocation_result.state_mutations[2].state_value: truncated".
// Unmarshal never panics and never aliases its input: every non-empty bytes
// value is copied, because state values and messages outlive the HTTP body
// they came in. An empty bytes value decodes as nil; TypedValue.HasValue
// tells "empty" from "absent".
//
// Nothing here is safe for concurrent mutation during marshalling; distinct
// messages may be encoded and decoded concurrently.
package protocol
