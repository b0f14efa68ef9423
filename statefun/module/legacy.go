package module

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// legacyKinds maps the kind names of the version "3.0" layout to component
// kinds (upstream LegacyRemoteModuleV30).
var legacyKinds = map[string]string{
	"http":                        KindHTTPv1,
	"io.statefun.kafka/ingress":   KindKafkaIngress,
	"io.statefun.kafka/egress":    KindKafkaEgress,
	"io.statefun.kinesis/ingress": KindKinesisIngress,
	"io.statefun.kinesis/egress":  KindKinesisEgress,
}

// loadLegacy handles the single-root layout with a top-level "version".
func (l *loader) loadLegacy(f *fileCtx, root *yaml.Node) {
	o := newObj(f, resolve(root), nil, "")
	versionNode, _ := o.get("version")
	version := versionNode.Value

	// module.meta.type must be "remote" (checked first upstream).
	var spec *obj
	moduleObj, hasModule := o.optObject("module")
	if !hasModule {
		if !o.has("module") {
			f.errorf(root, "module", "missing required field")
		}
	} else {
		if meta, ok := moduleObj.optObject("meta"); ok {
			if tn, tp := meta.get("type"); tn == nil {
				f.errorf(meta.at, tp, "Unable to find a module type in %s", f.file)
			} else if t, ok := f.text(tn, tp); ok && !strings.EqualFold(t, "remote") {
				f.errorf(tn, tp, "Unknown module type %s, currently supported: REMOTE", t)
			}
			meta.finish()
		} else if !moduleObj.has("meta") {
			f.errorf(moduleObj.at, "module.meta.type", "Unable to find a module type in %s", f.file)
		}
		if s, ok := moduleObj.optObject("spec"); ok {
			spec = s
		} else if !moduleObj.has("spec") {
			f.errorf(moduleObj.at, "module.spec", "A module without a spec at %s", f.file)
		}
	}

	switch version {
	case "3.0":
	case "1.0", "2.0":
		f.errorf(versionNode, "version", "%s", eolMessage(version, spec))
		return
	case "3.1":
		f.errorf(versionNode, "version", "format version 3.1 is not supported for the single-root layout "+
			"(only 3.0 is); write each endpoint, ingress and egress as its own YAML document {kind: <typename>, spec: <object>}, "+
			"for example {kind: %s, spec: {functions: com.example/*, urlPathTemplate: \"http://functions:8000/statefun\"}}", KindHTTPv2)
		return
	default:
		f.errorf(versionNode, "version", "Unrecognized format version: %s", strconv.Quote(version))
		return
	}
	if moduleObj != nil {
		moduleObj.finish()
	}
	o.finish()
	if spec == nil {
		return
	}
	l.legacyEntries(f, spec, "endpoints", "endpoint", "kind", false)
	l.legacyEntries(f, spec, "ingresses", "ingress", "type", true)
	l.legacyEntries(f, spec, "egresses", "egress", "type", true)
	if spec.has("routers") {
		spec.ignore("routers")
		f.warnf(spec.keyNode("routers"), join(spec.path, "routers"),
			"routers are not used by StateFun 3.x (ignored); ingresses route records to their targets")
	}
	spec.finish()
}

// legacyEntries rewrites module.spec.<list>[i].<entry>{meta, spec} into
// components.
func (l *loader) legacyEntries(f *fileCtx, spec *obj, list, entry, kindKey string, withID bool) {
	n, p := spec.get(list)
	if n == nil {
		return
	}
	items, ok := f.list(n, p)
	if !ok {
		return
	}
	for i, it := range items {
		ip := index(p, i)
		item, ok := f.object(it, it, ip)
		if !ok {
			continue
		}
		eo, ok := item.optObject(entry)
		item.finish()
		if !ok {
			if !item.has(entry) {
				item.missing(entry, join(ip, entry))
			}
			continue
		}
		meta, metaOK := eo.optObject("meta")
		if !metaOK && !eo.has("meta") {
			eo.missing("meta", join(eo.path, "meta"))
		}
		specObj, specOK := eo.optObject("spec")
		if !specOK && !eo.has("spec") {
			eo.missing("spec", join(eo.path, "spec"))
		}
		eo.finish()
		if !metaOK {
			continue
		}
		kn, kp := meta.require(kindKey)
		var idNode *yaml.Node
		var idPath string
		if withID {
			idNode, idPath = meta.require("id")
		}
		meta.finish()
		if kn == nil || !specOK {
			if withID && idNode != nil {
				f.typeName(idNode, idPath) // still report a bad id
			}
			if kn != nil {
				f.text(kn, kp)
			}
			continue
		}
		kindText, ok := f.text(kn, kp)
		if !ok {
			continue
		}
		kind := kindText
		if k, ok := legacyKinds[kindText]; ok {
			kind = k
		}
		if withID {
			// As upstream, meta.id replaces any id inside spec. A missing
			// meta.id is already reported; the spec is still checked.
			specObj.overrides = map[string]override{"id": {val: idNode, path: idPath, reported: idNode == nil}}
		}
		l.bind(&component{f: f, at: item.fields[entry].key, kind: kind, kindNode: kn, kindPath: kp, spec: specObj})
	}
}

// eolMessage explains how to migrate a StateFun 2.x module (format 1.0 or
// 2.0). The example is built from the file's first HTTP function when there
// is one.
func eolMessage(version string, spec *obj) string {
	fn, url := "com.example/greeter", "http://functions:8000/statefun"
	if spec != nil {
		if ffn, furl, ok := firstLegacyFunction(spec); ok {
			fn, url = ffn, furl
		}
	}
	return fmt.Sprintf("format version %s (StateFun 2.x) is no longer supported: only format versions higher than or equal to 3.0 is supported. "+
		"To migrate, drop the \"states\" lists (StateFun 3.x SDKs declare their states themselves) and write each function "+
		"as an %s component, one YAML document each, for example: {kind: %s, spec: {functions: %s, urlPathTemplate: %q}}; "+
		"ingresses and egresses become %s, %s, %s and %s components",
		version, KindHTTPv2, KindHTTPv2, fn, url,
		KindKafkaIngress, KindKafkaEgress, KindKinesisIngress, KindKinesisEgress)
}

// firstLegacyFunction finds module.spec.functions[i].function{meta.type,
// spec.endpoint} of the first http function, without reporting anything.
func firstLegacyFunction(spec *obj) (fn, url string, ok bool) {
	fl, found := spec.fields["functions"]
	spec.ignore("functions", "routers", "ingresses", "egresses")
	if !found {
		return "", "", false
	}
	items := resolve(fl.val)
	if items == nil || items.Kind != yaml.SequenceNode {
		return "", "", false
	}
	for _, it := range items.Content {
		kind := scalarAt(it, "function", "meta", "kind")
		typ := scalarAt(it, "function", "meta", "type")
		ep := scalarAt(it, "function", "spec", "endpoint")
		if kind == "http" && typ != "" && ep != "" {
			if _, err := ParseTypeName(typ); err == nil {
				return typ, ep, true
			}
		}
	}
	return "", "", false
}

// scalarAt walks mapping keys and returns the scalar found, or "".
func scalarAt(n *yaml.Node, keys ...string) string {
	for _, k := range keys {
		n = resolve(n)
		if n == nil || n.Kind != yaml.MappingNode {
			return ""
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if kn := resolve(n.Content[i]); kn != nil && kn.Value == k {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}
