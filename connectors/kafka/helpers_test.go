package kafka

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow/dataflowtest"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// cluster starts an in-process kfake cluster with one broker, seeded with
// topics of `partitions` partitions each.
func cluster(t *testing.T, partitions int32, topics []string, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

// client returns a plain client of addr, closed at cleanup.
func client(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce writes records synchronously.
func produce(t *testing.T, addr string, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client(t, addr).ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func rec(topic string, p int32, key, value string) *kgo.Record {
	r := &kgo.Record{Topic: topic, Partition: p, Value: []byte(value)}
	if key != "" {
		r.Key = []byte(key)
	}
	return r
}

// manual produces to explicit partitions.
func manual(t *testing.T, addr string, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consume reads topic from the start with the given isolation until want
// records arrived or `quiet` passed without a new record; it returns the
// values.
func consume(t *testing.T, addr, topic string, committed bool, want int, quiet time.Duration) []*kgo.Record {
	t.Helper()
	opts := []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl := client(t, addr, opts...)
	var out []*kgo.Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r); n++ })
		if len(out) >= want && want >= 0 || n == 0 && ctx.Err() != nil {
			return out
		}
	}
}

func values(recs []*kgo.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	slices.Sort(out)
	return out
}

// openSource opens a source for subtask i of par.
func openSource(t *testing.T, cfg SourceConfig, i, par int, restore []byte) (*Source, *dataflowtest.Context) {
	t.Helper()
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Name: "ingress", Subtask: i, Parallelism: par})
	s := NewSource(cfg)
	if restore != nil {
		if err := s.RestorePosition(restore); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Open(ctx); err != nil {
		t.Fatalf("open: %v\n%s", err, ctx.Logs())
	}
	t.Cleanup(func() { s.Close() })
	return s, ctx
}

// read drains s until it returned n records, or fails after timeout. With
// n < 0 it reads for the whole timeout.
func read(t *testing.T, s *Source, n int, timeout time.Duration) []connectors.Record {
	t.Helper()
	var out []connectors.Record
	buf := make([]connectors.Record, 0, 7)
	deadline := time.Now().Add(timeout)
	for n < 0 || len(out) < n {
		c := 7
		if n >= 0 {
			c = min(c, n-len(out))
		}
		recs, wait, err := s.Read(buf[:0:c])
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		out = append(out, recs...)
		if time.Now().After(deadline) {
			if n >= 0 {
				t.Fatalf("read %d of %d records within %v: %v", len(out), n, timeout, recValues(out))
			}
			break
		}
		if len(recs) == 0 {
			time.Sleep(min(wait, 5*time.Millisecond))
		}
	}
	return out
}

func recValues(recs []connectors.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	slices.Sort(out)
	return out
}

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%02d", prefix, i))
	}
	slices.Sort(out)
	return out
}

// envelopeFor builds the egress envelope of a KafkaEgressBuilder record.
func envelopeFor(t *testing.T, topic, key, value string) *envelope.Envelope {
	t.Helper()
	r, err := statefun.KafkaEgressBuilder{Target: statefun.TypeNameFrom("test/out"), Topic: topic, Key: key, Value: value}.ToEgress()
	if err != nil {
		t.Fatal(err)
	}
	return &envelope.Envelope{Kind: envelope.KindEgress, Target: envelope.Address{Namespace: "test", Type: "out"}, Typename: r.Typename, Value: r.Value}
}

// openSink opens a sink for subtask i.
func openSink(t *testing.T, cfg SinkConfig, i int, restore []byte) (*Sink, *dataflowtest.Context) {
	t.Helper()
	s, ctx, err := tryOpenSink(t, cfg, i, restore)
	if err != nil {
		t.Fatalf("open: %v\n%s", err, ctx.Logs())
	}
	return s, ctx
}

func tryOpenSink(t *testing.T, cfg SinkConfig, i int, restore []byte) (*Sink, *dataflowtest.Context, error) {
	t.Helper()
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Name: "egress", Subtask: i, Parallelism: i + 1})
	s := NewSink(cfg, i)
	if restore != nil {
		if err := s.RestorePosition(restore); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Open(ctx)
	t.Cleanup(func() { s.Close() })
	return s, ctx, err
}

func write(t *testing.T, s *Sink, topic string, vals ...string) {
	t.Helper()
	for _, v := range vals {
		if err := s.Write(envelopeFor(t, topic, "k-"+v, v)); err != nil {
			t.Fatalf("write %s: %v", v, err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func dataflowContext(t *testing.T) *dataflowtest.Context {
	return dataflowtest.NewContext(t, dataflowtest.Options{})
}
