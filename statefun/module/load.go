package module

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads module files and directories and returns every endpoint,
// ingress and egress they declare.
//
// A path may name a file or a directory. A directory loads every *.yaml and
// *.yml file directly in it, plus <subdir>/module.yaml one level down (the
// layout of /opt/statefun/modules), in sorted order; names starting with a
// dot are skipped. A file is a YAML multi-document stream in the current
// component format, or one document in the legacy version "3.0" layout.
//
// Load reports every problem of every file at once: on failure the error is
// an *Errors holding all diagnostics (warnings included), each with file,
// line and column. On success, warnings are in Module.Warnings.
func Load(opts Options, paths ...string) (*Module, error) {
	l := &loader{
		opts: opts,
		r:    &reporter{strict: opts.Strict},
		mod:  &Module{},
		seen: map[string]bool{},
	}
	if len(paths) == 0 {
		l.r.add(Diagnostic{Message: "no module file or directory given"})
	}
	for _, p := range paths {
		l.loadPath(p)
	}
	l.crossCheck()
	diags := l.r.sorted(l.mod.Files)
	if l.r.hasErrors() {
		return nil, &Errors{List: diags}
	}
	l.mod.Warnings = diags
	return l.mod, nil
}

type loader struct {
	opts Options
	r    *reporter
	mod  *Module
	seen map[string]bool // files already loaded (by absolute path)

	// Recorded for the cross-component checks.
	ingressIDs []posName
	egressIDs  []posName
	targets    []posName
}

type posName struct {
	name TypeName
	pos  Pos
	path string
}

func (l *loader) loadPath(p string) {
	st, err := os.Stat(p)
	if err != nil {
		l.r.add(Diagnostic{File: p, Message: pathError(err)})
		return
	}
	if !st.IsDir() {
		l.loadFile(p)
		return
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		l.r.add(Diagnostic{File: p, Message: pathError(err)})
		return
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	found := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		full := filepath.Join(p, name)
		st, err := os.Stat(full) // follows symlinks
		if err != nil {
			continue
		}
		if st.IsDir() {
			mf := filepath.Join(full, "module.yaml")
			if fst, err := os.Stat(mf); err == nil && !fst.IsDir() {
				found++
				l.loadFile(mf)
			}
			continue
		}
		if ext := strings.ToLower(filepath.Ext(name)); ext == ".yaml" || ext == ".yml" {
			found++
			l.loadFile(full)
		}
	}
	if found == 0 {
		l.r.add(Diagnostic{File: p, Message: "no module files in directory (expected *.yaml, *.yml or <subdir>/module.yaml)"})
	}
}

func pathError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func (l *loader) loadFile(path string) {
	key := path
	if abs, err := filepath.Abs(path); err == nil {
		key = abs
	}
	if l.seen[key] {
		return
	}
	l.seen[key] = true
	l.mod.Files = append(l.mod.Files, path)

	data, err := os.ReadFile(path)
	if err != nil {
		l.r.add(Diagnostic{File: path, Message: pathError(err)})
		return
	}
	f := &fileCtx{r: l.r, file: path, dir: filepath.Dir(path)}
	docs, ok := readDocuments(f, data)
	if !ok {
		return
	}
	// Empty documents (a trailing "---", comments only) are skipped.
	var nonEmpty []*yaml.Node
	for _, d := range docs {
		if !isNull(d) {
			nonEmpty = append(nonEmpty, d)
		}
	}
	if len(nonEmpty) == 1 && hasVersionKey(nonEmpty[0]) {
		l.loadLegacy(f, nonEmpty[0])
		return
	}
	for _, d := range nonEmpty {
		l.loadComponentDoc(f, d)
	}
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// readDocuments decodes the YAML stream into document roots. A syntax error
// is reported with the parser's line, and stops this file.
func readDocuments(f *fileCtx, data []byte) ([]*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return docs, true
		}
		if err != nil {
			msg := err.Error()
			line := 0
			if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
				line, _ = strconv.Atoi(m[1])
				msg = m[2]
			} else {
				msg = strings.TrimPrefix(msg, "yaml: ")
			}
			f.r.add(Diagnostic{File: f.file, Line: line, Message: "invalid YAML: " + msg})
			return nil, false
		}
		root := &doc
		if doc.Kind == yaml.DocumentNode {
			if len(doc.Content) == 0 {
				continue
			}
			root = doc.Content[0]
		}
		docs = append(docs, root)
	}
}

