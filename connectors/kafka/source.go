package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/metrics"
)

// Startup position types (StartupPosition.Type), as in module.yaml.
const (
	StartEarliest        = "earliest"
	StartLatest          = "latest"
	StartGroupOffsets    = "group-offsets"
	StartSpecificOffsets = "specific-offsets"
	StartDate            = "date"
)

// Source tuning.
const (
	// BufferedPolls is the bound of the hand-over queue between the
	// polling goroutine and Read, in polls of at most max.poll.records
	// records each (default 500): at most BufferedPolls*max.poll.records
	// records wait for Read, plus the batch Read is draining. Beyond
	// that the poller blocks, and franz-go stops fetching once its own
	// buffer (one fetch response per broker, bounded by fetch.max.bytes)
	// is full: that is the source's backpressure.
	BufferedPolls = 4
	// DefaultOpenTimeout bounds the metadata and offset look-ups of Open.
	DefaultOpenTimeout = 30 * time.Second
	// idleWait is Read's wait hint when nothing is buffered; the poller
	// wakes the subtask as soon as records arrive, so it only bounds a
	// missed wake-up.
	idleWait = 100 * time.Millisecond
	// unassignedWait is the wait hint of a subtask that owns no
	// partition.
	unassignedWait = time.Second
)

// StartupPosition is where a source starts when it is not restored.
type StartupPosition struct {
	// Type is one of the Start* constants; empty means latest.
	Type string
	// Offsets is the position of specific-offsets. A partition that is
	// not listed starts from the group's committed offset, or, without
	// one, from auto.offset.reset (as Flink's Kafka consumer).
	Offsets Offsets
	// Date is the position of date: the first record whose timestamp is
	// at or after it.
	Date time.Time
}

// SourceConfig configures a Kafka ingress.
type SourceConfig struct {
	// ID names the ingress (namespace/name) in errors, logs and client
	// ids.
	ID string
	// Topics are the topics to read; every one must exist.
	Topics []string
	// Properties is the effective Kafka consumer configuration (Java
	// client keys). bootstrap.servers is required; group.id is needed for
	// group-offsets and enables committing the checkpointed offsets to
	// the group (for monitoring only); auto.offset.reset (earliest or
	// latest, default latest) is the fallback of out-of-range positions.
	Properties map[string]string
	Startup    StartupPosition
	// OpenTimeout bounds Open's look-ups (default DefaultOpenTimeout).
	OpenTimeout time.Duration
	// Opts are extra franz-go options for every client (tests, dialers).
	Opts []kgo.Opt
}

// Validate reports every configuration problem at once.
func (c *SourceConfig) Validate() error {
	var errs []error
	cc, err := parseConsumer(c.Properties)
	if err != nil {
		errs = append(errs, err)
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("no topic to read"))
	}
	switch c.Startup.Type {
	case "", StartEarliest, StartLatest, StartDate:
	case StartGroupOffsets:
		if cc != nil && cc.groupID == "" {
			errs = append(errs, errors.New("startup position group-offsets needs a consumer group id (consumerGroupId or group.id)"))
		}
	case StartSpecificOffsets:
		if len(c.Startup.Offsets) == 0 {
			errs = append(errs, errors.New("startup position specific-offsets needs offsets"))
		}
		for t := range c.Startup.Offsets {
			if !slices.Contains(c.Topics, t) {
				errs = append(errs, fmt.Errorf("startup position specific-offsets names topic %q, which the ingress does not read", t))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("unknown startup position %q", c.Startup.Type))
	}
	return errors.Join(errs...)
}

