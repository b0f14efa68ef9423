package kafka

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun/envelope"
)

const quiet = 300 * time.Millisecond

// brokers: the default kfake (transaction version 2, KIP-890: the epoch
// is bumped at every commit) and one limited to Kafka 3.9 (the epoch stays
// the same across transactions).
var brokers = []struct {
	name string
	opts []kfake.Opt
}{
	{"kip890", nil},
	{"kafka-3.9", []kfake.Opt{kfake.MaxVersions(kversion.V3_9_0())}},
}

func TestSinkAtLeastOnceAndNone(t *testing.T) {
	t.Parallel()
	_, addr := cluster(t, 2, []string{"out", "none"})
	s, _ := openSink(t, SinkConfig{ID: "test/out", Properties: map[string]string{"bootstrap.servers": addr, "linger.ms": "50"}}, 0, nil)
	write(t, s, "out", seq("v", 0, 20)...)
	if err := s.Write(envelopeFor(t, "out", "", "nullkey")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PositionAt(1); err != nil {
		t.Fatal(err)
	}
	// Flushed at the barrier: all there without waiting for the linger.
	got := consume(t, addr, "out", true, 21, quiet)
	if v := values(got); !slices.Equal(v, sorted(seq("v", 0, 20), []string{"nullkey"})) {
		t.Fatalf("got %q", v)
	}
	for _, r := range got {
		if string(r.Value) == "nullkey" && r.Key != nil || string(r.Value) != "nullkey" && string(r.Key) != "k-"+string(r.Value) {
			t.Errorf("record %q has key %q", r.Value, r.Key)
		}
	}

	n, _ := openSink(t, SinkConfig{ID: "test/none", Semantic: None, Properties: map[string]string{"bootstrap.servers": addr}}, 0, nil)
	write(t, n, "none", seq("n", 0, 5)...)
	if err := n.Close(); err != nil { // flushes
		t.Fatal(err)
	}
	if v := values(consume(t, addr, "none", false, 5, quiet)); !slices.Equal(v, seq("n", 0, 5)) {
		t.Fatalf("none: got %q", v)
	}

	wantErr(t, s.Write(&envelope.Envelope{Typename: "io.statefun.types/string", Value: []byte("x")}), "cannot go to a Kafka egress", "KafkaProducerRecord")
	wantErr(t, s.Write(&envelope.Envelope{Typename: envelopeFor(t, "out", "", "x").Typename, Value: []byte{0x12, 1, 'x'}}), "without a topic")
}

// TestSinkExactlyOnce: records become visible to read_committed consumers
// only when the checkpoint whose barrier followed them completes; records
// written between a barrier and its completion wait for the next
// transaction; a checkpoint without a completion notice (aborted) is
// covered by the next one.
func TestSinkExactlyOnce(t *testing.T) {
	t.Parallel()
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			_, addr := cluster(t, 2, []string{"out"}, b.opts...)
			cfg := SinkConfig{ID: "test/out", Semantic: ExactlyOnce, TransactionTimeout: time.Minute,
				Properties: map[string]string{"bootstrap.servers": addr, "transactional.id.prefix": "job1"}}
			s, _ := openSink(t, cfg, 3, nil)
			if s.txnID != "job1-test/out-3" {
				t.Errorf("transactional id %q", s.txnID)
			}
			committed := func(want []string) {
				t.Helper()
				if got := values(consume(t, addr, "out", true, -1, quiet)); !slices.Equal(got, want) {
					t.Fatalf("read_committed: got %q\nwant %q", got, want)
				}
			}
			pos := func(id int) txnHandle {
				t.Helper()
				b, err := s.PositionAt(dataflowID(id))
				if err != nil {
					t.Fatal(err)
				}
				h, err := decodeHandle(b)
				if err != nil {
					t.Fatal(err)
				}
				return h
			}
			notify := func(id int) {
				t.Helper()
				if err := s.NotifyCheckpointComplete(dataflowID(id)); err != nil {
					t.Fatal(err)
				}
			}
			if h := pos(1); h.Open {
				t.Errorf("no record, yet an open transaction %+v", h)
			}
			write(t, s, "out", seq("a", 0, 10)...)
			h2 := pos(2)
			committed(nil)
			notify(2)
			committed(seq("a", 0, 10))

			write(t, s, "out", seq("b", 0, 5)...)
			h3 := pos(3)
			if h3.ProducerID == h2.ProducerID && h3.ProducerEpoch == h2.ProducerEpoch {
				t.Errorf("two transactions under the same producer id and epoch %+v", h3)
			}
			write(t, s, "out", seq("c", 0, 3)...) // held until 3 completes
			if len(s.held) != 3 {
				t.Fatalf("%d records held, want 3", len(s.held))
			}
			notify(3)
			committed(sorted(seq("a", 0, 10), seq("b", 0, 5)))
			pos(4)
			notify(4)
			committed(sorted(seq("a", 0, 10), seq("b", 0, 5), seq("c", 0, 3)))

			// Checkpoint 5 is aborted: no notice. The held record joins
			// its transaction, pre-committed again for checkpoint 6.
			write(t, s, "out", seq("d", 0, 2)...)
			pos(5)
			write(t, s, "out", "e00")
			pos(6)
			notify(5) // late notice of 5: must not commit what 6 covers
			committed(sorted(seq("a", 0, 10), seq("b", 0, 5), seq("c", 0, 3)))
			notify(6)
			all := sorted(seq("a", 0, 10), seq("b", 0, 5), seq("c", 0, 3), seq("d", 0, 2), []string{"e00"})
			committed(all)
			if got := values(consume(t, addr, "out", false, -1, quiet)); !slices.Equal(got, all) {
				t.Fatalf("read_uncommitted: got %q", got)
			}
		})
	}
}

