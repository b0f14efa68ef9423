package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/metrics"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// Delivery semantics of the egress (SinkConfig.Semantic).
const (
	None        = "none"
	AtLeastOnce = "at-least-once"
	ExactlyOnce = "exactly-once"
)

// Sink defaults.
const (
	// DefaultDeliveryTimeout bounds how long a record may wait for its
	// acknowledgement, retries included (the Java client's
	// delivery.timeout.ms default). It also bounds a flush at a barrier.
	DefaultDeliveryTimeout = 2 * time.Minute
	// DefaultMaxPendingBytes bounds, for exactly-once, the records held
	// in memory while the previous checkpoint's transaction waits for
	// the checkpoint to complete (see Sink).
	DefaultMaxPendingBytes = 32 << 20
	// DefaultPauseLimit is how long, at most, an exactly-once sink stops
	// taking input for want of a completion notice (see Sink).
	DefaultPauseLimit = 10 * time.Second
	// closeTimeout bounds the flush or abort of Close.
	closeTimeout = 10 * time.Second
)

// SinkConfig configures a Kafka egress.
type SinkConfig struct {
	// ID names the egress (namespace/name); part of the transactional
	// id.
	ID string
	// Properties is the effective Kafka producer configuration (Java
	// client keys). bootstrap.servers is required. transactional.id.prefix
	// (not a Java key) prefixes the transactional ids of exactly-once.
	Properties map[string]string
	// Semantic is None, AtLeastOnce (default) or ExactlyOnce.
	Semantic string
	// TransactionTimeout is the exactly-once transaction timeout; when
	// zero, transaction.timeout.ms is used. It must not exceed the
	// brokers' transaction.max.timeout.ms.
	TransactionTimeout time.Duration
	// MaxPendingBytes and PauseLimit tune exactly-once (defaults
	// DefaultMaxPendingBytes, DefaultPauseLimit).
	MaxPendingBytes int
	PauseLimit      time.Duration
	// OpenTimeout bounds Open's broker round trips (default
	// DefaultOpenTimeout).
	OpenTimeout time.Duration
	// Opts are extra franz-go options for every client (tests, dialers).
	Opts []kgo.Opt
}

// Validate reports every configuration problem at once.
func (c *SinkConfig) Validate() error {
	sem := c.semantic()
	var errs []error
	switch sem {
	case None, AtLeastOnce, ExactlyOnce:
	default:
		errs = append(errs, fmt.Errorf("unknown delivery semantic %q (none, at-least-once or exactly-once)", c.Semantic))
	}
	if _, err := parseProducer(c.props(), sem); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *SinkConfig) semantic() string {
	if c.Semantic == "" {
		return AtLeastOnce
	}
	return c.Semantic
}

// props returns the properties with the transaction timeout applied.
func (c *SinkConfig) props() map[string]string {
	m := make(map[string]string, len(c.Properties)+1)
	for k, v := range c.Properties {
		m[k] = v
	}
	if c.TransactionTimeout > 0 {
		m["transaction.timeout.ms"] = strconv.FormatInt(c.TransactionTimeout.Milliseconds(), 10)
	}
	return m
}

// TransactionalID returns the transactional id of an exactly-once sink
// subtask: "<transactional.id.prefix>-<egress id>-<subtask>", or
// "<egress id>-<subtask>" without a prefix.
func (c *SinkConfig) TransactionalID(subtask int) string {
	id := c.ID + "-" + strconv.Itoa(subtask)
	if p := c.Properties["transactional.id.prefix"]; p != "" {
		id = p + "-" + id
	}
	return id
}

// ErrFenced marks the failure of an exactly-once sink whose transactional
// id was taken over by another producer.
var ErrFenced = errors.New("kafka: transactional producer fenced")

