package protocol

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is wrapped by every error returned by Unmarshal and
// ValidateUTF8. The error text names the offending field, for example
//
//	protocol: FromFunction.invocation_result.state_mutations[2].state_value: truncated
var ErrMalformed = errors.New("protocol: malformed message")

// pathElem is one step of the field path of a decode error.
type pathElem struct {
	name  string
	index int // -1 when the field is not repeated
}

// decodeError is built only on the error path; the hot path never formats.
type decodeError struct {
	root string
	path []pathElem // innermost first
	msg  string
}

func (e *decodeError) Error() string {
	var sb strings.Builder
	sb.WriteString("protocol: ")
	sb.WriteString(e.root)
	for k := len(e.path) - 1; k >= 0; k-- {
		sb.WriteByte('.')
		sb.WriteString(e.path[k].name)
		if e.path[k].index >= 0 {
			sb.WriteByte('[')
			sb.WriteString(strconv.Itoa(e.path[k].index))
			sb.WriteByte(']')
		}
	}
	sb.WriteString(": ")
	sb.WriteString(e.msg)
	return sb.String()
}

func (e *decodeError) Unwrap() error { return ErrMalformed }

// in prefixes the path of err (always a *decodeError) with a field.
func in(err error, name string, index int) error {
	e := err.(*decodeError)
	e.path = append(e.path, pathElem{name, index})
	return err
}

func rooted(err error, root string) error {
	err.(*decodeError).root = root
	return err
}

// wireMsg describes a protowire error code. protobuf-go's own messages are
// deliberately unstable (they randomly contain a non-breaking space), so the
// codes, which are part of protowire's parse contract, are mapped here.
func wireMsg(code int) string {
	switch code {
	case -1:
		return "truncated"
	case -2:
		return "invalid field number"
	case -3:
		return "varint overflows 64 bits"
	case -4:
		return "reserved wire type"
	case -5:
		return "unexpected or mismatched end-group marker"
	case -6:
		return "groups nested too deeply"
	}
	return "invalid wire data"
}

func fieldErr(name string, code int) error {
	return &decodeError{path: []pathElem{{name, -1}}, msg: wireMsg(code)}
}

func utf8Err(name string) error {
	return &decodeError{path: []pathElem{{name, -1}}, msg: "invalid UTF-8 in string field"}
}

// consumeTag is protowire.ConsumeTag plus the field number range check that
// protobuf-go's decoders apply (1 <= num <= 2^29-1).
func consumeTag(b []byte) (protowire.Number, protowire.Type, int, error) {
	if len(b) > 0 && b[0] < 0x80 { // one-byte tag: the common case
		num, typ := protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
		if num == 0 {
			return 0, 0, 0, &decodeError{msg: "invalid field number 0"}
		}
		return num, typ, 1, nil
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, 0, &decodeError{msg: "field tag: " + wireMsg(n)}
	}
	if num > protowire.MaxValidNumber {
		return 0, 0, 0, &decodeError{msg: "invalid field number " + strconv.Itoa(int(num))}
	}
	return num, typ, n, nil
}

// skipField consumes the value of a field that is unknown, or known but sent
// with an unexpected wire type; protobuf treats both as unknown fields.
// Unknown fields are dropped, not preserved.
func skipField(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return 0, &decodeError{msg: "unknown field " + strconv.Itoa(int(num)) +
			" (wire type " + strconv.Itoa(int(typ)) + "): " + wireMsg(n)}
	}
	return n, nil
}

// Decoding strategy and memory ownership.
//
// Unmarshal never aliases its input: the caller may reuse or free b as soon
// as Unmarshal returns. State values and messages routinely outlive the HTTP
// body they arrived in (they are stored, buffered for delayed delivery,
// forwarded), so every non-empty bytes value gets its own copy, every string
// its own allocation and every sub-message its own struct. Keeping any part
// of a decoded message therefore keeps only that part alive, never the
// input buffer or the neighbouring values.
//
// Allocations are kept down without sharing memory: repeated fields are
// counted first so each slice is allocated once at its final size, well-known
// type names (io.statefun.types/*, the Kafka and Kinesis egress records) are
// returned as constants, and short strings repeated within one message
// (namespaces, type names) are decoded once and shared (Go strings are
// immutable, so sharing them is safe). An empty bytes value decodes as nil.
//
// Semantics follow protobuf-go exactly: unknown fields, and known fields with
// an unexpected wire type, are skipped; the last occurrence of a scalar wins;
// repeated fields append; a sub-message that occurs more than once is merged;
// when both members of a oneof occur the last one wins (a repeated member is
// merged); enum values outside the known set are kept as the raw number;
// string fields must be valid UTF-8, as proto3 requires and as the official
// SDKs' generated code checks (protobuf-go rejects such input, so do we).
// The message types are not recursive, so nesting depth is bounded by the
// schema (four message levels); groups inside unknown fields are bounded by
// protowire.DefaultRecursionLimit, as in protobuf-go.
//
// Like any protobuf decoder, degenerate input can decode to more memory than
// its own size (an empty repeated element costs 2 bytes on the wire and a few
// dozen in memory), so callers should bound the body size they accept.
type decoder struct {
	recent [8]string // short strings decoded from this message
	next   int
}

