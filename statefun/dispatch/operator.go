package dispatch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/state"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/dispatch/delay"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/feedback"
)

// Config is shared by every function subtask of a job. Read-only once the
// job runs.
type Config struct {
	Registry *Registry
	// Egresses maps "namespace/name" of an egress to the output port of
	// the function vertex that leads to its sink (port 0 is the feedback
	// shuffle).
	Egresses   map[string]int
	Quiescence *Quiescence
	Broker     *Broker
	// FeedbackMemoryBytes is the feedback queue's memory budget before it
	// spills (default 32 MiB, statefun.feedback.memory.size).
	FeedbackMemoryBytes int64
	// StateCacheBytes and StateWriteBackBytes size the state store
	// (defaults of package state when 0).
	StateCacheBytes, StateWriteBackBytes int64
	// LocalQueueLimit pauses router input while the local FIFO holds more
	// messages (default 4096).
	LocalQueueLimit int
	// StepBudget bounds the invocations of one mailbox step, so timers and
	// the feedback queue are served while a local cycle runs (default 8192).
	StepBudget int
	// MaxAsyncPerTask pauses input while this many remote requests are in
	// flight in the subtask (statefun.async.max-per-task, default 32768;
	// negative disables).
	MaxAsyncPerTask int
	// BlockWholeTask selects upstream's valve: input pauses while any
	// address has maxNumBatchRequests invocations queued. The default
	// (false) blocks per address: other addresses keep flowing, and input
	// pauses only when the invocations queued behind in-flight requests
	// exceed QueuedLimit in total.
	BlockWholeTask bool
	// QueuedLimit bounds the invocations queued behind in-flight remote
	// requests in per-address mode (default 65536).
	QueuedLimit int
	// MaxConcurrentRequests is the upper bound of the adaptive limit of
	// requests in flight per remote function type and subtask (see
	// reqreply.Limiter); addresses beyond the limit wait and their batches
	// grow (default 1024; negative: no limit, as upstream).
	MaxConcurrentRequests int
	// RouterInputs is the number of router input ports of the function
	// vertex (one per ingress); the subtask's input has ended when all
	// have (default 1).
	RouterInputs int
}

func (c *Config) ensureDefaults() {
	if c.FeedbackMemoryBytes <= 0 {
		c.FeedbackMemoryBytes = 32 << 20
	}
	if c.LocalQueueLimit <= 0 {
		c.LocalQueueLimit = 4096
	}
	if c.StepBudget <= 0 {
		c.StepBudget = 8192
	}
	if c.MaxAsyncPerTask == 0 {
		c.MaxAsyncPerTask = 32768
	}
	if c.QueuedLimit <= 0 {
		c.QueuedLimit = 65536
	}
	if c.MaxConcurrentRequests == 0 {
		c.MaxConcurrentRequests = 1024
	}
	if c.RouterInputs <= 0 {
		c.RouterInputs = 1
	}
}

// Broker connects each feedback tail to the queue of its co-located head
// (upstream's FeedbackChannelBroker, but per job, not process-wide).
type Broker struct {
	mu     sync.Mutex
	queues []*feedback.Queue
}

// NewBroker returns a broker for n subtasks.
func NewBroker(n int) *Broker { return &Broker{queues: make([]*feedback.Queue, n)} }

func (b *Broker) set(i int, q *feedback.Queue) {
	b.mu.Lock()
	b.queues[i] = q
	b.mu.Unlock()
}

func (b *Broker) get(i int) *feedback.Queue {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queues[i]
}

// errStepBudget stops a feedback drain when the step has done enough work.
var errStepBudget = errors.New("dispatch: step budget reached")

