package module

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// This file holds the typed accessors over yaml.Node used by every kind
// parser. Each accessor reports a positioned diagnostic instead of failing,
// and returns ok=false so that the caller can go on with the next field.

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 64 {
			return nil
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names the kind of a value, for "got ..." messages.
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "an object"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.DocumentNode:
		return "a document"
	case n.Kind != yaml.ScalarNode:
		return "an unsupported YAML node"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!str", "!!binary", "!!timestamp", "":
		return strconv.Quote(n.Value)
	case "!!bool", "!!int", "!!float":
		return n.Value
	}
	return strconv.Quote(n.Value)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// field is one key/value pair of a mapping.
type field struct {
	key, val *yaml.Node
}

// obj is a YAML mapping being read. Every key read through it is marked
// used; finish warns about the others.
type obj struct {
	f      *fileCtx
	n      *yaml.Node // the mapping node
	at     *yaml.Node // where "missing field" errors point (the key of the object, or n)
	path   string
	fields map[string]field
	order  []string
	used   map[string]bool
	// overrides replace keys (the legacy layout copies meta.id into spec.id).
	overrides map[string]override
}

type override struct {
	val  *yaml.Node
	path string
	// reported: the value is missing and that was already reported.
	reported bool
}

// newObj wraps a mapping node (n must be resolved and a mapping).
func newObj(f *fileCtx, n, at *yaml.Node, path string) *obj {
	o := &obj{f: f, n: n, at: at, path: path, fields: map[string]field{}, used: map[string]bool{}}
	if o.at == nil {
		o.at = n
	}
	o.collect(n, true, map[*yaml.Node]bool{})
	return o
}

// collect gathers the pairs of n, then those of its merge sources. Each
// mapping is visited once, which bounds the work on "merge bombs" (a
// mapping merging the same anchor many times, over many levels).
func (o *obj) collect(n *yaml.Node, explicit bool, visited map[*yaml.Node]bool) {
	if visited[n] {
		return
	}
	visited[n] = true
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		rk := resolve(k)
		if rk != nil && rk.Kind == yaml.ScalarNode && rk.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if rk == nil || rk.Kind != yaml.ScalarNode {
			o.f.errorf(k, o.path, "keys must be strings, got %s", describe(k))
			continue
		}
		name := rk.Value
		if prev, dup := o.fields[name]; dup {
			if !explicit {
				continue // explicit keys win over merged ones
			}
			if prev.key != nil && prev.key.Line > 0 {
				o.f.warnf(k, join(o.path, name), "duplicate key; this value replaces the one at line %d", prev.key.Line)
			}
		} else {
			o.order = append(o.order, name)
		}
		o.fields[name] = field{key: k, val: v}
	}
	// "<<: *anchor" and "<<: [*a, *b]" merge keys: earlier sources win.
	for _, m := range merges {
		rm := resolve(m)
		var srcs []*yaml.Node
		switch {
		case rm != nil && rm.Kind == yaml.MappingNode:
			srcs = []*yaml.Node{rm}
		case rm != nil && rm.Kind == yaml.SequenceNode:
			for _, s := range rm.Content {
				srcs = append(srcs, resolve(s))
			}
		}
		for _, s := range srcs {
			if s == nil || s.Kind != yaml.MappingNode {
				o.f.errorf(m, o.path, "a merge key (<<) must refer to an object")
				break
			}
			o.collect(s, false, visited)
		}
	}
}

// get returns the resolved value of key (nil when absent or null) and its
// field path, marking the key used.
func (o *obj) get(key string) (*yaml.Node, string) {
	if ov, ok := o.overrides[key]; ok {
		o.used[key] = true
		if isNull(ov.val) {
			return nil, ov.path
		}
		return resolve(ov.val), ov.path
	}
	fl, ok := o.fields[key]
	o.used[key] = true
	if !ok || isNull(fl.val) {
		return nil, join(o.path, key)
	}
	return resolve(fl.val), join(o.path, key)
}

// has reports whether key is present and not null, without marking it used.
func (o *obj) has(key string) bool {
	if ov, ok := o.overrides[key]; ok {
		return !isNull(ov.val)
	}
	fl, ok := o.fields[key]
	return ok && !isNull(fl.val)
}

// keyNode returns the key node of key, or the object's position.
func (o *obj) keyNode(key string) *yaml.Node {
	if fl, ok := o.fields[key]; ok && fl.key != nil {
		return fl.key
	}
	return o.at
}

