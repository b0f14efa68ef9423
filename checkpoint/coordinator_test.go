package checkpoint

import (
	"errors"
	"flag"
	"fmt"
	"github.com/statefun-go/statefun/internal/scripttest"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statefun-go/statefun/dataflow"
)

var coordinatorSeed = flag.Uint64("coordinator.seed", 0, "seed of TestCoordinatorModel (0: fixed seeds plus a random one; seeds are always logged)")

// coordEpoch is time zero of the scripts: t=10s is 10s after it, and
// barrier timestamps print relative to it.
var coordEpoch = time.UnixMilli(0).UTC()

// TestCoordinatorScripts runs testdata/coordinator/*.txt. The format (a
// small subset of cockroachdb/datadriven, without the dependency):
//
//	# a comment, kept on rewrite
//	command key=value key=value
//	----
//	expected output, up to a blank line or the end of the file
//
// Every command but new and state takes an optional t=DURATION (time since
// the script's epoch; default: the time of the previous command) and prints
// the Ready it returned, one line per effect in the order the driver
// performs them ("nothing" when empty):
//
//	aborted ID [savepoint]: REASON
//	notify ID
//	complete ID [savepoint] ts=T acks=[TASK:HANDLE ...] [finished=[TASK ...]]
//	trigger ID [savepoint] ts=T at SOURCE...
//
// Commands:
//
//	new tasks=A,B sources=A [interval=D] [timeout=D] [min-pause=D] [first-id=N] [t=D]
//	tick
//	savepoint                     -> "id=N" or "error: ...", then the Ready
//	ack task=X id=N [handle=H]    (default handle: X/N)
//	decline task=X id=N [reason=R]
//	committed id=N
//	commit-failed id=N [reason=R]
//	source-finished task=X
//	task-finished task=X
//	state                         -> in-flight, last completed, next deadline, stats
//
// Run with -rewrite to regenerate the expected output, and review the diff.
func TestCoordinatorScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/coordinator/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/coordinator/*.txt scripts")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s := &coordScript{now: coordEpoch}
			scripttest.Run(t, f, s.run)
		})
	}
}

type coordScript struct {
	c   *Coordinator
	now time.Time
}

func (s *coordScript) run(cmd string, args map[string]string) (string, error) {
	r := &coordArgs{args: args}
	if cmd == "new" {
		cfg := CoordinatorConfig{
			Tasks:    r.list("tasks"),
			Sources:  r.list("sources"),
			Interval: r.dur("interval"),
			Timeout:  r.dur("timeout"),
			MinPause: r.dur("min-pause"),
			FirstID:  dataflow.CheckpointID(r.uint("first-id", false)),
		}
		if r.has("t") {
			s.now = coordEpoch.Add(r.dur("t"))
		}
		if err := r.done(); err != nil {
			return "", err
		}
		c, err := NewCoordinator(cfg, s.now)
		if err != nil {
			return "error: " + strings.ReplaceAll(err.Error(), "\n", "\nerror: "), nil
		}
		s.c = c
		return "ok", nil
	}
	if s.c == nil {
		return "", errors.New("no coordinator: start with new")
	}
	if cmd == "state" {
		if err := r.done(); err != nil {
			return "", err
		}
		return s.state(), nil
	}
	if r.has("t") {
		s.now = coordEpoch.Add(r.dur("t"))
	}
	var rd Ready
	var head string
	switch cmd {
	case "tick":
		if err := r.done(); err != nil {
			return "", err
		}
		rd = s.c.Tick(s.now)
	case "savepoint":
		if err := r.done(); err != nil {
			return "", err
		}
		id, ready, err := s.c.TriggerSavepoint(s.now)
		if err != nil {
			head = "error: " + err.Error()
		} else {
			head = fmt.Sprintf("id=%d", id)
		}
		rd = ready
	case "ack":
		task := r.str("task", true)
		id := dataflow.CheckpointID(r.uint("id", true))
		handle := fmt.Sprintf("%s/%d", task, id)
		if r.has("handle") {
			handle = r.str("handle", true)
		}
		if err := r.done(); err != nil {
			return "", err
		}
		rd = s.c.Ack(task, id, []byte(handle), s.now)
	case "decline":
		task := r.str("task", true)
		id := dataflow.CheckpointID(r.uint("id", true))
		reason := r.str("reason", false)
		if err := r.done(); err != nil {
			return "", err
		}
		rd = s.c.Decline(task, id, reason, s.now)
	case "committed":
		id := dataflow.CheckpointID(r.uint("id", true))
		if err := r.done(); err != nil {
			return "", err
		}
		rd = s.c.Committed(id, s.now)
	case "commit-failed":
		id := dataflow.CheckpointID(r.uint("id", true))
		reason := r.str("reason", false)
		if err := r.done(); err != nil {
			return "", err
		}
		rd = s.c.CommitFailed(id, reason, s.now)
	case "source-finished", "task-finished":
		task := r.str("task", true)
		if err := r.done(); err != nil {
			return "", err
		}
		if cmd == "source-finished" {
			rd = s.c.SourceFinished(task, s.now)
		} else {
			rd = s.c.TaskFinished(task, s.now)
		}
	default:
		return "", fmt.Errorf("unknown command %q", cmd)
	}
	out := narrateReady(rd)
	if head != "" {
		out = head + "\n" + out
	}
	return out, nil
}

func (s *coordScript) state() string {
	var b strings.Builder
	if id, ok := s.c.InFlight(); ok {
		fmt.Fprintf(&b, "in-flight=%d", id)
	} else {
		b.WriteString("in-flight=none")
	}
	fmt.Fprintf(&b, " last-completed=%d", s.c.LastCompleted())
	if at, ok := s.c.NextDeadline(); ok {
		fmt.Fprintf(&b, " next-deadline=%s", at.Sub(coordEpoch))
	} else {
		b.WriteString(" next-deadline=none")
	}
	st := s.c.Stats()
	fmt.Fprintf(&b, "\ntriggered=%d completed=%d aborted=%d late-acks=%d duplicate-acks=%d unknown-acks=%d ignored=%d last-duration=%s",
		st.Triggered, st.Completed, st.Aborted, st.LateAcks, st.DuplicateAcks, st.UnknownAcks, st.IgnoredEvents, st.LastDuration)
	return b.String()
}

func narrateReady(rd Ready) string {
	if rd.Empty() {
		return "nothing"
	}
	sp := func(b bool) string {
		if b {
			return " savepoint"
		}
		return ""
	}
	ts := func(ms int64) time.Duration { return time.UnixMilli(ms).Sub(coordEpoch) }
	var lines []string
	for _, a := range rd.Aborted {
		lines = append(lines, fmt.Sprintf("aborted %d%s: %s", a.ID, sp(a.Savepoint), a.Reason))
	}
	if rd.Notify != nil {
		lines = append(lines, fmt.Sprintf("notify %d", *rd.Notify))
	}
	if c := rd.Complete; c != nil {
		var acks []string
		for task, h := range c.Acks {
			acks = append(acks, task+":"+string(h))
		}
		slices.Sort(acks)
		l := fmt.Sprintf("complete %d%s ts=%s acks=[%s]", c.ID, sp(c.Savepoint), ts(c.Timestamp), strings.Join(acks, " "))
		if len(c.Finished) > 0 {
			l += " finished=[" + strings.Join(c.Finished, " ") + "]"
		}
		lines = append(lines, l)
	}
	if b := rd.Trigger; b != nil {
		lines = append(lines, fmt.Sprintf("trigger %d%s ts=%s at %s", b.ID, sp(b.Savepoint), ts(b.Timestamp), strings.Join(rd.Sources, " ")))
	}
	return strings.Join(lines, "\n")
}

// coordArgs consumes arguments and reports unknown ones.
type coordArgs struct {
	args map[string]string
	err  error
}

func (r *coordArgs) has(k string) bool { _, ok := r.args[k]; return ok }

func (r *coordArgs) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *coordArgs) str(k string, required bool) string {
	v, ok := r.args[k]
	if !ok && required {
		r.fail(fmt.Errorf("missing argument %q", k))
	}
	delete(r.args, k)
	return v
}

func (r *coordArgs) uint(k string, required bool) uint64 {
	s := r.str(k, required)
	if s == "" {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		r.fail(fmt.Errorf("argument %s: %v", k, err))
	}
	return n
}

func (r *coordArgs) dur(k string) time.Duration {
	s := r.str(k, false)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		r.fail(fmt.Errorf("argument %s: %v", k, err))
	}
	return d
}

func (r *coordArgs) list(k string) []string {
	s := r.str(k, false)
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func (r *coordArgs) done() error {
	if r.err != nil {
		return r.err
	}
	for k := range r.args {
		return fmt.Errorf("unknown argument %q", k)
	}
	return nil
}

// TestCoordinatorModel drives coordinators with random event sequences (a
// driver that sometimes misbehaves: acks from unknown tasks, for wrong ids,
// twice; spurious commits; time going backwards) and checks every Ready
// against a naive model of the contract:
//   - at most one checkpoint in flight; Complete, Notify and Abort only for
//     it (or for the queued savepoint);
//   - trigger ids strictly increase without gaps, an aborted id is never
//     reused;
//   - every triggered or promised id ends exactly once, Notify only in
//     Committed after exactly one Complete;
//   - Complete carries exactly the accepted acks, and comes as soon as no
//     awaited task is left; timeouts, savepoint precedence, Interval and
//     MinPause; NextDeadline; Stats.
func TestCoordinatorModel(t *testing.T) {
	var seeds []uint64
	if *coordinatorSeed != 0 {
		seeds = []uint64{*coordinatorSeed}
	} else {
		for s := uint64(1); s <= 200; s++ {
			seeds = append(seeds, s)
		}
		seeds = append(seeds, rand.Uint64())
	}
	t.Logf("seeds %d..%d and %d (a failure names its seed; rerun with -coordinator.seed=N)", seeds[0], seeds[min(len(seeds)-1, 199)], seeds[len(seeds)-1])
	var total coordModelTotals
	for _, seed := range seeds {
		runCoordModel(t, seed, 600, &total)
		if t.Failed() {
			return
		}
	}
	t.Logf("%+v", total)
	if len(seeds) > 1 {
		// Guard the generator: every outcome must have been exercised.
		for name, n := range map[string]int{
			"triggers": total.triggers, "savepoints": total.savepoints, "notifies": total.notifies,
			"timeouts": total.timeouts, "declines": total.declines, "commit failures": total.commitFailures,
			"queued savepoint aborts": total.queuedAborts, "runs ending all sources": total.allSourcesEnded,
		} {
			if n == 0 {
				t.Errorf("no %s over all seeds", name)
			}
		}
	}
}

// coordModelTotals counts outcomes over all runs, to show the generator reaches
// every path.
type coordModelTotals struct {
	triggers, savepoints, notifies     int
	timeouts, declines, commitFailures int
	queuedAborts, allSourcesEnded      int
}

type coordModel struct {
	t    *testing.T
	seed uint64
	step int
	rng  *rand.Rand
	cfg  CoordinatorConfig
	c    *Coordinator
	now  time.Time // the driver's clock
	seen time.Time // the latest time given to the coordinator

	// Mirror of the contract.
	nextID       dataflow.CheckpointID
	sourceEnded  map[string]bool
	finished     map[string]bool
	inflight     *coordModelCheckpoint
	queued       bool // a savepoint was promised and not triggered yet
	queuedID     dataflow.CheckpointID
	lastPeriodic time.Time
	lastEnd      time.Time
	ended        map[dataflow.CheckpointID]string // "notified" or "aborted"
	promised     []dataflow.CheckpointID          // ids returned by TriggerSavepoint
	triggered    []dataflow.CheckpointID
	stats        CoordinatorStats // counts the model expects
	reasons      []string         // of every abort
}

type coordModelCheckpoint struct {
	id          dataflow.CheckpointID
	savepoint   bool
	triggeredAt time.Time
	awaiting    map[string]bool
	acks        map[string][]byte
	complete    bool
}

func (m *coordModel) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("seed %d step %d: %s", m.seed, m.step, fmt.Sprintf(format, args...))
}

func runCoordModel(t *testing.T, seed uint64, steps int, total *coordModelTotals) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	m := &coordModel{t: t, seed: seed, rng: rng, now: coordEpoch, seen: coordEpoch,
		sourceEnded: map[string]bool{}, finished: map[string]bool{}, ended: map[dataflow.CheckpointID]string{}}

	nSources := 1 + rng.IntN(3)
	nTasks := nSources + rng.IntN(5)
	for i := range nSources {
		m.cfg.Sources = append(m.cfg.Sources, fmt.Sprintf("src-%d", i))
	}
	m.cfg.Tasks = slices.Clone(m.cfg.Sources)
	for i := range nTasks - nSources {
		m.cfg.Tasks = append(m.cfg.Tasks, fmt.Sprintf("fn-%d", i))
	}
	rng.Shuffle(len(m.cfg.Tasks), func(i, j int) { m.cfg.Tasks[i], m.cfg.Tasks[j] = m.cfg.Tasks[j], m.cfg.Tasks[i] })
	if rng.IntN(5) > 0 {
		m.cfg.Interval = time.Duration(1+rng.IntN(20)) * time.Second
	}
	if rng.IntN(4) > 0 {
		m.cfg.Timeout = time.Duration(3+rng.IntN(40)) * time.Second
	}
	if rng.IntN(2) == 0 {
		m.cfg.MinPause = time.Duration(rng.IntN(10)) * time.Second
	}
	if rng.IntN(2) == 0 {
		m.cfg.FirstID = dataflow.CheckpointID(1 + rng.IntN(1000))
	}
	c, err := NewCoordinator(m.cfg, m.now)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	m.c = c
	m.cfg.EnsureDefaults()
	m.nextID = m.cfg.FirstID
	m.lastPeriodic, m.lastEnd = m.now, m.now

	for m.step = 0; m.step < steps; m.step++ {
		m.randomEvent()
	}
	m.drain()
	m.final()
	for _, id := range m.triggered {
		total.triggers++
		if slices.Contains(m.promised, id) {
			total.savepoints++
		}
	}
	for _, r := range m.reasons {
		switch {
		case strings.HasPrefix(r, "timeout"):
			total.timeouts++
		case strings.HasPrefix(r, "declined"):
			total.declines++
		case strings.HasPrefix(r, "commit failed"):
			total.commitFailures++
		case strings.HasPrefix(r, "every source"):
			total.queuedAborts++
		}
	}
	total.notifies += int(m.stats.Completed)
	if len(m.liveSources()) == 0 {
		total.allSourcesEnded++
	}
}

// at returns the time of the next call: usually later, sometimes the same,
// rarely earlier (a misbehaving driver; the coordinator keeps the latest).
func (m *coordModel) at() time.Time {
	switch n := m.rng.IntN(20); {
	case n == 0:
		return m.now.Add(-time.Second)
	case n < 6:
		return m.now
	case n < 12:
		// Whole seconds, like the configured durations, to hit boundaries.
		m.now = m.now.Add(time.Duration(1+m.rng.IntN(3)) * time.Second)
		return m.now
	default:
		m.now = m.now.Add(time.Duration(m.rng.IntN(3000)) * time.Millisecond)
		return m.now
	}
}

func (m *coordModel) randomTask() string {
	if m.rng.IntN(30) == 0 {
		return "ghost"
	}
	return m.cfg.Tasks[m.rng.IntN(len(m.cfg.Tasks))]
}

func (m *coordModel) randomID() dataflow.CheckpointID {
	if m.inflight != nil && m.rng.IntN(4) > 0 {
		return m.inflight.id
	}
	lo := m.cfg.FirstID
	if lo > 1 {
		lo--
	}
	return lo + dataflow.CheckpointID(m.rng.IntN(int(m.nextID-lo)+2))
}

func (m *coordModel) liveSources() []string {
	var live []string
	for _, s := range m.cfg.Sources {
		if !m.sourceEnded[s] {
			live = append(live, s)
		}
	}
	return live
}

func (m *coordModel) randomEvent() {
	switch n := m.rng.IntN(1000); {
	case n < 250:
		m.tick(m.at())
	case n < 650:
		task, id := m.randomTask(), m.randomID()
		if m.inflight != nil && !m.inflight.complete && m.rng.IntN(2) == 0 {
			// Prefer a task that is still awaited, so checkpoints complete.
			for _, t := range m.cfg.Tasks {
				if m.inflight.awaiting[t] {
					task, id = t, m.inflight.id
					break
				}
			}
		}
		m.ack(task, id, m.at())
	case n < 680:
		task, id := m.randomTask(), m.randomID()
		now := m.at()
		eff := m.observe(now)
		rd := m.c.Decline(task, id, "boom", now)
		declined := false
		if p := m.inflight; p != nil && !p.complete && p.id == id && task != "ghost" {
			declined = true
		}
		m.check("decline", rd, eff, func(a Abort) bool { return declined && a.ID == id })
	case n < 740:
		m.savepoint(m.at())
	case n < 920:
		// The driver reports the commit outcome of a complete checkpoint,
		// sometimes for a wrong id.
		id := m.randomID()
		if m.inflight != nil && m.inflight.complete && m.rng.IntN(4) > 0 {
			id = m.inflight.id
		}
		now := m.at()
		if m.rng.IntN(6) == 0 {
			eff := m.observe(now)
			rd := m.c.CommitFailed(id, "disk full", now)
			ok := m.inflight != nil && m.inflight.complete && m.inflight.id == id
			m.check("commit-failed", rd, eff, func(a Abort) bool { return ok && a.ID == id })
		} else {
			m.committed(id, now)
		}
	case n < 924:
		m.sourceFinished(m.cfg.Sources[m.rng.IntN(len(m.cfg.Sources))], m.at())
	case n < 928:
		m.taskFinished(m.randomTask(), m.at())
	default:
		// Late or random acks.
		m.ack(m.randomTask(), m.randomID(), m.at())
	}
}

// observe returns the time the coordinator acts at for a call at now: the
// latest time seen so far.
func (m *coordModel) observe(now time.Time) time.Time {
	if now.After(m.seen) {
		m.seen = now
	}
	return m.seen
}

func (m *coordModel) tick(now time.Time) {
	at, ok := m.c.NextDeadline()
	eff := m.observe(now)
	rd := m.c.Tick(now)
	if due := ok && !eff.Before(at); due == rd.Empty() {
		m.fatalf("tick at %s: NextDeadline (%s, %v) but Ready %q", eff.Sub(coordEpoch), at.Sub(coordEpoch), ok, narrateReady(rd))
	}
	m.check("tick", rd, eff, nil)
}

func (m *coordModel) ack(task string, id dataflow.CheckpointID, now time.Time) {
	handle := []byte(fmt.Sprintf("%s@%d#%d", task, id, m.step))
	eff := m.observe(now)
	rd := m.c.Ack(task, id, handle, now)
	// The model applies the ack unless the checkpoint timed out first.
	if p := m.inflight; p != nil && !p.complete && p.id == id && p.awaiting[task] &&
		eff.Before(p.triggeredAt.Add(m.cfg.Timeout)) {
		delete(p.awaiting, task)
		p.acks[task] = handle
	}
	m.check("ack", rd, eff, nil)
}

func (m *coordModel) savepoint(now time.Time) {
	live := len(m.liveSources()) > 0
	id, rd, err := m.c.TriggerSavepoint(now)
	if !live {
		if !errors.Is(err, ErrNoLiveSource) || !rd.Empty() {
			m.fatalf("savepoint without live source: %v, %q", err, narrateReady(rd))
		}
		return
	}
	if err != nil {
		m.fatalf("savepoint: %v", err)
	}
	if id != m.nextID {
		m.fatalf("savepoint got id %d, want %d", id, m.nextID)
	}
	if !m.queued {
		m.queued, m.queuedID = true, id
		m.promised = append(m.promised, id)
	}
	m.check("savepoint", rd, m.observe(now), nil)
}

func (m *coordModel) committed(id dataflow.CheckpointID, now time.Time) {
	eff := m.observe(now)
	rd := m.c.Committed(id, now)
	ok := m.inflight != nil && m.inflight.complete && m.inflight.id == id
	if ok != (rd.Notify != nil) {
		m.fatalf("committed(%d) with in-flight %+v: Ready %q", id, m.inflight, narrateReady(rd))
	}
	m.check("committed", rd, eff, nil)
}

func (m *coordModel) sourceFinished(task string, now time.Time) {
	m.sourceEnded[task] = true
	eff := m.observe(now)
	rd := m.c.SourceFinished(task, now)
	m.check("source-finished", rd, eff, func(a Abort) bool { return m.queued && a.ID == m.queuedID && len(m.liveSources()) == 0 })
}

func (m *coordModel) taskFinished(task string, now time.Time) {
	eff := m.observe(now)
	rd := m.c.TaskFinished(task, now)
	if task != "ghost" {
		m.finished[task] = true
		if slices.Contains(m.cfg.Sources, task) {
			m.sourceEnded[task] = true
		}
		if p := m.inflight; p != nil && !p.complete && eff.Before(p.triggeredAt.Add(m.cfg.Timeout)) {
			delete(p.awaiting, task)
		}
	}
	m.check("task-finished", rd, eff, func(a Abort) bool { return m.queued && a.ID == m.queuedID && len(m.liveSources()) == 0 })
}

// check validates rd, the Ready of a call the coordinator handled at now
// (see observe), and advances the model. mayAbort says whether the event
// itself (not a timeout) may abort a given checkpoint.
func (m *coordModel) check(event string, rd Ready, now time.Time, mayAbort func(Abort) bool) {
	m.t.Helper()
	desc := func() string { return event + " -> " + strings.ReplaceAll(narrateReady(rd), "\n", " | ") }
	end := func(id dataflow.CheckpointID, how string) {
		if prev, ok := m.ended[id]; ok {
			m.fatalf("%s: id %d ended twice (%s, then %s)", desc(), id, prev, how)
		}
		m.ended[id] = how
	}
	for _, a := range rd.Aborted {
		p := m.inflight
		switch {
		case p != nil && a.ID == p.id:
			timedOut := !p.complete && !now.Before(p.triggeredAt.Add(m.cfg.Timeout))
			if !timedOut && (mayAbort == nil || !mayAbort(a)) {
				m.fatalf("%s: unexpected abort of in-flight %d", desc(), a.ID)
			}
			if a.Savepoint != p.savepoint {
				m.fatalf("%s: abort savepoint flag %v", desc(), a.Savepoint)
			}
			m.inflight = nil
			m.lastEnd = now
		case m.queued && a.ID == m.queuedID:
			if mayAbort == nil || !mayAbort(a) || !a.Savepoint {
				m.fatalf("%s: unexpected abort of queued savepoint %d", desc(), a.ID)
			}
			m.queued = false
			m.nextID++
		default:
			m.fatalf("%s: abort of %d, neither in flight nor queued", desc(), a.ID)
		}
		end(a.ID, "aborted")
		m.stats.Aborted++
		m.reasons = append(m.reasons, a.Reason)
	}
	if p := m.inflight; p != nil && !p.complete && !now.Before(p.triggeredAt.Add(m.cfg.Timeout)) {
		m.fatalf("%s: in-flight %d not aborted after its timeout", desc(), p.id)
	}
	if rd.Notify != nil {
		p := m.inflight
		if event != "committed" || p == nil || !p.complete || p.id != *rd.Notify {
			m.fatalf("%s: notify without a matching Committed", desc())
		}
		end(p.id, "notified")
		m.inflight = nil
		m.lastEnd = now
		m.stats.Completed++
	}
	if c := rd.Complete; c != nil {
		p := m.inflight
		if p == nil || p.complete || p.id != c.ID {
			m.fatalf("%s: complete of %d, in flight %+v", desc(), c.ID, p)
		}
		if len(p.awaiting) > 0 {
			m.fatalf("%s: complete while awaiting %v", desc(), p.awaiting)
		}
		if len(c.Acks) != len(p.acks) {
			m.fatalf("%s: acks %v, want %v", desc(), c.Acks, p.acks)
		}
		for task, h := range p.acks {
			if string(c.Acks[task]) != string(h) {
				m.fatalf("%s: ack of %s is %q, want %q", desc(), task, c.Acks[task], h)
			}
		}
		for _, f := range c.Finished {
			if _, ok := c.Acks[f]; ok {
				m.fatalf("%s: %s both acked and finished", desc(), f)
			}
		}
		if len(c.Finished)+len(c.Acks) != len(m.cfg.Tasks) || c.Savepoint != p.savepoint || c.Timestamp != p.triggeredAt.UnixMilli() {
			m.fatalf("%s: complete %+v", desc(), c)
		}
		p.complete = true
	} else if p := m.inflight; p != nil && !p.complete && len(p.awaiting) == 0 {
		m.fatalf("%s: nothing awaited for %d, but no complete", desc(), p.id)
	}
	live := m.liveSources()
	if b := rd.Trigger; b != nil {
		if m.inflight != nil {
			m.fatalf("%s: trigger %d while %d in flight", desc(), b.ID, m.inflight.id)
		}
		if b.ID != m.nextID {
			m.fatalf("%s: trigger id %d, want %d", desc(), b.ID, m.nextID)
		}
		if !slices.Equal(rd.Sources, live) || len(live) == 0 {
			m.fatalf("%s: trigger at %v, live sources %v", desc(), rd.Sources, live)
		}
		if b.Timestamp != now.UnixMilli() {
			m.fatalf("%s: barrier timestamp %d, now %d", desc(), b.Timestamp, now.UnixMilli())
		}
		if b.Savepoint {
			if !m.queued || m.queuedID != b.ID {
				m.fatalf("%s: savepoint %d was not requested", desc(), b.ID)
			}
			m.queued = false
		} else {
			if m.queued {
				m.fatalf("%s: periodic trigger before the requested savepoint", desc())
			}
			if m.cfg.Interval == 0 || now.Before(m.lastPeriodic.Add(m.cfg.Interval)) || now.Before(m.lastEnd.Add(m.cfg.MinPause)) {
				m.fatalf("%s: periodic trigger too early (last periodic %s, last end %s)", desc(), m.lastPeriodic.Sub(coordEpoch), m.lastEnd.Sub(coordEpoch))
			}
			m.lastPeriodic = now
		}
		p := &coordModelCheckpoint{id: b.ID, savepoint: b.Savepoint, triggeredAt: now, awaiting: map[string]bool{}, acks: map[string][]byte{}}
		for _, t := range m.cfg.Tasks {
			if !m.finished[t] && !m.sourceEnded[t] {
				p.awaiting[t] = true
			}
		}
		m.inflight = p
		m.triggered = append(m.triggered, b.ID)
		m.nextID++
		m.stats.Triggered++
	}
	// Liveness: whatever is due has happened.
	if m.inflight == nil && len(live) > 0 {
		if m.queued {
			m.fatalf("%s: savepoint %d queued while idle", desc(), m.queuedID)
		}
		if m.cfg.Interval > 0 && !now.Before(m.lastPeriodic.Add(m.cfg.Interval)) && !now.Before(m.lastEnd.Add(m.cfg.MinPause)) {
			m.fatalf("%s: periodic checkpoint due but not triggered", desc())
		}
	}
	if m.queued && len(live) == 0 {
		m.fatalf("%s: savepoint %d queued without live source", desc(), m.queuedID)
	}
	// The coordinator's view agrees.
	id, ok := m.c.InFlight()
	if ok != (m.inflight != nil) || (ok && id != m.inflight.id) {
		m.fatalf("%s: InFlight() = %d, %v; model %+v", desc(), id, ok, m.inflight)
	}
	st := m.c.Stats()
	if st.Triggered != m.stats.Triggered || st.Completed != m.stats.Completed || st.Aborted != m.stats.Aborted {
		m.fatalf("%s: stats %+v, model %+v", desc(), st, m.stats)
	}
}

// drain finishes the run like a well-behaved driver: every awaited task
// acks, every complete checkpoint commits, until nothing is in flight.
func (m *coordModel) drain() {
	for range 10 {
		p := m.inflight
		if p == nil {
			if m.queued {
				m.fatalf("drain: queued savepoint %d while idle", m.queuedID)
			}
			return
		}
		m.step++
		if !p.complete {
			for _, t := range m.cfg.Tasks {
				if p.awaiting[t] {
					m.ack(t, p.id, m.now)
				}
			}
			if m.inflight == p && !p.complete {
				m.fatalf("drain: %d not complete after every ack", p.id)
			}
		}
		if m.inflight == p {
			m.committed(p.id, m.now)
		}
	}
	m.fatalf("drain: still in flight after 10 rounds")
}

func (m *coordModel) final() {
	for _, id := range append(slices.Clone(m.triggered), m.promised...) {
		if _, ok := m.ended[id]; !ok {
			m.fatalf("final: id %d never ended", id)
		}
	}
	for id := range m.ended {
		if !slices.Contains(m.triggered, id) && !slices.Contains(m.promised, id) {
			m.fatalf("final: id %d ended but was never triggered nor promised", id)
		}
	}
	if !slices.IsSorted(m.triggered) {
		m.fatalf("final: trigger ids not increasing: %v", m.triggered)
	}
	var last dataflow.CheckpointID
	for _, id := range m.triggered {
		if m.ended[id] == "notified" {
			last = id
		}
	}
	if m.c.LastCompleted() != last {
		m.fatalf("final: LastCompleted %d, want %d", m.c.LastCompleted(), last)
	}
}

func TestCoordinatorConfigValidate(t *testing.T) {
	_, err := NewCoordinator(CoordinatorConfig{
		Interval: -time.Second,
		Timeout:  -1,
		MinPause: -1,
		Tasks:    []string{"a", "a", ""},
		Sources:  []string{"x", "x"},
		FirstID:  1 << 63,
	}, coordEpoch)
	want := []string{
		"negative interval -1s",
		"timeout -1ns is not positive",
		"negative min pause -1ns",
		"first id 9223372036854775808 out of range",
		`task "a" listed twice`,
		"empty task name",
		`source "x" is not a task`,
		`source "x" listed twice`,
	}
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	cfg := CoordinatorConfig{Tasks: []string{"a"}, Sources: []string{"a"}}
	cfg.EnsureDefaults()
	if cfg.Timeout != DefaultTimeout || cfg.FirstID != 1 {
		t.Errorf("defaults: %+v", cfg)
	}
	// NewCoordinator copies the slices it is given.
	tasks := []string{"a", "b"}
	c, err := NewCoordinator(CoordinatorConfig{Tasks: tasks, Sources: tasks[:1]}, coordEpoch)
	if err != nil {
		t.Fatal(err)
	}
	tasks[0] = "z"
	if rd := c.Tick(coordEpoch); !rd.Empty() {
		t.Fatalf("tick: %s", narrateReady(rd))
	}
	if _, rd, err := c.TriggerSavepoint(coordEpoch); err != nil || rd.Trigger == nil || !slices.Equal(rd.Sources, []string{"a"}) {
		t.Fatalf("savepoint: %v %s", err, narrateReady(rd))
	}
}
