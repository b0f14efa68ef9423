// Package reqreply is the per-address request-reply algorithm of remote
// functions (statefun-contract §2.2–§2.9), as a deterministic state machine:
// no goroutines, clocks or I/O. The dispatcher drives one Machine per
// remote function type per subtask: it builds and sends the requests the
// machine returns, and applies the outcomes.
//
// Invariants:
//   - An address has at most one request in flight, including the re-send
//     after an IncompleteInvocationContext.
//   - Invocations of an address are sent in arrival order; a request holds
//     at most MaxBatch invocations (when MaxBatch > 0), the rest stay queued.
//   - An address is blocked while MaxBatch > 0 invocations are queued
//     behind its in-flight request (the dispatcher throttles input).
//   - The state registry only grows; a state's type never changes
//     (a conflicting registration is an error).
//   - At most MaxInFlight requests of the type are in flight (when > 0);
//     addresses with work beyond that wait in a FIFO ready list, and their
//     messages keep joining their next batch meanwhile: the limit trades
//     concurrency for bigger batches, which is what makes a CPU-bound
//     function server fast (each HTTP round trip costs far more than one
//     invocation). An address whose request completes with more work queued
//     goes to the back of the ready list, so hot addresses cannot starve
//     the others.
//   - Until the first reply of the type arrives (probing), only one request
//     of the type is in flight: other addresses wait, so a cold start costs
//     one IncompleteInvocationContext round trip instead of one per address
//     (upstream blocks the whole task on the first request for the same
//     reason).
package reqreply

import (
	"errors"
	"fmt"
	"time"

	"github.com/statefun-go/statefun/statefun/protocol"
)

// UnsetType is the typename of a state registered without one.
const UnsetType = "io.statefun.types/unset"

// StateSpec is a registered remote state.
type StateSpec struct {
	Name     string
	Typename string
	Mode     protocol.ExpireMode
	TTL      time.Duration
}

// Request is one batch request of an address.
type Request struct {
	ID          string
	Invocations []protocol.Invocation
	// Resends counts IncompleteInvocationContext round trips.
	Resends int
	// StatesSent is how many registered states (a prefix of States()) the
	// driver attached when it last sent the request.
	StatesSent int
}

type address struct {
	inFlight *Request
	queue    []protocol.Invocation
	blocked  bool
	held     bool // waiting for the type's probe reply
}

// Machine holds the request state of every address of one function type in
// one subtask.
type Machine struct {
	// MaxBatch is maxNumBatchRequests; <= 0 means unlimited.
	MaxBatch int
	// MaxInFlight bounds the requests in flight; <= 0 means unlimited.
	MaxInFlight int
	states      []StateSpec
	byName      map[string]int
	addrs       map[string]*address
	blocked     int
	inFlight    int
	queued      int
	probing     bool
	held        []string
}

// New returns a machine with the given batch limit.
func New(maxBatch int) *Machine {
	return &Machine{MaxBatch: maxBatch, byName: map[string]int{}, addrs: map[string]*address{}, probing: true}
}

// States returns the registered states, in registration order.
func (m *Machine) States() []StateSpec { return m.states }

// State returns the registered spec of name.
func (m *Machine) State(name string) (StateSpec, bool) {
	i, ok := m.byName[name]
	if !ok {
		return StateSpec{}, false
	}
	return m.states[i], true
}

// Blocked is the number of blocked addresses.
func (m *Machine) Blocked() int { return m.blocked }

// InFlight is the number of requests in flight.
func (m *Machine) InFlight() int { return m.inFlight }

// Queued is the number of invocations waiting behind in-flight requests.
func (m *Machine) Queued() int { return m.queued }

