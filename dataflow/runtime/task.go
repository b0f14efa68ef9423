package runtime

import (
	"container/heap"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statefun-go/statefun/checkpoint"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/plan"
	"github.com/statefun-go/statefun/network"
)

// task is one subtask: its operator (or source), its gate, its output
// writers, its mailbox and timers. Everything but the mailbox queue and the
// counters is confined to the task goroutine.
type task struct {
	job      *Job
	pt       *plan.Task
	op       dataflow.Operator
	src      dataflow.Source
	logger   *slog.Logger
	stateDir string
	id       string // stable task id, see TaskID

	gate       *network.Gate
	chanPort   []int // channel -> input port
	portBase   []int // first channel of each port
	portLeft   []int // channels of each port not yet ended
	inputsLeft int   // channels not yet ended
	aligner    *checkpoint.Aligner
	held       [][]network.Delivery // per channel: deliveries held back by alignment

	outputs []*recordWriter

	mbox struct {
		sync.Mutex
		items []func()
	}
	wake chan struct{} // capacity 1

	timers     timeHeap
	timer      dataflow.Timer
	timerArmed time.Time

	stopSource      bool // source: stop after the current batch (Shutdown)
	finishRequested bool // Finisher called Context.Finish
	drained         bool

	stepOut    int64
	recordsIn  atomic.Int64
	recordsOut atomic.Int64
}

func newTask(j *Job, pt *plan.Task) *task {
	t := &task{
		job: j, pt: pt, wake: make(chan struct{}, 1),
		logger:   j.opts.Logger.With("task", pt.Name),
		stateDir: taskStateDir(j.opts.StateDir, pt),
		id:       TaskID(pt.Vertex.Name, pt.ID.Subtask),
	}
	n := 0
	for port, g := range pt.Inputs {
		t.portBase = append(t.portBase, n)
		t.portLeft = append(t.portLeft, len(g.Producers))
		for range g.Producers {
			t.chanPort = append(t.chanPort, port)
		}
		n += len(g.Producers)
	}
	t.inputsLeft = n
	t.gate = network.NewGate(n, j.opts.Credits)
	t.aligner = checkpoint.NewAligner(n)
	t.held = make([][]network.Delivery, n)
	return t
}

// channelOf returns the gate channel that producer subtask `producer` uses
// on input port `port`.
func (t *task) channelOf(port, producer int) int {
	for i, p := range t.pt.Inputs[port].Producers {
		if p.Subtask == producer {
			return t.portBase[port] + i
		}
	}
	panic(fmt.Sprintf("runtime: %s has no channel from subtask %d on port %d", t.pt.Name, producer, port))
}

func (t *task) open() (err error) {
	defer t.recoverInto(&err, "open")
	v := t.pt.Vertex
	if v.IsSource() {
		t.src = v.NewSource(t.pt.ID.Subtask)
		err = t.src.Open(t)
	} else {
		t.op = v.NewOperator(t.pt.ID.Subtask)
		err = t.op.Open(t)
	}
	if err != nil {
		return fmt.Errorf("%s: open: %w", t.pt.Name, err)
	}
	return nil
}

func (t *task) close() {
	defer func() {
		if r := recover(); r != nil {
			t.logger.Error("panic while closing", "panic", r)
		}
	}()
	var err error
	switch {
	case t.src != nil:
		err = t.src.Close()
	case t.op != nil:
		err = t.op.Close()
	}
	if err != nil {
		t.logger.Warn("close", "err", err)
	}
	if t.timer != nil {
		t.timer.Stop()
	}
}

func (t *task) recoverInto(err *error, what string) {
	if r := recover(); r != nil {
		t.logger.Debug("panic", "stack", string(debug.Stack()))
		*err = fmt.Errorf("%s: panic in %s: %v", t.pt.Name, what, r)
	}
}

func (t *task) run() {
	defer t.job.wg.Done()
	defer t.close()
	var err error
	func() {
		defer t.recoverInto(&err, "processing")
		if t.src != nil {
			err = t.runSource()
		} else {
			err = t.runOperator()
		}
	}()
	if err != nil && !errors.Is(err, dataflow.ErrClosed) {
		t.job.fail(err)
	} else if err != nil && t.job.ctx.Err() == nil {
		t.job.fail(fmt.Errorf("%s: %w", t.pt.Name, err))
	}
}