// Sink is the connector of one Kafka egress subtask. It takes envelopes of
// typename statefun.KafkaProducerRecordTypeName (KafkaEgressBuilder); an
// empty key is produced as a null key.
//
// none: records are produced asynchronously; failures are logged and
// counted, never fatal. at-least-once: a produce failure fails the job, and
// the position (taken at every barrier) flushes the producer first, so a
// checkpoint completes only once everything before its barrier is
// acknowledged.
//
// exactly-once: Kafka transactions under the transactional id
// TransactionalID(subtask), one per checkpoint interval. A transaction
// begins with the first record after a commit; at the barrier of
// checkpoint n the sink flushes and returns (transactional id, producer id,
// epoch) as its position: the pre-commit handle, stored in checkpoint n.
// NotifyCheckpointComplete(n) commits it. A restore from n first re-sends
// EndTxn(commit) for the stored handle from a plain client (a repeated
// commit is harmless), then starts the transactional producer, whose
// InitProducerID fences and aborts whatever a previous incarnation left
// open after n.
//
// Only one transaction per transactional id can be open, so records that
// arrive between the barrier of n and the completion of n are held in
// memory and produced in the next transaction once n is committed. While
// they exceed MaxPendingBytes the sink reports Paused (the runtime stops
// feeding it, backpressure), for at most PauseLimit per transaction: a
// checkpoint that was aborted never sends its completion notice, and the
// next barrier must still get through. If the next barrier arrives before
// n completes, the held records join the open transaction, which is then
// pre-committed for that barrier's checkpoint instead.
//
// So that a re-commit on restore can never commit a later transaction,
// every transaction runs under a fresh producer epoch: brokers with
// transaction version 2 (KIP-890) bump it at each commit; with older
// brokers the sink re-initialises its producer after each commit (one
// InitProducerID round trip per checkpoint).
type Sink struct {
	cfg     SinkConfig
	sem     string
	cc      *clientConfig
	subtask int
	txnID   string

	ctx  dataflow.Context
	log  *slog.Logger
	opts []kgo.Opt // base client options

	life   context.Context // cancelled by Close
	cancel context.CancelFunc
	cl     *kgo.Client

	// asyncErr is the first produce failure (at-least-once, exactly-once).
	asyncErr atomic.Pointer[error]
	// failures counts produce failures of none.
	failures atomic.Int64
	lastLog  atomic.Int64 // unix nanos of the last failure log (none)

	restored *txnHandle

	// exactly-once state, owned by the subtask goroutine.
	inTxn      bool       // BeginTransaction was called and records were produced
	pre        *preCommit // the open transaction is pre-committed, awaiting completion
	held       []*kgo.Record
	heldBytes  int
	timerArmed bool
}

// preCommit is an open transaction whose records are all flushed and whose
// handle is stored in checkpoint id (0: unknown id, see Position).
type preCommit struct {
	id dataflow.CheckpointID
	h  txnHandle
	at time.Time
}

