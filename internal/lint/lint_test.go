// Package lint holds the repository's own rules, written as Go tests
// (pebble's internal/lint): the package layering of DESIGN.md §2 and the
// purity of the deterministic cores.
package lint

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const mod = "github.com/statefun-go/statefun"

type pkg struct {
	ImportPath string
	Dir        string
	Imports    []string
	GoFiles    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", mod+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, mod), "/") }

// allowed lists, for each package (or prefix ending in "/"), the
// repository packages it may import. Dependencies point down DESIGN.md §2's
// list: the SDK and dataflow are leaves; nothing imports cmd or app except
// binaries, benchmarks and end-to-end tests.
var allowed = map[string][]string{
	"statefun":                   {},
	"statefun/envelope":          {},
	"dataflow":                   {},
	"dataflow/plan":              {"dataflow"},
	"dataflow/state":             {"dataflow"},
	"dataflow/runtime":           {"dataflow", "dataflow/plan", "network", "checkpoint"},
	"network":                    {"dataflow"},
	"checkpoint/store":           {},
	"checkpoint":                 {"dataflow"},
	"statefun/feedback":          {"dataflow", "statefun/envelope"},
	"statefun/dispatch/delay":    {"statefun/envelope"},
	"statefun/module":            {},
	"statefun/dispatch":          {"dataflow", "dataflow/state", "statefun", "statefun/envelope", "statefun/feedback", "statefun/dispatch/delay", "statefun/dispatch/reqreply", "statefun/dispatch/opstate", "statefun/protocol"},
	"statefun/dispatch/opstate":  {"statefun/envelope"},
	"statefun/dispatch/reqreply": {"statefun/protocol"},
	"statefun/protocol":          {},
	"statefun/remote":            {"statefun/module"},
	"connectors":                 {"dataflow", "statefun", "statefun/envelope"},
	"connectors/kafka":           {"connectors", "dataflow", "statefun", "statefun/envelope", "statefun/module", "metrics"},
	"metrics":                    {},
	"connectors/connectortest":   {"connectors", "dataflow", "statefun", "statefun/envelope"},
	"connectors/":                {"connectors", "dataflow", "statefun", "statefun/envelope"},
	"statefun/translate":         {"connectors", "connectors/datagen", "connectors/file", "connectors/stdout", "connectors/kafka", "dataflow", "statefun/dispatch", "statefun/envelope", "statefun/module", "statefun/remote"},
}

func TestLayering(t *testing.T) {
	for _, p := range listPackages(t) {
		name := rel(p.ImportPath)
		rules, ok := allowed[name]
		if !ok {
			for prefix, r := range allowed {
				if strings.HasSuffix(prefix, "/") && strings.HasPrefix(name, prefix) {
					rules, ok = r, true
				}
			}
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			ri := rel(imp)
			if strings.HasPrefix(ri, "cmd/") {
				t.Errorf("%s imports %s: nothing may import a command", name, ri)
			}
			if ri == "app" && !(strings.HasPrefix(name, "cmd/") || strings.HasPrefix(name, "examples/") || name == "benchmarks" || name == "e2e" || strings.HasPrefix(name, "internal/smoke")) {
				t.Errorf("%s imports app: only binaries, benchmarks and e2e tests may", name)
			}
			if !ok {
				continue // binaries, app, tests: may import the engine
			}
			if !contains(rules, ri) {
				t.Errorf("%s imports %s, outside its layer (allowed: %v)", name, ri, rules)
			}
		}
	}
}

// deterministic packages are pure state machines: no clocks, goroutines or
// randomness (STYLE.md §1).
var deterministic = []string{"checkpoint", "dataflow/plan", "statefun/dispatch/delay", "statefun/dispatch/reqreply"}

func TestDeterministicCores(t *testing.T) {
	for _, p := range listPackages(t) {
		if !contains(deterministic, rel(p.ImportPath)) {
			continue
		}
		for _, f := range p.GoFiles {
			path := filepath.Join(p.Dir, f)
			file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range file.Imports {
				if v := strings.Trim(imp.Path.Value, `"`); v == "math/rand" || v == "math/rand/v2" || v == "os" || v == "net" {
					t.Errorf("%s imports %s in a deterministic core", path, v)
				}
			}
			ast.Inspect(file, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.GoStmt:
					t.Errorf("%s: go statement in a deterministic core", path)
				case *ast.SelectorExpr:
					if id, ok := n.X.(*ast.Ident); ok && id.Name == "time" && (n.Sel.Name == "Now" || n.Sel.Name == "Sleep" || n.Sel.Name == "After" || n.Sel.Name == "NewTimer") {
						t.Errorf("%s: time.%s in a deterministic core", path, n.Sel.Name)
					}
				}
				return true
			})
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