func (t *task) runSource() error {
	ctx := t.job.ctx
	for {
		if err := t.runMailbox(); err != nil {
			return err
		}
		if t.stopSource {
			break
		}
		wait, err := t.src.Poll()
		if ferr := t.flushStep(); ferr != nil {
			return ferr
		}
		if errors.Is(err, dataflow.ErrEndOfInput) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t.pt.Name, err)
		}
		if wait > 0 {
			tm := t.job.opts.Clock.NewTimer(wait)
			select {
			case <-t.wake:
			case <-tm.C():
			case <-ctx.Done():
				tm.Stop()
				return dataflow.ErrClosed
			}
			tm.Stop()
		} else if ctx.Err() != nil {
			return dataflow.ErrClosed
		}
	}
	return t.endOutputs()
}

func (t *task) injectBarrier(b dataflow.Barrier) {
	if be := t.job.opts.Backend; be != nil {
		snap := t.newSnapshot(b)
		if ss, ok := t.src.(dataflow.SourceSnapshotter); ok {
			if err := ss.SnapshotPosition(snap); err != nil {
				be.Decline(b.ID, t.id, err)
				if errors.Is(err, ErrCheckpointAborted) {
					return // nothing to inject any more
				}
				t.job.fail(fmt.Errorf("%s: snapshot position for checkpoint %d: %w", t.pt.Name, b.ID, err))
				return
			}
		}
		snap.finish()
	}
	if err := t.broadcastEvent(dataflow.Event{Kind: dataflow.EventBarrier, Barrier: b}); err != nil && !errors.Is(err, dataflow.ErrClosed) {
		t.job.fail(err)
	}
}

func (t *task) runOperator() error {
	ctx := t.job.ctx
	pauser, _ := t.op.(dataflow.Pauser)
	for {
		if err := t.runMailbox(); err != nil {
			return err
		}
		if err := t.fireTimers(); err != nil {
			return err
		}
		if t.inputsLeft == 0 {
			done, err := t.maybeFinish()
			if err != nil {
				return err
			}
			if done {
				return t.endOutputs()
			}
		}
		if pauser == nil || !pauser.Paused() {
			if d, ok := t.nextHeld(); ok {
				if err := t.process(d); err != nil {
					return err
				}
				continue
			}
		}
		var in <-chan network.Delivery
		if t.inputsLeft > 0 && (pauser == nil || !pauser.Paused()) {
			in = t.gate.C()
		}
		var timerC <-chan time.Time
		if t.timer != nil && !t.timerArmed.IsZero() {
			timerC = t.timer.C()
		}
		select {
		case d := <-in:
			// Mailbox actions posted before this delivery could arrive
			// (a checkpoint's completion notice before the next barrier)
			// run first: select picks among ready cases at random.
			if err := t.runMailbox(); err != nil {
				return err
			}
			if err := t.process(d); err != nil {
				return err
			}
		case <-t.wake:
		case <-timerC:
			t.timerArmed = time.Time{}
		case <-ctx.Done():
			return dataflow.ErrClosed
		}
	}
}

// maybeFinish is called once all inputs ended.
func (t *task) maybeFinish() (bool, error) {
	f, ok := t.op.(dataflow.Finisher)
	if !ok {
		return true, nil
	}
	if !t.drained {
		t.drained = true
		done, err := f.Drain()
		if err != nil {
			return false, fmt.Errorf("%s: drain: %w", t.pt.Name, err)
		}
		if done {
			return true, nil
		}
		if err := t.flushStep(); err != nil {
			return false, err
		}
	}
	return t.finishRequested, nil
}

func (t *task) nextHeld() (network.Delivery, bool) {
	for ch, q := range t.held {
		if len(q) > 0 && !t.aligner.Blocked(ch) {
			d := q[0]
			t.held[ch] = q[1:]
			return d, true
		}
	}
	return network.Delivery{}, false
}

// process handles one delivery: records, then its event, then flushes.
func (t *task) process(d network.Delivery) error {
	ch := d.Channel
	if t.aligner.Blocked(ch) {
		t.held[ch] = append(t.held[ch], d)
		return nil
	}
	port := t.chanPort[ch]
	recs := d.Buf.Records
	for i := range recs {
		if err := t.op.ProcessRecord(port, recs[i]); err != nil {
			return t.wrap(err)
		}
	}
	t.recordsIn.Add(int64(len(recs)))
	ev := d.Buf.Event
	t.gate.Release(d)
	switch ev.Kind {
	case dataflow.EventBarrier:
		complete, err := t.aligner.OnBarrier(ch, ev.Barrier)
		if err != nil {
			return fmt.Errorf("%s: %w", t.pt.Name, err)
		}
		if complete {
			if err := t.completeBarrier(ev.Barrier); err != nil {
				return err
			}
		}
	case dataflow.EventEndOfInput:
		if t.aligner.OnEndOfInput(ch) {
			b, _ := t.aligner.Aligning()
			if err := t.completeBarrier(b); err != nil {
				return err
			}
		}
		t.inputsLeft--
		t.portLeft[port]--
		if t.portLeft[port] == 0 {
			if ie, ok := t.op.(dataflow.InputEnder); ok {
				if err := ie.EndInput(port); err != nil {
					return t.wrap(err)
				}
			}
		}
	}
	return t.flushStep()
}

