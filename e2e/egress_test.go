package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/statefun"
)

// TestModuleEgresses: egresses declared in module.yaml, in process: the
// stdout egress writes to Config.Stdout (lines and jsonl), the file egress
// to its file; every message reaches every egress it was sent to, with
// the sender in the jsonl "from" field.
func TestModuleEgresses(t *testing.T) {
	for _, p := range []int{1, 3} {
		t.Run(fmt.Sprintf("p%d", p), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			names := []string{"a", "b", "c", "a", "d", "ü", "b", "e f"}
			writeFile(t, dir, "in.txt", strings.Join(names, "\n")+"\n")
			mod := writeFile(t, dir, "module.yaml", `kind: io.statefun.file.v1/ingress
spec:
  id: test/in
  path: in.txt
  targets: [test/fan]
---
kind: io.statefun.stdout.v1/egress
spec:
  id: test/lines
---
kind: io.statefun.stdout.v1/egress
spec:
  id: test/json
  format: jsonl
---
kind: io.statefun.file.v1/egress
spec:
  id: test/file
  path: out/file.jsonl
  format: jsonl
`)
			fan := func(ctx statefun.Context, msg statefun.Message) error {
				for _, e := range []string{"test/lines", "test/json", "test/file"} {
					ctx.SendEgress(statefun.GenericEgressBuilder{Target: statefun.TypeNameFrom(e), Value: "hi " + msg.AsString(), ValueType: statefun.StringType})
				}
				return nil
			}
			var stdout syncBuffer
			sum, err := runApp(t, 20*time.Second, app.Config{
				Modules: []string{mod}, Parallelism: p, Stdout: &stdout,
				Functions: specs(t, statefun.StatefulFunctionSpec{FunctionType: statefun.TypeNameFrom("test/fan"), Function: statefun.StatefulFunctionPointer(fan)}),
			})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			var want []string
			for _, n := range names {
				want = append(want, "hi "+n)
			}
			slices.Sort(want)
			type rec struct{ Egress, From, Typename, Value string }
			var lines, jsonStdout []string
			for _, l := range splitLines(stdout.String()) {
				if !strings.HasPrefix(l, "{") {
					lines = append(lines, l)
					continue
				}
				var r rec
				if err := json.Unmarshal([]byte(l), &r); err != nil {
					t.Fatalf("stdout line %q: %v", l, err)
				}
				if r.Egress != "test/json" || r.From != "test/fan/"+strings.TrimPrefix(r.Value, "hi ") || r.Typename != "io.statefun.types/string" {
					t.Errorf("stdout jsonl record %+v", r)
				}
				jsonStdout = append(jsonStdout, r.Value)
			}
			data, err := os.ReadFile(filepath.Join(dir, "out", "file.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			var file []string
			for _, l := range splitLines(string(data)) {
				var r rec
				if err := json.Unmarshal([]byte(l), &r); err != nil {
					t.Fatalf("file line %q: %v", l, err)
				}
				if r.Egress != "test/file" || r.From != "test/fan/"+strings.TrimPrefix(r.Value, "hi ") {
					t.Errorf("file record %+v", r)
				}
				file = append(file, r.Value)
			}
			for what, got := range map[string][]string{"stdout lines": lines, "stdout jsonl": jsonStdout, "file jsonl": file} {
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("%s: got %q, want %q", what, got, want)
				}
			}
			if sum.EgressRecords != int64(3*len(names)) || sum.Invocations != int64(len(names)) || sum.IngressRecords != int64(len(names)) {
				t.Errorf("summary %s", sum)
			}
		})
	}
}
