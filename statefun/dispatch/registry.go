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
	namespaces map[string]bool
	exact      map[FunctionType]bool
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
	return &Registry{embedded: map[FunctionType]*embedded{}, namespaces: map[string]bool{}, exact: map[FunctionType]bool{}}
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

// BindRemote records that a remote endpoint serves type ft (or, with
// wildcard, the whole namespace). Remote invocation itself comes with the
// request-reply client.
func (r *Registry) BindRemote(ft FunctionType, wildcard bool) {
	if wildcard {
		r.namespaces[ft.Namespace] = true
	} else {
		r.exact[ft] = true
	}
}

// Known reports whether messages to type ft can be delivered.
func (r *Registry) Known(ft FunctionType) bool {
	if _, ok := r.embedded[ft]; ok {
		return true
	}
	return r.exact[ft] || r.namespaces[ft.Namespace]
}

// Embedded lists the registered embedded function types.
func (r *Registry) Embedded() []FunctionType {
	out := make([]FunctionType, 0, len(r.embedded))
	for ft := range r.embedded {
		out = append(out, ft)
	}
	return out
}
