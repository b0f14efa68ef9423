package dispatch

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/state"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// invocation is the statefun.Context and AddressScopedStorage of one
// invocation. One value per subtask is reused for every invocation:
// functions must not retain the context after Invoke returns (as with the
// official SDK, whose context is also only valid during the call). As a
// context.Context it is cancelled when Invoke returns; its Done channel is
// made only when asked for, so invocations that never wait pay nothing.
// Effects and storage are safe for goroutines the function starts and joins
// within Invoke (mu), as the SDK documents.
type invocation struct {
	mu       sync.Mutex
	doneCh   chan struct{}
	finished bool
	op       *Operator
	fn       *embedded
	env      *envelope.Envelope
	self     statefun.Address
	kg       dataflow.KeyGroup
	now      int64 // unix nanos of this invocation
	// err is the first effect error (bad message, unknown egress, duplicate
	// token): reported after Invoke returns.
	err error
}

func (ic *invocation) reset(fn *embedded, e *envelope.Envelope) {
	ic.doneCh, ic.finished = nil, false
	ic.fn, ic.env, ic.err = fn, e, nil
	ic.self = statefun.Address{FunctionType: fn.typeName, Id: e.Target.ID}
	ic.kg = dataflow.KeyGroupFor(e.Target.ID, ic.op.maxP)
	ic.now = ic.op.ctx.Clock().Now().UnixNano()
}

func (ic *invocation) done() {
	ic.mu.Lock()
	ic.finished = true
	if ic.doneCh != nil {
		close(ic.doneCh)
	}
	ic.mu.Unlock()
}

// Deadline implements context.Context: an invocation has none.
func (ic *invocation) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context: closed when Invoke returns.
func (ic *invocation) Done() <-chan struct{} {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.doneCh == nil {
		ic.doneCh = make(chan struct{})
		if ic.finished {
			close(ic.doneCh)
		}
	}
	return ic.doneCh
}

// Err implements context.Context.
func (ic *invocation) Err() error {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.finished {
		return context.Canceled
	}
	return nil
}

// Value implements context.Context: an invocation carries no values.
func (ic *invocation) Value(any) any { return nil }

func (ic *invocation) fail(err error) {
	if ic.err == nil {
		ic.err = fmt.Errorf("function %s: %w", ic.env.Target, err)
	}
}

// Self implements statefun.Context.
func (ic *invocation) Self() statefun.Address { return ic.self }

// Caller implements statefun.Context.
func (ic *invocation) Caller() *statefun.Address {
	if !ic.env.HasCaller {
		return nil
	}
	// Built on demand: most functions never ask, and the typename costs
	// an allocation.
	c := e2a(ic.env.Caller)
	return &c
}

func e2a(a envelope.Address) statefun.Address {
	return statefun.Address{FunctionType: statefun.TypeNameFrom(a.Namespace + "/" + a.Type), Id: a.ID}
}

// Storage implements statefun.Context.
func (ic *invocation) Storage() statefun.AddressScopedStorage { return ic }

func (ic *invocation) envelopeFor(mb statefun.MessageBuilder) (*envelope.Envelope, bool) {
	target, typename, value, err := mb.Build()
	if err != nil {
		ic.fail(fmt.Errorf("bad message: %w", err))
		return nil, false
	}
	ft := FunctionType{target.FunctionType.GetNamespace(), target.FunctionType.GetType()}
	if !ic.op.cfg.Registry.Known(ft) {
		ic.fail(fmt.Errorf("message to %s/%s: no function is bound to type %s", ft, target.Id, ft))
		return nil, false
	}
	return &envelope.Envelope{
		Target:    envelope.Address{Namespace: ft.Namespace, Type: ft.Name, ID: target.Id},
		Caller:    ic.env.Target,
		HasCaller: true,
		Typename:  typename,
		Value:     value,
	}, true
}

// Send implements statefun.Context.
func (ic *invocation) Send(mb statefun.MessageBuilder) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	e, ok := ic.envelopeFor(mb)
	if !ok {
		return
	}
	if err := ic.op.route(e); err != nil {
		ic.fail(err)
	}
}

// SendAfter implements statefun.Context.
func (ic *invocation) SendAfter(delay time.Duration, mb statefun.MessageBuilder) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	ic.sendAfter(delay, "", mb)
}

// SendAfterWithCancellationToken implements statefun.Context.
func (ic *invocation) SendAfterWithCancellationToken(delay time.Duration, token statefun.CancellationToken, mb statefun.MessageBuilder) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if token == nil || token.Token() == "" {
		ic.fail(fmt.Errorf("SendAfterWithCancellationToken: empty cancellation token"))
		return
	}
	ic.sendAfter(delay, token.Token(), mb)
}

