package module

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// TestCorpus loads every case of testdata/valid and testdata/invalid (a
// *.yaml/*.yml file, or a directory) and compares the result with the
// case's .golden file: the Describe output for valid cases, the exact error
// text (every diagnostic) for invalid ones. Run with -update to rewrite the
// golden files, then review them by eye.
//
// A case file may start with a comment "# test-options: strict,
// known=ns/name, ..." to set Options.Strict and Options.FunctionKnown.
func TestCorpus(t *testing.T) {
	for _, dir := range []string{"valid", "invalid"} {
		entries, err := os.ReadDir(filepath.Join("testdata", dir))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range entries {
			name := e.Name()
			ext := filepath.Ext(name)
			if !e.IsDir() && ext != ".yaml" && ext != ".yml" {
				continue
			}
			n++
			path := filepath.Join("testdata", dir, name)
			golden := strings.TrimSuffix(path, ext) + ".golden"
			valid := dir == "valid"
			t.Run(dir+"/"+name, func(t *testing.T) {
				opts := caseOptions(t, path)
				m, err := Load(opts, path)
				var got string
				if valid {
					if err != nil {
						t.Fatalf("Load(%s) failed:\n%v", path, err)
					}
					var buf bytes.Buffer
					m.Describe(&buf)
					got = buf.String()
				} else {
					if err == nil {
						t.Fatalf("Load(%s) succeeded, want errors", path)
					}
					var errs *Errors
					if !errors.As(err, &errs) {
						t.Fatalf("error is %T, want *Errors", err)
					}
					checkDiagnostics(t, errs)
					got = err.Error() + "\n"
				}
				compareGolden(t, golden, got)
			})
		}
		if n == 0 {
			t.Fatalf("no cases in testdata/%s", dir)
		}
	}
}

func checkDiagnostics(t *testing.T, errs *Errors) {
	t.Helper()
	hasError := false
	for _, d := range errs.List {
		if d.File == "" {
			t.Errorf("diagnostic without a file: %v", d)
		}
		if d.Message == "" {
			t.Errorf("diagnostic without a message: %v", d)
		}
		if strings.ContainsAny(d.String(), "\n\r") {
			t.Errorf("diagnostic spans several lines: %q", d.String())
		}
		hasError = hasError || !d.Warning
	}
	if !hasError {
		t.Errorf("*Errors without any error: %v", errs)
	}
}

func compareGolden(t *testing.T, golden, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update and review the diff)\n--- got:\n%s\n--- want:\n%s", golden, got, want)
	}
}

