package dataflowtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/statefun-go/statefun/dataflow"
)

// DefaultStart is the initial time of the manual clock when Options.Start
// is zero: a fixed instant, so that test output does not depend on the wall
// clock.
var DefaultStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Options configure NewContext. The zero value is subtask 0 of a vertex
// named "op" with parallelism 1 and dataflow.DefaultMaxParallelism.
type Options struct {
	// Name is the vertex name; TaskName is "Name (Subtask+1/Parallelism)"
	// as in the runtime. Default "op".
	Name string
	// Subtask is the subtask index, in [0, Parallelism).
	Subtask int
	// Parallelism of the vertex; default 1.
	Parallelism int
	// MaxParallelism is the number of key groups; default
	// dataflow.DefaultMaxParallelism.
	MaxParallelism int
	// KeyGroups overrides the owned key-group range; default
	// dataflow.RangeForSubtask(Subtask, Parallelism, MaxParallelism).
	KeyGroups *dataflow.KeyGroupRange
	// Start is the manual clock's initial time; default DefaultStart.
	Start time.Time
	// StateDir is the subtask's state directory; default a fresh
	// tb.TempDir().
	StateDir string
	// Restore is returned by Context.Restore (nil: a fresh start).
	Restore dataflow.Restore
}

// Emitted is one record sent through Output.Emit.
type Emitted struct {
	Port   int
	Record dataflow.Record
}

// Context is a fake dataflow.Context. Create it with NewContext.
type Context struct {
	tb       testing.TB
	name     string
	subtask  int
	par      int
	maxP     int
	kgs      dataflow.KeyGroupRange
	stateDir string
	clock    *dataflow.ManualClock
	restore  dataflow.Restore
	logger   *slog.Logger
	logs     *lockedBuffer

	emitted  []Emitted
	emitErr  error
	emitHook func(port int, r dataflow.Record) error

	// timers are the pending deadlines, sorted.
	timers []time.Time

	mu       sync.Mutex // guards the fields below (Post and Fail may come from any goroutine)
	mailbox  []func()
	wakes    int
	finishes int
	errs     []error
}

var _ dataflow.Context = (*Context)(nil)

// NewContext returns a fake context for one subtask. It fails tb on an
// invalid configuration.
func NewContext(tb testing.TB, opts Options) *Context {
	tb.Helper()
	if opts.Name == "" {
		opts.Name = "op"
	}
	if opts.Parallelism == 0 {
		opts.Parallelism = 1
	}
	if opts.MaxParallelism == 0 {
		opts.MaxParallelism = dataflow.DefaultMaxParallelism
	}
	if opts.Subtask < 0 || opts.Subtask >= opts.Parallelism || opts.Parallelism > opts.MaxParallelism || opts.MaxParallelism > dataflow.MaxKeyGroups {
		tb.Fatalf("dataflowtest: invalid options: subtask %d, parallelism %d, max parallelism %d", opts.Subtask, opts.Parallelism, opts.MaxParallelism)
	}
	if opts.Start.IsZero() {
		opts.Start = DefaultStart
	}
	if opts.StateDir == "" {
		opts.StateDir = tb.TempDir()
	}
	kgs := dataflow.RangeForSubtask(opts.Subtask, opts.Parallelism, opts.MaxParallelism)
	if opts.KeyGroups != nil {
		kgs = *opts.KeyGroups
	}
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // deterministic logs
			}
			return a
		},
	}))
	return &Context{
		tb: tb, name: opts.Name, subtask: opts.Subtask, par: opts.Parallelism, maxP: opts.MaxParallelism,
		kgs: kgs, stateDir: opts.StateDir, clock: dataflow.NewManualClock(opts.Start),
		logger: logger, logs: logs, restore: opts.Restore,
	}
}

// TaskID implements dataflow.Context: "<name>-<subtask>".
func (c *Context) TaskID() string { return fmt.Sprintf("%s-%d", c.name, c.subtask) }