func dataflowID(i int) dataflow.CheckpointID { return dataflow.CheckpointID(i) }

// TestSinkRestore: a restore re-commits the stored transaction when its
// completion notice was lost, never commits a later transaction, and a
// repeated re-commit is harmless.
func TestSinkRestore(t *testing.T) {
	t.Parallel()
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			_, addr := cluster(t, 2, []string{"lost", "crash"}, b.opts...)
			cfg := SinkConfig{ID: "test/out", Semantic: ExactlyOnce, TransactionTimeout: time.Minute,
				Properties: map[string]string{"bootstrap.servers": addr}}

			// Lost notice: pre-committed at 1, then the job stops.
			s1, _ := openSink(t, cfg, 0, nil)
			write(t, s1, "lost", seq("a", 0, 10)...)
			pos1, err := s1.PositionAt(1)
			if err != nil {
				t.Fatal(err)
			}
			if err := s1.Close(); err != nil {
				t.Fatal(err)
			}
			if got := consume(t, addr, "lost", true, -1, quiet); len(got) != 0 {
				t.Fatalf("visible before the commit: %q", values(got))
			}
			s2, ctx2 := openSink(t, cfg, 0, pos1)
			if got := values(consume(t, addr, "lost", true, 10, 5*time.Second)); !slices.Equal(got, seq("a", 0, 10)) {
				t.Fatalf("after restore: %q\n%s", got, ctx2.Logs())
			}
			write(t, s2, "lost", seq("b", 0, 3)...)
			if _, err := s2.PositionAt(2); err != nil {
				t.Fatal(err)
			}
			if err := s2.NotifyCheckpointComplete(2); err != nil {
				t.Fatal(err)
			}
			s2.Close()
			// Restoring the same checkpoint again: harmless.
			s3, _ := openSink(t, cfg, 0, pos1)
			s3.Close()
			if got := values(consume(t, addr, "lost", true, -1, quiet)); !slices.Equal(got, sorted(seq("a", 0, 10), seq("b", 0, 3))) {
				t.Fatalf("after a repeated restore: %q", got)
			}

			// Crash in the middle of the next transaction: committed at
			// 1, then records of the next interval reach the log; the
			// restore from 1 must not commit them.
			c1, _ := openSink(t, cfg, 1, nil)
			write(t, c1, "crash", seq("x", 0, 4)...)
			cpos, err := c1.PositionAt(1)
			if err != nil {
				t.Fatal(err)
			}
			if err := c1.NotifyCheckpointComplete(1); err != nil {
				t.Fatal(err)
			}
			write(t, c1, "crash", seq("y", 0, 4)...)
			if err := c1.cl.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			c1.cancel()
			c1.cl.Close() // a crash: no abort
			c1.cl = nil
			openSink(t, cfg, 1, cpos)
			if got := values(consume(t, addr, "crash", true, -1, quiet)); !slices.Equal(got, seq("x", 0, 4)) {
				t.Fatalf("read_committed after the crash restore: %q", got)
			}
			if got := values(consume(t, addr, "crash", false, -1, quiet)); !slices.Equal(got, sorted(seq("x", 0, 4), seq("y", 0, 4))) {
				t.Fatalf("read_uncommitted: %q", got)
			}
		})
	}
}

