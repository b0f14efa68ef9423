package dataflowtest

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statefun-go/statefun/dataflow"
)

func TestIdentity(t *testing.T) {
	c := NewContext(t, Options{Name: "fn", Subtask: 1, Parallelism: 3, MaxParallelism: 12})
	if c.TaskName() != "fn (2/3)" || c.SubtaskIndex() != 1 || c.Parallelism() != 3 || c.MaxParallelism() != 12 {
		t.Errorf("identity: %s %d %d %d", c.TaskName(), c.SubtaskIndex(), c.Parallelism(), c.MaxParallelism())
	}
	if got, want := c.KeyGroups(), dataflow.RangeForSubtask(1, 3, 12); got != want {
		t.Errorf("key groups %v, want %v", got, want)
	}
	if c.StateDir() == "" || !c.Now().Equal(DefaultStart) {
		t.Errorf("state dir %q, now %v", c.StateDir(), c.Now())
	}
	d := NewContext(t, Options{KeyGroups: &dataflow.KeyGroupRange{Start: 5, End: 7}, StateDir: "/x"})
	if d.TaskName() != "op (1/1)" || d.KeyGroups().String() != "[5,7)" || d.StateDir() != "/x" || d.MaxParallelism() != dataflow.DefaultMaxParallelism {
		t.Errorf("defaults/overrides: %s %v %s", d.TaskName(), d.KeyGroups(), d.StateDir())
	}
}

func TestOutput(t *testing.T) {
	c := NewContext(t, Options{})
	out := c.Output()
	_ = out.Emit(1, dataflow.Record{KeyGroup: 3, Value: "a"})
	_ = out.Emit(0, dataflow.Record{Value: "b"})
	if got := c.Emitted(); len(got) != 2 || got[0].Port != 1 || got[0].Record.KeyGroup != 3 || got[1].Record.Value != "b" {
		t.Errorf("emitted %+v", got)
	}
	if got := c.TakeEmitted(); len(got) != 2 || len(c.Emitted()) != 0 {
		t.Errorf("take: %+v, left %d", got, len(c.Emitted()))
	}
	var hooked []int
	c.SetEmitHook(func(port int, r dataflow.Record) error {
		hooked = append(hooked, port)
		if r.Value == "drop" {
			return errors.New("dropped")
		}
		return nil
	})
	_ = out.Emit(2, dataflow.Record{Value: "kept"})
	if err := out.Emit(3, dataflow.Record{Value: "drop"}); err == nil || err.Error() != "dropped" {
		t.Errorf("hook error: %v", err)
	}
	if got := c.TakeEmitted(); !slices.Equal(hooked, []int{2, 3}) || len(got) != 1 || got[0].Port != 2 {
		t.Errorf("hook saw %v, recorded %+v", hooked, got)
	}
	c.SetEmitHook(nil)
	c.SetEmitError(dataflow.ErrClosed)
	if err := out.Emit(0, dataflow.Record{}); !errors.Is(err, dataflow.ErrClosed) || len(c.Emitted()) != 0 {
		t.Errorf("emit error: %v", err)
	}
}

func TestMailbox(t *testing.T) {
	c := NewContext(t, Options{})
	var ran []string
	c.Post(func() {
		ran = append(ran, "a")
		c.Post(func() { ran = append(ran, "c") }) // next round
	})
	c.Post(func() { ran = append(ran, "b") })
	c.Post(nil)
	if c.Pending() != 2 || c.Wakes() != 1 {
		t.Errorf("pending %d, wakes %d", c.Pending(), c.Wakes())
	}
	if n := c.RunMailbox(); n != 2 || !slices.Equal(ran, []string{"a", "b"}) {
		t.Errorf("first round: %d %v", n, ran)
	}
	if n := c.RunMailbox(); n != 1 || !slices.Equal(ran, []string{"a", "b", "c"}) {
		t.Errorf("second round: %d %v", n, ran)
	}
	// Post and Fail from other goroutines (run with -race).
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Post(func() {})
			c.Fail(errors.New("x"))
		}()
	}
	wg.Wait()
	if c.RunMailbox() != 4 || len(c.Errors()) != 4 {
		t.Errorf("concurrent posts/fails lost")
	}
}