// Source is the connector of one Kafka ingress subtask.
//
// Partitions are assigned by the engine, not by a consumer group: at Open
// the subtask lists the partitions of its topics and takes partition p of
// every topic when p mod parallelism equals its subtask index. Partitions
// added to a topic later are not picked up until the job restarts.
//
// A goroutine owned by the Source polls franz-go into a bounded queue
// (BufferedPolls); Read only drains that queue, so it never blocks. The
// position is the next offset of every assigned partition, concrete from
// Open on (the startup position is resolved to offsets there), so a
// checkpoint taken before the first record still pins where a restore
// resumes.
//
// Offsets are committed to the consumer group (when group.id is set) only
// after a checkpoint completed, and only for monitoring: a restore always
// resumes from the checkpointed position.
type Source struct {
	cfg SourceConfig
	cc  *clientConfig

	ctx dataflow.Context
	log *slog.Logger

	// restored is the position handed over by RestorePosition, or nil.
	restored Offsets
	// next is the next offset of every assigned partition, after the
	// records returned by Read. Owned by the subtask goroutine.
	next   Offsets
	lastT  string
	lastPs map[int32]int64
	// snaps are the positions taken at barriers not yet known complete,
	// oldest first (at most maxSnaps).
	snaps []snapAt

	cl         *kgo.Client // nil when no partition is assigned
	unassigned bool

	// poller hand-over.
	pollCancel context.CancelFunc
	pollDone   chan struct{}
	batches    chan []*kgo.Record // bounded: BufferedPolls
	cur        []*kgo.Record      // the batch Read is draining
	idle       atomic.Bool        // Read found nothing: the poller must wake the subtask
	fatal      atomic.Pointer[error]

	// group commits (monitoring only), by a goroutine.
	commit struct {
		sync.Mutex
		pending Offsets // latest completed position not committed yet
	}
	commitSig  chan struct{} // capacity 1
	commitDone chan struct{}
	lastWarn   time.Time // poller-owned
}

type snapAt struct {
	id   dataflow.CheckpointID // 0: unknown (Position without an id)
	offs Offsets
}

const maxSnaps = 8

// NewSource returns the source of one subtask. The configuration is
// checked again at Open.
func NewSource(cfg SourceConfig) *Source {
	return &Source{cfg: cfg}
}

// RestorePosition implements connectors.Checkpointed; called before Open.
func (s *Source) RestorePosition(pos []byte) error {
	o, err := decodeOffsets(pos)
	if err != nil {
		return fmt.Errorf("kafka ingress %s: %w", s.cfg.ID, err)
	}
	s.restored = o
	return nil
}

// Open implements connectors.Source: it checks the configuration and the
// topics, assigns partitions, resolves the start offsets and starts
// polling.
func (s *Source) Open(ctx dataflow.Context) error {
	s.ctx = ctx
	s.log = ctx.Logger().With("ingress", s.cfg.ID)
	s.next = Offsets{}
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	cc, err := parseConsumer(s.cfg.Properties)
	if err != nil {
		return err
	}
	s.cc = cc
	for _, k := range cc.ignored {
		s.log.Debug("kafka consumer property has no effect here", "key", k, "why", ignoredKeys[k])
	}
	opts, err := cc.clientOpts(clientID(s.cfg.ID, "in", ctx.SubtaskIndex()), s.log)
	if err != nil {
		return err
	}
	opts = append(opts, s.cfg.Opts...)
	timeout := s.cfg.OpenTimeout
	if timeout <= 0 {
		timeout = DefaultOpenTimeout
	}
	octx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	lookup, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer lookup.Close()
	adm := kadm.NewClient(lookup)
	assigned, err := s.assign(octx, adm, ctx.SubtaskIndex(), ctx.Parallelism())
	if err != nil {
		return err
	}
	if len(assigned) == 0 {
		s.unassigned = true
		s.log.Info("kafka ingress subtask owns no partition (more subtasks than partitions)", "topics", s.cfg.Topics)
		return nil
	}
	start, err := s.startOffsets(octx, adm, assigned)
	if err != nil {
		return err
	}
	s.next = start
	consume := map[string]map[int32]kgo.Offset{}
	for t, ps := range start {
		consume[t] = map[int32]kgo.Offset{}
		for p, o := range ps {
			consume[t][p] = kgo.NewOffset().At(o)
		}
	}
	reset := kgo.NewOffset().AtEnd()
	if cc.reset == StartEarliest {
		reset = kgo.NewOffset().AtStart()
	}
	opts = append(opts, kgo.ConsumePartitions(consume), kgo.ConsumeResetOffset(reset))
	if s.cl, err = kgo.NewClient(opts...); err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	s.log.Info("kafka ingress subtask starts", "partitions", describe(start), "restored", s.restored != nil)

	pctx, pcancel := context.WithCancel(context.Background())
	s.pollCancel, s.pollDone = pcancel, make(chan struct{})
	s.batches = make(chan []*kgo.Record, BufferedPolls)
	go s.poll(pctx)
	if cc.groupID != "" {
		s.commitSig, s.commitDone = make(chan struct{}, 1), make(chan struct{})
		go s.commitLoop(pctx)
	}
	return nil
}

