package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/connectors/datagen"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/translate"
)

// Bad input must give a clear error (what, where) and never hang. Every run
// goes through runApp, which bounds it with a context timeout.

var (
	echoType   = statefun.TypeNameFrom("test/echo")
	echoEgress = statefun.TypeNameFrom("test/echo-out")
)

// echo emits "id=value" for every string message.
func echo(ctx statefun.Context, msg statefun.Message) error {
	ctx.SendEgress(statefun.GenericEgressBuilder{
		Target: echoEgress, Value: ctx.Self().Id + "=" + msg.AsString(), ValueType: statefun.StringType,
	})
	return nil
}

func echoSpecs(t *testing.T) []statefun.StatefulFunctionSpec {
	return specs(t, statefun.StatefulFunctionSpec{FunctionType: echoType, Function: statefun.StatefulFunctionPointer(echo)})
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func capturedStrings(t *testing.T, c *capture) []string {
	t.Helper()
	var out []string
	for _, e := range c.all() {
		var s string
		if err := statefun.DecodeValue(statefun.StringType, e.Value, &s); err != nil {
			t.Fatalf("egress value of %s: %v", e.Typename, err)
		}
		out = append(out, s)
	}
	return out
}

// (a) A malformed module: every problem is reported, each with file:line.
func TestBadModuleReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	mod := writeFile(t, dir, "module.yaml", `kind: io.statefun.generator.v1/ingress
spec:
  id: test/gen
  targets: [test/echo]
  rate: -5
  keys: 0
---
kind: io.statefun.file.v1/ingress
spec:
  id: test/file
  path: in.jsonl
  format: jsonl
  targets: [test/nobody]
---
kind: io.statefun.file.v1/egress
spec:
  path: out.txt
---
kind: io.statefun.stdout.v1/egress
spec:
  id: test/out
  format: csv
---
kind: io.statefun.nope.v1/ingress
spec:
  id: test/x
`)
	_, err := runApp(t, 20*time.Second, app.Config{Modules: []string{mod}, Functions: echoSpecs(t)})
	want := []struct {
		line int
		what string
	}{
		{5, "spec.rate"},
		{6, "spec.keys"},
		{9, "spec.keyField: missing required field"},
		{9, "spec.valueType: missing required field"},
		{13, "unknown function type test/nobody"},
		{16, "spec.id: missing required field"},
		{22, "invalid format: csv"},
		{24, "io.statefun.nope.v1/ingress"},
	}
	if err == nil {
		t.Fatal("no error for a malformed module")
	}
	lines := strings.Split(err.Error(), "\n")
	for _, w := range want {
		prefix := fmt.Sprintf("%s:%d:", mod, w.line)
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, prefix) && strings.Contains(l, w.what) }) {
			t.Errorf("no error line with %q and %q in:\n%v", prefix, w.what, err)
		}
	}
	if len(lines) != len(want) {
		t.Errorf("%d error lines, want %d:\n%v", len(lines), len(want), err)
	}
}

// (b) An ingress target whose function type is unknown.
func TestUnknownIngressTarget(t *testing.T) {
	t.Run("module", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "in.txt", "a\n")
		mod := writeFile(t, dir, "module.yaml", `kind: io.statefun.file.v1/ingress
spec:
  id: test/in
  path: in.txt
  targets:
    - test/echo
    - test/ech0
`)
		_, err := runApp(t, 20*time.Second, app.Config{Modules: []string{mod}, Functions: echoSpecs(t),
			Egresses: []translate.Egress{(&capture{}).egress(echoEgress.String())}})
		wantErrContains(t, err, mod+":7:", "test/ech0")
		if err != nil && strings.Contains(err.Error(), "test/echo:") {
			t.Errorf("the known target is reported too: %v", err)
		}
	})
	t.Run("code", func(t *testing.T) {
		_, err := runApp(t, 20*time.Second, app.Config{Functions: echoSpecs(t),
			Ingresses: []translate.Ingress{{ID: "test/in", ValueType: "io.statefun.types/string", Targets: []string{"test/missing"},
				Source: newSliceSource(stringRecords("in", "a", "a"), 0)}},
			Egresses: []translate.Egress{(&capture{}).egress(echoEgress.String())}})
		wantErrContains(t, err, "test/in", "test/missing")
	})
}