// Operator is the function operator of one subtask (feedback head +
// dispatcher).
type Operator struct {
	cfg     *Config
	subtask int
	ctx     dataflow.Context
	maxP    int
	owned   dataflow.KeyGroupRange

	store  *state.Store
	delays *delay.Buffer
	fbq    *feedback.Queue

	fifo fifo

	// nextTimer is the earliest timer already scheduled with the runtime
	// (0: none), so each deadline is scheduled once.
	nextTimer int64

	// Quiescence accounting of the current step (see package doc).
	created, processed int64
	inputsEnded        int

	fnCache map[FunctionType]*embedded
	ic      invocation

	// Remote functions: one request-reply machine per type, replies on
	// goroutines owned by the operator (rctx cancels them, wg waits).
	remotes        map[FunctionType]*remoteFn
	rctx           context.Context
	rcancel        context.CancelFunc
	wg             sync.WaitGroup
	remoteInFlight int
	remoteQueued   int

	// egressPorts is cfg.Egresses keyed without string concatenation.
	egressPorts map[FunctionType]int

	// fbLog is the ABS feedback log of the checkpoint in progress.
	fbLog *pendingLog

	onFeedback func()

	// Invocations counts messages processed (for metrics).
	Invocations int64
	// LastSnapshotPause is the synchronous part of the last snapshot.
	LastSnapshotPause time.Duration
}

// NewOperator returns the function operator of subtask i.
func NewOperator(cfg *Config, i int) *Operator {
	cfg.ensureDefaults()
	o := &Operator{cfg: cfg, subtask: i, delays: delay.NewBuffer(), fnCache: map[FunctionType]*embedded{}, remotes: map[FunctionType]*remoteFn{}}
	o.rctx, o.rcancel = context.WithCancel(context.Background())
	return o
}

// Open implements dataflow.Operator.
func (o *Operator) Open(ctx dataflow.Context) error {
	o.ctx = ctx
	o.maxP = ctx.MaxParallelism()
	o.owned = ctx.KeyGroups()
	o.onFeedback = o.drainFeedback
	o.fbq = feedback.NewQueue(feedback.Options{
		MemoryBytes: o.cfg.FeedbackMemoryBytes,
		SpillDir:    filepath.Join(ctx.StateDir(), "feedback"),
		Notify:      func() { ctx.Post(o.onFeedback) },
	})
	o.cfg.Broker.set(o.subtask, o.fbq)
	o.egressPorts = make(map[FunctionType]int, len(o.cfg.Egresses))
	for id, port := range o.cfg.Egresses {
		if i := strings.LastIndexByte(id, '/'); i > 0 {
			o.egressPorts[FunctionType{id[:i], id[i+1:]}] = port
		}
	}
	o.ic.op = o
	storeDir := filepath.Join(ctx.StateDir(), "state")
	if r := ctx.Restore(); r != nil {
		return o.restore(r, storeDir)
	}
	return o.openStore(storeDir)
}

func (o *Operator) openStore(dir string) error {
	st, err := state.Open(state.Options{
		Dir:            dir,
		CacheBytes:     o.cfg.StateCacheBytes,
		WriteBackBytes: o.cfg.StateWriteBackBytes,
		Now:            func() int64 { return o.ctx.Clock().Now().UnixNano() },
	})
	if err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	o.store = st
	return nil
}

// ProcessRecord implements dataflow.Operator: a message from the router.
func (o *Operator) ProcessRecord(_ int, r dataflow.Record) error {
	// A router message is live from here until processed; it stays private
	// to this subtask until the end of the step publishes the count.
	o.created++
	o.fifo.push(r.Value.(*envelope.Envelope))
	return nil
}

// Paused implements dataflow.Pauser, the backpressure valve: router input
// waits while local work is queued, while too many remote requests are in
// flight, and while remote addresses are blocked (see Config).
func (o *Operator) Paused() bool {
	if o.fifo.len() >= o.cfg.LocalQueueLimit {
		return true
	}
	if len(o.remotes) == 0 {
		return false
	}
	if o.cfg.MaxAsyncPerTask > 0 && o.remoteInFlight >= o.cfg.MaxAsyncPerTask {
		return true
	}
	if o.cfg.BlockWholeTask {
		for _, rf := range o.remotes {
			if rf.m.Blocked() > 0 {
				return true
			}
		}
		return false
	}
	return o.remoteQueued >= o.cfg.QueuedLimit
}