// assign lists the topics and returns this subtask's partitions.
func (s *Source) assign(ctx context.Context, adm *kadm.Client, subtask, parallelism int) (map[string][]int32, error) {
	tds, err := adm.ListTopics(ctx, s.cfg.Topics...)
	if err != nil {
		return nil, fmt.Errorf("cannot list the topics %v at %v: %w", s.cfg.Topics, s.cc.seeds, err)
	}
	var errs []error
	assigned := map[string][]int32{}
	for _, t := range s.cfg.Topics {
		td, ok := tds[t]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			errs = append(errs, fmt.Errorf("topic %q does not exist", t))
			continue
		case td.Err != nil:
			errs = append(errs, fmt.Errorf("topic %q: %w", t, td.Err))
			continue
		}
		for _, p := range td.Partitions.Numbers() {
			if int(p)%parallelism == subtask {
				assigned[t] = append(assigned[t], p)
			}
		}
	}
	return assigned, errors.Join(errs...)
}

// startOffsets resolves where every assigned partition starts: the
// restored position, else the startup position; a position outside the
// partition's log falls back to auto.offset.reset.
func (s *Source) startOffsets(ctx context.Context, adm *kadm.Client, assigned map[string][]int32) (Offsets, error) {
	topics := slices.Sorted(maps.Keys(assigned))
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	bounds := func(t string, p int32) (lo, hi int64) {
		l, _ := starts.Lookup(t, p)
		h, _ := ends.Lookup(t, p)
		return l.Offset, h.Offset
	}
	reset := func(t string, p int32) int64 {
		lo, hi := bounds(t, p)
		if s.cc.reset == StartEarliest {
			return lo
		}
		return hi
	}
	// orReset keeps o when it lies in the log, else falls back.
	orReset := func(t string, p int32, o int64, what string) int64 {
		lo, hi := bounds(t, p)
		if o >= lo && o <= hi {
			return o
		}
		r := reset(t, p)
		s.log.Warn("kafka ingress: start offset out of range, falling back to auto.offset.reset",
			"topic", t, "partition", p, "from", what, "offset", o, "log-start", lo, "log-end", hi, "auto.offset.reset", s.cc.reset, "start", r)
		return r
	}
	out := Offsets{}
	if s.restored != nil {
		for t, ps := range assigned {
			for _, p := range ps {
				o, ok := s.restored.lookup(t, p)
				lo, hi := bounds(t, p)
				switch {
				case !ok:
					// A partition created after the checkpoint: read it
					// all (it can only hold records newer than the
					// checkpoint).
					s.log.Info("kafka ingress: partition not in the restored position, reading it from its start", "topic", t, "partition", p)
					o = lo
				case o < lo:
					s.log.Warn("kafka ingress: records after the restored position were deleted (retention) before being read",
						"topic", t, "partition", p, "restored", o, "log-start", lo)
					o = lo
				case o > hi:
					o = orReset(t, p, o, "checkpoint")
				}
				out.set(t, p, o)
			}
		}
		return out, nil
	}
	var group kadm.OffsetResponses
	fetchGroup := func() error {
		if group != nil || s.cc.groupID == "" {
			return nil
		}
		r, err := adm.FetchOffsetsForTopics(ctx, s.cc.groupID, topics...)
		if err == nil {
			err = r.Error()
		}
		if errors.Is(err, kerr.GroupIDNotFound) {
			// A group that never committed has no offsets (Kafka answers
			// with none, some brokers with this error): fall back.
			group = kadm.OffsetResponses{}
			return nil
		}
		if err != nil {
			return fmt.Errorf("fetch the committed offsets of group %q: %w", s.cc.groupID, err)
		}
		group = r
		return nil
	}
	groupOffset := func(t string, p int32) (int64, bool) {
		r, ok := group.Lookup(t, p)
		if !ok || r.Err != nil || r.At < 0 {
			return 0, false
		}
		return r.At, true
	}
	var byDate kadm.ListedOffsets
	switch s.cfg.Startup.Type {
	case StartGroupOffsets:
		if err := fetchGroup(); err != nil {
			return nil, err
		}
	case StartSpecificOffsets:
		if err := fetchGroup(); err != nil {
			return nil, err
		}
	case StartDate:
		byDate, err = adm.ListOffsetsAfterMilli(ctx, s.cfg.Startup.Date.UnixMilli(), topics...)
		if err == nil {
			err = byDate.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("list offsets by date %s: %w", s.cfg.Startup.Date, err)
		}
	}
	for t, ps := range assigned {
		for _, p := range ps {
			lo, hi := bounds(t, p)
			var o int64
			switch s.cfg.Startup.Type {
			case StartEarliest:
				o = lo
			case StartLatest, "":
				o = hi
			case StartGroupOffsets:
				if g, ok := groupOffset(t, p); ok {
					o = orReset(t, p, g, "group offset")
				} else {
					o = reset(t, p)
				}
			case StartSpecificOffsets:
				if so, ok := s.cfg.Startup.Offsets.lookup(t, p); ok {
					o = orReset(t, p, so, "specific offset")
				} else if g, ok := groupOffset(t, p); ok {
					o = orReset(t, p, g, "group offset")
				} else {
					o = reset(t, p)
				}
			case StartDate:
				if l, ok := byDate.Lookup(t, p); ok && l.Err == nil && l.Offset >= 0 && l.Timestamp >= 0 {
					o = l.Offset
				} else {
					o = orReset(t, p, -1, "date")
				}
			}
			out.set(t, p, o)
		}
	}
	return out, nil
}

