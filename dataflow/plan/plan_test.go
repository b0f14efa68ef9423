package plan

import (
	"strings"
	"testing"
	"time"

	"github.com/statefun-go/statefun/dataflow"
)

type nopSource struct{}

func (nopSource) Open(dataflow.Context) error  { return nil }
func (nopSource) Poll() (time.Duration, error) { return 0, dataflow.ErrEndOfInput }
func (nopSource) Close() error                 { return nil }

type nopOp struct{}

func (nopOp) Open(dataflow.Context) error              { return nil }
func (nopOp) ProcessRecord(int, dataflow.Record) error { return nil }
func (nopOp) Close() error                             { return nil }

func src(int) dataflow.Source  { return nopSource{} }
func op(int) dataflow.Operator { return nopOp{} }

// statefunGraph builds the StateFun job graph shape with the given parallelism.
func statefunGraph(p, maxP int) *dataflow.Graph {
	g := dataflow.NewGraph("job", maxP)
	s := g.AddSource("source", p, src)
	fn := g.AddOperator("functions", p, op)
	tail := g.AddOperator("feedback", p, op)
	sink := g.AddOperator("egress", 1, op)
	fn.CoLocationGroup, tail.CoLocationGroup = "loop", "loop"
	g.Connect(s, fn, dataflow.Keyed)
	g.Connect(fn, tail, dataflow.Keyed)
	g.Connect(fn, sink, dataflow.Rebalance)
	g.Feedback(tail, fn)
	return g
}

func TestBuild(t *testing.T) {
	for _, tc := range []struct {
		p, maxP      int
		wantChannels int
	}{
		// source->fn p*p, fn->tail p*p, fn->sink p*1
		{1, 128, 3},
		{2, 128, 10},
		{4, 128, 36},
		{3, 7, 21},
	} {
		pl, err := Build(statefunGraph(tc.p, tc.maxP))
		if err != nil {
			t.Fatal(err)
		}
		if got := pl.NumChannels(); got != tc.wantChannels {
			t.Errorf("p=%d: %d channels, want %d", tc.p, got, tc.wantChannels)
		}
		fns := pl.TasksOf(pl.Graph.Vertices()[1])
		tails := pl.TasksOf(pl.Graph.Vertices()[2])
		next := dataflow.KeyGroup(0)
		for i, ft := range fns {
			if ft.KeyGroups.Start != next {
				t.Errorf("p=%d subtask %d starts at %d, want %d", tc.p, i, ft.KeyGroups.Start, next)
			}
			next = ft.KeyGroups.End
			if ft.Slot != tails[i].Slot {
				t.Errorf("function and feedback subtask %d are not co-located: %s vs %s", i, ft.Slot, tails[i].Slot)
			}
			if len(ft.Inputs) != 1 || len(ft.Inputs[0].Producers) != tc.p {
				t.Errorf("function subtask %d inputs %+v", i, ft.Inputs)
			}
			if len(ft.Outputs) != 2 || len(ft.Outputs[1].Consumers) != 1 {
				t.Errorf("function subtask %d outputs wrong", i)
			}
		}
		if int(next) != tc.maxP {
			t.Errorf("p=%d: key groups cover %d of %d", tc.p, next, tc.maxP)
		}
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	g := dataflow.NewGraph("bad", 4)
	a := g.AddSource("a", 2, src)
	b := g.AddOperator("b", 3, op)
	c := g.AddOperator("c", 9, op)
	g.AddOperator("lonely", 1, op)
	g.Connect(a, b, dataflow.Forward)
	g.Connect(b, c, dataflow.Keyed)
	g.Connect(c, b, dataflow.Keyed)
	_, err := Build(g)
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{
		`vertex "c": parallelism 9 out of range [1, max parallelism 4]`,
		`operator "lonely" has no inputs`,
		`forward edge a -> b joins parallelism 2 to 3`,
		`cycle through channels (b -> c -> b)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	pl, err := Build(statefunGraph(2, 128))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	pl.Describe(&sb)
	want := `job "job": 4 vertices, 7 subtasks, 10 channels, max parallelism 128
  source   "source" parallelism 2
           -> "functions" [keyed]
  operator "functions" parallelism 2 co-located(loop)
           -> "feedback" [keyed]
           -> "egress" [rebalance]
  operator "feedback" parallelism 2 co-located(loop)
  operator "egress" parallelism 1
  feedback "feedback" -> "functions" (in memory, spills to disk)
`
	if sb.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", sb.String(), want)
	}
}