// NewSink returns the sink of one subtask. The configuration is checked
// again at Open.
func NewSink(cfg SinkConfig, subtask int) *Sink {
	if cfg.MaxPendingBytes <= 0 {
		cfg.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if cfg.PauseLimit <= 0 {
		cfg.PauseLimit = DefaultPauseLimit
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = DefaultOpenTimeout
	}
	return &Sink{cfg: cfg, sem: cfg.semantic(), subtask: subtask, txnID: cfg.TransactionalID(subtask)}
}

// RestorePosition implements connectors.Checkpointed; called before Open.
func (s *Sink) RestorePosition(pos []byte) error {
	h, err := decodeHandle(pos)
	if err != nil {
		return fmt.Errorf("kafka egress %s: %w", s.cfg.ID, err)
	}
	if h.Open {
		s.restored = &h
	}
	return nil
}

// Open implements connectors.Sink.
func (s *Sink) Open(ctx dataflow.Context) error {
	s.ctx = ctx
	s.log = ctx.Logger().With("egress", s.cfg.ID)
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	cc, err := parseProducer(s.cfg.props(), s.sem)
	if err != nil {
		return err
	}
	s.cc = cc
	for _, k := range cc.ignored {
		s.log.Debug("kafka producer property has no effect here", "key", k, "why", ignoredKeys[k])
	}
	opts, err := cc.clientOpts(clientID(s.cfg.ID, "out", ctx.SubtaskIndex()), s.log)
	if err != nil {
		return err
	}
	s.opts = append(opts, s.cfg.Opts...)
	s.life, s.cancel = context.WithCancel(context.Background())
	octx, cancel := context.WithTimeout(s.life, s.cfg.OpenTimeout)
	defer cancel()

	if s.sem != ExactlyOnce {
		popts := append([]kgo.Opt{}, s.opts...)
		dt := cc.deliveryTimeout
		if dt <= 0 {
			dt = DefaultDeliveryTimeout
		}
		popts = append(popts, kgo.RecordDeliveryTimeout(dt))
		if cc.acksSet {
			popts = append(popts, kgo.RequiredAcks(cc.acks))
			if cc.acks != kgo.AllISRAcks() {
				cc.noIdempotence = true
			}
		}
		if cc.noIdempotence {
			popts = append(popts, kgo.DisableIdempotentWrite())
		}
		if s.cl, err = kgo.NewClient(popts...); err != nil {
			return fmt.Errorf("kafka client: %w", err)
		}
		if err := s.cl.Ping(octx); err != nil {
			return fmt.Errorf("cannot reach the Kafka brokers at %v: %w", cc.seeds, err)
		}
		return nil
	}

	lookup, err := kgo.NewClient(s.opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer lookup.Close()
	if err := s.checkTimeout(octx, kadm.NewClient(lookup)); err != nil {
		return err
	}
	if s.restored != nil {
		if err := s.recommit(octx, lookup, *s.restored); err != nil {
			return err
		}
	}
	if err := s.newProducer(octx); err != nil {
		return err
	}
	s.log.Info("kafka egress subtask ready (exactly-once)", "transactional.id", s.txnID, "restored", s.restored != nil)
	return nil
}

// checkTimeout compares the transaction timeout with the brokers'
// transaction.max.timeout.ms.
func (s *Sink) checkTimeout(ctx context.Context, adm *kadm.Client) error {
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("cannot reach the Kafka brokers at %v: %w", s.cc.seeds, err)
	}
	if len(meta.Brokers) == 0 {
		return fmt.Errorf("the Kafka cluster at %v lists no broker", s.cc.seeds)
	}
	rcs, err := adm.DescribeBrokerConfigs(ctx, meta.Brokers[0].NodeID)
	if err != nil {
		s.log.Warn("kafka egress: cannot read the brokers' transaction.max.timeout.ms; the transaction timeout is not checked", "err", err)
		return nil
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key != "transaction.max.timeout.ms" || c.Value == nil {
				continue
			}
			max, err := strconv.ParseInt(*c.Value, 10, 64)
			if err != nil {
				return nil
			}
			if maxD := time.Duration(max) * time.Millisecond; s.cc.txnTimeout > maxD {
				return fmt.Errorf("the transaction timeout %v exceeds the brokers' transaction.max.timeout.ms (%v): lower deliverySemantic.transactionTimeout or raise transaction.max.timeout.ms on the brokers", s.cc.txnTimeout, maxD)
			}
			return nil
		}
	}
	return nil
}

