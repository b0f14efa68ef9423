package translate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/connectors/datagen"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/dataflowtest"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/dispatch"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/module"
)

// loadModule writes module.yaml (and the extra files) into a temp dir and
// loads it.
func loadModule(t *testing.T, yaml string, files map[string]string) (*module.Module, string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "module.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	mod, err := module.Load(module.Options{}, p)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return mod, p
}

// registry registers one embedded test function per type: a message
// "egress:ns/name" makes it send to that egress; other messages do nothing.
func registry(t *testing.T, types ...string) *dispatch.Registry {
	t.Helper()
	reg := dispatch.NewRegistry()
	for _, ty := range types {
		fn := statefun.StatefulFunctionPointer(func(c statefun.Context, m statefun.Message) error {
			if m.IsString() && strings.HasPrefix(m.AsString(), "egress:") {
				eg := strings.TrimPrefix(m.AsString(), "egress:")
				c.SendEgress(statefun.GenericEgressBuilder{Target: statefun.TypeNameFrom(eg), Value: "to " + eg + " from " + c.Self().Id, ValueType: statefun.StringType})
			}
			return nil
		})
		if err := reg.AddEmbedded(statefun.StatefulFunctionSpec{FunctionType: statefun.TypeNameFrom(ty), Function: fn}); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

const fullModule = `kind: io.statefun.generator.v1/ingress
spec:
  id: com.example/gen
  targets: [com.example/greeter, com.example/audit]
  count: 5
  keys: 2
  keyPrefix: user-
  valueType: io.statefun.types/long
---
kind: io.statefun.file.v1/ingress
spec:
  id: com.example/lines
  targets: [com.example/greeter]
  path: names.txt
---
kind: io.statefun.stdout.v1/egress
spec:
  id: com.example/stdout
---
kind: io.statefun.file.v1/egress
spec:
  id: com.example/out
  path: out/greetings.txt
  format: jsonl
`

type vertexInfo struct {
	name string
	par  int
}

func TestBuildGraph(t *testing.T) {
	mod, _ := loadModule(t, fullModule, map[string]string{"names.txt": "alice\nbob\n"})
	job, err := Build(mod, Options{JobName: "greeter-job", Parallelism: 3, Registry: registry(t, "com.example/greeter", "com.example/audit")})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	g := job.Graph
	if g.Name != "greeter-job" || g.MaxParallelism != dataflow.DefaultMaxParallelism {
		t.Errorf("graph %q with max parallelism %d", g.Name, g.MaxParallelism)
	}
	var got []vertexInfo
	for _, v := range g.Vertices() {
		got = append(got, vertexInfo{v.Name, v.Parallelism})
	}
	want := []vertexInfo{
		{"functions", 3},
		{"ingress com.example/gen", 3},   // generators run at the job's parallelism
		{"ingress com.example/lines", 1}, // a file has one reader
		{"feedback", 3},
		{"egress com.example/out", 1},
		{"egress com.example/stdout", 1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("vertices:\n got %v\nwant %v", got, want)
	}
	byName := map[string]*dataflow.Vertex{}
	for _, v := range g.Vertices() {
		byName[v.Name] = v
	}
	fn := byName["functions"]
	if fn.CoLocationGroup == "" || fn.CoLocationGroup != byName["feedback"].CoLocationGroup {
		t.Errorf("functions and feedback are not co-located: %q, %q", fn.CoLocationGroup, byName["feedback"].CoLocationGroup)
	}
	for _, name := range []string{"ingress com.example/gen", "ingress com.example/lines"} {
		if v := byName[name]; !v.IsSource() || len(v.Outputs()) != 1 || v.Outputs()[0].To != fn || v.Outputs()[0].Partitioning != dataflow.Keyed {
			t.Errorf("%s is not a source keyed into the functions", name)
		}
	}
	// The function vertex's ports: 0 is the feedback shuffle, then one per
	// egress in id order.
	var ports []string
	for _, e := range fn.Outputs() {
		ports = append(ports, fmt.Sprintf("%d:%s:%s", e.FromPort, e.To.Name, e.Partitioning))
	}
	wantPorts := []string{"0:feedback:keyed", "1:egress com.example/out:rebalance", "2:egress com.example/stdout:rebalance"}
	if !slices.Equal(ports, wantPorts) {
		t.Errorf("function ports:\n got %v\nwant %v", ports, wantPorts)
	}
	fb := g.FeedbackEdges()
	if len(fb) != 1 || fb[0].Tail != byName["feedback"] || fb[0].Head != fn {
		t.Errorf("feedback edges: %+v", fb)
	}
	if err := g.Validate(); err != nil {
		t.Error(err)
	}
}

// TestEgressPortsReachTheirSinks runs the function operator that Build
// configured: an egress message leaves on the port of its sink's edge.
func TestEgressPortsReachTheirSinks(t *testing.T) {
	mod, _ := loadModule(t, fullModule, map[string]string{"names.txt": "alice\n"})
	job, err := Build(mod, Options{Parallelism: 2, Registry: registry(t, "com.example/greeter", "com.example/audit")})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	fn := job.Graph.Vertices()[0]
	portOf := map[string]int{}
	for _, e := range fn.Outputs() {
		portOf[strings.TrimPrefix(e.To.Name, "egress ")] = e.FromPort
	}

	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Name: "functions", Parallelism: 2})
	op := fn.NewOperator(0)
	if job.Functions[0] != op {
		t.Error("Job.Functions[0] is not the operator of subtask 0")
	}
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	for _, eg := range []string{"com.example/stdout", "com.example/out"} {
		v, _ := statefun.EncodeValue(statefun.StringType, "egress:"+eg)
		e := &envelope.Envelope{Target: envelope.Address{Namespace: "com.example", Type: "greeter", ID: "alice"},
			Typename: "io.statefun.types/string", Value: v}
		if err := op.ProcessRecord(0, dataflow.Record{Value: e}); err != nil {
			t.Fatal(err)
		}
		if err := op.(dataflow.Flusher).EndOfStep(); err != nil {
			t.Fatal(err)
		}
		em := ctx.TakeEmitted()
		if len(em) != 1 {
			t.Fatalf("%s: %d records emitted", eg, len(em))
		}
		out := em[0].Record.Value.(*envelope.Envelope)
		if em[0].Port != portOf[eg] || out.Target.Namespace+"/"+out.Target.Type != eg {
			t.Errorf("egress %s: emitted on port %d to %s, want port %d", eg, em[0].Port, out.Target, portOf[eg])
		}
	}
	if job.Invocations() != 2 {
		t.Errorf("Invocations() = %d, want 2", job.Invocations())
	}
}

func TestRouter(t *testing.T) {
	mod, _ := loadModule(t, fullModule, map[string]string{"names.txt": "alice\nbob\n"})
	job, err := Build(mod, Options{Parallelism: 2, Registry: registry(t, "com.example/greeter", "com.example/audit")})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	var gen, lines *dataflow.Vertex
	for _, v := range job.Graph.Vertices() {
		switch v.Name {
		case "ingress com.example/gen":
			gen = v
		case "ingress com.example/lines":
			lines = v
		}
	}

	// The generator: every record becomes one envelope per target, keyed
	// by the record key, without a caller; subtask 1 of 2 makes messages
	// 1 and 3.
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Name: "ingress", Subtask: 1, Parallelism: 2})
	src := gen.NewSource(1)
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var got []string
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatal("the generator does not end")
		}
		_, err := src.Poll()
		if errors.Is(err, dataflow.ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, em := range ctx.TakeEmitted() {
		e := em.Record.Value.(*envelope.Envelope)
		var n int64
		if err := statefun.DecodeValue(statefun.Int64Type, e.Value, &n); err != nil {
			t.Fatal(err)
		}
		if em.Port != 0 || em.Record.KeyGroup != dataflow.KeyGroupFor(e.Target.ID, dataflow.DefaultMaxParallelism) || e.HasCaller || e.Kind != envelope.KindMessage {
			t.Errorf("bad record %+v: %+v", em, e)
		}
		got = append(got, fmt.Sprintf("%s %s %d", e.Target, e.Typename, n))
	}
	want := []string{
		"com.example/greeter/user-1 io.statefun.types/long 1",
		"com.example/audit/user-1 io.statefun.types/long 1",
		"com.example/greeter/user-1 io.statefun.types/long 3",
		"com.example/audit/user-1 io.statefun.types/long 3",
	}
	if !slices.Equal(got, want) {
		t.Errorf("generator envelopes:\n got %q\nwant %q", got, want)
	}

	// The file ingress: lines as io.statefun.types/string by default.
	ctx = dataflowtest.NewContext(t, dataflowtest.Options{Name: "ingress"})
	src = lines.NewSource(0)
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for {
		_, err := src.Poll()
		if errors.Is(err, dataflow.ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	got = nil
	for _, em := range ctx.TakeEmitted() {
		e := em.Record.Value.(*envelope.Envelope)
		var s string
		if err := statefun.DecodeValue(statefun.StringType, e.Value, &s); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %s", e.Target, e.Typename, s))
	}
	want = []string{"com.example/greeter/alice io.statefun.types/string alice", "com.example/greeter/bob io.statefun.types/string bob"}
	if !slices.Equal(got, want) {
		t.Errorf("file envelopes:\n got %q\nwant %q", got, want)
	}
	if n := job.IngressRecords(); n != 2+2 {
		t.Errorf("IngressRecords() = %d, want 4", n)
	}
}

func TestRouterErrorsNameTheIngress(t *testing.T) {
	mod, _ := loadModule(t, `kind: io.statefun.file.v1/ingress
spec:
  id: com.example/lines
  targets: [com.example/greeter]
  path: names.txt
  format: jsonl
  keyField: id
  valueType: com.example/User
`, map[string]string{"names.txt": "{\"id\":\"a\"}\nnot json\n"})
	job, err := Build(mod, Options{Registry: registry(t, "com.example/greeter")})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Name: "ingress"})
	src := job.Graph.Vertices()[1].NewSource(0)
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = src.Poll()
	if err == nil || !strings.Contains(err.Error(), "ingress com.example/lines:") || !strings.Contains(err.Error(), "names.txt:2: invalid JSON") {
		t.Errorf("got %v", err)
	}
	// The good record before the bad line was routed.
	if n := len(ctx.TakeEmitted()); n != 1 {
		t.Errorf("%d records emitted before the error, want 1", n)
	}
}

