package runtime

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/plan"
)

// seqSource emits the integers [0, n) as (key, value) records, batch at a time.
type seqSource struct {
	ctx     dataflow.Context
	next, n int
	maxP    int
	// barrierAt, when > 0, makes the source ask the job for a barrier after
	// emitting that many records (through the hook).
	hook func(emitted int)
}

type kv struct {
	key   string
	value int
	from  int
}

func (s *seqSource) Open(ctx dataflow.Context) error { s.ctx = ctx; return nil }
func (s *seqSource) Poll() (time.Duration, error) {
	if s.next >= s.n {
		return 0, dataflow.ErrEndOfInput
	}
	for i := 0; i < 100 && s.next < s.n; i++ {
		k := fmt.Sprintf("k%d", s.next%17)
		r := dataflow.Record{KeyGroup: dataflow.KeyGroupFor(k, s.ctx.MaxParallelism()), Value: kv{k, s.next, s.ctx.SubtaskIndex()}}
		if err := s.ctx.Output().Emit(0, r); err != nil {
			return 0, err
		}
		s.next++
		if s.hook != nil {
			s.hook(s.next)
		}
	}
	return 0, nil
}
func (s *seqSource) Close() error { return nil }

// collector checks key-group ownership and per-(source,key) order, and
// reports what it saw.
type collector struct {
	ctx     dataflow.Context
	mu      *sync.Mutex
	seen    map[string][]int
	events  *[]string
	last    map[string]int
	timerOK bool
}

func (c *collector) Open(ctx dataflow.Context) error {
	c.ctx = ctx
	c.last = map[string]int{}
	return nil
}
func (c *collector) ProcessRecord(_ int, r dataflow.Record) error {
	v := r.Value.(kv)
	if !c.ctx.KeyGroups().Contains(dataflow.KeyGroupFor(v.key, c.ctx.MaxParallelism())) {
		return fmt.Errorf("key %s delivered to the wrong subtask", v.key)
	}
	id := fmt.Sprintf("%d/%s", v.from, v.key)
	if prev, ok := c.last[id]; ok && prev >= v.value {
		return fmt.Errorf("order broken for %s: %d after %d", id, v.value, prev)
	}
	c.last[id] = v.value
	c.mu.Lock()
	c.seen[v.key] = append(c.seen[v.key], v.value)
	c.mu.Unlock()
	return nil
}
func (c *collector) SnapshotState(s dataflow.Snapshot) error {
	c.mu.Lock()
	*c.events = append(*c.events, fmt.Sprintf("%s snapshot %d", c.ctx.TaskName(), s.Barrier().ID))
	c.mu.Unlock()
	return nil
}
func (c *collector) Close() error { return nil }

func runJob(t *testing.T, srcPar, opPar, n int, opts Options, withBarrier bool) (map[string][]int, []string) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string][]int{}
	var events []string
	var job *Job
	g := dataflow.NewGraph("test", 0)
	src := g.AddSource("src", srcPar, func(i int) dataflow.Source {
		s := &seqSource{n: n}
		if withBarrier && i == 0 {
			s.hook = func(emitted int) {
				if emitted == n/2 {
					job.TriggerBarrier(dataflow.Barrier{ID: 1})
				}
			}
		}
		return s
	})
	op := g.AddOperator("collect", opPar, func(int) dataflow.Operator {
		return &collector{mu: &mu, seen: seen, events: &events}
	})
	g.Connect(src, op, dataflow.Keyed)
	p, err := plan.Build(g)
	if err != nil {
		t.Fatal(err)
	}
	job, err = New(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := job.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := job.Wait(); err != nil {
		t.Fatal(err)
	}
	return seen, events
}

func TestKeyedPipelineDeliversEverythingInOrder(t *testing.T) {
	for _, par := range []struct{ src, op int }{{1, 1}, {2, 2}, {1, 4}, {3, 2}} {
		t.Run(fmt.Sprintf("src%d-op%d", par.src, par.op), func(t *testing.T) {
			const n = 5000
			seen, _ := runJob(t, par.src, par.op, n, Options{BufferRecords: 7, Credits: 2}, false)
			total := 0
			for _, vs := range seen {
				total += len(vs)
			}
			if total != n*par.src {
				t.Fatalf("delivered %d records, want %d", total, n*par.src)
			}
		})
	}
}

// recordingBackend records acknowledgements.
type recordingBackend struct {
	mu   sync.Mutex
	acks []string
}

func (b *recordingBackend) WriteFile(dataflow.CheckpointID, string, string, []byte) error { return nil }
func (b *recordingBackend) AddPebble(dataflow.CheckpointID, string, string) error         { return nil }
func (b *recordingBackend) Ack(id dataflow.CheckpointID, task string) {
	b.mu.Lock()
	b.acks = append(b.acks, fmt.Sprintf("%s@%d", task, id))
	b.mu.Unlock()
}
func (b *recordingBackend) Decline(id dataflow.CheckpointID, task string, err error) {
	b.mu.Lock()
	b.acks = append(b.acks, fmt.Sprintf("decline %s@%d: %v", task, id, err))
	b.mu.Unlock()
}

