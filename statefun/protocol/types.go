package protocol

import "strconv"

// ContentType is the media type of every request and response body of the
// request-reply protocol. Send it exactly as written: the Go SDK rejects any
// parameter (such as "; charset=...") with 415 Unsupported Media Type.
const ContentType = "application/octet-stream"

// Address is io.statefun.sdk.reqreply.Address.
//
//	1 namespace string
//	2 type      string
//	3 id        string
type Address struct {
	Namespace string
	Type      string
	ID        string
}

// TypedValue is io.statefun.sdk.reqreply.TypedValue.
//
//	1 typename  string
//	2 has_value bool
//	3 value     bytes
//
// HasValue keeps "present but empty" apart from "absent". After Unmarshal an
// empty Value is nil whether or not the field was on the wire (proto3 has no
// presence for bytes), and a non-empty Value never aliases the input.
type TypedValue struct {
	Typename string
	HasValue bool
	Value    []byte
}

// PersistedValue is ToFunction.PersistedValue.
//
//	1 state_name  string
//	2 state_value TypedValue (nil when the state has no value)
type PersistedValue struct {
	StateName  string
	StateValue *TypedValue
}

// Invocation is ToFunction.Invocation.
//
//	1 caller   Address (nil when the message came from an ingress)
//	2 argument TypedValue
type Invocation struct {
	Caller   *Address
	Argument *TypedValue
}

// InvocationBatchRequest is ToFunction.InvocationBatchRequest.
//
//	1 target      Address
//	2 state       repeated ToFunction.PersistedValue
//	3 invocations repeated ToFunction.Invocation
type InvocationBatchRequest struct {
	Target      *Address
	State       []PersistedValue
	Invocations []Invocation
}

// ToFunction is the request body sent by the runtime to a remote function.
//
//	oneof request {
//	  100 invocation ToFunction.InvocationBatchRequest
//	}
//
// A nil Invocation encodes as the empty message.
type ToFunction struct {
	Invocation *InvocationBatchRequest
}

// MutationType is FromFunction.PersistedValueMutation.MutationType. Values
// outside the known set are kept by Unmarshal as the raw number.
type MutationType int32

// The known MutationType values.
const (
	MutationDelete MutationType = 0 // DELETE
	MutationModify MutationType = 1 // MODIFY
)

// String returns the upstream enum value name, or "MutationType(n)".
func (t MutationType) String() string {
	switch t {
	case MutationDelete:
		return "DELETE"
	case MutationModify:
		return "MODIFY"
	}
	return "MutationType(" + strconv.FormatInt(int64(t), 10) + ")"
}

// PersistedValueMutation is FromFunction.PersistedValueMutation.
//
//	1 mutation_type MutationType
//	2 state_name    string
//	3 state_value   TypedValue (used for MODIFY)
type PersistedValueMutation struct {
	MutationType MutationType
	StateName    string
	StateValue   *TypedValue
}

// OutgoingMessage is FromFunction.Invocation: a message to another function.
// It has no caller; the runtime fills it in.
//
//	1 target   Address
//	2 argument TypedValue
type OutgoingMessage struct {
	Target   *Address
	Argument *TypedValue
}

// DelayedInvocation is FromFunction.DelayedInvocation. The field numbers are
// not in declaration order; the encoding is in field-number order
// (1, 2, 3, 10, 11), as every protobuf implementation writes it.
//
//	10 is_cancellation_request bool
//	11 cancellation_token      string
//	 1 delay_in_ms             int64
//	 2 target                  Address
//	 3 argument                TypedValue
type DelayedInvocation struct {
	IsCancellationRequest bool
	CancellationToken     string
	DelayInMs             int64
	Target                *Address
	Argument              *TypedValue
}

// EgressMessage is FromFunction.EgressMessage.
//
//	1 egress_namespace string
//	2 egress_type      string
//	3 argument         TypedValue
type EgressMessage struct {
	EgressNamespace string
	EgressType      string
	Argument        *TypedValue
}

// InvocationResponse is FromFunction.InvocationResponse.
//
//	1 state_mutations     repeated PersistedValueMutation
//	2 outgoing_messages   repeated FromFunction.Invocation
//	3 delayed_invocations repeated DelayedInvocation
//	4 outgoing_egresses   repeated EgressMessage
type InvocationResponse struct {
	StateMutations     []PersistedValueMutation
	OutgoingMessages   []OutgoingMessage
	DelayedInvocations []DelayedInvocation
	OutgoingEgresses   []EgressMessage
}

// ExpireMode is FromFunction.ExpirationSpec.ExpireMode. Values outside the
// known set are kept by Unmarshal as the raw number.
type ExpireMode int32

// The known ExpireMode values.
const (
	ExpireNone        ExpireMode = 0 // NONE
	ExpireAfterWrite  ExpireMode = 1 // AFTER_WRITE
	ExpireAfterInvoke ExpireMode = 2 // AFTER_INVOKE
)

// String returns the upstream enum value name, or "ExpireMode(n)".
func (m ExpireMode) String() string {
	switch m {
	case ExpireNone:
		return "NONE"
	case ExpireAfterWrite:
		return "AFTER_WRITE"
	case ExpireAfterInvoke:
		return "AFTER_INVOKE"
	}
	return "ExpireMode(" + strconv.FormatInt(int64(m), 10) + ")"
}

// ExpirationSpec is FromFunction.ExpirationSpec.
//
//	1 mode                ExpireMode
//	2 expire_after_millis int64
type ExpirationSpec struct {
	Mode              ExpireMode
	ExpireAfterMillis int64
}

// PersistedValueSpec is FromFunction.PersistedValueSpec.
//
//	1 state_name      string
//	2 expiration_spec ExpirationSpec
//	3 type_typename   string
type PersistedValueSpec struct {
	StateName      string
	ExpirationSpec *ExpirationSpec
	TypeTypename   string
}

// IncompleteInvocationContext is FromFunction.IncompleteInvocationContext.
//
//	1 missing_values repeated PersistedValueSpec
type IncompleteInvocationContext struct {
	MissingValues []PersistedValueSpec
}

// FromFunction is the response body sent by a remote function.
//
//	oneof response {
//	  100 invocation_result             InvocationResponse
//	  101 incomplete_invocation_context IncompleteInvocationContext
//	}
//
// At most one member should be set. If both are set, AppendMarshal writes
// only IncompleteInvocationContext, which is what any protobuf decoder would
// keep had both been written in field-number order. With neither set the
// message is empty, which the runtime reads as "no side effects".
type FromFunction struct {
	InvocationResult            *InvocationResponse
	IncompleteInvocationContext *IncompleteInvocationContext
}
