package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/plan"
	"github.com/statefun-go/statefun/network"
)

// Options configure a Job. The zero value is usable.
type Options struct {
	// Clock drives timers; default dataflow.SystemClock.
	Clock dataflow.Clock
	// Logger; default slog.Default().
	Logger *slog.Logger
	// StateDir is the run's working directory; each subtask gets
	// StateDir/<vertex>-<i>. Default: a temp dir removed by Close.
	StateDir string
	// BufferRecords is the number of records per channel buffer
	// (default network.DefaultBufferRecords).
	BufferRecords int
	// Credits is the number of buffers in flight per channel
	// (default network.DefaultCredits).
	Credits int
	// Backend receives snapshots at barriers. Nil: barriers still flow
	// (alignment runs) but operators are not asked to snapshot.
	Backend Backend
	// Restore is the snapshot to restore the operators from (nil: fresh).
	Restore dataflow.Restore
	// OnTaskFinished is called (from the task's goroutine) when a subtask
	// has ended its outputs normally.
	OnTaskFinished func(task string, source bool)
}

// ErrCheckpointAborted is returned by a Backend for writes to a checkpoint
// that was aborted meanwhile: the task goes on (it does not fail).
var ErrCheckpointAborted = dataflow.ErrCheckpointAborted

// Backend stores the snapshots of a job's tasks and collects their
// acknowledgements; the checkpoint driver implements it. Methods are called
// from task goroutines.
type Backend interface {
	WriteFile(id dataflow.CheckpointID, task, name string, data []byte) error
	AddPebble(id dataflow.CheckpointID, task, dir string) error
	Ack(id dataflow.CheckpointID, task string)
	Decline(id dataflow.CheckpointID, task string, err error)
}

// Job runs one plan.
type Job struct {
	plan  *plan.Plan
	opts  Options
	tasks []*task

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
	tmpDir string

	failOnce sync.Once
	err      error // first failure; written once under failOnce

	started   atomic.Bool
	closeOnce sync.Once
}

// New prepares a job for p. Nothing runs until Start.
func New(p *plan.Plan, opts Options) (*Job, error) {
	if opts.Clock == nil {
		opts.Clock = dataflow.SystemClock
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BufferRecords <= 0 {
		opts.BufferRecords = network.DefaultBufferRecords
	}
	if opts.Credits <= 0 {
		opts.Credits = network.DefaultCredits
	}
	j := &Job{plan: p, opts: opts, done: make(chan struct{})}
	if j.opts.StateDir == "" {
		d, err := os.MkdirTemp("", "statefun-run-")
		if err != nil {
			return nil, fmt.Errorf("runtime: state dir: %w", err)
		}
		j.opts.StateDir, j.tmpDir = d, d
	}
	j.ctx, j.cancel = context.WithCancel(context.Background())

	// One gate per task; channel numbering: in-edges in port order, and
	// within an edge the producers in subtask order.
	byID := map[plan.TaskID]*task{}
	for _, pt := range p.Tasks {
		t := newTask(j, pt)
		byID[pt.ID] = t
		j.tasks = append(j.tasks, t)
	}
	// Wire producers to consumer channels.
	for _, t := range j.tasks {
		for _, out := range t.pt.Outputs {
			w := &recordWriter{
				task: t, part: out.Edge.Partitioning, bufRecords: opts.BufferRecords,
				maxP: p.MaxParallelism, consumers: len(out.Consumers),
			}
			for _, cid := range out.Consumers {
				cons := byID[cid]
				w.senders = append(w.senders, cons.gate.Channel(cons.channelOf(out.Edge.ToPort, t.pt.ID.Subtask)))
			}
			w.bufs = make([]*network.Buffer, len(w.senders))
			t.outputs = append(t.outputs, w)
		}
	}
	return j, nil
}

// Plan returns the job's plan.
func (j *Job) Plan() *plan.Plan { return j.plan }

// Start opens every operator and starts the subtask goroutines. If an
// operator fails to open, Start closes the job and returns the error.
func (j *Job) Start(ctx context.Context) error {
	if !j.started.CompareAndSwap(false, true) {
		return errors.New("runtime: job already started")
	}
	for _, t := range j.tasks {
		if err := os.MkdirAll(t.stateDir, 0o755); err != nil {
			j.fail(fmt.Errorf("%s: state dir: %w", t.pt.Name, err))
			break
		}
		if err := t.open(); err != nil {
			j.fail(err)
			break
		}
	}
	if j.err != nil {
		for _, t := range j.tasks {
			t.close()
		}
		j.finishClose()
		close(j.done)
		return j.err
	}
	for _, t := range j.tasks {
		j.wg.Add(1)
		go t.run()
	}
	go func() {
		j.wg.Wait()
		j.finishClose()
		close(j.done)
	}()
	return nil
}

// Done is closed when every subtask has finished or the job failed and all
// goroutines have exited.
func (j *Job) Done() <-chan struct{} { return j.done }

// Wait blocks until the job is done and returns the first failure.
func (j *Job) Wait() error {
	<-j.done
	return j.Err()
}

// Err returns the first failure, if any, once the job is done.
func (j *Job) Err() error {
	select {
	case <-j.done:
		return j.err
	default:
		return nil
	}
}

// Shutdown stops the sources gracefully (each emits end of input after its
// current batch) and waits until the job has drained or ctx is done; then
// it closes the job.
func (j *Job) Shutdown(ctx context.Context) error {
	for _, t := range j.tasks {
		if t.src != nil {
			t.Post(func() { t.stopSource = true })
		}
	}
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		j.Close()
		return fmt.Errorf("runtime: shutdown: %w", ctx.Err())
	}
}