func TestBarrierIsAlignedAndSnapshotOncePerSubtask(t *testing.T) {
	be := &recordingBackend{}
	_, events := runJob(t, 3, 2, 3000, Options{BufferRecords: 5, Credits: 1, Backend: be}, true)
	sort.Strings(be.acks)
	// Sources that already ended cannot inject the barrier (their end of
	// input counts as aligned), so only src-0 is certain to ack.
	got := strings.Join(be.acks, " ")
	if !strings.HasPrefix(got, "collect-0@1 collect-1@1 src-0@1") || strings.Contains(got, "decline") {
		t.Fatalf("acks %q", got)
	}
	got = strings.Join(events, ";")
	for _, want := range []string{"collect (1/2) snapshot 1", "collect (2/2) snapshot 1"} {
		if strings.Count(got, want) != 1 {
			t.Fatalf("want exactly one %q, got %q", want, got)
		}
	}
	if len(events) != 2 {
		t.Fatalf("events %v", events)
	}
}

type failingOp struct{ panicAt, failAt int }

func (f *failingOp) Open(dataflow.Context) error { return nil }
func (f *failingOp) ProcessRecord(_ int, r dataflow.Record) error {
	v := r.Value.(kv).value
	if v == f.panicAt {
		panic("boom")
	}
	if v == f.failAt {
		return errors.New("bad record")
	}
	return nil
}
func (f *failingOp) Close() error { return nil }

func TestFailureAndPanicFailTheJobWithTheTaskName(t *testing.T) {
	for _, tc := range []struct {
		op   *failingOp
		want string
	}{
		{&failingOp{panicAt: 10, failAt: -1}, "sink (1/1): panic in processing: boom"},
		{&failingOp{panicAt: -1, failAt: 10}, "sink (1/1): bad record"},
	} {
		g := dataflow.NewGraph("fail", 0)
		s := g.AddSource("src", 1, func(int) dataflow.Source { return &seqSource{n: 1_000_000} })
		o := g.AddOperator("sink", 1, func(int) dataflow.Operator { return tc.op })
		g.Connect(s, o, dataflow.Rebalance)
		p, _ := plan.Build(g)
		job, _ := New(p, Options{})
		if err := job.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		err := job.Wait()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("err %v, want %q", err, tc.want)
		}
	}
}

// infiniteSource never ends on its own.
type infiniteSource struct{ ctx dataflow.Context }

func (s *infiniteSource) Open(ctx dataflow.Context) error { s.ctx = ctx; return nil }
func (s *infiniteSource) Poll() (time.Duration, error) {
	return time.Millisecond, s.ctx.Output().Emit(0, dataflow.Record{Value: kv{"k", 1, 0}})
}
func (s *infiniteSource) Close() error { return nil }

type countOp struct{ n *int }

func (c *countOp) Open(dataflow.Context) error              { return nil }
func (c *countOp) ProcessRecord(int, dataflow.Record) error { *c.n++; return nil }
func (c *countOp) Close() error                             { return nil }

func TestShutdownStopsSourcesAndDrains(t *testing.T) {
	g := dataflow.NewGraph("shutdown", 0)
	s := g.AddSource("src", 2, func(int) dataflow.Source { return &infiniteSource{} })
	n := 0
	o := g.AddOperator("count", 1, func(int) dataflow.Operator { return &countOp{n: &n} })
	g.Connect(s, o, dataflow.Rebalance)
	p, _ := plan.Build(g)
	job, _ := New(p, Options{})
	if err := job.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := job.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	m := job.Metrics()
	if m[1].RecordsIn != int64(n) || m[0].RecordsOut != m[1].RecordsIn {
		t.Fatalf("metrics %+v, counted %d", m, n)
	}
}

// timerOp schedules timers on a manual clock and finishes through Finish.
type timerOp struct {
	ctx   dataflow.Context
	fired *[]time.Duration
	start time.Time
}

func (o *timerOp) Open(ctx dataflow.Context) error {
	o.ctx = ctx
	o.start = ctx.Clock().Now()
	return nil
}
func (o *timerOp) ProcessRecord(_ int, r dataflow.Record) error { return nil }
func (o *timerOp) Drain() (bool, error) {
	o.ctx.ScheduleTimer(o.start.Add(3 * time.Second))
	o.ctx.ScheduleTimer(o.start.Add(1 * time.Second))
	return false, nil
}
func (o *timerOp) OnTimer(now time.Time) error {
	*o.fired = append(*o.fired, now.Sub(o.start))
	if len(*o.fired) == 2 {
		o.ctx.Finish()
	}
	return nil
}
func (o *timerOp) Close() error { return nil }

func TestTimersOnManualClockAndDeferredFinish(t *testing.T) {
	clock := dataflow.NewManualClock(time.Unix(1000, 0))
	var fired []time.Duration
	g := dataflow.NewGraph("timers", 0)
	s := g.AddSource("src", 1, func(int) dataflow.Source { return &seqSource{n: 10} })
	o := g.AddOperator("timers", 1, func(int) dataflow.Operator { return &timerOp{fired: &fired} })
	g.Connect(s, o, dataflow.Rebalance)
	p, _ := plan.Build(g)
	job, _ := New(p, Options{Clock: clock})
	if err := job.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The job runs on its own goroutines: advance the manual clock until it
	// finishes (bounded, so a bug fails instead of hanging).
	for i := 0; ; i++ {
		if i == 400 {
			job.Close()
			t.Fatal("job did not finish after 400 clock advances")
		}
		select {
		case <-job.Done():
		case <-time.After(5 * time.Millisecond):
			clock.Advance(100 * time.Millisecond)
			continue
		}
		break
	}
	if err := job.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(fired) != 2 || fired[0] < time.Second || fired[1] < 3*time.Second {
		t.Fatalf("fired at %v", fired)
	}
}
