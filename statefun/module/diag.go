package module

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Diagnostic is one problem found in a module file.
type Diagnostic struct {
	File         string
	Line, Column int
	// Field is the path of the offending value, like
	// "spec.topics[0].valueType"; empty when the problem is not about a field.
	Field   string
	Message string
	// Warning marks a non-fatal problem.
	Warning bool
}

// Pos returns the position of the diagnostic.
func (d Diagnostic) Pos() Pos { return Pos{File: d.File, Line: d.Line, Column: d.Column} }

// String renders the diagnostic on one line:
//
//	path/module.yaml:12:7: spec.topics[0].valueType: must be a typename namespace/name, got "User"
//	module.yaml:9:5: warning: spec.maxNumBatchRequest: unknown key (ignored)
func (d Diagnostic) String() string {
	var b strings.Builder
	if p := d.Pos().String(); p != "" {
		b.WriteString(p)
		b.WriteString(": ")
	}
	if d.Warning {
		b.WriteString("warning: ")
	}
	if d.Field != "" {
		b.WriteString(d.Field)
		b.WriteString(": ")
	}
	b.WriteString(oneLine(d.Message))
	return b.String()
}

// Errors is the error returned by Load: every diagnostic of every file,
// errors and warnings, sorted by file (in load order) and position.
type Errors struct {
	List []Diagnostic
}

// Error renders one line per diagnostic.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, d := range e.List {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// oneLine keeps a message on a single line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// reporter collects diagnostics.
type reporter struct {
	strict bool
	list   []Diagnostic
}

func (r *reporter) add(d Diagnostic) {
	if d.Warning && r.strict {
		d.Warning = false
	}
	r.list = append(r.list, d)
}

func (r *reporter) hasErrors() bool {
	for _, d := range r.list {
		if !d.Warning {
			return true
		}
	}
	return false
}

// sorted orders the diagnostics by file (in the order of files; unknown
// files first), then line and column. The sort is stable.
func (r *reporter) sorted(files []string) []Diagnostic {
	idx := make(map[string]int, len(files))
	for i, f := range files {
		idx[f] = i + 1
	}
	out := append([]Diagnostic(nil), r.list...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ia, ib := idx[a.File], idx[b.File]; ia != ib {
			return ia < ib
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return out
}

// fileCtx reports diagnostics for one module file.
type fileCtx struct {
	r    *reporter
	file string // the path as displayed
	dir  string // the directory relative paths resolve against
}

func (f *fileCtx) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: f.file}
	}
	return Pos{File: f.file, Line: n.Line, Column: n.Column}
}

func (f *fileCtx) errorf(n *yaml.Node, field, format string, args ...any) {
	p := f.pos(n)
	f.r.add(Diagnostic{File: p.File, Line: p.Line, Column: p.Column, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (f *fileCtx) warnf(n *yaml.Node, field, format string, args ...any) {
	p := f.pos(n)
	f.r.add(Diagnostic{File: p.File, Line: p.Line, Column: p.Column, Field: field, Message: fmt.Sprintf(format, args...), Warning: true})
}

// unknownKey reports a key the loader does not know: a warning (upstream
// ignores such keys), an error under Options.Strict.
func (f *fileCtx) unknownKey(key *yaml.Node, field string) {
	if f.r.strict {
		f.errorf(key, field, "unknown key")
		return
	}
	f.warnf(key, field, "unknown key (ignored)")
}