// RemoteStats reports the remote requests in flight and the invocations
// queued behind them.
func (o *Operator) RemoteStats() (inFlight, queued int) { return o.remoteInFlight, o.remoteQueued }

// EndOfStep implements dataflow.Flusher: run the local FIFO within the step
// budget, then publish the step's quiescence delta.
func (o *Operator) EndOfStep() error {
	if err := o.runLocal(); err != nil {
		return err
	}
	o.publish()
	return nil
}

func (o *Operator) runLocal() error {
	for n := 0; n < o.cfg.StepBudget; n++ {
		e, ok := o.fifo.pop()
		if !ok {
			return nil
		}
		if err := o.invoke(e); err != nil {
			return err
		}
		o.Invocations++
	}
	if o.fifo.len() > 0 {
		// Yield to the mailbox (timers, feedback), then continue.
		o.ctx.Post(func() {})
	}
	return nil
}

// publish hands the step's quiescence delta to the job. Created messages
// that are still private to this subtask (local FIFO, delay buffer) are
// published together with the decrements: they cannot be processed by
// anyone else before this call.
func (o *Operator) publish() {
	if d := o.created - o.processed; d != 0 {
		o.cfg.Quiescence.add(d)
	}
	o.created, o.processed = 0, 0
}

// EndInput implements dataflow.InputEnder: one ingress is done; the
// subtask's input has ended when every ingress has.
func (o *Operator) EndInput(int) error {
	o.inputsEnded++
	if o.inputsEnded < o.cfg.RouterInputs {
		return nil
	}
	o.publish()
	o.cfg.Quiescence.inputEnded()
	return nil
}

// Drain implements dataflow.Finisher: the subtask ends only when the whole
// job is quiescent (Finish is posted by the Quiescence callback).
func (o *Operator) Drain() (bool, error) { return false, nil }

// Quiesced is called on the subtask goroutine once the job is quiescent.
func (o *Operator) Quiesced() {
	if o.fifo.len() != 0 || o.delays.Len() != 0 || o.remoteInFlight != 0 {
		o.ctx.Fail(fmt.Errorf("dispatch: quiescence reported with %d queued and %d delayed messages (bug)", o.fifo.len(), o.delays.Len()))
		return
	}
	o.ctx.Finish()
}

func (o *Operator) drainFeedback() {
	budget := o.cfg.StepBudget
	err := o.fbq.Drain(func(it feedback.Item) error {
		if it.IsMarker {
			o.onMarker(it.Marker)
		} else {
			o.fifo.push(it.Envelope)
			if o.fbLog != nil {
				if err := o.fbLog.logger.Append(it.Envelope); err != nil {
					return err
				}
			}
		}
		budget--
		if budget <= 0 {
			return errStepBudget
		}
		return nil
	})
	if errors.Is(err, errStepBudget) {
		if o.fbq.Len() > 0 {
			o.ctx.Post(o.onFeedback)
		}
		return
	}
	if err != nil {
		o.ctx.Fail(fmt.Errorf("feedback queue: %w", err))
	}
}

// OnTimer implements dataflow.TimerHandler: deliver due delayed messages.
func (o *Operator) OnTimer(now time.Time) error {
	nowMs := now.UnixMilli()
	o.nextTimer = 0
	var rerr error
	o.delays.PopDue(nowMs, func(e *envelope.Envelope) {
		// A delayed message stays counted as live: it becomes a queued
		// message, so no quiescence change.
		o.created--
		if err := o.route(e); err != nil && rerr == nil {
			rerr = err
		}
	})
	o.scheduleNext()
	return rerr
}

func (o *Operator) scheduleNext() {
	next, ok := o.delays.NextDeadline()
	if !ok {
		return
	}
	if o.nextTimer != 0 && o.nextTimer <= next {
		return
	}
	o.nextTimer = next
	o.ctx.ScheduleTimer(time.UnixMilli(next))
}

