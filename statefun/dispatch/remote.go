package dispatch

import (
	"context"
	"fmt"
	"time"

	"github.com/statefun-go/statefun/dataflow/state"
	"github.com/statefun-go/statefun/statefun/dispatch/reqreply"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/protocol"
)

// Invoker sends one serialized ToFunction to a remote function and returns
// the serialized FromFunction. *remote.Client implements it; it retries
// within its call budget and returns an error only when it gives up.
type Invoker interface {
	Invoke(ctx context.Context, functionName string, body []byte) ([]byte, error)
}

// RemoteBinding is a remote endpoint bound to a function type or namespace.
type RemoteBinding struct {
	Invoker Invoker
	// MaxBatch is maxNumBatchRequests (<= 0: unlimited).
	MaxBatch int
	// Where names the endpoint's definition (file:line) for errors.
	Where string
}

// remoteFn is one remote function type in one subtask.
type remoteFn struct {
	typ     FunctionType
	binding *RemoteBinding
	m       *reqreply.Machine
	lim     *reqreply.Limiter // nil: no concurrency limit
}

func (o *Operator) remoteFor(ft FunctionType) *remoteFn {
	if rf := o.remotes[ft]; rf != nil {
		return rf
	}
	b := o.cfg.Registry.remote(ft)
	if b == nil {
		return nil
	}
	rf := &remoteFn{typ: ft, binding: b, m: reqreply.New(b.MaxBatch)}
	if o.cfg.MaxConcurrentRequests > 0 {
		rf.lim = reqreply.NewLimiter(4, 2, o.cfg.MaxConcurrentRequests)
		rf.m.MaxInFlight = rf.lim.Limit()
	}
	o.remotes[ft] = rf
	return rf
}

// invokeRemote hands e to the request-reply machine of its function type.
func (o *Operator) invokeRemote(rf *remoteFn, e *envelope.Envelope) {
	inv := protocol.Invocation{Argument: &protocol.TypedValue{Typename: e.Typename, HasValue: true, Value: e.Value}}
	if e.HasCaller {
		inv.Caller = &protocol.Address{Namespace: e.Caller.Namespace, Type: e.Caller.Type, ID: e.Caller.ID}
	}
	if req := rf.m.Deliver(e.Target.ID, inv); req != nil {
		o.sendRemote(rf, req)
	} else {
		o.remoteQueued++
	}
}

func (o *Operator) remoteKey(rf *remoteFn, id, name string) state.Key {
	return state.Key{
		KeyGroup: keyGroupOf(id, o.maxP), Space: state.SpaceValue,
		Namespace: rf.typ.Namespace, Type: rf.typ.Name, ID: id, Name: name,
	}
}

// sendRemote builds the request of req (with every registered state of the
// type, contract §2.4) and sends it on its own goroutine; the reply comes
// back through the mailbox.
func (o *Operator) sendRemote(rf *remoteFn, req *reqreply.Request) {
	now := o.ctx.Clock().Now()
	msg := protocol.ToFunction{Invocation: &protocol.InvocationBatchRequest{
		Target:      &protocol.Address{Namespace: rf.typ.Namespace, Type: rf.typ.Name, ID: req.ID},
		Invocations: req.Invocations,
	}}
	for _, s := range rf.m.States() {
		pv := protocol.PersistedValue{StateName: s.Name}
		k := o.remoteKey(rf, req.ID, s.Name)
		v, ok, err := o.store.Get(k)
		if err != nil {
			o.ctx.Fail(fmt.Errorf("remote function %s/%s: reading state %q: %w", rf.typ, req.ID, s.Name, err))
			return
		}
		if ok {
			pv.StateValue = &protocol.TypedValue{Typename: s.Typename, HasValue: true, Value: v}
			if s.Mode == protocol.ExpireAfterInvoke && s.TTL > 0 {
				if err := o.store.Touch(k, now.Add(s.TTL).UnixNano()); err != nil {
					o.ctx.Fail(fmt.Errorf("remote function %s/%s: refreshing state %q: %w", rf.typ, req.ID, s.Name, err))
					return
				}
			}
		}
		msg.Invocation.State = append(msg.Invocation.State, pv)
	}
	req.StatesSent = len(rf.m.States())
	body := msg.AppendMarshal(make([]byte, 0, msg.Size()))
	o.remoteInFlight++
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		start := time.Now()
		resp, err := rf.binding.Invoker.Invoke(o.rctx, rf.typ.Name, body)
		rtt := time.Since(start)
		o.ctx.Post(func() { o.onRemoteReply(rf, req, resp, err, rtt) })
	}()
}