const internMax = 64

func (d *decoder) str(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", true
	}
	if s, ok := wellKnown(b); ok {
		return s, true
	}
	if len(b) <= internMax {
		for _, s := range d.recent {
			if s == string(b) {
				return s, true
			}
		}
	}
	if !utf8.Valid(b) {
		return "", false
	}
	s := string(b)
	if len(b) <= internMax {
		d.recent[d.next%len(d.recent)] = s
		d.next++
	}
	return s, true
}

// wellKnown returns a constant for the type names that occur in nearly every
// message. The conversion in the switch does not allocate.
func wellKnown(b []byte) (string, bool) {
	switch string(b) {
	case "io.statefun.types/int":
		return "io.statefun.types/int", true
	case "io.statefun.types/long":
		return "io.statefun.types/long", true
	case "io.statefun.types/string":
		return "io.statefun.types/string", true
	case "io.statefun.types/bool":
		return "io.statefun.types/bool", true
	case "io.statefun.types/float":
		return "io.statefun.types/float", true
	case "io.statefun.types/double":
		return "io.statefun.types/double", true
	case "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord":
		return "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord", true
	case "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord":
		return "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord", true
	}
	return "", false
}

// stringField decodes a length-delimited string value at b.
func (d *decoder) stringField(b []byte, name string, dst *string) (int, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, fieldErr(name, n)
	}
	s, ok := d.str(v)
	if !ok {
		return 0, utf8Err(name)
	}
	*dst = s
	return n, nil
}

// bytesField decodes a length-delimited bytes value at b into a private copy.
func bytesField(b []byte, name string, dst *[]byte) (int, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, fieldErr(name, n)
	}
	if len(v) == 0 {
		*dst = nil
	} else {
		*dst = append([]byte(nil), v...)
	}
	return n, nil
}

// varintField decodes a varint value at b.
func varintField(b []byte, name string) (uint64, int, error) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, fieldErr(name, n)
	}
	return v, n, nil
}

// messageField isolates the payload of a length-delimited sub-message.
func messageField(b []byte, name string, index int) ([]byte, int, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, 0, &decodeError{path: []pathElem{{name, index}}, msg: wireMsg(n)}
	}
	return v, n, nil
}

// countFields counts the length-delimited occurrences of fields 1..4 at the
// top level of b, to size repeated fields once. It stops quietly at the first
// malformed field; the decoding pass reports it.
func countFields(b []byte) (c [5]int) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return
		}
		b = b[n:]
		if typ == protowire.BytesType && num < 5 {
			c[num]++
		}
	}
	return
}

// grow makes room for n more elements without changing len.
func grow[T any](s []T, n int) []T {
	if n == 0 {
		return s
	}
	return slices.Grow(s, n)
}

// --- shared messages ------------------------------------------------------

func (d *decoder) address(b []byte, m *Address) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			n, err = d.stringField(b, "namespace", &m.Namespace)
		case num == 2 && typ == protowire.BytesType:
			n, err = d.stringField(b, "type", &m.Type)
		case num == 3 && typ == protowire.BytesType:
			n, err = d.stringField(b, "id", &m.ID)
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) typedValue(b []byte, m *TypedValue) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			n, err = d.stringField(b, "typename", &m.Typename)
		case num == 2 && typ == protowire.VarintType:
			var v uint64
			v, n, err = varintField(b, "has_value")
			m.HasValue = v != 0
		case num == 3 && typ == protowire.BytesType:
			n, err = bytesField(b, "value", &m.Value)
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// subAddress decodes (merging) an Address sub-message field.
func (d *decoder) subAddress(b []byte, name string, p **Address) (int, error) {
	v, n, err := messageField(b, name, -1)
	if err != nil {
		return 0, err
	}
	if *p == nil {
		*p = new(Address)
	}
	if err := d.address(v, *p); err != nil {
		return 0, in(err, name, -1)
	}
	return n, nil
}

// subTypedValue decodes (merging) a TypedValue sub-message field.
func (d *decoder) subTypedValue(b []byte, name string, p **TypedValue) (int, error) {
	v, n, err := messageField(b, name, -1)
	if err != nil {
		return 0, err
	}
	if *p == nil {
		*p = new(TypedValue)
	}
	if err := d.typedValue(v, *p); err != nil {
		return 0, in(err, name, -1)
	}
	return n, nil
}