func (t *task) completeBarrier(b dataflow.Barrier) error {
	if be := t.job.opts.Backend; be != nil {
		snap := t.newSnapshot(b)
		if s, ok := t.op.(dataflow.Snapshotter); ok {
			if err := s.SnapshotState(snap); err != nil {
				be.Decline(b.ID, t.id, err)
				if !errors.Is(err, ErrCheckpointAborted) {
					return fmt.Errorf("%s: snapshot for checkpoint %d: %w", t.pt.Name, b.ID, err)
				}
			}
		}
		snap.finish()
	}
	return t.broadcastEvent(dataflow.Event{Kind: dataflow.EventBarrier, Barrier: b})
}

func (t *task) notifyComplete(id dataflow.CheckpointID) {
	var l dataflow.CheckpointListener
	if t.src != nil {
		l, _ = t.src.(dataflow.CheckpointListener)
	} else {
		l, _ = t.op.(dataflow.CheckpointListener)
	}
	if l == nil {
		return
	}
	if err := l.NotifyCheckpointComplete(id); err != nil {
		t.job.fail(fmt.Errorf("%s: checkpoint %d complete: %w", t.pt.Name, id, err))
	}
}

// snapshot implements dataflow.Snapshot for one task and checkpoint.
type snapshot struct {
	t        *task
	b        dataflow.Barrier
	deferred bool
	once     sync.Once
}

func (t *task) newSnapshot(b dataflow.Barrier) *snapshot { return &snapshot{t: t, b: b} }

func (s *snapshot) Barrier() dataflow.Barrier { return s.b }
func (s *snapshot) WriteFile(name string, data []byte) error {
	return s.t.job.opts.Backend.WriteFile(s.b.ID, s.t.id, name, data)
}
func (s *snapshot) AddPebble(dir string) error {
	return s.t.job.opts.Backend.AddPebble(s.b.ID, s.t.id, dir)
}
func (s *snapshot) TempDir() string {
	return filepath.Join(s.t.stateDir, "snapshots", fmt.Sprintf("chk-%d", s.b.ID))
}
func (s *snapshot) Defer() func(error) {
	s.deferred = true
	return s.done
}

// finish acks unless the operator deferred the acknowledgement.
func (s *snapshot) finish() {
	if !s.deferred {
		s.done(nil)
	}
}

func (s *snapshot) done(err error) {
	s.once.Do(func() {
		_ = os.RemoveAll(s.TempDir())
		if err != nil {
			s.t.job.opts.Backend.Decline(s.b.ID, s.t.id, err)
			return
		}
		s.t.job.opts.Backend.Ack(s.b.ID, s.t.id)
	})
}

func (t *task) wrap(err error) error {
	if errors.Is(err, dataflow.ErrClosed) {
		return err
	}
	return fmt.Errorf("%s: %w", t.pt.Name, err)
}

