package checkpoint

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/statefun-go/statefun/dataflow"
)

// DefaultTimeout is CoordinatorConfig.Timeout when it is left zero (Flink's
// execution.checkpointing.timeout default).
const DefaultTimeout = 10 * time.Minute

// maxFirstID bounds CoordinatorConfig.FirstID so that ids can never wrap
// around: 2^63 more checkpoints will not happen.
const maxFirstID = dataflow.CheckpointID(1) << 63

// ErrNoLiveSource is returned by TriggerSavepoint when every source has
// finished: there is nowhere to inject a barrier.
var ErrNoLiveSource = errors.New("checkpoint: no live source")

// CoordinatorConfig configures a Coordinator. The zero value of every
// duration is meaningful; Tasks and Sources are required.
type CoordinatorConfig struct {
	// Interval is the period of periodic checkpoints, measured between
	// triggers (as Flink's execution.checkpointing.interval): checkpoint n+1
	// falls due Interval after checkpoint n was triggered. A checkpoint that
	// falls due while another is in flight waits until that one ends, and a
	// trigger never comes sooner than MinPause after the end (completion or
	// abort) of the previous checkpoint. 0 disables periodic checkpoints:
	// only savepoints are taken, on demand. Must be >= 0.
	Interval time.Duration
	// Timeout aborts a checkpoint that has not been acknowledged by every
	// task within Timeout of its trigger. The time the driver takes to write
	// the metadata (between Ready.Complete and Committed) does not count: a
	// checkpoint cannot be aborted while its metadata may become durable.
	// 0 means DefaultTimeout; must be >= 0.
	Timeout time.Duration
	// MinPause is the minimum time between the end (completion or abort) of
	// a checkpoint and the next periodic trigger (Flink's
	// execution.checkpointing.min-pause). It keeps a slow or failing
	// checkpoint from being followed at once by another. Savepoints ignore
	// it, as in Flink. Must be >= 0.
	MinPause time.Duration
	// Tasks names every task that must acknowledge a checkpoint. Names are
	// non-empty and unique.
	Tasks []string
	// Sources names the source tasks, where barriers are injected. Non-empty,
	// unique, and a subset of Tasks.
	Sources []string
	// FirstID is the id of the first checkpoint. After a restore from
	// checkpoint n, pass n+1 (or more, to skip ids that aborted checkpoints
	// of the previous run may have left behind). 0 means 1; must be < 2^63.
	FirstID dataflow.CheckpointID
}

// EnsureDefaults replaces zero values by their defaults.
func (cfg *CoordinatorConfig) EnsureDefaults() {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.FirstID == 0 {
		cfg.FirstID = 1
	}
}

// Validate reports every problem of cfg at once (errors.Join). Call it
// after EnsureDefaults.
func (cfg *CoordinatorConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("checkpoint: coordinator config: "+format, args...))
	}
	if cfg.Interval < 0 {
		bad("negative interval %s", cfg.Interval)
	}
	if cfg.Timeout <= 0 {
		bad("timeout %s is not positive", cfg.Timeout)
	}
	if cfg.MinPause < 0 {
		bad("negative min pause %s", cfg.MinPause)
	}
	if cfg.FirstID == 0 || cfg.FirstID >= maxFirstID {
		bad("first id %d out of range [1, 2^63)", cfg.FirstID)
	}
	if len(cfg.Tasks) == 0 {
		bad("no tasks")
	}
	tasks := make(map[string]bool, len(cfg.Tasks))
	for _, t := range cfg.Tasks {
		switch {
		case t == "":
			bad("empty task name")
		case tasks[t]:
			bad("task %q listed twice", t)
		}
		tasks[t] = true
	}
	if len(cfg.Sources) == 0 {
		bad("no sources")
	}
	sources := make(map[string]bool, len(cfg.Sources))
	for _, s := range cfg.Sources {
		switch {
		case sources[s]:
			bad("source %q listed twice", s)
		case !tasks[s]:
			bad("source %q is not a task", s)
		}
		sources[s] = true
	}
	return errors.Join(errs...)
}

