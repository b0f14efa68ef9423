package protocol

import (
	"math/bits"
	"slices"
)

// Encoding strategy.
//
// Size computes the exact encoded length in one pass over the message tree.
// AppendMarshal then grows dst once and fills the new region back to front:
// a sub-message's body is written first, and its length prefix and tag are
// written just before it once its length is known. Each node is therefore
// visited exactly twice (size, write), no nested size has to be cached or
// recomputed, and the only allocation is the growth of dst (none at all when
// dst has enough capacity).
//
// Fields are emitted in field-number order and proto3 default values (empty
// strings and bytes, false, 0) are omitted, so the bytes are identical to
// those of protobuf-go's deterministic marshalling. Sub-message pointers that
// are non-nil are always emitted, even when the sub-message is empty
// (message fields have presence in proto3).

// Single-byte tags (field number < 16).
const (
	tag1Varint = 1<<3 | 0  // 0x08
	tag2Varint = 2<<3 | 0  // 0x10
	tag1Bytes  = 1<<3 | 2  // 0x0A
	tag2Bytes  = 2<<3 | 2  // 0x12
	tag3Bytes  = 3<<3 | 2  // 0x1A
	tag4Bytes  = 4<<3 | 2  // 0x22
	tag10Bool  = 10<<3 | 0 // 0x50
	tag11Bytes = 11<<3 | 2 // 0x5A
)

// Two-byte tags of the oneof members (fields 100 and 101, length-delimited).
const (
	tag100Lo, tag100Hi = 0xA2, 0x06
	tag101Lo, tag101Hi = 0xAA, 0x06
	tagOneofSize       = 2
)

// sizeVarint is protowire.SizeVarint, inlined.
func sizeVarint(v uint64) int {
	// 1 + floor(log2(v|1)) / 7
	return int(9*uint32(bits.Len64(v|1))+64) / 64
}

// sizeLen is the size of a length-delimited payload of n bytes, without the tag.
func sizeLen(n int) int { return sizeVarint(uint64(n)) + n }

// sizeStr is the size of a string or bytes field with a one-byte tag, 0 when empty.
func sizeStr(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + sizeLen(n)
}

// sizeInt is the size of an int64/int32/enum field with a one-byte tag, 0
// when zero. Negative int32 values are sign-extended to 10 bytes, as proto does.
func sizeInt(v int64) int {
	if v == 0 {
		return 0
	}
	return 1 + sizeVarint(uint64(v))
}

// putVarint writes v so that it ends just before b[i] and returns its start.
func putVarint(b []byte, i int, v uint64) int {
	i -= sizeVarint(v)
	j := i
	for v >= 0x80 {
		b[j] = byte(v) | 0x80
		v >>= 7
		j++
	}
	b[j] = byte(v)
	return i
}

// putLen writes the length prefix of the payload b[i:end] and the one-byte tag.
func putLen(b []byte, i, end int, tag byte) int {
	n := end - i
	if n < 0x80 {
		b[i-1] = byte(n)
		b[i-2] = tag
		return i - 2
	}
	i = putVarint(b, i, uint64(n))
	i--
	b[i] = tag
	return i
}

func putStr(b []byte, i int, tag byte, s string) int {
	if len(s) == 0 {
		return i
	}
	end := i
	i -= len(s)
	copy(b[i:], s)
	return putLen(b, i, end, tag)
}

func putBytes(b []byte, i int, tag byte, v []byte) int {
	if len(v) == 0 {
		return i
	}
	end := i
	i -= len(v)
	copy(b[i:], v)
	return putLen(b, i, end, tag)
}

func putInt(b []byte, i int, tag byte, v int64) int {
	if v == 0 {
		return i
	}
	i = putVarint(b, i, uint64(v))
	i--
	b[i] = tag
	return i
}

func putBool(b []byte, i int, tag byte, v bool) int {
	if !v {
		return i
	}
	b[i-1] = 1
	b[i-2] = tag
	return i - 2
}

// --- Address -------------------------------------------------------------

func (m *Address) size() int {
	return sizeStr(len(m.Namespace)) + sizeStr(len(m.Type)) + sizeStr(len(m.ID))
}

func (m *Address) put(b []byte, i int) int {
	i = putStr(b, i, tag3Bytes, m.ID)
	i = putStr(b, i, tag2Bytes, m.Type)
	return putStr(b, i, tag1Bytes, m.Namespace)
}

func sizeAddress(m *Address) int {
	if m == nil {
		return 0
	}
	return 1 + sizeLen(m.size())
}

func putAddress(b []byte, i int, tag byte, m *Address) int {
	if m == nil {
		return i
	}
	end := i
	return putLen(b, m.put(b, i), end, tag)
}

// --- TypedValue ----------------------------------------------------------