// caseOptions reads "# test-options: ..." from the first line of a case
// file.
func caseOptions(t *testing.T, path string) Options {
	var opts Options
	data, err := os.ReadFile(path)
	if err != nil {
		return opts // a directory
	}
	first, _, _ := strings.Cut(string(data), "\n")
	spec, ok := strings.CutPrefix(first, "# test-options:")
	if !ok {
		return opts
	}
	known := map[string]bool{}
	for _, o := range strings.Split(spec, ",") {
		o = strings.TrimSpace(o)
		switch {
		case o == "strict":
			opts.Strict = true
		case strings.HasPrefix(o, "known="):
			known[strings.TrimPrefix(o, "known=")] = true
		default:
			t.Fatalf("%s: unknown test option %q", path, o)
		}
	}
	opts.FunctionKnown = func(ns, name string) bool { return known[ns+"/"+name] }
	return opts
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, opts Options, paths ...string) *Module {
	t.Helper()
	m, err := Load(opts, paths...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

func TestStrictTurnsWarningsIntoErrors(t *testing.T) {
	path := filepath.Join("testdata", "valid", "unknown-keys.yaml")
	m := mustLoad(t, Options{}, path)
	if len(m.Warnings) == 0 {
		t.Fatal("want warnings")
	}
	for _, w := range m.Warnings {
		if !w.Warning {
			t.Errorf("Module.Warnings holds an error: %v", w)
		}
	}
	_, err := Load(Options{Strict: true}, path)
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("strict: got %v, want *Errors", err)
	}
	if len(errs.List) != len(m.Warnings) {
		t.Errorf("strict: %d errors, want one per warning (%d)", len(errs.List), len(m.Warnings))
	}
	for _, d := range errs.List {
		if d.Warning {
			t.Errorf("strict: diagnostic still a warning: %v", d)
		}
	}
}

func TestWarningsAreReportedWithErrors(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "module.yaml", `
kind: io.statefun.stdout.v1/egress
spec:
  id: com.example/out
  colour: true
  format: csv
`)
	_, err := Load(Options{}, p)
	want := p + ":5:3: warning: spec.colour: unknown key (ignored)\n" +
		p + ":6:11: spec.format: invalid format: csv; valid values are [lines, jsonl]"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestDiagnosticString(t *testing.T) {
	for _, c := range []struct {
		d    Diagnostic
		want string
	}{
		{Diagnostic{File: "path/module.yaml", Line: 12, Column: 7, Field: "spec.topics[0].valueType", Message: `must be a typename namespace/name, got "User"`},
			`path/module.yaml:12:7: spec.topics[0].valueType: must be a typename namespace/name, got "User"`},
		{Diagnostic{File: "module.yaml", Line: 9, Column: 5, Field: "spec.maxNumBatchRequest", Message: "unknown key (ignored)", Warning: true},
			`module.yaml:9:5: warning: spec.maxNumBatchRequest: unknown key (ignored)`},
		{Diagnostic{File: "m.yaml", Line: 3, Message: "invalid YAML: x"}, `m.yaml:3: invalid YAML: x`},
		{Diagnostic{File: "dir", Message: "no such file or directory"}, `dir: no such file or directory`},
		{Diagnostic{Message: "a\nb"}, `a b`},
	} {
		if got := c.d.String(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

func TestLoadPaths(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", "kind: io.statefun.stdout.v1/egress\nspec: {id: com.example/out}\n")

	// The same file twice is loaded once.
	m := mustLoad(t, Options{}, a, a, filepath.Join(dir, ".", "a.yaml"))
	if len(m.Files) != 1 || len(m.Egresses) != 1 {
		t.Errorf("files %v, %d egresses; want one of each", m.Files, len(m.Egresses))
	}

	missing := filepath.Join(dir, "missing.yaml")
	_, err := Load(Options{}, missing)
	if err == nil || err.Error() != missing+": no such file or directory" {
		t.Errorf("missing file: got %v", err)
	}

	_, err = Load(Options{})
	if err == nil || err.Error() != "no module file or directory given" {
		t.Errorf("no paths: got %v", err)
	}

	// An empty file, or one with only comments and separators, is a module
	// without components.
	e := writeFile(t, dir, "empty/module.yaml", "# nothing yet\n---\n---\n")
	m = mustLoad(t, Options{}, e)
	if len(m.Endpoints)+len(m.Ingresses)+len(m.Egresses) != 0 || len(m.Files) != 1 {
		t.Errorf("empty module: %+v", m)
	}
}

func TestDirectoryOrder(t *testing.T) {
	m := mustLoad(t, Options{}, filepath.Join("testdata", "valid", "dir-layout"))
	want := []string{
		filepath.Join("testdata", "valid", "dir-layout", "a-endpoints.yaml"),
		filepath.Join("testdata", "valid", "dir-layout", "b-ingress.yml"),
		filepath.Join("testdata", "valid", "dir-layout", "sub", "module.yaml"),
	}
	if strings.Join(m.Files, "|") != strings.Join(want, "|") {
		t.Errorf("files %q, want %q", m.Files, want)
	}
}

func TestResolveAndURLFor(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "module.yaml", `
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.example/*
  urlPathTemplate: http://ns:8000/{function.name}/x/{function.name}
---
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.example/special
  urlPathTemplate: http://special:8000/fn
`)
	m := mustLoad(t, Options{}, p)
	ep, ok := m.Resolve(TypeName{"com.example", "special"})
	if !ok || ep.Wildcard || ep.URLFor("special") != "http://special:8000/fn" {
		t.Errorf("exact binding: %+v %v", ep, ok)
	}
	ep, ok = m.Resolve(TypeName{"com.example", "greeter"})
	if !ok || !ep.Wildcard {
		t.Fatalf("namespace binding: %+v %v", ep, ok)
	}
	if got := ep.URLFor("greeter"); got != "http://ns:8000/greeter/x/greeter" {
		t.Errorf("URLFor: %s", got)
	}
	if !ep.Matches(TypeName{"com.example", "any"}) || ep.Matches(TypeName{"com.other", "any"}) {
		t.Error("Matches")
	}
	if _, ok := m.Resolve(TypeName{"com.other", "greeter"}); ok {
		t.Error("resolved an unbound type")
	}
	if ep.Pos.File != p || ep.Pos.Line != 2 || ep.Pos.Column != 1 {
		t.Errorf("Pos %v", ep.Pos)
	}
}

func TestDefaults(t *testing.T) {
	m := mustLoad(t, Options{}, filepath.Join("testdata", "valid", "http-endpoint-v2-all.yaml"))
	def := m.Endpoints[0]
	if def.MaxNumBatchRequests != 1000 || def.Transport != asyncDefaults() {
		t.Errorf("defaults: %+v", def)
	}
	if def.Transport.PayloadMaxBytes != 33554432 || def.Transport.PoolSize != 1024 {
		t.Errorf("async defaults: %+v", def.Transport)
	}
	v1 := mustLoad(t, Options{}, filepath.Join("testdata", "valid", "module-v3_0.yaml")).Endpoints[0]
	if v1.Kind != KindHTTPv1 || v1.Transport.Type != TransportOkHTTP {
		t.Errorf("legacy http endpoint: %+v", v1)
	}
}

func TestKafkaEffectiveProperties(t *testing.T) {
	m := mustLoad(t, Options{}, filepath.Join("testdata", "valid", "kafka-ingress.yaml"))
	in := m.Ingresses[1].Spec.(*KafkaIngressSpec)
	got := in.ConsumerProperties()
	want := map[string]string{
		"bootstrap.servers":  "kafka-1:9092,kafka-2:9092",
		"group.id":           "from-properties",
		"max.poll.records":   "500",
		"enable.auto.commit": "false",
		"auto.offset.reset":  "latest", // always overwritten, as upstream
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}

	eg := mustLoad(t, Options{}, filepath.Join("testdata", "valid", "kafka-egress.yaml")).Egresses
	if p := eg[0].Spec.(*KafkaEgressSpec).ProducerProperties(); p["transaction.timeout.ms"] != "900000" || p["bootstrap.servers"] != "kafka-broker:9092" {
		t.Errorf("producer properties %v", p)
	}
	if s := eg[2].Spec.(*KafkaEgressSpec); s.TransactionTimeout.Milliseconds() != 100000 {
		t.Errorf("transactionTimeoutMillis: %v", s.TransactionTimeout)
	}
}

func TestParseTypeName(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"a/b", true}, {"com.example/fn", true}, {"type.googleapis.com/a.B", true}, {"ns/*", true},
		{"", false}, {"a", false}, {"/b", false}, {"a/", false}, {"a/b/c", false}, {"/", false},
	} {
		tn, err := ParseTypeName(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseTypeName(%q) error %v, want ok=%v", c.in, err, c.ok)
		}
		if c.ok && tn.String() != c.in {
			t.Errorf("round trip %q -> %q", c.in, tn)
		}
	}
}

func TestSplitUnixSocketPath(t *testing.T) {
	for _, c := range []struct {
		in, sock, req string
		ok            bool
	}{
		{"/var/run/fn.sock/statefun", "/var/run/fn.sock", "/statefun", true},
		{"/tmp/fn.sock", "/tmp/fn.sock", "/", true},
		{"/a.sock/b.sock/c/", "/a.sock", "/b.sock/c", true},
		{"/var/run/fn", "", "", false},
	} {
		s, r, ok := SplitUnixSocketPath(c.in)
		if s != c.sock || r != c.req || ok != c.ok {
			t.Errorf("SplitUnixSocketPath(%q) = %q, %q, %v", c.in, s, r, ok)
		}
	}
}