// poll runs in its own goroutine until ctx is cancelled or a fatal error.
func (s *Source) poll(ctx context.Context) {
	defer close(s.pollDone)
	for {
		fs := s.cl.PollRecords(ctx, s.cc.maxPoll)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		var fatal error
		fs.EachError(func(t string, p int32, err error) {
			switch {
			case errors.Is(err, context.Canceled):
			case kerr.IsRetriable(err), errors.As(err, new(*kgo.ErrDataLoss)):
				if time.Since(s.lastWarn) > time.Second {
					s.lastWarn = time.Now()
					s.log.Warn("kafka ingress: fetch error (the client retries)", "topic", t, "partition", p, "err", err)
				}
			default:
				if fatal == nil {
					fatal = fmt.Errorf("kafka ingress %s: topic %s partition %d: %w", s.cfg.ID, t, p, err)
				}
			}
		})
		if fatal != nil {
			s.fatal.Store(&fatal)
			s.ctx.Post(nil)
			return
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				lag := p.HighWatermark - (p.Records[n-1].Offset + 1)
				metrics.KafkaIngressLag.WithLabelValues(s.cfg.ID, p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(lag, 0)))
			}
		})
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		select {
		case s.batches <- recs:
		case <-ctx.Done():
			return
		}
		if s.idle.Swap(false) {
			s.ctx.Post(nil)
		}
	}
}

// Read implements connectors.Source. It never blocks.
func (s *Source) Read(dst []connectors.Record) ([]connectors.Record, time.Duration, error) {
	if s.unassigned {
		return dst, unassignedWait, nil
	}
	if p := s.fatal.Load(); p != nil {
		return dst, 0, *p
	}
	for len(dst) < cap(dst) {
		if len(s.cur) == 0 {
			select {
			case b := <-s.batches:
				s.cur = b
			default:
			}
			if len(s.cur) == 0 {
				break
			}
		}
		n := min(len(s.cur), cap(dst)-len(dst))
		for i, r := range s.cur[:n] {
			rec := connectors.Record{Route: r.Topic, Key: string(r.Key), HasKey: r.Key != nil, Value: r.Value}
			if !rec.HasKey {
				rec.Origin = fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset)
			}
			dst = append(dst, rec)
			if r.Topic != s.lastT || s.lastPs == nil {
				s.lastT, s.lastPs = r.Topic, s.next[r.Topic]
			}
			s.lastPs[r.Partition] = r.Offset + 1
			s.cur[i] = nil
		}
		s.cur = s.cur[n:]
	}
	if len(dst) > 0 {
		return dst, 0, nil
	}
	// Ask the poller for a wake-up, then look again: either this look
	// sees its batch or the poller sees the flag.
	s.idle.Store(true)
	if len(s.batches) > 0 {
		s.idle.Store(false)
		return dst, 0, nil
	}
	return dst, idleWait, nil
}