// Ready is the batch of effects of one Coordinator call. The driver performs
// them in this order: Aborted, Notify, Complete, Trigger. A zero Ready
// (Empty) asks for nothing.
type Ready struct {
	// Aborted lists checkpoints that ended without completing: the driver
	// discards what they left behind (task snapshots, partial metadata) and
	// tells whoever asked for a savepoint among them.
	Aborted []Abort
	// Notify is set when the metadata of a checkpoint is durable (after
	// Committed): the driver tells every task, and two-phase-commit sinks
	// commit their transactions.
	Notify *dataflow.CheckpointID
	// Complete is set when every awaited task has acknowledged: the driver
	// writes the metadata atomically, then calls Committed (or CommitFailed).
	// Emitted exactly once per checkpoint. The driver owns the value.
	Complete *Completed
	// Trigger is set when a checkpoint starts: the driver injects this
	// barrier at every source of Sources.
	Trigger *dataflow.Barrier
	// Sources are the live sources at trigger time (config order), set with
	// Trigger. The checkpoint awaits every task that has not finished, except
	// the sources that already finished (no barrier reaches them).
	Sources []string
}

// Empty reports whether r asks for nothing.
func (r Ready) Empty() bool {
	return len(r.Aborted) == 0 && r.Notify == nil && r.Complete == nil && r.Trigger == nil
}

// Abort reports a checkpoint that ended without completing.
type Abort struct {
	ID        dataflow.CheckpointID
	Savepoint bool
	Reason    string
}

// Completed is a checkpoint acknowledged by every awaited task.
type Completed struct {
	ID        dataflow.CheckpointID
	Savepoint bool
	Timestamp int64 // the barrier's: unix milliseconds at trigger time
	// Acks holds, per acknowledging task, the opaque handle it gave with its
	// ack (where its snapshot lives).
	Acks map[string][]byte
	// Finished lists (config order) the tasks that have no ack here because
	// they had finished: tasks reported by TaskFinished, and sources reported
	// by SourceFinished before the trigger (no barrier could reach them). The
	// metadata records them as finished so a restore does not run them again.
	Finished []string
}

// CoordinatorStats are counters since NewCoordinator.
type CoordinatorStats struct {
	Triggered uint64 // checkpoints and savepoints triggered
	Completed uint64 // checkpoints committed (Notify emitted)
	// Aborted counts Abort entries: triggered checkpoints that timed out,
	// were declined or failed to commit, and queued savepoints that could
	// not be triggered because every source finished.
	Aborted uint64
	// LateAcks counts acks for a checkpoint that already ended (completed or
	// aborted), or, for a checkpoint whose metadata is being written, from a
	// task whose ack was not awaited any more.
	LateAcks uint64
	// DuplicateAcks counts second acks of a task for the same checkpoint.
	DuplicateAcks uint64
	// UnknownAcks counts acks from tasks not in the config, for ids never
	// triggered (before FirstID, or not yet), and from tasks the pending checkpoint does not await
	// (finished tasks, sources that finished before the trigger).
	UnknownAcks uint64
	// IgnoredEvents counts Decline, Committed, CommitFailed, SourceFinished
	// and TaskFinished calls that matched nothing (an id not in the expected
	// phase, an unknown or already finished task).
	IgnoredEvents uint64
	// LastDuration is the time from trigger to Committed of the last
	// completed checkpoint (0 before the first).
	LastDuration time.Duration
}

// Coordinator decides when checkpoints start, when they are complete and
// when they are aborted: the checkpoint coordinator of Flink's job manager
// (ABS: barriers are injected at the sources, every task acknowledges its
// snapshot, the checkpoint completes when all have).
//
// It is a pure state machine in the style of etcd-raft: every method takes
// the current time, updates the state and returns a Ready batch of effects;
// the driver performs them and reports the outcomes back (Ack, Decline,
// Committed, CommitFailed, SourceFinished, TaskFinished). Tick must be called
// periodically, or at NextDeadline, to trigger periodic checkpoints and time
// out stuck ones. The Coordinator is not safe for concurrent use.
//
// Life of checkpoint n: triggered (Ready.Trigger) -> acked by every awaited
// task (Ready.Complete) -> metadata written by the driver (Committed) ->
// tasks notified (Ready.Notify). It is aborted (Ready.Aborted) on timeout,
// on Decline, or on CommitFailed. A checkpoint is "in flight" from trigger to
// Notify or Abort, including while its metadata is written.
//
// Invariants:
//   - at most one checkpoint is in flight (aligned checkpoints, as upstream);
//   - ids strictly increase across triggers; an id is never reused, not even
//     after an abort;
//   - every triggered id, and every id returned by TriggerSavepoint, ends
//     exactly once: by Notify (after exactly one Complete) or by Abort;
//   - Notify n is emitted only by Committed(n);
//   - time never goes backwards: a now earlier than one seen before is
//     treated as the later one.
//
// Scheduling: a pending savepoint request takes precedence over periodic
// checkpoints and ignores Interval and MinPause; periodic checkpoint n+1 is
// triggered at max(trigger(n_periodic)+Interval, end(previous)+MinPause), and
// the first at start+max(Interval, MinPause) (Flink picks a random initial
// delay in that range; here it is deterministic). Savepoints do not move the
// periodic schedule.
//
// Finished sources and tasks (bounded inputs): a checkpoint triggered after
// SourceFinished(s) does not inject a barrier at s and does not await its
// ack; downstream tasks count the ended channel as aligned (Aligner). A task
// reported by TaskFinished is not awaited any more, also by the pending
// checkpoint. When every source has finished no checkpoint is triggered any
// more, but the pending one can still complete.
type Coordinator struct {
	cfg   CoordinatorConfig
	tasks map[string]*taskState
	// now is the latest time seen. Invariant: never decreases.
	now time.Time
	// nextID is the id of the next trigger. Invariant: greater than every id
	// triggered or aborted so far; equals queued's id when queued is set.
	nextID dataflow.CheckpointID
	// pending is the checkpoint in flight, if any.
	pending *pendingCheckpoint
	// queued: a savepoint was requested while pending was set; it gets
	// nextID. Invariant: queued implies pending != nil and a live source.
	queued bool
	// lastPeriodic is the trigger time of the last periodic checkpoint
	// (start time before the first); lastEnd the time the last checkpoint
	// ended (start time before the first).
	lastPeriodic, lastEnd time.Time
	lastCompleted         dataflow.CheckpointID
	stats                 CoordinatorStats
}