// route delivers a function-created message: local FIFO or the shuffle to
// the owning subtask's feedback tail.
func (o *Operator) route(e *envelope.Envelope) error {
	kg := dataflow.KeyGroupFor(e.Target.ID, o.maxP)
	o.created++
	if o.owned.Contains(kg) {
		o.fifo.push(e)
		return nil
	}
	// Publish before the message can be processed elsewhere.
	o.cfg.Quiescence.add(1)
	o.created--
	return o.ctx.Output().Emit(0, dataflow.Record{KeyGroup: kg, Value: e})
}

// Close implements dataflow.Operator.
func (o *Operator) Close() error {
	o.rcancel()
	o.wg.Wait()
	var errs []error
	if o.fbLog != nil {
		o.fbLog.logger.Close()
		o.fbLog.done(errors.New("job closed before the feedback marker"))
		o.fbLog = nil
	}
	if o.fbq != nil {
		errs = append(errs, o.fbq.Close())
	}
	if o.store != nil {
		errs = append(errs, o.store.Close())
	}
	return errors.Join(errs...)
}

// Store exposes the subtask's state store (for tests and tools).
func (o *Operator) Store() *state.Store { return o.store }

// invoke runs the function of e.Target with e.
func (o *Operator) invoke(e *envelope.Envelope) (err error) {
	ft := FunctionType{e.Target.Namespace, e.Target.Type}
	fn := o.fnCache[ft]
	if fn == nil {
		fn = o.cfg.Registry.embedded[ft]
		if fn == nil {
			if rf := o.remoteFor(ft); rf != nil {
				// Processed when its reply has been applied.
				o.invokeRemote(rf, e)
				return nil
			}
			return fmt.Errorf("message to %s: no function is bound to type %s%s", e.Target, ft, callerSuffix(e))
		}
		o.fnCache[ft] = fn
	}
	o.processed++
	ic := &o.ic
	ic.reset(fn, e)
	if len(fn.afterCall) > 0 {
		if err := ic.touchAfterCall(); err != nil {
			return err
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("function %s panicked: %v", e.Target, r)
		}
		ic.done()
	}()
	if ferr := fn.fn.Invoke(ic, statefun.MessageFromTypedValue(&ic.self, e.Typename, e.Value)); ferr != nil {
		return fmt.Errorf("function %s failed: %w", e.Target, ferr)
	}
	return ic.err
}

func keyGroupOf(id string, maxP int) dataflow.KeyGroup { return dataflow.KeyGroupFor(id, maxP) }

func callerSuffix(e *envelope.Envelope) string {
	if e.HasCaller {
		return " (sent by " + e.Caller.String() + ")"
	}
	return " (from an ingress)"
}

// fifo is an unbounded ring of envelopes (bounded in practice by
// LocalQueueLimit for router input, and by StepBudget per step for
// function output).
type fifo struct {
	buf        []*envelope.Envelope
	head, size int
}

func (f *fifo) len() int { return f.size }

func (f *fifo) push(e *envelope.Envelope) {
	if f.size == len(f.buf) {
		n := len(f.buf) * 2
		if n == 0 {
			n = 1024
		}
		nb := make([]*envelope.Envelope, n)
		for i := 0; i < f.size; i++ {
			nb[i] = f.buf[(f.head+i)%len(f.buf)]
		}
		f.buf, f.head = nb, 0
	}
	f.buf[(f.head+f.size)%len(f.buf)] = e
	f.size++
}

// at returns the i-th queued envelope (0 is the next to pop).
func (f *fifo) at(i int) *envelope.Envelope { return f.buf[(f.head+i)%len(f.buf)] }

func (f *fifo) pop() (*envelope.Envelope, bool) {
	if f.size == 0 {
		return nil, false
	}
	e := f.buf[f.head]
	f.buf[f.head] = nil
	f.head = (f.head + 1) % len(f.buf)
	f.size--
	return e, true
}

// PostQuiesced asks the subtask (from any goroutine) to finish because the
// job is quiescent.
func (o *Operator) PostQuiesced() { o.ctx.Post(o.Quiesced) }
