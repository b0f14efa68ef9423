package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/statefun"
)

// TestKafkaStartupPositions runs the engine with every startupPosition of
// the Kafka ingress (contract §4.5), on kfake and, in CI, on the real
// broker ($KAFKA_BOOTSTRAP). Before the job starts, "old" records are in
// the topic (and, for group-offsets, the group has committed offset 2 of
// partition 0); after it started, "new" records arrive. Each position must
// yield exactly the expected set through the at-least-once egress.
func TestKafkaStartupPositions(t *testing.T) {
	old := func(p int32, i int) string { return fmt.Sprintf("old-p%d-%d", p, i) }
	all := func(prefix string) []string {
		var out []string
		for p := int32(0); p < 2; p++ {
			for i := range 3 {
				out = append(out, fmt.Sprintf("%s-p%d-%d", prefix, p, i))
			}
		}
		return out
	}
	cases := []struct {
		name, position string
		groupCommit    bool
		want           func(dateSplit bool) []string
	}{
		{"earliest", "type: earliest", false, func(bool) []string { return append(all("old"), all("new")...) }},
		{"latest", "type: latest", false, func(bool) []string { return all("new") }},
		{"group-offsets", "type: group-offsets", true, func(bool) []string {
			// p0 resumes at the committed offset 2; p1 has no commit:
			// autoOffsetResetPosition (earliest).
			return append([]string{old(0, 2), old(1, 0), old(1, 1), old(1, 2)}, all("new")...)
		}},
		{"specific-offsets", "type: specific-offsets\n    offsets:\n      - %[1]s/0: 1\n      - %[1]s/1: 2", false, func(bool) []string {
			return append([]string{old(0, 1), old(0, 2), old(1, 2)}, all("new")...)
		}},
		// Records at or after the date: the "mid" ones (10 min old), not
		// the "old" ones (1 h old).
		{"date", "type: date\n    date: %[2]s", false, func(bool) []string { return append(all("mid"), all("new")...) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			addr := kafkaAddr(t)
			topics := kafkaTopics(t, addr, 2, "start-in", "start-out")
			in, out := topics[0], topics[1]
			group := "g-" + in
			var recs []*kgo.Record
			for p := int32(0); p < 2; p++ {
				for i := range 3 {
					recs = append(recs, &kgo.Record{Topic: in, Partition: p, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(old(p, i)),
						Timestamp: time.Now().Add(-time.Hour)})
				}
			}
			if c.name == "date" {
				for p := int32(0); p < 2; p++ {
					for i := range 3 {
						recs = append(recs, &kgo.Record{Topic: in, Partition: p, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("mid-p%d-%d", p, i)),
							Timestamp: time.Now().Add(-10 * time.Minute)})
					}
				}
			}
			producer := kafkaClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			if c.groupCommit {
				offs := kadm.Offsets{}
				offs.Add(kadm.Offset{Topic: in, Partition: 0, At: 2, LeaderEpoch: -1})
				if _, err := kadm.NewClient(producer).CommitOffsets(ctx, group, offs); err != nil {
					t.Fatalf("commit: %v", err)
				}
			}
			split := time.Now().Add(-30 * time.Minute).UTC().Format("2006-01-02 15:04:05.000 -0700")
			position := c.position
			if strings.Contains(position, "%") {
				position = fmt.Sprintf(position, in, split)
			}
			dir := t.TempDir()
			mod := writeFile(t, dir, "module.yaml", fmt.Sprintf(`kind: io.statefun.kafka.v1/ingress
spec:
  id: test/kafka-in
  address: %[1]s
  consumerGroupId: %[2]s
  autoOffsetResetPosition: earliest
  startupPosition:
    %[3]s
  topics:
    - topic: %[4]s
      valueType: test/raw
      targets: [test/echo]
---
kind: io.statefun.kafka.v1/egress
spec:
  id: test/kafka-out
  address: %[1]s
  deliverySemantic:
    type: at-least-once
`, addr, group, position, in))
			var started atomic.Bool
			log := testLogger(t)
			cfg := app.Config{
				Modules: []string{mod}, StateDir: dir, CheckpointInterval: 100 * time.Millisecond, Parallelism: 2,
				Functions: echoToKafka(t, "test/kafka-out", out),
				Logger:    log,
				OnStarted: func() { started.Store(true) },
			}
			stop, done, runErr := runKafkaJob(t, cfg)
			deadline := time.Now().Add(20 * time.Second)
			for !started.Load() {
				select {
				case <-done:
					t.Fatalf("the job ended before it started: %v", *runErr)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("the job did not start")
				}
				time.Sleep(10 * time.Millisecond)
			}
			// Partition offsets are resolved when the ingress opens, before
			// the job reports it started: "new" records come after.
			var fresh []*kgo.Record
			for p := int32(0); p < 2; p++ {
				for i := range 3 {
					fresh = append(fresh, &kgo.Record{Topic: in, Partition: p, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("new-p%d-%d", p, i))})
				}
			}
			if err := producer.ProduceSync(ctx, fresh...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			want := c.want(true)
			slices.Sort(want)
			w := watchTopic(t, addr, out, false)
			w.waitFor(t, "expected output", 20*time.Second, func(v []string) bool {
				return len(dedup(v)) >= len(want)
			})
			time.Sleep(300 * time.Millisecond) // anything unexpected would show up now
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			got := dedup(w.all())
			if !slices.Equal(got, want) {
				t.Fatalf("startup %s:\n got %q\nwant %q", c.name, got, want)
			}
		})
	}
}

// echoToKafka is a function test/echo that writes every message's raw
// value to topic out through the Kafka egress.
func echoToKafka(t *testing.T, egress, out string) []statefun.StatefulFunctionSpec {
	return specs(t, statefun.StatefulFunctionSpec{
		FunctionType: statefun.TypeNameFrom("test/echo"),
		Function: statefun.StatefulFunctionPointer(func(ctx statefun.Context, msg statefun.Message) error {
			ctx.SendEgress(statefun.KafkaEgressBuilder{Target: statefun.TypeNameFrom(egress), Topic: out, Key: ctx.Self().Id, Value: msg.RawValue()})
			return nil
		}),
	})
}
