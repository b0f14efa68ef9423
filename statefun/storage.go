package statefun

// AddressScopedStorage is the persisted state of the currently invoked
// function instance: the values declared by the ValueSpecs of its
// StatefulFunctionSpec, scoped to the instance's Address.
//
// Implementations (provided by the engine) must be safe for concurrent use
// by the goroutines of one invocation. As in the official SDK, every method
// panics if spec was not registered for the function, Get panics if the
// stored value cannot be deserialized into receiver, and Set panics if value
// cannot be serialized with spec.ValueType (for example because it has the
// wrong Go type).
type AddressScopedStorage interface {

	// Get returns the values of the provided ValueSpec, scoped to the
	// current invoked Address and stores the result in the value
	// pointed to by receiver. The method will return false
	// if there is no value for the spec in storage
	// so callers can differentiate between missing and
	// the types zero value.
	Get(spec ValueSpec, receiver interface{}) (exists bool)

	// Set updates the value for the provided ValueSpec, scoped
	// to the current invoked Address.
	Set(spec ValueSpec, value interface{})

	// Remove deletes the prior value set for the the provided
	// ValueSpec, scoped to the current invoked Address.
	//
	// After removing the value, calling Get for the same
	// spec under the same Address will return false.
	Remove(spec ValueSpec)
}