// Restore implements dataflow.Context.
func (c *Context) Restore() dataflow.Restore { return c.restore }

// --- dataflow.Context ---

// TaskName implements dataflow.Context.
func (c *Context) TaskName() string { return fmt.Sprintf("%s (%d/%d)", c.name, c.subtask+1, c.par) }

// SubtaskIndex implements dataflow.Context.
func (c *Context) SubtaskIndex() int { return c.subtask }

// Parallelism implements dataflow.Context.
func (c *Context) Parallelism() int { return c.par }

// MaxParallelism implements dataflow.Context.
func (c *Context) MaxParallelism() int { return c.maxP }

// KeyGroups implements dataflow.Context.
func (c *Context) KeyGroups() dataflow.KeyGroupRange { return c.kgs }

// Output implements dataflow.Context: every Emit is recorded.
func (c *Context) Output() dataflow.Output { return (*output)(c) }

// Clock implements dataflow.Context; it is the *dataflow.ManualClock
// returned by ManualClock.
func (c *Context) Clock() dataflow.Clock { return c.clock }

// ScheduleTimer implements dataflow.Context: the deadline is recorded.
func (c *Context) ScheduleTimer(at time.Time) {
	i := sort.Search(len(c.timers), func(i int) bool { return c.timers[i].After(at) })
	c.timers = append(c.timers, time.Time{})
	copy(c.timers[i+1:], c.timers[i:])
	c.timers[i] = at
}

// Post implements dataflow.Context: fn is queued until RunMailbox. A nil fn
// only counts a wake-up (Wakes).
func (c *Context) Post(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fn == nil {
		c.wakes++
		return
	}
	c.mailbox = append(c.mailbox, fn)
}

// Finish implements dataflow.Context: it is counted (Finished).
func (c *Context) Finish() {
	c.mu.Lock()
	c.finishes++
	c.mu.Unlock()
}

// Fail implements dataflow.Context: err is recorded (Errors).
func (c *Context) Fail(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

// Logger implements dataflow.Context: it writes to the buffer read by Logs.
func (c *Context) Logger() *slog.Logger { return c.logger }

// StateDir implements dataflow.Context.
func (c *Context) StateDir() string { return c.stateDir }

type output Context

func (o *output) Emit(port int, r dataflow.Record) error {
	if o.emitErr != nil {
		return o.emitErr
	}
	if o.emitHook != nil {
		if err := o.emitHook(port, r); err != nil {
			return err
		}
	}
	o.emitted = append(o.emitted, Emitted{Port: port, Record: r})
	return nil
}

// --- inspection and control ---

// ManualClock returns the context's clock.
func (c *Context) ManualClock() *dataflow.ManualClock { return c.clock }

// Now is the current time of the manual clock.
func (c *Context) Now() time.Time { return c.clock.Now() }

// Advance moves the manual clock forward by d. It does not fire operator
// timers: see FireTimers.
func (c *Context) Advance(d time.Duration) { c.clock.Advance(d) }

// SetEmitError makes every later Emit return err without recording the
// record (nil restores normal recording), e.g. dataflow.ErrClosed.
func (c *Context) SetEmitError(err error) { c.emitErr = err }

// SetEmitHook makes every later Emit call fn first, on the emitting
// goroutine, e.g. to check an invariant at the moment a record leaves the
// operator. An error from fn is returned by Emit and the record is not
// recorded. nil removes the hook.
func (c *Context) SetEmitHook(fn func(port int, r dataflow.Record) error) { c.emitHook = fn }

// Emitted returns the records emitted since the context was created or
// TakeEmitted last cleared them, in emission order.
func (c *Context) Emitted() []Emitted { return append([]Emitted(nil), c.emitted...) }

// TakeEmitted returns the recorded records and forgets them.
func (c *Context) TakeEmitted() []Emitted {
	e := c.emitted
	c.emitted = nil
	return e
}

// Pending is the number of functions queued by Post and not yet run.
func (c *Context) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mailbox)
}

// Wakes is the number of Post(nil) calls.
func (c *Context) Wakes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wakes
}