// TestSinkFaults: produce and EndTxn errors injected once are retried by
// the client; a fenced producer fails with ErrFenced.
func TestSinkFaults(t *testing.T) {
	t.Parallel()
	c, addr := cluster(t, 1, []string{"alo", "eo"})
	var produceFaults, endFaults int
	c.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.ProduceRequest)
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		produceFaults++
		return resp, nil, true
	})
	s, _ := openSink(t, SinkConfig{ID: "test/alo", Properties: map[string]string{"bootstrap.servers": addr}}, 0, nil)
	write(t, s, "alo", seq("v", 0, 10)...)
	if _, err := s.PositionAt(1); err != nil {
		t.Fatal(err)
	}
	if got := values(consume(t, addr, "alo", false, -1, quiet)); !slices.Equal(got, seq("v", 0, 10)) || produceFaults != 1 {
		t.Fatalf("got %q after %d injected produce faults", got, produceFaults)
	}

	cfg := SinkConfig{ID: "test/eo", Semantic: ExactlyOnce, TransactionTimeout: time.Minute, Properties: map[string]string{"bootstrap.servers": addr}}
	e, _ := openSink(t, cfg, 0, nil)
	c.ControlKey(kmsg.EndTxn.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp := req.(*kmsg.EndTxnRequest).ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.ConcurrentTransactions.Code
		endFaults++
		return resp, nil, true
	})
	write(t, e, "eo", seq("w", 0, 5)...)
	if _, err := e.PositionAt(1); err != nil {
		t.Fatal(err)
	}
	if err := e.NotifyCheckpointComplete(1); err != nil {
		t.Fatal(err)
	}
	if got := values(consume(t, addr, "eo", true, -1, quiet)); !slices.Equal(got, seq("w", 0, 5)) || endFaults != 1 {
		t.Fatalf("got %q after %d injected EndTxn faults", got, endFaults)
	}

	// Another producer takes the transactional id over.
	intruder := client(t, addr, kgo.TransactionalID(cfg.TransactionalID(0)))
	if _, _, err := intruder.ProducerID(context.Background()); err != nil {
		t.Fatal(err)
	}
	var err error
	for _, v := range seq("z", 0, 3) {
		if err = e.Write(envelopeFor(t, "eo", "k", v)); err != nil {
			break
		}
	}
	if err == nil {
		_, err = e.PositionAt(2)
	}
	if err == nil {
		err = e.NotifyCheckpointComplete(2)
	}
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("want ErrFenced, got %v", err)
	}
	wantErr(t, err, "taken over by another producer", cfg.TransactionalID(0))
}

// TestSinkCommitFenced: a commit answered PRODUCER_FENCED fails clearly.
func TestSinkCommitFenced(t *testing.T) {
	t.Parallel()
	c, addr := cluster(t, 1, []string{"eo"})
	cfg := SinkConfig{ID: "test/eo", Semantic: ExactlyOnce, TransactionTimeout: time.Minute, Properties: map[string]string{"bootstrap.servers": addr}}
	e, _ := openSink(t, cfg, 0, nil)
	write(t, e, "eo", "v")
	if _, err := e.PositionAt(1); err != nil {
		t.Fatal(err)
	}
	c.ControlKey(kmsg.EndTxn.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp := req.(*kmsg.EndTxnRequest).ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.ProducerFenced.Code
		return resp, nil, true
	})
	err := e.NotifyCheckpointComplete(1)
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("want ErrFenced, got %v", err)
	}
	wantErr(t, err, "committing the transaction of checkpoint 1")
}

