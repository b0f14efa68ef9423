package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/statefun-go/statefun/checkpoint"
	"github.com/statefun-go/statefun/checkpoint/savepoint"
	"github.com/statefun-go/statefun/checkpoint/store"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/runtime"
	"github.com/statefun-go/statefun/statefun/translate"
)

// driver runs the checkpoint protocol of one job attempt: it owns the
// coordinator (a pure state machine), performs its effects (begin a
// pending checkpoint, inject barriers, commit metadata, notify tasks,
// retain) and implements runtime.Backend for the tasks.
type driver struct {
	log        *slog.Logger
	ckpts      *store.Store
	savepoints *store.Store
	coord      *checkpoint.Coordinator
	job        *runtime.Job
	info       map[string]runtime.TaskInfo
	par, maxP  int
	retain     int

	mu       sync.Mutex
	pending  map[dataflow.CheckpointID]*store.Pending
	events   []func(now time.Time) checkpoint.Ready
	finished map[string]bool
	started  map[dataflow.CheckpointID]time.Time
	wake     chan struct{}

	// coordStats is a copy of the coordinator's stats after each step.
	coordStats checkpoint.CoordinatorStats

	// savepointDone receives the directory of each completed savepoint.
	savepointDone chan string
	spIDs         map[dataflow.CheckpointID]bool
}

func newDriver(log *slog.Logger, ckpts, savepoints *store.Store, retain int) *driver {
	return &driver{
		log: log, ckpts: ckpts, savepoints: savepoints, retain: retain,
		pending: map[dataflow.CheckpointID]*store.Pending{}, finished: map[string]bool{},
		started: map[dataflow.CheckpointID]time.Time{}, wake: make(chan struct{}, 1),
		savepointDone: make(chan string, 4), spIDs: map[dataflow.CheckpointID]bool{},
	}
}

// start creates the coordinator once the job (and its task ids) exist.
func (d *driver) start(job *runtime.Job, interval time.Duration, firstID dataflow.CheckpointID, par, maxP int, now time.Time) error {
	d.job, d.par, d.maxP = job, par, maxP
	d.info = job.TaskKeyGroups()
	all, sources := job.TaskIDs()
	c, err := checkpoint.NewCoordinator(checkpoint.CoordinatorConfig{
		Interval: interval, Tasks: all, Sources: sources, FirstID: firstID,
	}, now)
	if err != nil {
		return err
	}
	d.coord = c
	return nil
}

// stats returns the coordinator's counters (safe from any goroutine).
func (d *driver) stats() checkpoint.CoordinatorStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.coordStats
}