func hasVersionKey(n *yaml.Node) bool {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k != nil && k.Kind == yaml.ScalarNode && k.Value == "version" {
			v := resolve(n.Content[i+1])
			return v != nil && v.Kind == yaml.ScalarNode && v.ShortTag() != "!!null"
		}
	}
	return false
}

const componentShape = "components should be a JSON object with the required fields [kind] and [spec]"

// loadComponentDoc handles one document of the current format:
// {kind: <typename>, spec: <object>}.
func (l *loader) loadComponentDoc(f *fileCtx, doc *yaml.Node) {
	doc = resolve(doc)
	if doc == nil || doc.Kind != yaml.MappingNode {
		f.errorf(doc, "", "%s, got %s", componentShape, describe(doc))
		return
	}
	o := newObj(f, doc, doc, "")
	kindNode, _ := o.get("kind")
	specNode, _ := o.get("spec")
	if kindNode == nil || specNode == nil {
		var missing []string
		if kindNode == nil {
			missing = append(missing, "[kind]")
		}
		if specNode == nil {
			missing = append(missing, "[spec]")
		}
		f.errorf(doc, "", "%s; missing %s", componentShape, strings.Join(missing, " and "))
		o.finish()
		return
	}
	o.finish()
	kind, ok := f.text(kindNode, "kind")
	if !ok {
		return
	}
	spec, ok := f.object(specNode, o.keyNode("spec"), "spec")
	if !ok {
		return
	}
	l.bind(&component{f: f, at: doc, kind: kind, kindNode: kindNode, kindPath: "kind", spec: spec})
}

// component is one component to bind, from either layout.
type component struct {
	f        *fileCtx
	at       *yaml.Node // position of the component
	kind     string
	kindNode *yaml.Node
	kindPath string
	spec     *obj
}

func (c *component) pos() Pos { return c.f.pos(c.at) }

// bind dispatches a component to the parser of its kind.
func (l *loader) bind(c *component) {
	switch c.kind {
	case KindHTTPv1:
		l.bindEndpoint(c, false)
	case KindHTTPv2:
		l.bindEndpoint(c, true)
	case KindKafkaIngress:
		l.bindKafkaIngress(c)
	case KindKafkaEgress:
		l.bindKafkaEgress(c)
	case KindKinesisIngress:
		l.bindKinesisIngress(c)
	case KindKinesisEgress:
		l.bindKinesisEgress(c)
	case KindGeneratorIngress:
		l.bindGeneratorIngress(c)
	case KindFileIngress:
		l.bindFileIngress(c)
	case KindFileEgress:
		l.bindFileEgress(c)
	case KindStdoutEgress:
		l.bindStdoutEgress(c)
	default:
		if _, err := ParseTypeName(c.kind); err != nil {
			c.f.errorf(c.kindNode, c.kindPath, "%v", err)
			return
		}
		msg := fmt.Sprintf("An extension with type %s does not exist", c.kind)
		if hint := kindHint(c.kind); hint != "" {
			msg += "; " + hint
		}
		c.f.errorf(c.kindNode, c.kindPath, "%s", msg)
	}
}

// kindHint suggests a replacement for kinds of older StateFun versions.
func kindHint(kind string) string {
	switch {
	case strings.HasPrefix(kind, "statefun.kafka.io/") && strings.HasSuffix(kind, "egress"):
		return "StateFun 2.x Kafka egresses are replaced by " + KindKafkaEgress
	case strings.HasPrefix(kind, "statefun.kafka.io/"):
		return "StateFun 2.x Kafka ingresses are replaced by " + KindKafkaIngress
	case strings.HasPrefix(kind, "statefun.kinesis.io/") && strings.HasSuffix(kind, "egress"):
		return "StateFun 2.x Kinesis egresses are replaced by " + KindKinesisEgress
	case strings.HasPrefix(kind, "statefun.kinesis.io/"):
		return "StateFun 2.x Kinesis ingresses are replaced by " + KindKinesisIngress
	case strings.HasPrefix(kind, "io.statefun.transports."):
		return "a transport type goes in spec.transport.type of an " + KindHTTPv2 + " component"
	}
	return ""
}