type taskState struct {
	source      bool
	sourceEnded bool // no barrier can be injected any more
	finished    bool // no acks any more
}

type pendingCheckpoint struct {
	id          dataflow.CheckpointID
	savepoint   bool
	timestamp   int64
	triggeredAt time.Time
	// awaiting holds the tasks whose ack is still expected. Empty once
	// completing.
	awaiting map[string]bool
	acks     map[string][]byte
	// completing: Ready.Complete was emitted; waiting for Committed or
	// CommitFailed. No timeout, acks or declines apply any more.
	completing bool
}

// NewCoordinator returns a coordinator started at now. It reports every
// problem of cfg at once.
func NewCoordinator(cfg CoordinatorConfig, now time.Time) (*Coordinator, error) {
	cfg.Tasks = append([]string(nil), cfg.Tasks...)
	cfg.Sources = append([]string(nil), cfg.Sources...)
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Coordinator{
		cfg:          cfg,
		tasks:        make(map[string]*taskState, len(cfg.Tasks)),
		now:          now,
		nextID:       cfg.FirstID,
		lastPeriodic: now,
		lastEnd:      now,
	}
	for _, t := range cfg.Tasks {
		c.tasks[t] = &taskState{}
	}
	for _, s := range cfg.Sources {
		c.tasks[s].source = true
	}
	return c, nil
}

// Tick advances time: it aborts the pending checkpoint when its timeout has
// passed, and triggers a checkpoint when one is due.
func (c *Coordinator) Tick(now time.Time) Ready {
	rd := c.begin(now)
	c.maybeTrigger(&rd)
	return rd
}

// TriggerSavepoint requests a savepoint and returns the id it will get. When
// no checkpoint is in flight it is triggered at once (Ready.Trigger);
// otherwise it is queued and triggered as soon as the in-flight checkpoint
// ends. A request while one is already queued joins it (same id). The id
// always ends with Complete and Notify, or with an Abort (for instance when
// every source finishes before it could be triggered). It fails, changing
// nothing, with ErrNoLiveSource when every source has finished.
func (c *Coordinator) TriggerSavepoint(now time.Time) (dataflow.CheckpointID, Ready, error) {
	if len(c.liveSources()) == 0 {
		return 0, Ready{}, ErrNoLiveSource
	}
	rd := c.begin(now)
	id := c.nextID
	c.queued = true
	c.maybeTrigger(&rd)
	return id, rd, nil
}

// Ack records that task has snapshotted checkpoint id; handle (retained by
// the coordinator and handed over in Completed.Acks) says where. The ack of
// the last awaited task emits Ready.Complete. Acks that do not apply are
// ignored and counted in Stats (late, duplicate, unknown).
func (c *Coordinator) Ack(task string, id dataflow.CheckpointID, handle []byte, now time.Time) Ready {
	rd := c.begin(now)
	p := c.pending
	_, known := c.tasks[task]
	switch {
	case !known || id < c.cfg.FirstID || id >= c.nextID:
		c.stats.UnknownAcks++
	case p == nil || id != p.id:
		c.stats.LateAcks++
	case hasKey(p.acks, task):
		c.stats.DuplicateAcks++
	case p.completing:
		c.stats.LateAcks++
	case !p.awaiting[task]:
		c.stats.UnknownAcks++
	default:
		delete(p.awaiting, task)
		p.acks[task] = handle
		c.maybeComplete(&rd)
	}
	c.maybeTrigger(&rd)
	return rd
}