// recommit commits the transaction of the restored checkpoint, in case its
// completion notice was lost: EndTxn(commit) with the stored producer id
// and epoch. The answers that mean the transaction is no longer open count
// as success:
//
//   - NONE: committed now, or a repeat of the commit that already
//     happened (the broker recognises the retry);
//   - INVALID_TXN_STATE (48): no transaction of that epoch is open;
//   - PRODUCER_FENCED (90) / INVALID_PRODUCER_EPOCH (47): the epoch moved on
//     (a later transaction or producer), so this one was completed;
//   - INVALID_PRODUCER_ID_MAPPING (49) / TRANSACTIONAL_ID_NOT_FOUND (105):
//     the transactional id has expired, with nothing open.
//
// NB: the broker answers the same if it aborted the transaction because it
// outlived transaction.timeout.ms: then its records are lost. The timeout
// must exceed the longest outage plus the checkpoint interval.
//
// CONCURRENT_TRANSACTIONS and the retriable errors are retried until ctx
// ends.
func (s *Sink) recommit(ctx context.Context, cl *kgo.Client, h txnHandle) error {
	backoff := 20 * time.Millisecond
	for {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID = h.TransactionalID
		req.ProducerID = h.ProducerID
		req.ProducerEpoch = h.ProducerEpoch
		req.Commit = true
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		switch {
		case err == nil:
			metrics.KafkaEgressTransactions.WithLabelValues(s.cfg.ID, "recommitted").Inc()
			s.log.Info("kafka egress: committed the transaction of the restored checkpoint", "transactional.id", h.TransactionalID,
				"producer.id", h.ProducerID, "epoch", h.ProducerEpoch)
			return nil
		case errors.Is(err, kerr.InvalidTxnState), errors.Is(err, kerr.ProducerFenced), errors.Is(err, kerr.InvalidProducerEpoch),
			errors.Is(err, kerr.InvalidProducerIDMapping), errors.Is(err, kerr.TransactionalIDNotFound):
			s.log.Info("kafka egress: the transaction of the restored checkpoint was already completed", "transactional.id", h.TransactionalID,
				"producer.id", h.ProducerID, "epoch", h.ProducerEpoch, "answer", err)
			return nil
		case errors.Is(err, kerr.ConcurrentTransactions), kerr.IsRetriable(err):
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, time.Second)
				continue
			case <-ctx.Done():
			}
		}
		return fmt.Errorf("re-committing the transaction of the restored checkpoint (transactional.id %q, producer id %d, epoch %d): %w",
			h.TransactionalID, h.ProducerID, h.ProducerEpoch, err)
	}
}

// newProducer (re)creates the transactional producer and initialises its
// producer id, which bumps the epoch and fences older producers.
func (s *Sink) newProducer(ctx context.Context) error {
	if s.cl != nil {
		s.cl.Close()
		s.cl = nil
	}
	opts := append([]kgo.Opt{}, s.opts...)
	opts = append(opts, kgo.TransactionalID(s.txnID), kgo.TransactionTimeout(s.cc.txnTimeout))
	if s.cc.deliveryTimeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(s.cc.deliveryTimeout))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		if errors.Is(err, kerr.InvalidTransactionTimeout) {
			return fmt.Errorf("the brokers refuse the transaction timeout %v (above their transaction.max.timeout.ms): %w", s.cc.txnTimeout, err)
		}
		return fmt.Errorf("initialising the transactional producer %q: %w", s.txnID, err)
	}
	s.cl = cl
	return nil
}

// Write implements connectors.Sink.
func (s *Sink) Write(e *envelope.Envelope) error {
	if e.Typename != statefun.KafkaProducerRecordTypeName {
		return fmt.Errorf("a message of type %s cannot go to a Kafka egress: it takes %s records (KafkaEgressBuilder)",
			e.Typename, statefun.KafkaProducerRecordTypeName)
	}
	key, topic, value, err := statefun.DecodeKafkaProducerRecord(e.Value)
	if err != nil {
		return fmt.Errorf("corrupt KafkaProducerRecord: %w", err)
	}
	if topic == "" {
		return errors.New("a KafkaProducerRecord without a topic (the Kafka egress has no default topic)")
	}
	if err := s.err(); err != nil {
		return err
	}
	r := &kgo.Record{Topic: topic, Value: value}
	if key != "" {
		r.Key = []byte(key)
	}
	switch s.sem {
	case None:
		s.cl.Produce(s.life, r, s.onNone)
		return nil
	case AtLeastOnce:
		s.cl.Produce(s.life, r, s.onResult)
		return nil
	}
	if s.pre != nil {
		s.hold(r)
		return nil
	}
	return s.produceTxn(r)
}