// Deliver records a message for address id. It returns the request to send
// now, or nil when the invocation was queued behind the in-flight request.
func (m *Machine) Deliver(id string, inv protocol.Invocation) *Request {
	a := m.addrs[id]
	if a == nil {
		a = &address{}
		m.addrs[id] = a
	}
	if a.inFlight == nil && !a.held && m.hasCapacity() {
		a.inFlight = &Request{ID: id, Invocations: []protocol.Invocation{inv}}
		m.inFlight++
		return a.inFlight
	}
	if a.inFlight == nil && !a.held {
		a.held = true
		m.held = append(m.held, id)
	}
	a.queue = append(a.queue, inv)
	m.queued++
	if m.MaxBatch > 0 && len(a.queue) >= m.MaxBatch && !a.blocked {
		a.blocked = true
		m.blocked++
	}
	return nil
}

func (m *Machine) hasCapacity() bool {
	if m.probing && m.inFlight > 0 {
		return false
	}
	return m.MaxInFlight <= 0 || m.inFlight < m.MaxInFlight
}

// Waiting is the number of addresses waiting for capacity.
func (m *Machine) Waiting() int { return len(m.held) }

// Outcome is what the dispatcher must do after a reply.
type Outcome struct {
	// Resend is set after an IncompleteInvocationContext: send the same
	// invocations again, with the state rebuilt from the registry.
	Resend *Request
	// Registered lists the states registered by this reply.
	Registered []StateSpec
	// Result holds the effects to apply, in the contract's order
	// (messages, delayed and cancellations, egress, mutations). Mutations
	// were validated against the registry.
	Result *protocol.InvocationResponse
	// Completed is the request whose invocations are now done.
	Completed *Request
	// Next is the next batch of the address to send now, if any.
	Next *Request
	// Released are requests of addresses that waited for capacity (or for
	// the type's probe reply): send them now.
	Released []*Request
}

// ErrState marks replies that touch state wrongly (upstream
// RemoteFunctionStateException / "non-existing function state").
var ErrState = errors.New("reqreply: invalid state mutation")

// Complete handles the reply to the in-flight request of address id.
func (m *Machine) Complete(id string, from *protocol.FromFunction) (Outcome, error) {
	a := m.addrs[id]
	if a == nil || a.inFlight == nil {
		return Outcome{}, fmt.Errorf("reqreply: got an unexpected reply for %s: no request in flight", id)
	}
	req := a.inFlight
	if ic := from.IncompleteInvocationContext; ic != nil && from.InvocationResult == nil {
		var reg []StateSpec
		for _, spec := range ic.MissingValues {
			s := StateSpec{Name: spec.StateName, Typename: spec.TypeTypename}
			if s.Typename == "" {
				s.Typename = UnsetType
			}
			if e := spec.ExpirationSpec; e != nil {
				s.Mode, s.TTL = e.Mode, time.Duration(e.ExpireAfterMillis)*time.Millisecond
			}
			if s.Name == "" {
				return Outcome{}, fmt.Errorf("%w: IncompleteInvocationContext names a state without a name", ErrState)
			}
			if i, ok := m.byName[s.Name]; ok {
				if m.states[i].Typename != s.Typename {
					return Outcome{}, fmt.Errorf("%w: state %q is registered with type %s, the function now declares %s", ErrState, s.Name, m.states[i].Typename, s.Typename)
				}
				continue // the TTL of a registered state never changes
			}
			m.byName[s.Name] = len(m.states)
			m.states = append(m.states, s)
			reg = append(reg, s)
		}
		stale := false
		var names []string
		for _, spec := range ic.MissingValues {
			names = append(names, spec.StateName)
			if m.byName[spec.StateName] >= req.StatesSent {
				stale = true // registered after this request was built
			}
		}
		if len(reg) == 0 && !stale {
			// The request already carried every state asked for: sending
			// it again would get the same answer forever.
			return Outcome{}, fmt.Errorf("%w: IncompleteInvocationContext asks for states %q, which were all sent: the function and the runtime disagree", ErrState, names)
		}
		req.Resends++
		m.probing = false
		return Outcome{Resend: req, Registered: reg, Released: m.release()}, nil
	}
	res := from.InvocationResult
	if res == nil {
		res = &protocol.InvocationResponse{} // neither oneof set: no side effects
	}
	if err := m.checkMutations(res); err != nil {
		return Outcome{}, err
	}
	m.probing = false
	m.inFlight--
	a.inFlight = nil
	out := Outcome{Result: res, Completed: req}
	if len(a.queue) > 0 && (len(m.held) > 0 || !m.hasCapacity()) {
		// Others are waiting: take a place at the back of the line.
		a.held = true
		m.held = append(m.held, id)
	} else {
		out.Next = m.sendNext(id, a)
	}
	out.Released = m.release()
	return out, nil
}