// Position implements connectors.Checkpointed: the next offset of every
// assigned partition.
func (s *Source) Position() ([]byte, error) { return s.PositionAt(0) }

// PositionAt is Position for the barrier of checkpoint id; the position is
// remembered for the group commit when id completes.
func (s *Source) PositionAt(id dataflow.CheckpointID) ([]byte, error) {
	if s.cc != nil && s.cc.groupID != "" && !s.unassigned {
		s.snaps = append(s.snaps, snapAt{id: id, offs: s.next.clone()})
		if len(s.snaps) > maxSnaps {
			s.snaps = slices.Delete(s.snaps, 0, len(s.snaps)-maxSnaps)
		}
	}
	return encodeOffsets(s.next), nil
}

// NotifyCheckpointComplete implements dataflow.CheckpointListener: it
// commits the offsets of checkpoint id to the consumer group (when one is
// configured), in the background. The commit is for monitoring only.
func (s *Source) NotifyCheckpointComplete(id dataflow.CheckpointID) error {
	if s.commitSig == nil || len(s.snaps) == 0 {
		return nil
	}
	// The newest position taken at or before id (a position of unknown
	// id counts as the newest).
	k := -1
	for i, sn := range s.snaps {
		if sn.id <= id {
			k = i
		}
	}
	if k < 0 {
		return nil
	}
	offs := s.snaps[k].offs
	s.snaps = slices.Delete(s.snaps, 0, k+1)
	s.commit.Lock()
	s.commit.pending = offs
	s.commit.Unlock()
	select {
	case s.commitSig <- struct{}{}:
	default:
	}
	return nil
}

func (s *Source) commitLoop(ctx context.Context) {
	defer close(s.commitDone)
	adm := kadm.NewClient(s.cl)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.commitSig:
		}
		s.commit.Lock()
		offs := s.commit.pending
		s.commit.pending = nil
		s.commit.Unlock()
		if offs == nil {
			continue
		}
		ko := kadm.Offsets{}
		for t, ps := range offs {
			for p, o := range ps {
				ko.Add(kadm.Offset{Topic: t, Partition: p, At: o, LeaderEpoch: -1})
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := adm.CommitOffsets(cctx, s.cc.groupID, ko)
		cancel()
		if err == nil {
			err = resp.Error()
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("kafka ingress: committing the checkpointed offsets to the consumer group failed (monitoring only; the checkpoint is unaffected)",
				"group", s.cc.groupID, "err", err)
		}
	}
}

// Close implements connectors.Source: it stops the poller and the
// committer and closes the client.
func (s *Source) Close() error {
	if s.pollCancel != nil {
		s.pollCancel()
		<-s.pollDone
		if s.commitDone != nil {
			<-s.commitDone
		}
		s.pollCancel = nil
	}
	if s.cl != nil {
		s.cl.Close()
		s.cl = nil
	}
	return nil
}

// clientID names a client "statefun-<role>-<ingress or egress id>-<subtask>".
func clientID(id, role string, subtask int) string {
	return fmt.Sprintf("statefun-%s-%s-%d", role, strings.ReplaceAll(id, "/", "."), subtask)
}

func describe(o Offsets) string {
	var b strings.Builder
	for _, t := range slices.Sorted(maps.Keys(o)) {
		for _, p := range slices.Sorted(maps.Keys(o[t])) {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s/%d@%d", t, p, o[t][p])
		}
	}
	return b.String()
}