func (s *Sink) produceTxn(r *kgo.Record) error {
	if !s.inTxn {
		if err := s.cl.BeginTransaction(); err != nil {
			return s.wrap(fmt.Errorf("begin transaction: %w", err))
		}
		s.inTxn = true
	}
	s.cl.Produce(s.life, r, s.onResult)
	return nil
}

// hold keeps r until the pre-committed transaction is committed.
func (s *Sink) hold(r *kgo.Record) {
	s.held = append(s.held, r)
	s.heldBytes += len(r.Key) + len(r.Value) + len(r.Topic) + 64
	if s.heldBytes >= s.cfg.MaxPendingBytes && !s.timerArmed {
		// Paused may turn false by time alone: make the runtime look
		// again then.
		s.timerArmed = true
		s.ctx.ScheduleTimer(s.pre.at.Add(s.cfg.PauseLimit))
	}
}

// Paused implements dataflow.Pauser (exactly-once): true while the records
// held behind a pre-committed transaction exceed MaxPendingBytes, for at
// most PauseLimit after the pre-commit.
func (s *Sink) Paused() bool {
	return s.pre != nil && s.heldBytes >= s.cfg.MaxPendingBytes && time.Since(s.pre.at) < s.cfg.PauseLimit
}

func (s *Sink) onResult(r *kgo.Record, err error) {
	if err != nil {
		metrics.KafkaEgressFailures.WithLabelValues(s.cfg.ID).Inc()
		err = s.wrap(fmt.Errorf("producing to topic %s: %w", r.Topic, err))
		s.asyncErr.CompareAndSwap(nil, &err)
		return
	}
	metrics.KafkaEgressRecords.WithLabelValues(s.cfg.ID).Inc()
}

func (s *Sink) onNone(r *kgo.Record, err error) {
	if err == nil {
		metrics.KafkaEgressRecords.WithLabelValues(s.cfg.ID).Inc()
		return
	}
	metrics.KafkaEgressFailures.WithLabelValues(s.cfg.ID).Inc()
	n := s.failures.Add(1)
	now := time.Now().UnixNano()
	if last := s.lastLog.Load(); now-last > int64(10*time.Second) && s.lastLog.CompareAndSwap(last, now) {
		s.log.Warn("kafka egress (delivery none): a record was not delivered", "topic", r.Topic, "err", err, "failures", n)
	}
}

// Failures returns the number of records a none sink failed to deliver.
func (s *Sink) Failures() int64 { return s.failures.Load() }

func (s *Sink) err() error {
	if p := s.asyncErr.Load(); p != nil {
		return *p
	}
	return nil
}

// wrap marks fencing errors with a clear explanation.
func (s *Sink) wrap(err error) error {
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		return fmt.Errorf("%w: transactional id %q was taken over by another producer (another job with the same egress id and transactional.id.prefix, or a newer instance of this job): %w",
			ErrFenced, s.txnID, err)
	}
	return err
}

// Flush implements connectors.Sink. It does not wait: records are
// produced asynchronously and made durable at the barrier (Position); it
// reports the first produce failure.
func (s *Sink) Flush() error { return s.err() }

// Position implements connectors.Checkpointed. Without the checkpoint id
// the pre-committed transaction is committed by the next completion
// notice; PositionAt is exact.
func (s *Sink) Position() ([]byte, error) { return s.PositionAt(0) }