func (d *driver) post(fn func(now time.Time) checkpoint.Ready) {
	d.mu.Lock()
	d.events = append(d.events, fn)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// --- runtime.Backend (task goroutines) ---

func (d *driver) pendingFor(id dataflow.CheckpointID) (*store.Pending, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pending[id]
	if p == nil {
		return nil, fmt.Errorf("checkpoint %d is not in progress: %w", id, runtime.ErrCheckpointAborted)
	}
	return p, nil
}

// written maps a failed write to ErrCheckpointAborted when the checkpoint
// was aborted meanwhile (its pending files are gone): the task goes on.
func (d *driver) written(id dataflow.CheckpointID, err error) error {
	if err == nil {
		return nil
	}
	d.mu.Lock()
	_, live := d.pending[id]
	d.mu.Unlock()
	if !live {
		return fmt.Errorf("checkpoint %d: %w (%v)", id, runtime.ErrCheckpointAborted, err)
	}
	return err
}

func (d *driver) WriteFile(id dataflow.CheckpointID, task, name string, data []byte) error {
	p, err := d.pendingFor(id)
	if err != nil {
		return err
	}
	return d.written(id, p.AddFile(task, name, data))
}

func (d *driver) AddPebble(id dataflow.CheckpointID, task, dir string) error {
	p, err := d.pendingFor(id)
	if err != nil {
		return err
	}
	return d.written(id, p.AddPebbleCheckpoint(task+pebbleSuffix, dir))
}

func (d *driver) Ack(id dataflow.CheckpointID, task string) {
	d.post(func(now time.Time) checkpoint.Ready { return d.coord.Ack(task, id, nil, now) })
}

func (d *driver) Decline(id dataflow.CheckpointID, task string, err error) {
	d.post(func(now time.Time) checkpoint.Ready { return d.coord.Decline(task, id, err.Error(), now) })
}

func (d *driver) taskFinished(task string, source bool) {
	d.post(func(now time.Time) checkpoint.Ready {
		d.mu.Lock()
		d.finished[task] = true
		d.mu.Unlock()
		if source {
			return d.coord.SourceFinished(task, now)
		}
		return d.coord.TaskFinished(task, now)
	})
}

// savepoint requests a savepoint (from any goroutine).
func (d *driver) savepoint() {
	d.post(func(now time.Time) checkpoint.Ready {
		id, rd, err := d.coord.TriggerSavepoint(now)
		if err != nil {
			d.log.Error("savepoint refused", "err", err)
			return checkpoint.Ready{}
		}
		d.spIDs[id] = true
		d.log.Info("savepoint requested", "id", id)
		return rd
	})
}

// --- driver loop (the Run goroutine) ---

// step runs queued events and the periodic tick, performing their effects.
func (d *driver) step(now time.Time) {
	d.mu.Lock()
	evs := d.events
	d.events = nil
	d.mu.Unlock()
	for _, ev := range evs {
		d.handle(ev(now), now)
	}
	d.handle(d.coord.Tick(now), now)
	st := d.coord.Stats()
	d.mu.Lock()
	d.coordStats = st
	d.mu.Unlock()
}

func (d *driver) handle(rd checkpoint.Ready, now time.Time) {
	for _, a := range rd.Aborted {
		d.mu.Lock()
		p := d.pending[a.ID]
		delete(d.pending, a.ID)
		d.mu.Unlock()
		if p != nil {
			_ = p.Abort()
		}
		d.log.Warn("checkpoint aborted", "id", a.ID, "reason", a.Reason)
	}
	if id := rd.Notify; id != nil {
		d.job.NotifyCheckpointComplete(*id)
		d.mu.Lock()
		took := now.Sub(d.started[*id])
		delete(d.started, *id)
		d.mu.Unlock()
		if d.spIDs[*id] {
			delete(d.spIDs, *id)
			cp, err := d.savepoints.Load(uint64(*id))
			if err != nil {
				d.log.Error("savepoint stored but unreadable", "id", *id, "err", err)
			} else {
				d.log.Info("savepoint stored; writing its canonical form", "id", *id, "took", took)
				// The canonical (Arrow) form is written off the driver
				// goroutine: it reads the whole state.
				dir := filepath.Join(filepath.Dir(filepath.Dir(cp.Dir)), fmt.Sprintf("sp-%d", *id))
				go func() {
					start := time.Now()
					if err := savepoint.Write(cp, dir); err != nil {
						d.log.Error("canonical savepoint failed; the stored one remains", "dir", cp.Dir, "err", err)
						dir = cp.Dir
					} else {
						d.log.Info("savepoint complete", "dir", dir, "took", time.Since(start))
					}
					d.savepointDone <- dir
				}()
			}
		} else {
			d.log.Debug("checkpoint complete", "id", *id, "took", took)
			if err := d.ckpts.Retain(d.retain); err != nil {
				d.log.Warn("checkpoint retention", "err", err)
			}
		}
	}
	if c := rd.Complete; c != nil {
		d.handle(d.commit(c, now), now)
	}
	if b := rd.Trigger; b != nil {
		st := d.ckpts
		if b.Savepoint || d.spIDs[b.ID] {
			b.Savepoint = true
			st = d.savepoints
		}
		p, err := st.Begin(uint64(b.ID))
		if err != nil {
			d.handle(d.coord.Decline("driver", b.ID, err.Error(), now), now)
		} else {
			d.mu.Lock()
			d.pending[b.ID] = p
			d.started[b.ID] = now
			d.mu.Unlock()
			d.job.TriggerBarrier(*b)
		}
	}
}

func (d *driver) commit(c *checkpoint.Completed, now time.Time) checkpoint.Ready {
	d.mu.Lock()
	p := d.pending[c.ID]
	delete(d.pending, c.ID)
	finished := make([]string, 0, len(d.finished))
	for t := range d.finished {
		finished = append(finished, t)
	}
	d.mu.Unlock()
	if p == nil {
		return d.coord.CommitFailed(c.ID, "no pending checkpoint", now)
	}
	for _, t := range finished {
		if d.info[t].Vertex != "" && strings.HasPrefix(d.info[t].Vertex, "ingress ") {
			if err := p.AddFile(t, translate.FinishedFile, []byte{1}); err != nil {
				_ = p.Abort()
				return d.coord.CommitFailed(c.ID, err.Error(), now)
			}
		}
	}
	props := map[string]string{}
	for id, ti := range d.info {
		props["task/"+id] = fmt.Sprintf("%d:%d:%d:%s", ti.Subtask, ti.KeyGroups.Start, ti.KeyGroups.End, ti.Vertex)
	}
	meta := store.Metadata{ID: uint64(c.ID), Savepoint: c.Savepoint || d.spIDs[c.ID], Timestamp: c.Timestamp,
		Parallelism: d.par, MaxParallelism: d.maxP, Properties: props}
	if err := p.Commit(meta); err != nil {
		return d.coord.CommitFailed(c.ID, err.Error(), now)
	}
	return d.coord.Committed(c.ID, now)
}

// pebbleSuffix names the store entry of a task's Pebble checkpoint (the
// store keeps a Pebble directory apart from the task's blobs).
const pebbleSuffix = ".state"

// restoreFrom adapts a stored checkpoint to dataflow.Restore.
type restoreFrom struct {
	cp    *store.Checkpoint
	parts map[string][]dataflow.RestorePart
}

func newRestore(cp *store.Checkpoint) (*restoreFrom, error) {
	r := &restoreFrom{cp: cp, parts: map[string][]dataflow.RestorePart{}}
	pebble := map[string]bool{}
	for _, t := range cp.Meta.Tasks {
		if t.Pebble {
			pebble[strings.TrimSuffix(t.Task, pebbleSuffix)] = true
		}
	}
	for k, v := range cp.Meta.Properties {
		task, ok := strings.CutPrefix(k, "task/")
		if !ok {
			continue
		}
		f := strings.SplitN(v, ":", 4)
		if len(f) != 4 {
			return nil, fmt.Errorf("checkpoint %d: bad task property %q", cp.Meta.ID, v)
		}
		start, err1 := strconv.Atoi(f[1])
		end, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("checkpoint %d: bad task property %q", cp.Meta.ID, v)
		}
		r.parts[f[3]] = append(r.parts[f[3]], &restorePart{cp: cp, task: task, pebble: pebble[task],
			kg: dataflow.KeyGroupRange{Start: dataflow.KeyGroup(start), End: dataflow.KeyGroup(end)}})
	}
	return r, nil
}

func (r *restoreFrom) ID() dataflow.CheckpointID             { return dataflow.CheckpointID(r.cp.Meta.ID) }
func (r *restoreFrom) MaxParallelism() int                   { return r.cp.Meta.MaxParallelism }
func (r *restoreFrom) Parts(v string) []dataflow.RestorePart { return r.parts[v] }

type restorePart struct {
	cp     *store.Checkpoint
	task   string
	kg     dataflow.KeyGroupRange
	pebble bool
}

func (p *restorePart) TaskID() string                    { return p.task }
func (p *restorePart) KeyGroups() dataflow.KeyGroupRange { return p.kg }
func (p *restorePart) HasPebble() bool                   { return p.pebble }
func (p *restorePart) MaterializePebble(dst string) error {
	return p.cp.MaterializePebble(p.task+pebbleSuffix, dst)
}
func (p *restorePart) ReadFile(name string) ([]byte, error) {
	b, err := p.cp.ReadFile(p.task, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s/%s: %w", p.task, name, fs.ErrNotExist)
	}
	return b, err
}