func (m *TypedValue) size() int {
	n := sizeStr(len(m.Typename)) + sizeStr(len(m.Value))
	if m.HasValue {
		n += 2
	}
	return n
}

func (m *TypedValue) put(b []byte, i int) int {
	i = putBytes(b, i, tag3Bytes, m.Value)
	i = putBool(b, i, tag2Varint, m.HasValue)
	return putStr(b, i, tag1Bytes, m.Typename)
}

func sizeTypedValue(m *TypedValue) int {
	if m == nil {
		return 0
	}
	return 1 + sizeLen(m.size())
}

func putTypedValue(b []byte, i int, tag byte, m *TypedValue) int {
	if m == nil {
		return i
	}
	end := i
	return putLen(b, m.put(b, i), end, tag)
}

// --- ToFunction ----------------------------------------------------------

func (m *PersistedValue) size() int {
	return sizeStr(len(m.StateName)) + sizeTypedValue(m.StateValue)
}

func (m *PersistedValue) put(b []byte, i int) int {
	i = putTypedValue(b, i, tag2Bytes, m.StateValue)
	return putStr(b, i, tag1Bytes, m.StateName)
}

func (m *Invocation) size() int {
	return sizeAddress(m.Caller) + sizeTypedValue(m.Argument)
}

func (m *Invocation) put(b []byte, i int) int {
	i = putTypedValue(b, i, tag2Bytes, m.Argument)
	return putAddress(b, i, tag1Bytes, m.Caller)
}

func (m *InvocationBatchRequest) size() int {
	n := sizeAddress(m.Target)
	for k := range m.State {
		n += 1 + sizeLen(m.State[k].size())
	}
	for k := range m.Invocations {
		n += 1 + sizeLen(m.Invocations[k].size())
	}
	return n
}

func (m *InvocationBatchRequest) put(b []byte, i int) int {
	for k := len(m.Invocations) - 1; k >= 0; k-- {
		end := i
		i = putLen(b, m.Invocations[k].put(b, i), end, tag3Bytes)
	}
	for k := len(m.State) - 1; k >= 0; k-- {
		end := i
		i = putLen(b, m.State[k].put(b, i), end, tag2Bytes)
	}
	return putAddress(b, i, tag1Bytes, m.Target)
}

// Size returns the length of the encoding of m. A nil m has size 0.
func (m *ToFunction) Size() int {
	if m == nil || m.Invocation == nil {
		return 0
	}
	return tagOneofSize + sizeLen(m.Invocation.size())
}

// AppendMarshal appends the proto3 encoding of m to dst and returns the
// extended slice. It grows dst at most once (to exactly Size() more bytes)
// and does not allocate otherwise. A nil m, or one with a nil Invocation,
// encodes as zero bytes.
//
// Strings are written as they are: it is the caller's job to keep string
// fields valid UTF-8 (see ValidateUTF8), because the SDKs reject requests
// that contain invalid UTF-8. m must not be modified concurrently.
func (m *ToFunction) AppendMarshal(dst []byte) []byte {
	n := m.Size()
	if n == 0 {
		return dst
	}
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	b := dst[start:]
	i := m.Invocation.put(b, n)
	i = putVarint(b, i, uint64(n-i))
	b[i-1], b[i-2] = tag100Hi, tag100Lo
	if i-2 != 0 {
		panic("protocol: ToFunction modified while being marshalled")
	}
	return dst
}

// --- FromFunction --------------------------------------------------------

func (m *PersistedValueMutation) size() int {
	return sizeInt(int64(m.MutationType)) + sizeStr(len(m.StateName)) + sizeTypedValue(m.StateValue)
}

func (m *PersistedValueMutation) put(b []byte, i int) int {
	i = putTypedValue(b, i, tag3Bytes, m.StateValue)
	i = putStr(b, i, tag2Bytes, m.StateName)
	return putInt(b, i, tag1Varint, int64(m.MutationType))
}

func (m *OutgoingMessage) size() int {
	return sizeAddress(m.Target) + sizeTypedValue(m.Argument)
}

func (m *OutgoingMessage) put(b []byte, i int) int {
	i = putTypedValue(b, i, tag2Bytes, m.Argument)
	return putAddress(b, i, tag1Bytes, m.Target)
}

func (m *DelayedInvocation) size() int {
	n := sizeInt(m.DelayInMs) + sizeAddress(m.Target) + sizeTypedValue(m.Argument) +
		sizeStr(len(m.CancellationToken))
	if m.IsCancellationRequest {
		n += 2
	}
	return n
}

func (m *DelayedInvocation) put(b []byte, i int) int {
	i = putStr(b, i, tag11Bytes, m.CancellationToken)
	i = putBool(b, i, tag10Bool, m.IsCancellationRequest)
	i = putTypedValue(b, i, tag3Bytes, m.Argument)
	i = putAddress(b, i, tag2Bytes, m.Target)
	return putInt(b, i, tag1Varint, m.DelayInMs)
}