// sendNext makes the next batch of a the request in flight, and forgets an
// idle address.
func (m *Machine) sendNext(id string, a *address) *Request {
	var next *Request
	if len(a.queue) > 0 {
		n := len(a.queue)
		if m.MaxBatch > 0 && n > m.MaxBatch {
			n = m.MaxBatch
		}
		next = &Request{ID: id, Invocations: append([]protocol.Invocation(nil), a.queue[:n]...)}
		clear(a.queue[:n])
		a.queue = a.queue[n:]
		if len(a.queue) == 0 {
			a.queue = nil
		}
		m.queued -= n
		a.inFlight = next
		m.inFlight++
	}
	if a.blocked && (m.MaxBatch <= 0 || len(a.queue) < m.MaxBatch) {
		a.blocked = false
		m.blocked--
	}
	if a.inFlight == nil && len(a.queue) == 0 {
		delete(m.addrs, id)
	}
	return next
}

// release sends the batches of waiting addresses, in arrival order, while
// there is capacity.
func (m *Machine) release() []*Request {
	var out []*Request
	n := 0
	for n < len(m.held) && m.hasCapacity() {
		id := m.held[n]
		n++
		a := m.addrs[id]
		a.held = false
		if r := m.sendNext(id, a); r != nil {
			out = append(out, r)
		}
	}
	if n > 0 {
		clear(m.held[:n])
		m.held = m.held[n:]
		if len(m.held) == 0 {
			m.held = nil
		}
	}
	return out
}

func (m *Machine) checkMutations(res *protocol.InvocationResponse) error {
	for i, mu := range res.StateMutations {
		spec, ok := m.State(mu.StateName)
		if !ok {
			return fmt.Errorf("%w: state_mutations[%d] %s state %q, which the function never declared (accessing a non-existing function state)", ErrState, i, mutationVerb(mu.MutationType), mu.StateName)
		}
		switch mu.MutationType {
		case protocol.MutationDelete:
		case protocol.MutationModify:
			var got string
			if mu.StateValue != nil {
				got = mu.StateValue.Typename
			}
			if got != spec.Typename {
				return fmt.Errorf("%w: state_mutations[%d] writes state %q with type %q, but it is registered with type %s", ErrState, i, mu.StateName, got, spec.Typename)
			}
		default:
			return fmt.Errorf("%w: state_mutations[%d] has unknown mutation type %d", ErrState, i, mu.MutationType)
		}
	}
	return nil
}

func mutationVerb(t protocol.MutationType) string {
	if t == protocol.MutationDelete {
		return "deletes"
	}
	return "modifies"
}

// Snapshot visits every address with work, giving its invocations in order:
// the in-flight request's first, then the queued ones. On restore they are
// delivered again (upstream re-sends in-flight requests as UNKNOWN).
func (m *Machine) Snapshot(fn func(id string, invs []protocol.Invocation)) {
	for id, a := range m.addrs {
		var invs []protocol.Invocation
		if a.inFlight != nil {
			invs = append(invs, a.inFlight.Invocations...)
		}
		invs = append(invs, a.queue...)
		if len(invs) > 0 {
			fn(id, invs)
		}
	}
}
