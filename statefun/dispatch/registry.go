package dispatch

import (
	"fmt"
	"time"

	"github.com/statefun-go/statefun/statefun"
)

// FunctionType is namespace/name of a function, comparable and cheap to hash.
type FunctionType struct{ Namespace, Name string }

func (f FunctionType) String() string { return f.Namespace + "/" + f.Name }

// Registry binds function types to implementations. It is built before the
// job starts and read-only afterwards (shared by all subtasks).
type Registry struct {
	embedded map[FunctionType]*embedded
	// namespaces bound as a whole (remote endpoints "ns/*").
	namespaces map[string]*RemoteBinding
	exact      map[FunctionType]*RemoteBinding
}

type embedded struct {
	typ      FunctionType
	typeName statefun.TypeName
	fn       statefun.StatefulFunction
	specs    map[string]*stateSpec
	// afterCall lists the specs refreshed by every invocation.
	afterCall []*stateSpec
}

type stateSpec struct {
	spec     statefun.ValueSpec
	mode     statefun.ExpirationMode
	ttl      time.Duration
	typeName string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{embedded: map[FunctionType]*embedded{}, namespaces: map[string]*RemoteBinding{}, exact: map[FunctionType]*RemoteBinding{}}
}

// AddEmbedded registers embedded functions (specs built with the statefun
// SDK's StatefulFunctionsBuilder).
func (r *Registry) AddEmbedded(specs ...statefun.StatefulFunctionSpec) error {
	for _, s := range specs {
		if s.FunctionType == nil || s.Function == nil {
			return fmt.Errorf("dispatch: embedded function spec without type or function")
		}
		ft := FunctionType{s.FunctionType.GetNamespace(), s.FunctionType.GetType()}
		if _, dup := r.embedded[ft]; dup {
			return fmt.Errorf("dispatch: function type %s is registered twice", ft)
		}
		e := &embedded{typ: ft, typeName: s.FunctionType, fn: s.Function, specs: map[string]*stateSpec{}}
		for _, vs := range s.States {
			if err := statefun.ValidateValueSpec(vs); err != nil {
				return fmt.Errorf("dispatch: function %s: %w", ft, err)
			}
			ss := &stateSpec{spec: vs, mode: vs.Expiration.Mode(), ttl: vs.Expiration.Duration(), typeName: statefun.TypeNameString(vs.ValueType)}
			e.specs[vs.Name] = ss
			if ss.mode == statefun.ExpireAfterCallMode && ss.ttl > 0 {
				e.afterCall = append(e.afterCall, ss)
			}
		}
		r.embedded[ft] = e
	}
	return nil
}

// BindRemote binds a remote endpoint to type ft (or, with wildcard, to the
// whole namespace). An embedded function of the same type wins.
func (r *Registry) BindRemote(ft FunctionType, wildcard bool, b *RemoteBinding) {
	if wildcard {
		r.namespaces[ft.Namespace] = b
	} else {
		r.exact[ft] = b
	}
}

// remote resolves the remote binding of ft: exact first, then namespace.
func (r *Registry) remote(ft FunctionType) *RemoteBinding {
	if b := r.exact[ft]; b != nil {
		return b
	}
	return r.namespaces[ft.Namespace]
}

// Known reports whether messages to type ft can be delivered.
func (r *Registry) Known(ft FunctionType) bool {
	if _, ok := r.embedded[ft]; ok {
		return true
	}
	return r.remote(ft) != nil
}

// Embedded lists the registered embedded function types.
func (r *Registry) Embedded() []FunctionType {
	out := make([]FunctionType, 0, len(r.embedded))
	for ft := range r.embedded {
		out = append(out, ft)
	}
	return out
}