// Close cancels every subtask and waits for their goroutines. Idempotent.
func (j *Job) Close() error {
	j.cancel()
	if j.started.Load() {
		<-j.done
	}
	j.finishClose()
	return nil
}

func (j *Job) finishClose() {
	j.closeOnce.Do(func() {
		j.cancel()
		if j.tmpDir != "" {
			_ = os.RemoveAll(j.tmpDir)
		}
	})
}

// fail records the first error and cancels the job.
func (j *Job) fail(err error) {
	j.failOnce.Do(func() {
		j.err = err
		j.opts.Logger.Error("job failed", "err", err)
	})
	j.cancel()
}

// TriggerBarrier injects barrier b at every source subtask: each snapshots
// its position (SourceSnapshotter) and emits b on all its outputs.
func (j *Job) TriggerBarrier(b dataflow.Barrier) {
	for _, t := range j.tasks {
		if t.src != nil {
			t.Post(func() { t.injectBarrier(b) })
		}
	}
}

// NotifyCheckpointComplete tells every subtask that checkpoint id is
// durable (CheckpointListener).
func (j *Job) NotifyCheckpointComplete(id dataflow.CheckpointID) {
	for _, t := range j.tasks {
		t.Post(func() { t.notifyComplete(id) })
	}
}

// TaskIDs returns the stable ids of all subtasks, and of the sources.
func (j *Job) TaskIDs() (all, sources []string) {
	for _, t := range j.tasks {
		all = append(all, t.id)
		if t.pt.Vertex.IsSource() {
			sources = append(sources, t.id)
		}
	}
	return all, sources
}

// TaskKeyGroups returns the key groups and vertex of every subtask by id.
func (j *Job) TaskKeyGroups() map[string]TaskInfo {
	m := map[string]TaskInfo{}
	for _, t := range j.tasks {
		m[t.id] = TaskInfo{Vertex: t.pt.Vertex.Name, Subtask: t.pt.ID.Subtask, KeyGroups: t.pt.KeyGroups}
	}
	return m
}

// TaskInfo describes one subtask for snapshot metadata.
type TaskInfo struct {
	Vertex    string
	Subtask   int
	KeyGroups dataflow.KeyGroupRange
}

// TaskID is the stable id of subtask i of a vertex.
func TaskID(vertex string, i int) string { return fmt.Sprintf("%s-%d", sanitize(vertex), i) }

// Metrics are counters of one vertex, summed over its subtasks.
type Metrics struct {
	Vertex     string
	RecordsIn  int64
	RecordsOut int64
}

// Metrics returns per-vertex counters. Safe to call while running.
func (j *Job) Metrics() []Metrics {
	var out []Metrics
	for _, v := range j.plan.Graph.Vertices() {
		m := Metrics{Vertex: v.Name}
		for _, t := range j.tasks {
			if t.pt.Vertex == v {
				m.RecordsIn += t.recordsIn.Load()
				m.RecordsOut += t.recordsOut.Load()
			}
		}
		out = append(out, m)
	}
	return out
}

// StateDir returns the run's working directory.
func (j *Job) StateDir() string { return j.opts.StateDir }

func taskStateDir(root string, pt *plan.Task) string {
	return filepath.Join(root, TaskID(pt.Vertex.Name, pt.ID.Subtask))
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}

// now is the job clock.
func (j *Job) now() time.Time { return j.opts.Clock.Now() }