// require returns the value of a required key, reporting it when missing.
func (o *obj) require(key string) (*yaml.Node, string) {
	n, path := o.get(key)
	if n == nil {
		o.missing(key, path)
	}
	return n, path
}

func (o *obj) missing(key, path string) {
	if fl, ok := o.fields[key]; ok && fl.val != nil {
		o.f.errorf(fl.val, path, "missing required value (got null)")
		return
	}
	o.f.errorf(o.at, path, "missing required field")
}

// ignore marks keys as known without reading them.
func (o *obj) ignore(keys ...string) {
	for _, k := range keys {
		o.used[k] = true
	}
}

// finish reports every key that was never read as unknown.
func (o *obj) finish() {
	for _, name := range o.order {
		if o.used[name] {
			continue
		}
		fl := o.fields[name]
		o.f.unknownKey(fl.key, join(o.path, name))
	}
}

// onlyFor reports keys that are known but meaningless in the current
// configuration (for example keyField for the lines format).
func (o *obj) onlyFor(key, when string) {
	if !o.has(key) {
		o.used[key] = true
		return
	}
	o.used[key] = true
	o.f.warnf(o.keyNode(key), join(o.path, key), "only used %s (ignored)", when)
}

// --- typed accessors over a value node -----------------------------------

// object converts a value to an obj; at is the key node, for positions.
func (f *fileCtx) object(n, at *yaml.Node, path string) (*obj, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		f.errorf(n, path, "must be an object, got %s", describe(n))
		return nil, false
	}
	return newObj(f, n, at, path), true
}

// list returns the items of a sequence.
func (f *fileCtx) list(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		f.errorf(n, path, "must be a list, got %s", describe(n))
		return nil, false
	}
	return n.Content, true
}

// text returns the text of a scalar (any scalar but null, as Jackson
// coerces numbers and booleans to strings).
func (f *fileCtx) text(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		f.errorf(n, path, "must be a string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// nonEmptyText is text that must not be empty.
func (f *fileCtx) nonEmptyText(n *yaml.Node, path string) (string, bool) {
	s, ok := f.text(n, path)
	if ok && strings.TrimSpace(s) == "" {
		f.errorf(n, path, "must not be empty")
		return "", false
	}
	return s, ok
}

func (f *fileCtx) typeName(n *yaml.Node, path string) (TypeName, bool) {
	s, ok := f.text(n, path)
	if !ok {
		return TypeName{}, false
	}
	t, err := ParseTypeName(s)
	if err != nil {
		f.errorf(n, path, "%v", err)
		return TypeName{}, false
	}
	return t, true
}

// integer reads an integer in [min, max]. Quoted decimal integers are
// accepted too, as Jackson coerces them.
func (f *fileCtx) integer(n *yaml.Node, path string, min, max int64) (int64, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		f.errorf(n, path, "must be an integer, got %s", describe(n))
		return 0, false
	}
	var v int64
	switch n.ShortTag() {
	case "!!int":
		if err := n.Decode(&v); err != nil {
			f.errorf(n, path, "must be an integer between %d and %d, got %s", min, max, n.Value)
			return 0, false
		}
	case "!!str":
		p, err := strconv.ParseInt(strings.TrimSpace(n.Value), 10, 64)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				f.errorf(n, path, "must be an integer between %d and %d, got %s", min, max, n.Value)
			} else {
				f.errorf(n, path, "must be an integer, got %s", describe(n))
			}
			return 0, false
		}
		v = p
	default:
		f.errorf(n, path, "must be an integer, got %s", describe(n))
		return 0, false
	}
	if v < min || v > max {
		switch {
		case min == math.MinInt32 && max == math.MaxInt32:
			f.errorf(n, path, "must be a 32-bit integer, got %d", v)
		case v < min && (max == math.MaxInt64 || max == math.MaxInt32):
			f.errorf(n, path, "must be an integer >= %d, got %d", min, v)
		default:
			f.errorf(n, path, "must be an integer between %d and %d, got %d", min, max, v)
		}
		return 0, false
	}
	return v, true
}

