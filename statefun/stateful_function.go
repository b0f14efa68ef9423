package statefun

import (
	"errors"
	"fmt"
	"sync"
)

// A StatefulFunction is a user-defined function that can be invoked with a
// given input. This is the primitive building block for a Stateful Functions
// application.
//
// Each individual StatefulFunction is an uniquely invokable "instance" of a
// registered StatefulFunctionSpec. Each instance is identified by an Address,
// representing the function's unique id (a string) within its type.
// From a user's perspective, it would seem as if for each unique function id,
// there exists a stateful instance of the function that is always available
// to be invoked within a Stateful Functions application.
//
// If a function is invoked by message, the message is processed by the
// instance with its own and only its own state, in a sequential manner.
type StatefulFunction interface {

	// Invoke is the method called for each message. The passed Context
	// is canceled as soon as Invoke returns as a signal to
	// any spawned go routines. The method may return
	// an Error to signal the invocation failed and should
	// be reattempted.
	Invoke(ctx Context, message Message) error
}

// StatefulFunctionSpec for a Stateful Function, identifiable
// by a unique TypeName.
type StatefulFunctionSpec struct {
	// The unique TypeName associated
	// the StatefulFunction being defined.
	FunctionType TypeName

	// A slice of registered ValueSpec's that will be used
	// by this function. A function may only access values
	// that have been eagerly registered as part of its spec.
	States []ValueSpec

	// The physical StatefulFunction instance.
	Function StatefulFunction
}

// The StatefulFunctionPointer type is an adapter to allow the use of
// ordinary functions as StatefulFunction's. If f is a function
// with the appropriate signature, StatefulFunctionPointer(f) is a
// StatefulFunction that calls f.
type StatefulFunctionPointer func(Context, Message) error

// Invoke calls s(ctx, message).
func (s StatefulFunctionPointer) Invoke(ctx Context, message Message) error {
	return s(ctx, message)
}

// StatefulFunctions is a registry for multiple StatefulFunction's.
//
// Unlike the official SDK it has no AsHandler method: the HTTP
// request-reply endpoint is not implemented yet. The embedded engine reads
// the registered functions with Specs instead.
type StatefulFunctions interface {

	// WithSpec registers a StatefulFunctionSpec, which will be
	// used to build the runtime function. It returns an error
	// if the specification is invalid and the handler
	// fails to register the function: the FunctionType or the Function
	// is nil, a state is invalid (see ValidateValueSpec), two states have
	// the same name, or a spec is already registered under the same
	// FunctionType.
	WithSpec(spec StatefulFunctionSpec) error

	// Specs returns the registered specs in registration order. The
	// returned slice and the States slices are copies; modifying them does
	// not affect the registry.
	Specs() []StatefulFunctionSpec
}

// StatefulFunctionsBuilder creates a new StatefulFunctions registry. It is
// safe for concurrent use.
func StatefulFunctionsBuilder() StatefulFunctions {
	return &registry{byType: map[string]int{}}
}

type registry struct {
	mu     sync.Mutex
	specs  []StatefulFunctionSpec
	byType map[string]int
}

func (r *registry) WithSpec(spec StatefulFunctionSpec) error {
	if spec.FunctionType == nil {
		return errors.New("failed to register Stateful Function, the FunctionType cannot be nil")
	}
	key := spec.FunctionType.String()
	if _, err := ParseTypeName(key); err != nil {
		return fmt.Errorf("failed to register Stateful Function %s: invalid FunctionType: %w", key, err)
	}
	if spec.Function == nil {
		return fmt.Errorf("failed to register Stateful Function %s, the Function instance cannot be nil", key)
	}

	names := make(map[string]struct{}, len(spec.States))
	for _, state := range spec.States {
		if err := ValidateValueSpec(state); err != nil {
			return fmt.Errorf("failed to register Stateful Function %s: %w", key, err)
		}
		if _, dup := names[state.Name]; dup {
			return fmt.Errorf("failed to register Stateful Function %s: duplicate state name %s", key, state.Name)
		}
		names[state.Name] = struct{}{}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if _, exists := r.byType[key]; exists {
		return fmt.Errorf("failed to register Stateful Function %s, there is already a spec registered under that type", key)
	}
	spec.States = append([]ValueSpec(nil), spec.States...)
	r.byType[key] = len(r.specs)
	r.specs = append(r.specs, spec)
	return nil
}

func (r *registry) Specs() []StatefulFunctionSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]StatefulFunctionSpec, len(r.specs))
	for i, s := range r.specs {
		s.States = append([]ValueSpec(nil), s.States...)
		out[i] = s
	}
	return out
}