// --- ToFunction -----------------------------------------------------------

func (d *decoder) persistedValue(b []byte, m *PersistedValue) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			n, err = d.stringField(b, "state_name", &m.StateName)
		case num == 2 && typ == protowire.BytesType:
			n, err = d.subTypedValue(b, "state_value", &m.StateValue)
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) invocation(b []byte, m *Invocation) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			n, err = d.subAddress(b, "caller", &m.Caller)
		case num == 2 && typ == protowire.BytesType:
			n, err = d.subTypedValue(b, "argument", &m.Argument)
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) batch(b []byte, m *InvocationBatchRequest) error {
	c := countFields(b)
	m.State = grow(m.State, c[2])
	m.Invocations = grow(m.Invocations, c[3])
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			n, err = d.subAddress(b, "target", &m.Target)
		case num == 2 && typ == protowire.BytesType:
			var v []byte
			if v, n, err = messageField(b, "state", len(m.State)); err == nil {
				k := len(m.State)
				m.State = append(m.State, PersistedValue{})
				if err = d.persistedValue(v, &m.State[k]); err != nil {
					err = in(err, "state", k)
				}
			}
		case num == 3 && typ == protowire.BytesType:
			var v []byte
			if v, n, err = messageField(b, "invocations", len(m.Invocations)); err == nil {
				k := len(m.Invocations)
				m.Invocations = append(m.Invocations, Invocation{})
				if err = d.invocation(v, &m.Invocations[k]); err != nil {
					err = in(err, "invocations", k)
				}
			}
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// Unmarshal resets m and decodes b into it. Errors wrap ErrMalformed and
// name the field path; on error m is left empty. Unmarshal never panics and
// never aliases b (see the package documentation for the exact rules).
func (m *ToFunction) Unmarshal(b []byte) error {
	*m = ToFunction{}
	var d decoder
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			*m = ToFunction{}
			return rooted(err, "ToFunction")
		}
		b = b[n:]
		switch {
		case num == 100 && typ == protowire.BytesType:
			var v []byte
			if v, n, err = messageField(b, "invocation", -1); err == nil {
				if m.Invocation == nil {
					m.Invocation = new(InvocationBatchRequest)
				}
				if err = d.batch(v, m.Invocation); err != nil {
					err = in(err, "invocation", -1)
				}
			}
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			*m = ToFunction{}
			return rooted(err, "ToFunction")
		}
		b = b[n:]
	}
	return nil
}

// --- FromFunction ---------------------------------------------------------