// (d) A file ingress with bad lines: fail names file:line; skip delivers
// every good line.
func TestFileIngressBadLines(t *testing.T) {
	jsonl := strings.Join([]string{
		`{"k":"a","v":"one"}`,
		`{"k":"b","v":"two"}`,
		`{"k":"c","v":`, // line 3: malformed JSON
		`{"k":"d","v":"four"}`,
		`{"v":"five"}`, // line 5: no key
		``,             // blank lines are skipped
		`{"k":7,"v":"seven"}`,
	}, "\n") + "\n"
	lines := "a,one\nnodelimiter\nb,two\n"
	cases := []struct {
		name, file, content, spec string
		skip                      bool
		wantErr                   []string // with {file}
		want                      []string
	}{
		{name: "jsonl-fail", file: "in.jsonl", content: jsonl,
			spec:    "format: jsonl\n  keyField: k\n  valueField: v\n  valueType: io.statefun.types/string",
			wantErr: []string{"{file}:3", "invalid JSON"}},
		{name: "jsonl-skip", file: "in.jsonl", content: jsonl, skip: true,
			spec: "format: jsonl\n  keyField: k\n  valueField: v\n  valueType: io.statefun.types/string",
			want: []string{"a=one", "b=two", "d=four", "7=seven"}},
		{name: "jsonl-missing-key-fail", file: "in.jsonl", content: `{"k":"a","v":"one"}` + "\n" + `{"v":"five"}` + "\n",
			spec:    "format: jsonl\n  keyField: k\n  valueField: v\n  valueType: io.statefun.types/string",
			wantErr: []string{"{file}:2", `key field "k"`}},
		{name: "lines-fail", file: "in.txt", content: lines, spec: "delimiter: \",\"",
			wantErr: []string{"{file}:2", "delimiter"}},
		{name: "lines-skip", file: "in.txt", content: lines, spec: "delimiter: \",\"", skip: true,
			want: []string{"a=one", "b=two"}},
	}
	for _, c := range cases {
		for _, p := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/p%d", c.name, p), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				in := writeFile(t, dir, c.file, c.content)
				onError := ""
				if c.skip {
					onError = "\n  onError: skip"
				}
				mod := writeFile(t, dir, "module.yaml", fmt.Sprintf("kind: io.statefun.file.v1/ingress\nspec:\n  id: test/in\n  path: %s\n  targets: [test/echo]\n  %s%s\n", c.file, c.spec, onError))
				out := &capture{}
				sum, err := runApp(t, 20*time.Second, app.Config{Modules: []string{mod}, Parallelism: p, Functions: echoSpecs(t),
					Egresses: []translate.Egress{out.egress(echoEgress.String())}})
				if c.wantErr != nil {
					var parts []string
					for _, w := range c.wantErr {
						parts = append(parts, strings.ReplaceAll(w, "{file}", in))
					}
					wantErrContains(t, err, parts...)
					return
				}
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				got := capturedStrings(t, out)
				slices.Sort(got)
				want := slices.Sorted(slices.Values(c.want))
				if !slices.Equal(got, want) {
					t.Errorf("delivered %q, want %q", got, want)
				}
				if sum.IngressRecords != int64(len(c.want)) {
					t.Errorf("summary %s: want %d ingress records", sum, len(c.want))
				}
			})
		}
	}
}