// RunMailbox runs the functions queued by Post at the time of the call, in
// order, and returns how many ran. Functions they post are queued for the
// next call, as in the runtime.
func (c *Context) RunMailbox() int {
	c.mu.Lock()
	items := c.mailbox
	c.mailbox = nil
	c.mu.Unlock()
	for _, fn := range items {
		fn()
	}
	return len(items)
}

// Timers returns the pending timer deadlines in order.
func (c *Context) Timers() []time.Time { return append([]time.Time(nil), c.timers...) }

// DueTimers returns the pending deadlines the clock has reached.
func (c *Context) DueTimers() []time.Time {
	now := c.clock.Now()
	n := sort.Search(len(c.timers), func(i int) bool { return c.timers[i].After(now) })
	return append([]time.Time(nil), c.timers[:n]...)
}

// FireTimers consumes every due timer and, if there was any, calls
// op.OnTimer(now) once, as the runtime does. It returns how many timers were
// consumed. op must implement dataflow.TimerHandler if a timer is due. It
// does not end the step (see Step and Settle).
func (c *Context) FireTimers(op any) (int, error) {
	due := len(c.DueTimers())
	if due == 0 {
		return 0, nil
	}
	c.timers = c.timers[due:]
	th, ok := op.(dataflow.TimerHandler)
	if !ok {
		return due, fmt.Errorf("dataflowtest: %T scheduled timers but is not a dataflow.TimerHandler", op)
	}
	return due, th.OnTimer(c.clock.Now())
}

// FireNextTimer advances the clock to the earliest pending deadline when it
// is in the future, then fires the due timers (FireTimers). It returns 0 when
// no timer is pending.
func (c *Context) FireNextTimer(op any) (int, error) {
	if len(c.timers) == 0 {
		return 0, nil
	}
	if d := c.timers[0].Sub(c.clock.Now()); d > 0 {
		c.clock.Advance(d)
	}
	return c.FireTimers(op)
}

// Finished is the number of Finish calls.
func (c *Context) Finished() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finishes
}

// Errors returns the errors passed to Fail, in order.
func (c *Context) Errors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

// Err joins the errors passed to Fail (nil if none).
func (c *Context) Err() error { return errors.Join(c.Errors()...) }

// Logs returns everything written to Logger so far (text handler format,
// without timestamps).
func (c *Context) Logs() string { return c.logs.String() }

// --- step helpers, mirroring the runtime's task loop ---

// Step ends a step as the runtime does after every batch of input, mailbox
// run and timer firing: it calls op.EndOfStep if op is a dataflow.Flusher.
func (c *Context) Step(op any) error {
	if f, ok := op.(dataflow.Flusher); ok {
		return f.EndOfStep()
	}
	return nil
}

// Mailbox runs the mailbox (RunMailbox) and, if anything ran, ends the
// step. It returns how many functions ran.
func (c *Context) Mailbox(op any) (int, error) {
	n := c.RunMailbox()
	if n == 0 {
		return 0, nil
	}
	return n, c.Step(op)
}

// Settle repeats Mailbox and the firing of due timers (each followed by
// Step) until neither has anything to do. It never moves the clock. It
// gives up with an error after maxRounds rounds (0: 10000), which catches an
// operator that keeps posting work forever.
func (c *Context) Settle(op any, maxRounds int) error {
	if maxRounds <= 0 {
		maxRounds = 10000
	}
	for round := 0; round < maxRounds; round++ {
		n, err := c.Mailbox(op)
		if err != nil {
			return err
		}
		fired, err := c.FireTimers(op)
		if err != nil {
			return err
		}
		if fired > 0 {
			if err := c.Step(op); err != nil {
				return err
			}
		}
		if n == 0 && fired == 0 {
			return nil
		}
	}
	return fmt.Errorf("dataflowtest: %s still has work after %d rounds", c.TaskName(), maxRounds)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

var _ io.Writer = (*lockedBuffer)(nil)

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