// Decline reports that task could not snapshot checkpoint id: the checkpoint
// is aborted. A decline for a checkpoint that is not awaiting acks (ended,
// or its metadata is being written) is ignored.
func (c *Coordinator) Decline(task string, id dataflow.CheckpointID, reason string, now time.Time) Ready {
	rd := c.begin(now)
	p := c.pending
	if _, known := c.tasks[task]; !known || p == nil || p.id != id || p.completing {
		c.stats.IgnoredEvents++
	} else {
		c.abortPending(&rd, fmt.Sprintf("declined by %s: %s", task, reason))
	}
	c.maybeTrigger(&rd)
	return rd
}

// Committed reports that the metadata of checkpoint id (announced by
// Ready.Complete) is durable. It emits Ready.Notify, and may trigger the
// next checkpoint.
func (c *Coordinator) Committed(id dataflow.CheckpointID, now time.Time) Ready {
	rd := c.begin(now)
	if p := c.pending; p == nil || p.id != id || !p.completing {
		c.stats.IgnoredEvents++
	} else {
		c.pending = nil
		c.lastEnd = c.now
		c.lastCompleted = id
		c.stats.Completed++
		c.stats.LastDuration = c.now.Sub(p.triggeredAt)
		n := id
		rd.Notify = &n
	}
	c.maybeTrigger(&rd)
	return rd
}

// CommitFailed reports that writing the metadata of checkpoint id failed:
// the checkpoint is aborted.
func (c *Coordinator) CommitFailed(id dataflow.CheckpointID, reason string, now time.Time) Ready {
	rd := c.begin(now)
	if p := c.pending; p == nil || p.id != id || !p.completing {
		c.stats.IgnoredEvents++
	} else {
		c.abortPending(&rd, "commit failed: "+reason)
	}
	c.maybeTrigger(&rd)
	return rd
}

// SourceFinished reports that source task ended its input: no barrier can be
// injected there any more, and later checkpoints do not await it. When every
// source has finished, no checkpoint is triggered any more and a queued
// savepoint is aborted; the pending checkpoint (whose barrier was injected
// before) still completes.
func (c *Coordinator) SourceFinished(task string, now time.Time) Ready {
	rd := c.begin(now)
	if ts := c.tasks[task]; ts == nil || !ts.source || ts.sourceEnded {
		c.stats.IgnoredEvents++
	} else {
		c.endSource(&rd, ts)
	}
	c.maybeTrigger(&rd)
	return rd
}

// TaskFinished reports that task ended: it acks nothing any more, so the
// pending checkpoint stops waiting for it (an ack it already gave is kept)
// and later ones do not await it. A finished source task has also finished
// as a source (see SourceFinished).
func (c *Coordinator) TaskFinished(task string, now time.Time) Ready {
	rd := c.begin(now)
	if ts := c.tasks[task]; ts == nil || ts.finished {
		c.stats.IgnoredEvents++
	} else {
		ts.finished = true
		if ts.source && !ts.sourceEnded {
			c.endSource(&rd, ts)
		}
		if p := c.pending; p != nil && p.awaiting[task] {
			delete(p.awaiting, task)
			c.maybeComplete(&rd)
		}
	}
	c.maybeTrigger(&rd)
	return rd
}

// InFlight returns the id of the checkpoint in flight (triggered and not yet
// notified or aborted), if any.
func (c *Coordinator) InFlight() (dataflow.CheckpointID, bool) {
	if c.pending == nil {
		return 0, false
	}
	return c.pending.id, true
}

// LastCompleted returns the id of the last checkpoint committed by this
// coordinator, 0 if none.
func (c *Coordinator) LastCompleted() dataflow.CheckpointID { return c.lastCompleted }

// Stats returns the counters.
func (c *Coordinator) Stats() CoordinatorStats { return c.stats }

