package module

import "fmt"

// crossCheck runs the checks that span components and files: duplicate
// bindings, duplicate ingress and egress ids, and (with
// Options.FunctionKnown) unknown ingress targets.
func (l *loader) crossCheck() {
	seen := map[string]*Endpoint{}
	for _, ep := range l.mod.Endpoints {
		key := ep.Functions.String()
		if prev, dup := seen[key]; dup {
			l.errAt(ep.funcPos, ep.funcPath, "A binding for the key %s was previously defined at %s", key, prev.funcPos)
			continue
		}
		seen[key] = ep
	}

	dupIDs := func(list []posName, what string) {
		first := map[TypeName]Pos{}
		for _, e := range list {
			if prev, dup := first[e.name]; dup {
				l.errAt(e.pos, e.path, "duplicate %s id %s: it was previously defined at %s", what, e.name, prev)
				continue
			}
			first[e.name] = e.pos
		}
	}
	dupIDs(l.ingressIDs, "ingress")
	dupIDs(l.egressIDs, "egress")

	if l.opts.FunctionKnown == nil {
		return
	}
	for _, t := range l.targets {
		if _, ok := l.mod.Resolve(t.name); ok {
			continue
		}
		if l.opts.FunctionKnown(t.name.Namespace, t.name.Name) {
			continue
		}
		l.errAt(t.pos, t.path, "unknown function type %s: no endpoint binds it and no embedded function is registered", t.name)
	}
}

func (l *loader) errAt(p Pos, field, format string, args ...any) {
	l.r.add(Diagnostic{File: p.File, Line: p.Line, Column: p.Column, Field: field, Message: fmt.Sprintf(format, args...)})
}