// fakeSource is a connectors.Source returning fixed records.
type fakeSource struct{ recs []connectors.Record }

func (f *fakeSource) Open(dataflow.Context) error { return nil }
func (f *fakeSource) Read(dst []connectors.Record) ([]connectors.Record, time.Duration, error) {
	if len(f.recs) == 0 {
		return dst, 0, dataflow.ErrEndOfInput
	}
	dst = append(dst, f.recs...)
	f.recs = nil
	return dst, 0, nil
}
func (f *fakeSource) Close() error { return nil }

func TestRouterRejectsKeylessAndUnroutedRecords(t *testing.T) {
	for _, c := range []struct {
		rec  connectors.Record
		want string
	}{
		{connectors.Record{Value: []byte("x"), Origin: "src:1"}, "ingress ex/in: record src:1 has no key"},
		{connectors.Record{Route: "other", Key: "k", HasKey: true, Origin: "src:2"}, `ingress ex/in: record src:2 comes from "other", which has no routing entry`},
	} {
		r := &routerSource{id: "ex/in", src: &fakeSource{recs: []connectors.Record{c.rec}},
			routes: map[string]*route{"": {valueType: "ex/t", targets: []envelope.Address{{Namespace: "ex", Type: "f"}}}}}
		ctx := dataflowtest.NewContext(t, dataflowtest.Options{})
		if err := r.Open(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Poll(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}

func TestCodeDeclaredIngressAndEgress(t *testing.T) {
	mod, _ := loadModule(t, "kind: io.statefun.stdout.v1/egress\nspec:\n  id: com.example/stdout\n", nil)
	var stdout bytes.Buffer
	job, err := Build(mod, Options{
		Parallelism: 4,
		Registry:    registry(t, "ex/f"),
		Stdout:      &stdout,
		Ingresses: []Ingress{{ID: "ex/in", Parallelism: 2, ValueType: "io.statefun.types/long", Targets: []string{"ex/f"},
			Source: func(int) connectors.Source {
				return datagen.New(datagen.Config{Count: 1, Keys: 1, ValueType: "io.statefun.types/long"})
			}}},
		Egresses: []Egress{{ID: "a/first", Sink: func(int) connectors.Sink { return nil }}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	var got []vertexInfo
	for _, v := range job.Graph.Vertices() {
		got = append(got, vertexInfo{v.Name, v.Parallelism})
	}
	want := []vertexInfo{{"functions", 4}, {"ingress ex/in", 2}, {"feedback", 4}, {"egress a/first", 1}, {"egress com.example/stdout", 1}}
	if !slices.Equal(got, want) {
		t.Errorf("vertices:\n got %v\nwant %v", got, want)
	}

	// The stdout egress writes to Options.Stdout.
	var sinkV *dataflow.Vertex
	for _, v := range job.Graph.Vertices() {
		if v.Name == "egress com.example/stdout" {
			sinkV = v
		}
	}
	op := sinkV.NewOperator(0)
	if err := op.Open(dataflowtest.NewContext(t, dataflowtest.Options{Name: "egress"})); err != nil {
		t.Fatal(err)
	}
	v, _ := statefun.EncodeValue(statefun.StringType, "hello")
	e := &envelope.Envelope{Kind: envelope.KindEgress, Target: envelope.Address{Namespace: "com.example", Type: "stdout"}, Typename: "io.statefun.types/string", Value: v}
	if err := op.ProcessRecord(0, dataflow.Record{Value: e}); err != nil {
		t.Fatal(err)
	}
	if err := op.(dataflow.Flusher).EndOfStep(); err != nil {
		t.Fatal(err)
	}
	if err := op.Close(); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "hello\n" {
		t.Errorf("stdout: %q", stdout.String())
	}
}

// mustMatch checks that err matches every regexp.
func mustMatch(t *testing.T, err error, patterns ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", patterns)
	}
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(err.Error()) {
			t.Errorf("error %q does not match %q", err, p)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	gen := func(id, target string) string {
		return fmt.Sprintf("kind: io.statefun.generator.v1/ingress\nspec:\n  id: %s\n  targets: [%s]\n", id, target)
	}
	t.Run("kinds not runnable yet", func(t *testing.T) {
		yaml := gen("com.example/gen", "com.example/greeter") + `---
kind: io.statefun.kinesis.v1/egress
spec:
  id: com.example/kinesis-out
`
		mod, path := loadModule(t, yaml, nil)
		_, err := Build(mod, Options{Registry: registry(t, "com.example/greeter")})
		q := regexp.QuoteMeta(path)
		mustMatch(t, err,
			q+`:6:1: egress com\.example/kinesis-out: kind io\.statefun\.kinesis\.v1/egress is parsed and validated, but this build cannot run it yet`,
		)
	})
	t.Run("kafka connector configuration", func(t *testing.T) {
		yaml := gen("com.example/gen", "com.example/greeter") + `---
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/kafka-in
  address: kafka:9092
  consumerGroupId: g
  topics:
    - topic: t
      valueType: com.example/T
      targets: [com.example/greeter]
  properties:
    - fetch.max.bytez: 1
---
kind: io.statefun.kafka.v1/egress
spec:
  id: com.example/kafka-out
  address: kafka:9092
  properties:
    - foo.config: bar
`
		mod, path := loadModule(t, yaml, nil)
		_, err := Build(mod, Options{Registry: registry(t, "com.example/greeter")})
		q := regexp.QuoteMeta(path)
		mustMatch(t, err,
			q+`:6:1: ingress com\.example/kafka-in: consumer property "fetch\.max\.bytez" is unknown or not supported`,
			q+`:18:1: egress com\.example/kafka-out: producer property "foo\.config" is unknown or not supported`,
		)
	})
	t.Run("no ingress", func(t *testing.T) {
		mod, _ := loadModule(t, "kind: io.statefun.stdout.v1/egress\nspec:\n  id: com.example/stdout\n", nil)
		_, err := Build(mod, Options{Registry: registry(t, "com.example/greeter")})
		mustMatch(t, err, `the module defines no ingress: a StateFun application needs at least one`)
	})
	t.Run("unknown target", func(t *testing.T) {
		mod, path := loadModule(t, gen("com.example/gen", "com.example/nobody"), nil)
		_, err := Build(mod, Options{Registry: registry(t, "com.example/greeter")})
		mustMatch(t, err, regexp.QuoteMeta(path)+`:1:1: ingress com\.example/gen: target com\.example/nobody: no endpoint binds it and no embedded function is registered`)
	})
	t.Run("unknown target of a code-declared ingress", func(t *testing.T) {
		mod, _ := loadModule(t, gen("com.example/gen", "com.example/greeter"), nil)
		_, err := Build(mod, Options{Registry: registry(t, "com.example/greeter"),
			Ingresses: []Ingress{{ID: "ex/in", Targets: []string{"ex/missing"}, Source: func(int) connectors.Source { return &fakeSource{} }}}})
		mustMatch(t, err, `ingress ex/in: target ex/missing: no endpoint binds it`)
	})
	t.Run("duplicate egress", func(t *testing.T) {
		mod, _ := loadModule(t, gen("com.example/gen", "com.example/greeter")+"---\nkind: io.statefun.stdout.v1/egress\nspec:\n  id: com.example/out\n", nil)
		_, err := Build(mod, Options{Registry: registry(t, "com.example/greeter"),
			Egresses: []Egress{{ID: "com.example/out", Sink: func(int) connectors.Sink { return nil }}}})
		mustMatch(t, err, `egress com\.example/out is defined twice`)
	})
	t.Run("every problem at once", func(t *testing.T) {
		yaml := gen("com.example/gen", "com.example/nobody") + `---
kind: io.statefun.kinesis.v1/egress
spec:
  id: com.example/kinesis-out
`
		mod, _ := loadModule(t, yaml, nil)
		_, err := Build(mod, Options{Registry: registry(t, "com.example/greeter")})
		mustMatch(t, err, `target com\.example/nobody`, `kinesis-out: kind io\.statefun\.kinesis\.v1/egress`)
	})
	t.Run("graph validation", func(t *testing.T) {
		// Parallelism above the max parallelism is caught by the graph.
		mod, _ := loadModule(t, gen("com.example/gen", "com.example/greeter"), nil)
		_, err := Build(mod, Options{Parallelism: 4, MaxParallelism: 2, Registry: registry(t, "com.example/greeter")})
		mustMatch(t, err, `vertex "functions": parallelism 4 out of range \[1, max parallelism 2\]`)
	})
}