// NextDeadline returns the earliest time at which Tick has something to do
// (time out the pending checkpoint, or trigger a periodic one), so that a
// driver can arm one timer instead of polling. ok is false when only an
// external event can make progress.
func (c *Coordinator) NextDeadline() (at time.Time, ok bool) {
	if p := c.pending; p != nil {
		if p.completing {
			return time.Time{}, false
		}
		return p.triggeredAt.Add(c.cfg.Timeout), true
	}
	if c.cfg.Interval == 0 || len(c.liveSources()) == 0 {
		return time.Time{}, false
	}
	return c.nextPeriodic(), true
}

// begin advances the clock and aborts the pending checkpoint if its timeout
// has passed. Every call starts with it, so the outcome depends only on the
// times given, not on how often Tick is called: an ack at or after the
// deadline is late.
func (c *Coordinator) begin(now time.Time) Ready {
	if now.After(c.now) {
		c.now = now
	}
	var rd Ready
	if p := c.pending; p != nil && !p.completing && !c.now.Before(p.triggeredAt.Add(c.cfg.Timeout)) {
		c.abortPending(&rd, fmt.Sprintf("timeout after %s, not acknowledged by %s", c.cfg.Timeout, c.missing(p)))
	}
	return rd
}

// missing names the tasks p still awaits, in config order, at most a few.
func (c *Coordinator) missing(p *pendingCheckpoint) string {
	const show = 4
	var names []string
	for _, t := range c.cfg.Tasks {
		if p.awaiting[t] {
			names = append(names, t)
		}
	}
	if len(names) > show {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:show], " "), len(names)-show)
	}
	return strings.Join(names, " ")
}

func (c *Coordinator) abortPending(rd *Ready, reason string) {
	p := c.pending
	c.pending = nil
	c.lastEnd = c.now
	c.stats.Aborted++
	rd.Aborted = append(rd.Aborted, Abort{ID: p.id, Savepoint: p.savepoint, Reason: reason})
}

// endSource marks a source as ended; with the last one, a queued savepoint
// can never be triggered and is aborted (its id is consumed).
func (c *Coordinator) endSource(rd *Ready, ts *taskState) {
	ts.sourceEnded = true
	if c.queued && len(c.liveSources()) == 0 {
		c.queued = false
		c.stats.Aborted++
		rd.Aborted = append(rd.Aborted, Abort{ID: c.nextID, Savepoint: true, Reason: "every source has finished"})
		c.nextID++
	}
}

func (c *Coordinator) maybeComplete(rd *Ready) {
	p := c.pending
	if p.completing || len(p.awaiting) > 0 {
		return
	}
	p.completing = true
	done := &Completed{ID: p.id, Savepoint: p.savepoint, Timestamp: p.timestamp, Acks: p.acks}
	for _, t := range c.cfg.Tasks {
		if !hasKey(p.acks, t) {
			done.Finished = append(done.Finished, t)
		}
	}
	rd.Complete = done
}

func (c *Coordinator) nextPeriodic() time.Time {
	at := c.lastPeriodic.Add(c.cfg.Interval)
	if pause := c.lastEnd.Add(c.cfg.MinPause); pause.After(at) {
		at = pause
	}
	return at
}

// maybeTrigger triggers the queued savepoint, or a due periodic checkpoint,
// when nothing is in flight.
func (c *Coordinator) maybeTrigger(rd *Ready) {
	if c.pending != nil {
		return
	}
	live := c.liveSources()
	if len(live) == 0 {
		return
	}
	savepoint := c.queued
	if !savepoint && (c.cfg.Interval == 0 || c.now.Before(c.nextPeriodic())) {
		return
	}
	if savepoint {
		c.queued = false
	} else {
		c.lastPeriodic = c.now
	}
	p := &pendingCheckpoint{
		id:          c.nextID,
		savepoint:   savepoint,
		timestamp:   c.now.UnixMilli(),
		triggeredAt: c.now,
		awaiting:    make(map[string]bool, len(c.tasks)),
		acks:        make(map[string][]byte, len(c.tasks)),
	}
	c.nextID++
	for name, ts := range c.tasks {
		if !ts.finished && !ts.sourceEnded {
			p.awaiting[name] = true
		}
	}
	c.pending = p
	c.stats.Triggered++
	rd.Trigger = &dataflow.Barrier{ID: p.id, Timestamp: p.timestamp, Savepoint: savepoint}
	rd.Sources = live
}

// liveSources returns the sources where a barrier can still be injected, in
// config order.
func (c *Coordinator) liveSources() []string {
	var live []string
	for _, s := range c.cfg.Sources {
		if !c.tasks[s].sourceEnded {
			live = append(live, s)
		}
	}
	return live
}

func hasKey(m map[string][]byte, k string) bool {
	_, ok := m[k]
	return ok
}