// flushStep ends a step: the operator's EndOfStep hook, then every output
// buffer is sent.
func (t *task) flushStep() error {
	if f, ok := t.op.(dataflow.Flusher); ok {
		if err := f.EndOfStep(); err != nil {
			return t.wrap(err)
		}
	}
	for _, w := range t.outputs {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if t.stepOut != 0 {
		t.recordsOut.Add(t.stepOut)
		t.stepOut = 0
	}
	t.armTimer()
	return nil
}

func (t *task) broadcastEvent(ev dataflow.Event) error {
	if err := t.flushStep(); err != nil {
		return err
	}
	for _, w := range t.outputs {
		if err := w.event(ev); err != nil {
			return err
		}
	}
	return nil
}

func (t *task) endOutputs() error {
	if err := t.broadcastEvent(dataflow.Event{Kind: dataflow.EventEndOfInput}); err != nil {
		return err
	}
	if f := t.job.opts.OnTaskFinished; f != nil {
		f(t.id, t.src != nil)
	}
	return nil
}

// --- mailbox ---

// Post implements dataflow.Context.
func (t *task) Post(fn func()) {
	if fn != nil {
		t.mbox.Lock()
		t.mbox.items = append(t.mbox.items, fn)
		t.mbox.Unlock()
	}
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *task) runMailbox() error {
	t.mbox.Lock()
	items := t.mbox.items
	t.mbox.items = nil
	t.mbox.Unlock()
	if len(items) == 0 {
		return nil
	}
	for _, fn := range items {
		fn()
	}
	if t.job.ctx.Err() != nil {
		return dataflow.ErrClosed
	}
	return t.flushStep()
}

// --- timers ---

// ScheduleTimer implements dataflow.Context.
func (t *task) ScheduleTimer(at time.Time) {
	heap.Push(&t.timers, at)
}

func (t *task) armTimer() {
	if len(t.timers) == 0 {
		return
	}
	next := t.timers[0]
	if !t.timerArmed.IsZero() && !next.Before(t.timerArmed) {
		return
	}
	d := next.Sub(t.job.now())
	if d < 0 {
		d = 0
	}
	if t.timer == nil {
		t.timer = t.job.opts.Clock.NewTimer(d)
	} else {
		t.timer.Stop()
		select { // drain a stale fire
		case <-t.timer.C():
		default:
		}
		t.timer.Reset(d)
	}
	t.timerArmed = next
}

func (t *task) fireTimers() error {
	if len(t.timers) == 0 {
		return nil
	}
	now := t.job.now()
	if t.timers[0].After(now) {
		return nil
	}
	for len(t.timers) > 0 && !t.timers[0].After(now) {
		heap.Pop(&t.timers)
	}
	if !t.timerArmed.IsZero() && !t.timerArmed.After(now) {
		t.timerArmed = time.Time{}
	}
	if th, ok := t.op.(dataflow.TimerHandler); ok {
		if err := th.OnTimer(now); err != nil {
			return t.wrap(err)
		}
	}
	return t.flushStep()
}

type timeHeap []time.Time

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *timeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// --- dataflow.Context ---

func (t *task) TaskName() string                  { return t.pt.Name }
func (t *task) SubtaskIndex() int                 { return t.pt.ID.Subtask }
func (t *task) Parallelism() int                  { return t.pt.Vertex.Parallelism }
func (t *task) MaxParallelism() int               { return t.job.plan.MaxParallelism }
func (t *task) KeyGroups() dataflow.KeyGroupRange { return t.pt.KeyGroups }
func (t *task) Output() dataflow.Output           { return t }
func (t *task) Clock() dataflow.Clock             { return t.job.opts.Clock }
func (t *task) Logger() *slog.Logger              { return t.logger }
func (t *task) StateDir() string                  { return t.stateDir }
func (t *task) TaskID() string                    { return t.id }
func (t *task) Restore() dataflow.Restore         { return t.job.opts.Restore }
func (t *task) Fail(err error)                    { t.job.fail(fmt.Errorf("%s: %w", t.pt.Name, err)) }
func (t *task) Finish()                           { t.Post(func() { t.finishRequested = true }) }

// Emit implements dataflow.Output.
func (t *task) Emit(port int, r dataflow.Record) error {
	t.stepOut++
	return t.outputs[port].emit(r)
}

// --- output ---

// recordWriter partitions the records of one out-edge into per-consumer
// buffers.
type recordWriter struct {
	task       *task
	part       dataflow.Partitioning
	senders    []network.Sender
	bufs       []*network.Buffer
	bufRecords int
	maxP       int
	consumers  int
	rr         int
}

func (w *recordWriter) emit(r dataflow.Record) error {
	switch w.part {
	case dataflow.Broadcast:
		for i := range w.senders {
			if err := w.add(i, r); err != nil {
				return err
			}
		}
		return nil
	case dataflow.Keyed:
		return w.add(dataflow.SubtaskFor(r.KeyGroup, w.maxP, w.consumers), r)
	case dataflow.Rebalance:
		w.rr++
		if w.rr >= w.consumers {
			w.rr = 0
		}
		return w.add(w.rr, r)
	default: // Forward: exactly one consumer
		return w.add(0, r)
	}
}

func (w *recordWriter) add(i int, r dataflow.Record) error {
	b := w.bufs[i]
	if b == nil {
		b = network.GetBuffer()
		w.bufs[i] = b
	}
	b.Records = append(b.Records, r)
	if len(b.Records) >= w.bufRecords {
		return w.send(i)
	}
	return nil
}

func (w *recordWriter) send(i int) error {
	b := w.bufs[i]
	w.bufs[i] = nil
	return w.senders[i].Send(w.task.job.ctx, b)
}

func (w *recordWriter) flush() error {
	for i, b := range w.bufs {
		if b != nil && len(b.Records) > 0 {
			if err := w.send(i); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *recordWriter) event(ev dataflow.Event) error {
	for i := range w.senders {
		b := w.bufs[i]
		if b == nil {
			b = network.GetBuffer()
			w.bufs[i] = b
		}
		b.Event = ev
		if err := w.send(i); err != nil {
			return err
		}
	}
	return nil
}