// (c) (e) (f) (g) Function failures at runtime fail the job with an error
// that names the address, and never hang, even with an unbounded ingress or
// a long pending delayed message.
func TestFunctionFailures(t *testing.T) {
	badType := statefun.TypeNameFrom("test/bad")
	nope := statefun.TypeNameFrom("nope/fn")
	undeclared := statefun.ValueSpec{Name: "undeclared", ValueType: statefun.Int32Type}
	declared := statefun.ValueSpec{Name: "n", ValueType: statefun.Int32Type}
	behaviours := map[string]func(ctx statefun.Context, msg statefun.Message) error{
		"unknown-type": func(ctx statefun.Context, _ statefun.Message) error {
			ctx.Send(statefun.MessageBuilder{Target: statefun.Address{FunctionType: nope, Id: "x"}, Value: "hi"})
			return nil
		},
		"unknown-type-delayed": func(ctx statefun.Context, _ statefun.Message) error {
			ctx.SendAfter(time.Millisecond, statefun.MessageBuilder{Target: statefun.Address{FunctionType: nope, Id: "x"}, Value: "hi"})
			return nil
		},
		"panic": func(ctx statefun.Context, _ statefun.Message) error {
			panic("boom-" + ctx.Self().Id)
		},
		"panic-error": func(ctx statefun.Context, _ statefun.Message) error {
			panic(errors.New("kaput-" + ctx.Self().Id))
		},
		"error": func(ctx statefun.Context, _ statefun.Message) error {
			return fmt.Errorf("my-error-%s", ctx.Self().Id)
		},
		"unknown-egress": func(ctx statefun.Context, _ statefun.Message) error {
			ctx.SendEgress(statefun.GenericEgressBuilder{Target: statefun.TypeNameFrom("nope/egress"), Value: "x", ValueType: statefun.StringType})
			return nil
		},
		"undeclared-state": func(ctx statefun.Context, _ statefun.Message) error {
			var n int32
			ctx.Storage().Get(undeclared, &n)
			return nil
		},
		// The first message at an address schedules a delayed message a
		// minute away and forwards to another address, which fails.
		"error-downstream-with-pending-delay": func(ctx statefun.Context, msg statefun.Message) error {
			if ctx.Caller() == nil {
				ctx.SendAfter(time.Minute, statefun.MessageBuilder{Target: ctx.Self(), Value: "later"})
				for i := 0; i < 4; i++ {
					ctx.Send(statefun.MessageBuilder{Target: statefun.Address{FunctionType: badType, Id: fmt.Sprintf("down%d", i)}, Value: "go"})
				}
				return nil
			}
			return fmt.Errorf("downstream-failure-%s", ctx.Self().Id)
		},
		// Fails at the 200th message of an unbounded generator.
		"error-with-unbounded-ingress": func(ctx statefun.Context, _ statefun.Message) error {
			var n int32
			ctx.Storage().Get(declared, &n)
			n++
			ctx.Storage().Set(declared, n)
			if n == 200 {
				return fmt.Errorf("enough-%s", ctx.Self().Id)
			}
			return nil
		},
	}
	cases := []struct {
		name      string
		unbounded bool
		wantErr   []string
	}{
		{name: "unknown-type", wantErr: []string{"test/bad/k1", "nope/fn"}},
		{name: "unknown-type-delayed", wantErr: []string{"test/bad/k1", "nope/fn"}},
		{name: "panic", wantErr: []string{"test/bad/k1", "panic", "boom-k1"}},
		{name: "panic-error", wantErr: []string{"test/bad/k1", "panic", "kaput-k1"}},
		{name: "error", wantErr: []string{"test/bad/k1", "my-error-k1"}},
		{name: "unknown-egress", wantErr: []string{"test/bad/k1", "nope/egress"}},
		{name: "undeclared-state", wantErr: []string{"test/bad/k1", `"undeclared"`}},
		{name: "error-downstream-with-pending-delay", wantErr: []string{"test/bad/down", "downstream-failure-down"}},
		{name: "error-with-unbounded-ingress", unbounded: true, wantErr: []string{"test/bad/k0", "enough-k0"}},
	}
	for _, c := range cases {
		for _, p := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/p%d", c.name, p), func(t *testing.T) {
				t.Parallel()
				var src translate.SourceFactory
				if c.unbounded {
					src = func(int) connectors.Source {
						return datagen.New(datagen.Config{Keys: 1, KeyPrefix: "k", ValueType: "io.statefun.types/string"})
					}
				} else {
					src = newSliceSource(stringRecords("in", "k1", "k1"), 0)
				}
				start := time.Now()
				_, err := runApp(t, 20*time.Second, app.Config{
					Parallelism: p,
					Functions: specs(t, statefun.StatefulFunctionSpec{FunctionType: badType, States: []statefun.ValueSpec{declared},
						Function: statefun.StatefulFunctionPointer(behaviours[c.name])}),
					Ingresses: []translate.Ingress{{ID: "test/in", ValueType: "io.statefun.types/string", Targets: []string{"test/bad"}, Source: src}},
					Egresses:  []translate.Egress{(&capture{}).egress("test/declared-egress")},
				})
				wantErrContains(t, err, c.wantErr...)
				if took := time.Since(start); took > 10*time.Second {
					t.Errorf("failing took %v", took)
				}
			})
		}
	}
}