func (ic *invocation) sendAfter(d time.Duration, token string, mb statefun.MessageBuilder) {
	if d < 0 {
		ic.fail(fmt.Errorf("SendAfter: negative delay %v", d))
		return
	}
	e, ok := ic.envelopeFor(mb)
	if !ok {
		return
	}
	// Delay 0 still goes through the timer: never inline (contract §2.7).
	fireAt := time.Unix(0, ic.now).Add(d).UnixMilli()
	if d > 0 && time.Unix(0, ic.now).Add(d).UnixNano()%int64(time.Millisecond) != 0 {
		fireAt++ // round up: never fire early
	}
	if err := ic.op.delays.Add(ic.env.Target, token, fireAt, e); err != nil {
		ic.fail(err)
		return
	}
	ic.op.created++
	ic.op.scheduleNext()
}

// CancelDelayedMessage implements statefun.Context.
func (ic *invocation) CancelDelayedMessage(token statefun.CancellationToken) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if token == nil || token.Token() == "" {
		ic.fail(fmt.Errorf("CancelDelayedMessage: empty cancellation token"))
		return
	}
	found, err := ic.op.delays.Cancel(ic.env.Target, token.Token())
	if err != nil {
		ic.fail(err)
		return
	}
	if found {
		ic.op.created--
	}
}

// SendEgress implements statefun.Context.
func (ic *invocation) SendEgress(eb statefun.EgressBuilder) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	rec, err := eb.ToEgress()
	if err != nil {
		ic.fail(fmt.Errorf("bad egress message: %w", err))
		return
	}
	if err := ic.op.emitEgress(ic.env.Target, rec.Target.GetNamespace(), rec.Target.GetType(), rec.Typename, rec.Value); err != nil {
		ic.fail(err)
	}
}

// emitEgress sends a message to egress ns/name (contract §2.8).
func (o *Operator) emitEgress(from envelope.Address, ns, name, typename string, value []byte) error {
	port, ok := o.egressPorts[FunctionType{ns, name}]
	if !ok {
		return fmt.Errorf("unknown egress %s/%s", ns, name)
	}
	e := &envelope.Envelope{
		Kind:      envelope.KindEgress,
		Target:    envelope.Address{Namespace: ns, Type: name},
		Caller:    from,
		HasCaller: true,
		Typename:  typename,
		Value:     value,
	}
	return o.ctx.Output().Emit(port, dataflow.Record{Value: e})
}

// --- statefun.AddressScopedStorage ---

func (ic *invocation) key(spec statefun.ValueSpec) (state.Key, *stateSpec) {
	ss := ic.fn.specs[spec.Name]
	if ss == nil {
		panic(fmt.Sprintf("statefun: value spec %q is not declared by function %s", spec.Name, ic.fn.typ))
	}
	return state.Key{
		KeyGroup: ic.kg, Space: state.SpaceValue,
		Namespace: ic.fn.typ.Namespace, Type: ic.fn.typ.Name, ID: ic.env.Target.ID, Name: spec.Name,
	}, ss
}

func (ic *invocation) expiry(ss *stateSpec) int64 {
	if ss.mode == statefun.ExpireNone || ss.ttl <= 0 {
		return 0
	}
	return ic.now + int64(ss.ttl)
}

// Get implements statefun.AddressScopedStorage.
func (ic *invocation) Get(spec statefun.ValueSpec, receiver interface{}) bool {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	k, _ := ic.key(spec)
	v, ok, err := ic.op.store.Get(k)
	if err != nil {
		panic(fmt.Sprintf("statefun: reading state %q: %v", spec.Name, err))
	}
	if !ok {
		return false
	}
	if err := statefun.DecodeValue(spec.ValueType, v, receiver); err != nil {
		panic(fmt.Sprintf("statefun: decoding state %q: %v", spec.Name, err))
	}
	return true
}

// Set implements statefun.AddressScopedStorage.
func (ic *invocation) Set(spec statefun.ValueSpec, value interface{}) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	k, ss := ic.key(spec)
	b, err := statefun.EncodeValue(spec.ValueType, value)
	if err != nil {
		panic(fmt.Sprintf("statefun: encoding state %q: %v", spec.Name, err))
	}
	if err := ic.op.store.Set(k, b, ic.expiry(ss)); err != nil {
		panic(fmt.Sprintf("statefun: writing state %q: %v", spec.Name, err))
	}
}

// Remove implements statefun.AddressScopedStorage.
func (ic *invocation) Remove(spec statefun.ValueSpec) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	k, _ := ic.key(spec)
	if err := ic.op.store.Delete(k); err != nil {
		panic(fmt.Sprintf("statefun: removing state %q: %v", spec.Name, err))
	}
}

// touchAfterCall refreshes the TTL of every expire-after-call state of the
// address: any invocation counts as an access (contract §2.13).
func (ic *invocation) touchAfterCall() error {
	for _, ss := range ic.fn.afterCall {
		k := state.Key{KeyGroup: ic.kg, Space: state.SpaceValue, Namespace: ic.fn.typ.Namespace, Type: ic.fn.typ.Name, ID: ic.env.Target.ID, Name: ss.spec.Name}
		if err := ic.op.store.Touch(k, ic.expiry(ss)); err != nil {
			return fmt.Errorf("function %s: refreshing state %q: %w", ic.env.Target, ss.spec.Name, err)
		}
	}
	return nil
}