func (m *EgressMessage) size() int {
	return sizeStr(len(m.EgressNamespace)) + sizeStr(len(m.EgressType)) + sizeTypedValue(m.Argument)
}

func (m *EgressMessage) put(b []byte, i int) int {
	i = putTypedValue(b, i, tag3Bytes, m.Argument)
	i = putStr(b, i, tag2Bytes, m.EgressType)
	return putStr(b, i, tag1Bytes, m.EgressNamespace)
}

func (m *InvocationResponse) size() int {
	n := 0
	for k := range m.StateMutations {
		n += 1 + sizeLen(m.StateMutations[k].size())
	}
	for k := range m.OutgoingMessages {
		n += 1 + sizeLen(m.OutgoingMessages[k].size())
	}
	for k := range m.DelayedInvocations {
		n += 1 + sizeLen(m.DelayedInvocations[k].size())
	}
	for k := range m.OutgoingEgresses {
		n += 1 + sizeLen(m.OutgoingEgresses[k].size())
	}
	return n
}

func (m *InvocationResponse) put(b []byte, i int) int {
	for k := len(m.OutgoingEgresses) - 1; k >= 0; k-- {
		end := i
		i = putLen(b, m.OutgoingEgresses[k].put(b, i), end, tag4Bytes)
	}
	for k := len(m.DelayedInvocations) - 1; k >= 0; k-- {
		end := i
		i = putLen(b, m.DelayedInvocations[k].put(b, i), end, tag3Bytes)
	}
	for k := len(m.OutgoingMessages) - 1; k >= 0; k-- {
		end := i
		i = putLen(b, m.OutgoingMessages[k].put(b, i), end, tag2Bytes)
	}
	for k := len(m.StateMutations) - 1; k >= 0; k-- {
		end := i
		i = putLen(b, m.StateMutations[k].put(b, i), end, tag1Bytes)
	}
	return i
}

func (m *ExpirationSpec) size() int {
	return sizeInt(int64(m.Mode)) + sizeInt(m.ExpireAfterMillis)
}

func (m *ExpirationSpec) put(b []byte, i int) int {
	i = putInt(b, i, tag2Varint, m.ExpireAfterMillis)
	return putInt(b, i, tag1Varint, int64(m.Mode))
}

func (m *PersistedValueSpec) size() int {
	n := sizeStr(len(m.StateName)) + sizeStr(len(m.TypeTypename))
	if m.ExpirationSpec != nil {
		n += 1 + sizeLen(m.ExpirationSpec.size())
	}
	return n
}

func (m *PersistedValueSpec) put(b []byte, i int) int {
	i = putStr(b, i, tag3Bytes, m.TypeTypename)
	if m.ExpirationSpec != nil {
		end := i
		i = putLen(b, m.ExpirationSpec.put(b, i), end, tag2Bytes)
	}
	return putStr(b, i, tag1Bytes, m.StateName)
}

func (m *IncompleteInvocationContext) size() int {
	n := 0
	for k := range m.MissingValues {
		n += 1 + sizeLen(m.MissingValues[k].size())
	}
	return n
}

func (m *IncompleteInvocationContext) put(b []byte, i int) int {
	for k := len(m.MissingValues) - 1; k >= 0; k-- {
		end := i
		i = putLen(b, m.MissingValues[k].put(b, i), end, tag1Bytes)
	}
	return i
}

// Size returns the length of the encoding of m. A nil m has size 0.
func (m *FromFunction) Size() int {
	switch {
	case m == nil:
		return 0
	case m.IncompleteInvocationContext != nil:
		return tagOneofSize + sizeLen(m.IncompleteInvocationContext.size())
	case m.InvocationResult != nil:
		return tagOneofSize + sizeLen(m.InvocationResult.size())
	}
	return 0
}

// AppendMarshal appends the proto3 encoding of m to dst and returns the
// extended slice. It grows dst at most once (to exactly Size() more bytes)
// and does not allocate otherwise. See FromFunction for the case where both
// oneof members are set. m must not be modified concurrently.
func (m *FromFunction) AppendMarshal(dst []byte) []byte {
	n := m.Size()
	if n == 0 {
		return dst
	}
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	b := dst[start:]
	var i int
	var lo, hi byte
	if m.IncompleteInvocationContext != nil {
		i = m.IncompleteInvocationContext.put(b, n)
		lo, hi = tag101Lo, tag101Hi
	} else {
		i = m.InvocationResult.put(b, n)
		lo, hi = tag100Lo, tag100Hi
	}
	i = putVarint(b, i, uint64(n-i))
	b[i-1], b[i-2] = hi, lo
	if i-2 != 0 {
		panic("protocol: FromFunction modified while being marshalled")
	}
	return dst
}