func (d *decoder) mutation(b []byte, m *PersistedValueMutation) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			var v uint64
			v, n, err = varintField(b, "mutation_type")
			m.MutationType = MutationType(int32(v))
		case num == 2 && typ == protowire.BytesType:
			n, err = d.stringField(b, "state_name", &m.StateName)
		case num == 3 && typ == protowire.BytesType:
			n, err = d.subTypedValue(b, "state_value", &m.StateValue)
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) outgoing(b []byte, m *OutgoingMessage) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			n, err = d.subAddress(b, "target", &m.Target)
		case num == 2 && typ == protowire.BytesType:
			n, err = d.subTypedValue(b, "argument", &m.Argument)
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) delayed(b []byte, m *DelayedInvocation) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			var v uint64
			v, n, err = varintField(b, "delay_in_ms")
			m.DelayInMs = int64(v)
		case num == 2 && typ == protowire.BytesType:
			n, err = d.subAddress(b, "target", &m.Target)
		case num == 3 && typ == protowire.BytesType:
			n, err = d.subTypedValue(b, "argument", &m.Argument)
		case num == 10 && typ == protowire.VarintType:
			var v uint64
			v, n, err = varintField(b, "is_cancellation_request")
			m.IsCancellationRequest = v != 0
		case num == 11 && typ == protowire.BytesType:
			n, err = d.stringField(b, "cancellation_token", &m.CancellationToken)
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) egress(b []byte, m *EgressMessage) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			n, err = d.stringField(b, "egress_namespace", &m.EgressNamespace)
		case num == 2 && typ == protowire.BytesType:
			n, err = d.stringField(b, "egress_type", &m.EgressType)
		case num == 3 && typ == protowire.BytesType:
			n, err = d.subTypedValue(b, "argument", &m.Argument)
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) response(b []byte, m *InvocationResponse) error {
	c := countFields(b)
	m.StateMutations = grow(m.StateMutations, c[1])
	m.OutgoingMessages = grow(m.OutgoingMessages, c[2])
	m.DelayedInvocations = grow(m.DelayedInvocations, c[3])
	m.OutgoingEgresses = grow(m.OutgoingEgresses, c[4])
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if typ != protowire.BytesType || num < 1 || num > 4 {
			if n, err = skipField(num, typ, b); err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		var v []byte
		switch num {
		case 1:
			if v, n, err = messageField(b, "state_mutations", len(m.StateMutations)); err == nil {
				k := len(m.StateMutations)
				m.StateMutations = append(m.StateMutations, PersistedValueMutation{})
				if err = d.mutation(v, &m.StateMutations[k]); err != nil {
					err = in(err, "state_mutations", k)
				}
			}
		case 2:
			if v, n, err = messageField(b, "outgoing_messages", len(m.OutgoingMessages)); err == nil {
				k := len(m.OutgoingMessages)
				m.OutgoingMessages = append(m.OutgoingMessages, OutgoingMessage{})
				if err = d.outgoing(v, &m.OutgoingMessages[k]); err != nil {
					err = in(err, "outgoing_messages", k)
				}
			}
		case 3:
			if v, n, err = messageField(b, "delayed_invocations", len(m.DelayedInvocations)); err == nil {
				k := len(m.DelayedInvocations)
				m.DelayedInvocations = append(m.DelayedInvocations, DelayedInvocation{})
				if err = d.delayed(v, &m.DelayedInvocations[k]); err != nil {
					err = in(err, "delayed_invocations", k)
				}
			}
		case 4:
			if v, n, err = messageField(b, "outgoing_egresses", len(m.OutgoingEgresses)); err == nil {
				k := len(m.OutgoingEgresses)
				m.OutgoingEgresses = append(m.OutgoingEgresses, EgressMessage{})
				if err = d.egress(v, &m.OutgoingEgresses[k]); err != nil {
					err = in(err, "outgoing_egresses", k)
				}
			}
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) expiration(b []byte, m *ExpirationSpec) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			var v uint64
			v, n, err = varintField(b, "mode")
			m.Mode = ExpireMode(int32(v))
		case num == 2 && typ == protowire.VarintType:
			var v uint64
			v, n, err = varintField(b, "expire_after_millis")
			m.ExpireAfterMillis = int64(v)
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) valueSpec(b []byte, m *PersistedValueSpec) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			n, err = d.stringField(b, "state_name", &m.StateName)
		case num == 2 && typ == protowire.BytesType:
			var v []byte
			if v, n, err = messageField(b, "expiration_spec", -1); err == nil {
				if m.ExpirationSpec == nil {
					m.ExpirationSpec = new(ExpirationSpec)
				}
				if err = d.expiration(v, m.ExpirationSpec); err != nil {
					err = in(err, "expiration_spec", -1)
				}
			}
		case num == 3 && typ == protowire.BytesType:
			n, err = d.stringField(b, "type_typename", &m.TypeTypename)
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) incomplete(b []byte, m *IncompleteInvocationContext) error {
	c := countFields(b)
	m.MissingValues = grow(m.MissingValues, c[1])
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			var v []byte
			if v, n, err = messageField(b, "missing_values", len(m.MissingValues)); err == nil {
				k := len(m.MissingValues)
				m.MissingValues = append(m.MissingValues, PersistedValueSpec{})
				if err = d.valueSpec(v, &m.MissingValues[k]); err != nil {
					err = in(err, "missing_values", k)
				}
			}
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// Unmarshal resets m and decodes b into it. Errors wrap ErrMalformed and
// name the field path; on error m is left empty. Unmarshal never panics and
// never aliases b (see the package documentation for the exact rules).
//
// The oneof follows protobuf: when both members occur the last one wins and
// the other is cleared; a member that occurs more than once is merged.
func (m *FromFunction) Unmarshal(b []byte) error {
	*m = FromFunction{}
	var d decoder
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			*m = FromFunction{}
			return rooted(err, "FromFunction")
		}
		b = b[n:]
		switch {
		case num == 100 && typ == protowire.BytesType:
			var v []byte
			if v, n, err = messageField(b, "invocation_result", -1); err == nil {
				m.IncompleteInvocationContext = nil
				if m.InvocationResult == nil {
					m.InvocationResult = new(InvocationResponse)
				}
				if err = d.response(v, m.InvocationResult); err != nil {
					err = in(err, "invocation_result", -1)
				}
			}
		case num == 101 && typ == protowire.BytesType:
			var v []byte
			if v, n, err = messageField(b, "incomplete_invocation_context", -1); err == nil {
				m.InvocationResult = nil
				if m.IncompleteInvocationContext == nil {
					m.IncompleteInvocationContext = new(IncompleteInvocationContext)
				}
				if err = d.incomplete(v, m.IncompleteInvocationContext); err != nil {
					err = in(err, "incomplete_invocation_context", -1)
				}
			}
		default:
			n, err = skipField(num, typ, b)
		}
		if err != nil {
			*m = FromFunction{}
			return rooted(err, "FromFunction")
		}
		b = b[n:]
	}
	return nil
}
