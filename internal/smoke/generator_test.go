package smoke

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
)

func defaults() Params {
	p := Params{Seed: 42}
	p.EnsureDefaults()
	return p
}

func TestCommandIsAPureFunctionOfSeedAndIndex(t *testing.T) {
	p := defaults()
	q := p
	q.Seed++
	differ := 0
	for i := range int64(200) {
		a, b := p.Command(i), p.Command(i)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("command %d differs between two calls:\n%+v\n%+v", i, a, b)
		}
		if a.Index != i || a.Target < 0 || a.Target >= p.N {
			t.Fatalf("command %d: index %d, target %d", i, a.Index, a.Target)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(q.Command(i))
		if string(ja) != string(jb) {
			differ++
		}
		var back SourceCommand
		if err := json.Unmarshal(ja, &back); err != nil || !reflect.DeepEqual(back, a) {
			t.Fatalf("command %d does not survive JSON: %v\n%s", i, err, ja)
		}
	}
	if differ < 150 {
		t.Errorf("only %d of 200 commands differ between seeds %d and %d", differ, p.Seed, q.Seed)
	}
}

func TestModelCoversEveryCommandKind(t *testing.T) {
	p := defaults()
	m := p.Model()
	t.Logf("%d commands: %s", p.MessageCount, m.Stats)
	s := m.Stats
	if s.Increments == 0 || s.Sends == 0 || s.SendAfters == 0 || s.Cancels == 0 || s.Egresses == 0 || s.MaxDepth < 3 {
		t.Errorf("the generator misses a kind of command: %s", s)
	}
	var sum int64
	for _, e := range m.Expected {
		sum += e
	}
	if sum != int64(s.Increments) {
		t.Errorf("expected counts sum to %d, increments %d", sum, s.Increments)
	}
	ids := map[string]bool{}
	for _, d := range m.Discards {
		if ids[d.ID] {
			t.Errorf("discard id %s twice", d.ID)
		}
		ids[d.ID] = true
	}
	if len(m.Discards) != s.Egresses {
		t.Errorf("%d discard records, %d egress commands", len(m.Discards), s.Egresses)
	}
}

func TestParamsFromEnvRoundTrip(t *testing.T) {
	p := Params{N: 7, MessageCount: 123, Seed: 99, CommandDepth: 4, MaxCommandsPerDepth: DefaultMaxCommandsPerDepth,
		Rate: 250.5, SourceParallelism: 1, VerifyAttempts: 10, FailFlag: "/tmp/x", FailAt: 17}
	env := map[string]string{}
	for _, kv := range p.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	got, err := ParamsFromEnv(func(k string) string { return env[k] })
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("ParamsFromEnv(Env()) = %+v, %v; want %+v", got, err, p)
	}
	if _, err := ParamsFromEnv(func(k string) string { return map[string]string{EnvN: "x", EnvRate: "-1"}[k] }); err == nil {
		t.Errorf("bad environment accepted")
	}
}

// fakeCtx is the part of dataflow.Context the source uses.
type fakeCtx struct {
	dataflow.Context
	sub, par int
}

func (c fakeCtx) SubtaskIndex() int     { return c.sub }
func (c fakeCtx) Parallelism() int      { return c.par }
func (c fakeCtx) Clock() dataflow.Clock { return dataflow.SystemClock }

func drain(t *testing.T, s *Source, limit int) []string {
	t.Helper()
	var out []string
	for limit < 0 || len(out) < limit {
		buf := make([]connectors.Record, 0, 7)
		if limit >= 0 {
			buf = make([]connectors.Record, 0, min(7, limit-len(out)))
		}
		recs, _, err := s.Read(buf)
		for _, r := range recs {
			out = append(out, r.Key+" "+string(r.Value))
		}
		if err == dataflow.ErrEndOfInput {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestSourceResumesFromItsPosition: reading part of the stream, taking
// the position and restoring a new source from it yields exactly the rest.
func TestSourceResumesFromItsPosition(t *testing.T) {
	p := Params{N: 5, MessageCount: 40, Seed: 3}
	p.EnsureDefaults()
	for _, cut := range []int{0, 1, 13, 21, 22, 24, 100} {
		for sub := range 2 {
			ctx := fakeCtx{sub: sub, par: 2}
			whole := &Source{p: p}
			if err := whole.Open(ctx); err != nil {
				t.Fatal(err)
			}
			all := drain(t, whole, -1)
			if want := 20 + []int{3, 2}[sub]; len(all) != want {
				t.Fatalf("subtask %d emitted %d records, want %d", sub, len(all), want)
			}
			first := &Source{p: p}
			_ = first.Open(ctx)
			a := drain(t, first, min(cut, len(all)))
			pos, _ := first.Position()
			second := &Source{p: p}
			if err := second.RestorePosition(pos); err != nil {
				t.Fatal(err)
			}
			_ = second.Open(ctx)
			b := drain(t, second, -1)
			if got := append(a, b...); !reflect.DeepEqual(got, all) {
				t.Errorf("subtask %d cut at %d: resumed stream differs:\n got  %q\n want %q", sub, cut, got, all)
			}
		}
	}
}

// TestEngineJSONLOneRecordPerLine: a jsonl egress line must hold one
// record, also for values of the SDK's own JSON type (whose encoding ends
// with a newline, as the official SDK's). Fails while
// connectors.appendJSONValue embeds the value without compacting it.
func TestEngineJSONLOneRecordPerLine(t *testing.T) {
	jt := statefun.MakeJsonType(statefun.TypeNameFrom("test/json"))
	v, err := statefun.EncodeValue(jt, map[string]int{"a": 1})
	if err != nil {
		t.Fatal(err)
	}
	e := &envelope.Envelope{Target: envelope.Address{Namespace: "test", Type: "out"}, Typename: "test/json", Value: v}
	for _, f := range []connectors.Format{connectors.FormatJSONL, connectors.FormatLines} {
		line := string(connectors.AppendRendered(nil, f, e))
		if strings.Count(line, "\n") != 1 {
			t.Errorf("format %s renders a statefun.MakeJsonType value over %d lines: %q", f, strings.Count(line, "\n"), line)
		}
	}
}