// PositionAt is the position at the barrier of checkpoint id: nothing for
// none; for at-least-once it flushes; for exactly-once it flushes the open
// transaction and returns its handle (the pre-commit).
func (s *Sink) PositionAt(id dataflow.CheckpointID) ([]byte, error) {
	empty := encodeHandle(txnHandle{})
	switch s.sem {
	case None:
		return empty, nil
	case AtLeastOnce:
		if err := s.flush(); err != nil {
			return nil, err
		}
		return empty, nil
	}
	if s.pre != nil {
		// The previous pre-commit got no completion notice (its
		// checkpoint was aborted, or the notice is late): the held
		// records join its transaction, which now belongs to this
		// checkpoint.
		for _, r := range s.held {
			s.cl.Produce(s.life, r, s.onResult)
		}
		s.dropHeld()
		if err := s.flush(); err != nil {
			return nil, err
		}
		s.pre.id, s.pre.at = id, time.Now()
		return encodeHandle(s.pre.h), nil
	}
	if !s.inTxn {
		return empty, nil
	}
	if err := s.flush(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(s.life, s.cfg.OpenTimeout)
	pid, epoch, err := s.cl.ProducerID(ctx)
	cancel()
	if err != nil {
		return nil, s.wrap(fmt.Errorf("producer id: %w", err))
	}
	h := txnHandle{Open: true, TransactionalID: s.txnID, ProducerID: pid, ProducerEpoch: epoch}
	s.pre = &preCommit{id: id, h: h, at: time.Now()}
	return encodeHandle(h), nil
}

func (s *Sink) flush() error {
	dt := s.cc.deliveryTimeout
	if dt <= 0 {
		dt = DefaultDeliveryTimeout
	}
	ctx, cancel := context.WithTimeout(s.life, dt+10*time.Second)
	defer cancel()
	if err := s.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return s.err()
}

func (s *Sink) dropHeld() {
	clear(s.held)
	s.held, s.heldBytes, s.timerArmed = s.held[:0], 0, false
}

// NotifyCheckpointComplete implements dataflow.CheckpointListener: the
// transaction pre-committed at checkpoint id (or earlier) is committed.
// A failed commit fails the job; the restore re-commits it.
func (s *Sink) NotifyCheckpointComplete(id dataflow.CheckpointID) error {
	if s.sem != ExactlyOnce || s.pre == nil || s.pre.id > id {
		return nil
	}
	h := s.pre.h
	ctx, cancel := context.WithTimeout(s.life, s.cfg.OpenTimeout)
	defer cancel()
	if err := s.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return s.wrap(fmt.Errorf("committing the transaction of checkpoint %d (transactional.id %q, producer id %d, epoch %d): %w",
			id, h.TransactionalID, h.ProducerID, h.ProducerEpoch, err))
	}
	s.pre, s.inTxn = nil, false
	metrics.KafkaEgressTransactions.WithLabelValues(s.cfg.ID, "committed").Inc()
	// A re-commit of h on restore must never commit a later transaction:
	// run the next one under a new epoch.
	pid, epoch, err := s.cl.ProducerID(ctx)
	if err != nil || (pid == h.ProducerID && epoch == h.ProducerEpoch) {
		if err := s.newProducer(ctx); err != nil {
			return s.wrap(err)
		}
	}
	held := s.held
	s.held = nil
	s.heldBytes, s.timerArmed = 0, false
	for _, r := range held {
		if err := s.produceTxn(r); err != nil {
			return err
		}
	}
	return nil
}

// Close implements connectors.Sink. at-least-once and none flush (bounded
// by a timeout). exactly-once aborts an open transaction that was not
// pre-committed (its records come after the last checkpoint and are
// replayed on restore) and leaves a pre-committed one for the restore to
// commit.
func (s *Sink) Close() error {
	if s.cl == nil {
		if s.cancel != nil {
			s.cancel()
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var err error
	switch {
	case s.sem != ExactlyOnce:
		if ferr := s.cl.Flush(ctx); ferr != nil {
			err = fmt.Errorf("flush on close: %w", ferr)
		}
	case s.pre != nil:
		s.log.Info("kafka egress: the transaction pre-committed for a checkpoint stays open; a restore from that checkpoint commits it",
			"transactional.id", s.txnID, "checkpoint", s.pre.id)
	case s.inTxn:
		if aerr := s.cl.AbortBufferedRecords(ctx); aerr == nil {
			metrics.KafkaEgressTransactions.WithLabelValues(s.cfg.ID, "aborted").Inc()
			_ = s.cl.EndTransaction(ctx, kgo.TryAbort)
		}
	}
	s.cancel()
	s.cl.Close()
	s.cl = nil
	return err
}