func (f *fileCtx) boolean(n *yaml.Node, path string) (bool, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		f.errorf(n, path, "must be a boolean (true or false), got %s", describe(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		f.errorf(n, path, "must be a boolean (true or false), got %s", describe(n))
		return false, false
	}
	return b, true
}

// duration parses a Flink TimeUtils duration (a bare integer is
// milliseconds).
func (f *fileCtx) duration(n *yaml.Node, path string) (time.Duration, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		f.errorf(n, path, "must be a duration such as 10s or 1min, got %s", describe(n))
		return 0, false
	}
	d, err := ParseDuration(n.Value)
	if err != nil {
		f.errorf(n, path, "invalid duration %q: %v", n.Value, err)
		return 0, false
	}
	return d, true
}

// oneOf reads a string that must be one of values (case-sensitive).
func (f *fileCtx) oneOf(n *yaml.Node, path, what string, values ...string) (string, bool) {
	s, ok := f.text(n, path)
	if !ok {
		return "", false
	}
	for _, v := range values {
		if s == v {
			return s, true
		}
	}
	f.errorf(n, path, "invalid %s: %s; valid values are [%s]", what, s, strings.Join(values, ", "))
	return "", false
}

// --- obj conveniences ---------------------------------------------------

func (o *obj) optText(key string, dst *string) bool {
	n, p := o.get(key)
	if n == nil {
		return false
	}
	if s, ok := o.f.text(n, p); ok {
		*dst = s
		return true
	}
	return false
}

// optNonEmpty reads an optional non-empty string; it returns false when
// the key is present but invalid.
func (o *obj) optNonEmpty(key string, dst *string) bool {
	n, p := o.get(key)
	if n == nil {
		return true
	}
	if s, ok := o.f.nonEmptyText(n, p); ok {
		*dst = s
		return true
	}
	return false
}

func (o *obj) reqText(key string, dst *string) bool {
	n, p := o.require(key)
	if n == nil {
		return false
	}
	if s, ok := o.f.nonEmptyText(n, p); ok {
		*dst = s
		return true
	}
	return false
}

func (o *obj) optInt(key string, min, max int64, dst *int64) bool {
	n, p := o.get(key)
	if n == nil {
		return false
	}
	if v, ok := o.f.integer(n, p, min, max); ok {
		*dst = v
		return true
	}
	return false
}

func (o *obj) optDuration(key string, dst *time.Duration) bool {
	n, p := o.get(key)
	if n == nil {
		return false
	}
	if d, ok := o.f.duration(n, p); ok {
		*dst = d
		return true
	}
	return false
}

func (o *obj) optOneOf(key, what string, dst *string, values ...string) bool {
	n, p := o.get(key)
	if n == nil {
		return false
	}
	if s, ok := o.f.oneOf(n, p, what, values...); ok {
		*dst = s
		return true
	}
	return false
}

func (o *obj) optObject(key string) (*obj, bool) {
	n, p := o.get(key)
	if n == nil {
		return nil, false
	}
	return o.f.object(n, o.keyNode(key), p)
}

// reqTypeName reads a required typename; it returns the value node too.
func (o *obj) reqTypeName(key string) (TypeName, *yaml.Node, bool) {
	n, p := o.require(key)
	if n == nil {
		return TypeName{}, nil, false
	}
	t, ok := o.f.typeName(n, p)
	return t, n, ok
}

// properties reads a list of single-key maps; values become strings.
func (o *obj) properties(key string) []Property {
	n, p := o.get(key)
	if n == nil {
		return nil
	}
	if n.Kind == yaml.MappingNode {
		o.f.errorf(n, p, "must be a list of single-key maps (\"- key: value\"), got an object")
		return nil
	}
	items, ok := o.f.list(n, p)
	if !ok {
		return nil
	}
	var out []Property
	for i, it := range items {
		ip := index(p, i)
		it = resolve(it)
		if it == nil || it.Kind != yaml.MappingNode || len(it.Content) < 2 {
			o.f.errorf(it, ip, "must be a single-key map (\"- key: value\"), got %s", describe(it))
			continue
		}
		k, v := resolve(it.Content[0]), resolve(it.Content[1])
		if k == nil || k.Kind != yaml.ScalarNode {
			o.f.errorf(it.Content[0], ip, "keys must be strings, got %s", describe(k))
			continue
		}
		if len(it.Content) > 2 {
			o.f.warnf(it.Content[2], ip, "only the first key of a properties item is used; %s is ignored", describe(it.Content[2]))
		}
		if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
			o.f.errorf(v, join(ip, k.Value), "property value must be a scalar, got %s", describe(v))
			continue
		}
		out = append(out, Property{Key: k.Value, Value: v.Value})
	}
	return out
}