type timerOp struct {
	c     *Context
	fired []time.Duration
	steps int
	again bool
}

func (o *timerOp) OnTimer(now time.Time) error {
	o.fired = append(o.fired, now.Sub(DefaultStart))
	if o.again {
		o.again = false
		o.c.ScheduleTimer(now) // due at once: Settle fires it too
	}
	return nil
}

func (o *timerOp) EndOfStep() error { o.steps++; return nil }

func TestTimers(t *testing.T) {
	c := NewContext(t, Options{})
	op := &timerOp{c: c}
	c.ScheduleTimer(DefaultStart.Add(20 * time.Millisecond))
	c.ScheduleTimer(DefaultStart.Add(10 * time.Millisecond))
	c.ScheduleTimer(DefaultStart.Add(10 * time.Millisecond))
	if got := c.Timers(); len(got) != 3 || !got[0].Equal(DefaultStart.Add(10*time.Millisecond)) {
		t.Errorf("timers %v", got)
	}
	if n, err := c.FireTimers(op); n != 0 || err != nil {
		t.Errorf("nothing due: %d %v", n, err)
	}
	c.Advance(10 * time.Millisecond)
	if len(c.DueTimers()) != 2 {
		t.Errorf("due %v", c.DueTimers())
	}
	// Both due timers are consumed by one OnTimer call.
	if n, _ := c.FireTimers(op); n != 2 || len(op.fired) != 1 {
		t.Errorf("fired %d timers with %d calls", n, len(op.fired))
	}
	if n, _ := c.FireNextTimer(op); n != 1 || !slices.Equal(op.fired, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}) {
		t.Errorf("fire next: %d %v", n, op.fired)
	}
	if n, _ := c.FireNextTimer(op); n != 0 {
		t.Errorf("no timer left, fired %d", n)
	}
	if _, err := c.FireNextTimer(struct{}{}); err != nil {
		t.Error(err)
	}
	c.ScheduleTimer(c.Now())
	if _, err := c.FireTimers(struct{}{}); err == nil || !strings.Contains(err.Error(), "not a dataflow.TimerHandler") {
		t.Errorf("non-handler: %v", err)
	}
}

func TestSettle(t *testing.T) {
	c := NewContext(t, Options{})
	op := &timerOp{c: c, again: true}
	c.ScheduleTimer(c.Now())
	c.Post(func() {})
	if err := c.Settle(op, 0); err != nil {
		t.Fatal(err)
	}
	if len(op.fired) != 2 || op.steps != 3 {
		t.Errorf("fired %v, steps %d; want 2 timer calls and 3 steps", op.fired, op.steps)
	}
	// An operator that always posts more work is reported.
	var loop func()
	loop = func() { c.Post(loop) }
	c.Post(loop)
	if err := c.Settle(op, 5); err == nil || !strings.Contains(err.Error(), "still has work after 5 rounds") {
		t.Errorf("endless work: %v", err)
	}
}

func TestFinishFailLogs(t *testing.T) {
	c := NewContext(t, Options{})
	if c.Finished() != 0 || c.Err() != nil {
		t.Fatal("fresh context finished or failed")
	}
	c.Finish()
	c.Fail(errors.New("boom"))
	if c.Finished() != 1 || c.Err() == nil || c.Err().Error() != "boom" {
		t.Errorf("finished %d, err %v", c.Finished(), c.Err())
	}
	c.Logger().Warn("hello", "k", 1)
	if got := c.Logs(); got != "level=WARN msg=hello k=1\n" {
		t.Errorf("logs %q", got)
	}
}