// onRemoteReply runs on the subtask goroutine.
func (o *Operator) onRemoteReply(rf *remoteFn, req *reqreply.Request, body []byte, err error, rtt time.Duration) {
	o.remoteInFlight--
	if o.rctx.Err() != nil {
		return // closing
	}
	if rf.lim != nil && err == nil {
		rf.m.MaxInFlight = rf.lim.Observe(rtt)
	}
	addr := rf.typ.String() + "/" + req.ID
	if err != nil {
		o.ctx.Fail(fmt.Errorf("failure forwarding a message to remote function %s (endpoint %s): %w", addr, rf.binding.Where, err))
		return
	}
	var from protocol.FromFunction
	if err := from.Unmarshal(body); err != nil {
		o.ctx.Fail(fmt.Errorf("remote function %s (endpoint %s) replied with a malformed FromFunction (%d bytes): %w", addr, rf.binding.Where, len(body), err))
		return
	}
	out, err := rf.m.Complete(req.ID, &from)
	if err != nil {
		o.ctx.Fail(fmt.Errorf("remote function %s: %w", addr, err))
		return
	}
	if out.Resend == nil {
		// Apply first: a released or next request of this address reads
		// the state this reply writes.
		if err := o.applyRemote(rf, req.ID, out.Result); err != nil {
			o.ctx.Fail(fmt.Errorf("remote function %s: %w", addr, err))
			return
		}
		o.processed += int64(len(out.Completed.Invocations))
	}
	for _, r := range out.Released {
		o.remoteQueued -= len(r.Invocations)
		o.sendRemote(rf, r)
	}
	if out.Resend != nil {
		o.sendRemote(rf, out.Resend)
	}
	if out.Next != nil {
		o.remoteQueued -= len(out.Next.Invocations)
		o.sendRemote(rf, out.Next)
	}
}

// applyRemote applies a result in the contract's order: messages, delayed
// messages and cancellations, egress, then state mutations (validated by
// the machine before anything was applied).
func (o *Operator) applyRemote(rf *remoteFn, id string, res *protocol.InvocationResponse) error {
	self := envelope.Address{Namespace: rf.typ.Namespace, Type: rf.typ.Name, ID: id}
	now := o.ctx.Clock().Now()
	for i, m := range res.OutgoingMessages {
		e, err := o.remoteEnvelope(self, m.Target, m.Argument)
		if err != nil {
			return fmt.Errorf("outgoing_messages[%d]: %w", i, err)
		}
		if err := o.route(e); err != nil {
			return err
		}
	}
	for i, d := range res.DelayedInvocations {
		if d.IsCancellationRequest {
			if d.CancellationToken == "" {
				return fmt.Errorf("delayed_invocations[%d]: cancellation request without a token", i)
			}
			found, err := o.delays.Cancel(self, d.CancellationToken)
			if err != nil {
				return fmt.Errorf("delayed_invocations[%d]: %w", i, err)
			}
			if found {
				o.created--
			}
			continue
		}
		if d.DelayInMs < 0 {
			return fmt.Errorf("delayed_invocations[%d]: negative delay %d ms", i, d.DelayInMs)
		}
		e, err := o.remoteEnvelope(self, d.Target, d.Argument)
		if err != nil {
			return fmt.Errorf("delayed_invocations[%d]: %w", i, err)
		}
		if err := o.delays.Add(self, d.CancellationToken, now.Add(time.Duration(d.DelayInMs)*time.Millisecond).UnixMilli(), e); err != nil {
			return fmt.Errorf("delayed_invocations[%d]: %w", i, err)
		}
		o.created++
		o.scheduleNext()
	}
	for i, eg := range res.OutgoingEgresses {
		var typename string
		var value []byte
		if eg.Argument != nil {
			typename, value = eg.Argument.Typename, eg.Argument.Value
		}
		if err := o.emitEgress(self, eg.EgressNamespace, eg.EgressType, typename, value); err != nil {
			return fmt.Errorf("outgoing_egresses[%d]: %w", i, err)
		}
	}
	for _, mu := range res.StateMutations {
		k := o.remoteKey(rf, id, mu.StateName)
		if mu.MutationType == protocol.MutationDelete {
			if err := o.store.Delete(k); err != nil {
				return err
			}
			continue
		}
		spec, _ := rf.m.State(mu.StateName)
		var exp int64
		if spec.Mode != protocol.ExpireNone && spec.TTL > 0 {
			exp = now.Add(spec.TTL).UnixNano()
		}
		if err := o.store.Set(k, mu.StateValue.Value, exp); err != nil {
			return err
		}
	}
	return nil
}

func (o *Operator) remoteEnvelope(self envelope.Address, target *protocol.Address, arg *protocol.TypedValue) (*envelope.Envelope, error) {
	if target == nil {
		return nil, fmt.Errorf("message without a target")
	}
	ft := FunctionType{target.Namespace, target.Type}
	if !o.cfg.Registry.Known(ft) {
		return nil, fmt.Errorf("message to %s/%s: no function is bound to type %s", ft, target.ID, ft)
	}
	e := &envelope.Envelope{
		Target: envelope.Address{Namespace: target.Namespace, Type: target.Type, ID: target.ID},
		Caller: self, HasCaller: true,
	}
	if arg != nil {
		e.Typename, e.Value = arg.Typename, arg.Value
	}
	return e, nil
}