// TestSinkPaused: records held behind a pre-committed transaction beyond
// MaxPendingBytes pause the sink until the commit, for at most PauseLimit.
func TestSinkPaused(t *testing.T) {
	t.Parallel()
	_, addr := cluster(t, 1, []string{"eo"})
	cfg := SinkConfig{ID: "test/eo", Semantic: ExactlyOnce, TransactionTimeout: time.Minute, MaxPendingBytes: 200, PauseLimit: time.Hour,
		Properties: map[string]string{"bootstrap.servers": addr}}
	s, ctx := openSink(t, cfg, 0, nil)
	write(t, s, "eo", "a")
	if _, err := s.PositionAt(1); err != nil {
		t.Fatal(err)
	}
	write(t, s, "eo", seq("h", 0, 2)...)
	if s.Paused() {
		t.Fatal("paused below the bound")
	}
	write(t, s, "eo", seq("h", 2, 4)...)
	if !s.Paused() || len(ctx.Timers()) != 1 {
		t.Fatalf("not paused above the bound (held %d bytes, timers %v)", s.heldBytes, ctx.Timers())
	}
	if err := s.NotifyCheckpointComplete(1); err != nil {
		t.Fatal(err)
	}
	if s.Paused() || len(s.held) != 0 {
		t.Fatal("still paused after the commit")
	}
	s.cfg.PauseLimit = time.Nanosecond
	if _, err := s.PositionAt(2); err != nil {
		t.Fatal(err)
	}
	write(t, s, "eo", seq("i", 0, 4)...)
	if s.Paused() {
		t.Fatal("paused beyond the pause limit")
	}
}

func TestSinkConfigErrors(t *testing.T) {
	t.Parallel()
	_, addr := cluster(t, 1, []string{"eo"}, kfake.BrokerConfigs(map[string]string{"transaction.max.timeout.ms": "60000"}))
	for _, c := range []struct {
		cfg  SinkConfig
		want []string
	}{
		{SinkConfig{Properties: map[string]string{"bootstrap.servers": addr, "partitioner.class": "x"}}, []string{`"partitioner.class" is unknown`}},
		{SinkConfig{Semantic: ExactlyOnce, Properties: map[string]string{"bootstrap.servers": addr}}, []string{"positive transaction timeout"}},
		{SinkConfig{Semantic: ExactlyOnce, TransactionTimeout: time.Minute, Properties: map[string]string{"bootstrap.servers": addr, "acks": "1"}}, []string{"acks=all"}},
		{SinkConfig{Properties: map[string]string{"bootstrap.servers": addr, "transactional.id": "x"}}, []string{"transactional.id.prefix"}},
		{SinkConfig{Semantic: "twice", Properties: map[string]string{"bootstrap.servers": addr}}, []string{`unknown delivery semantic "twice"`}},
	} {
		wantErr(t, c.cfg.Validate(), c.want...)
	}
	_, _, err := tryOpenSink(t, SinkConfig{ID: "test/eo", Semantic: ExactlyOnce, TransactionTimeout: 2 * time.Minute,
		Properties: map[string]string{"bootstrap.servers": addr}}, 0, nil)
	wantErr(t, err, "transaction timeout 2m0s exceeds the brokers' transaction.max.timeout.ms (1m0s)")
	if _, _, err := tryOpenSink(t, SinkConfig{ID: "test/eo", Semantic: ExactlyOnce, TransactionTimeout: time.Minute,
		Properties: map[string]string{"bootstrap.servers": addr}}, 0, nil); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodePosition(f *testing.F) {
	f.Add(encodeOffsets(Offsets{"a": {0: 1, 7: 1 << 40}, "b/c": {3: 0}}))
	f.Add(encodeHandle(txnHandle{Open: true, TransactionalID: "x-0", ProducerID: 42, ProducerEpoch: 3}))
	f.Add(encodeHandle(txnHandle{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if o, err := decodeOffsets(b); err == nil {
			if o2, err := decodeOffsets(encodeOffsets(o)); err != nil || len(o2) != len(o) {
				t.Fatalf("round trip: %v %v", o2, err)
			}
		}
		if h, err := decodeHandle(b); err == nil {
			if h2, err := decodeHandle(encodeHandle(h)); err != nil || h2 != h {
				t.Fatalf("round trip: %+v %v", h2, err)
			}
		}
	})
}
