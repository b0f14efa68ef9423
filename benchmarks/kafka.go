package main

// Suite kafka: the engine against a Kafka broker, and goka (the Go Kafka
// stream processor, on sarama) doing the same count-per-key work on the
// same broker.
//
//	go run ./benchmarks -suite kafka [-kafka-n 1000000] [-kafka-keys 10000]
//
// The broker is $KAFKA_BOOTSTRAP when set, else the one scripts/kafka-
// broker.sh runs (started, and then stopped at the end, if not running). An input topic of 10
// partitions is prefilled with N records over K keys; the value of each is
// its produce time (unix nanoseconds).
//
//   - engine: app.Run in this process, Kafka ingress (earliest) -> embedded
//     counter -> Kafka egress (exactly-once, one transaction per checkpoint,
//     checkpoint interval 1 s), parallelism 2. Throughput: from the start
//     of app.Run until a read_committed consumer of the output topic has
//     seen N records. Latency: afterwards, records are produced live at a
//     fixed rate and the consumer measures receive time - produce time
//     (this includes the wait for the transaction commit at the next
//     checkpoint, so it is bounded below by the checkpoint interval).
//   - goka: goka.DefineGroup(Input(in, codec.Bytes), Persist(codec.Int64)),
//     default LevelDB storage, offsets committed every 100 ms. Throughput:
//     from p.Run until the group's committed offsets sum to N.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/statefun"
)

var (
	kafkaN       = flag.Int64("kafka-n", 1_000_000, "records of the kafka suite")
	kafkaKeys    = flag.Int("kafka-keys", 10_000, "key space of the kafka suite")
	kafkaLiveN   = flag.Int("kafka-live-n", 30_000, "records produced live for the engine's latency (kafka suite)")
	kafkaLiveHz  = flag.Int("kafka-live-rate", 10_000, "records/s of the live phase (kafka suite)")
	kafkaSkipGok = flag.Bool("kafka-skip-goka", false, "kafka suite: run only the engine")
)

const kafkaPartitions = 10

var (
	kCounterType = statefun.TypeNameFrom("bench/kcounter")
	kEgressType  = statefun.TypeNameFrom("bench/kout")
	kCountSpec   = statefun.ValueSpec{Name: "n", ValueType: statefun.Int64Type}
)

// kafkaSuite runs the suite and prints its figures; false on failure (the
// reason is printed as FAIL).
func kafkaSuite() bool {
	if err := runKafkaSuite(); err != nil {
		fmt.Println("FAIL: kafka:", err)
		return false
	}
	return true
}

func runKafkaSuite() error {
	addr, stopBroker, err := kafkaBroker()
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	defer stopBroker()
	n, keys := *kafkaN, *kafkaKeys
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	in, out := "bench-in-"+suffix, "bench-out-"+suffix

	adm, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	resp, err := kadm.NewClient(adm).CreateTopics(ctx, kafkaPartitions, 1, nil, in, out)
	cancel()
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(adm).DeleteTopics(ctx, in, out, "counter-"+suffix+"-table")
	}()

	t0 := time.Now()
	if err := kafkaPrefill(addr, in, n, keys); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	d := time.Since(t0)
	fmt.Printf("%-44s %12d msgs %8.2fs %12.0f msgs/s   (%s, %d partitions, %d keys)\n", "kafka: prefill (franz-go)", n, d.Seconds(), float64(n)/d.Seconds(), addr, kafkaPartitions, keys)

	eng, err := kafkaEngine(addr, in, out, n, keys, suffix)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	fmt.Printf("%-44s %12d msgs %8.2fs %12.0f msgs/s   peak RSS %6d MiB\n", "kafka: engine ingress->count->egress(EOS) p=2", n, eng.dur.Seconds(), eng.rate(), eng.peakRSS>>20)
	fmt.Printf("%-44s %12d msgs at %d/s: p50 %v p99 %v max %v\n", "  engine end-to-end latency (read_committed)", eng.liveN, *kafkaLiveHz, eng.p50.Round(time.Millisecond), eng.p99.Round(time.Millisecond), eng.max.Round(time.Millisecond))
	if *kafkaSkipGok {
		return nil
	}
	gk, err := kafkaGoka(addr, in, n, keys, suffix)
	if err != nil {
		return fmt.Errorf("goka: %w", err)
	}
	fmt.Printf("%-44s %12d msgs %8.2fs %12.0f msgs/s   peak RSS %6d MiB\n", "kafka: goka count (LevelDB, offsets committed)", gk.n, gk.dur.Seconds(), gk.rate(), gk.peakRSS>>20)
	fmt.Printf("%-44s %11.2fx  (target >= 3x)\n", "  engine / goka", eng.rate()/gk.rate())
	return nil
}

// kafkaBroker returns $KAFKA_BOOTSTRAP, or starts scripts/kafka-broker.sh.
func kafkaBroker() (string, func(), error) {
	if a := os.Getenv("KAFKA_BOOTSTRAP"); a != "" {
		return a, func() {}, nil
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", nil, fmt.Errorf("go env GOMOD: %v", err)
	}
	script := filepath.Join(filepath.Dir(strings.TrimSpace(string(gomod))), "scripts", "kafka-broker.sh")
	// A broker that already runs is used and left running.
	if st, err := exec.Command(script, "status").Output(); err == nil && strings.TrimSpace(string(st)) != "" {
		return strings.TrimSpace(string(st)), func() {}, nil
	}
	var stderr strings.Builder
	cmd := exec.Command(script, "start")
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("%s start: %v: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	addr := strings.TrimSpace(string(outb))
	if addr == "" {
		return "", nil, fmt.Errorf("%s start printed no address: %s", script, strings.TrimSpace(stderr.String()))
	}
	return addr, func() { _ = exec.Command(script, "stop").Run() }, nil
}

func fnv32a(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

func kafkaProducer(addr string, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr),
		// goka's (sarama's) placement of keys
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))),
		kgo.ProducerLinger(5 * time.Millisecond), kgo.ProducerBatchMaxBytes(1 << 20), kgo.MaxBufferedRecords(200_000)}, opts...)...)
}

// kafkaPrefill produces n records for keys key-0..key-(keys-1) round robin;
// the value is the produce time in unix nanoseconds.
func kafkaPrefill(addr, topic string, n int64, keys int) error {
	cl, err := kafkaProducer(addr)
	if err != nil {
		return err
	}
	defer cl.Close()
	var first atomic.Value
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			first.CompareAndSwap(nil, err)
		}
	}
	for i := range n {
		r := &kgo.Record{Topic: topic, Key: []byte("key-" + strconv.Itoa(int(i%int64(keys)))),
			Value: strconv.AppendInt(nil, time.Now().UnixNano(), 10)}
		cl.Produce(context.Background(), r, done)
	}
	if err := cl.Flush(context.Background()); err != nil {
		return err
	}
	if e := first.Load(); e != nil {
		return e.(error)
	}
	return nil
}

type kafkaResult struct {
	dur           time.Duration
	n             int64
	peakRSS       int64
	liveN         int
	p50, p99, max time.Duration
}

func (r kafkaResult) rate() float64 { return float64(r.n) / r.dur.Seconds() }

// kCounter counts per key and emits "<input value>:<count>".
func kCounter(out string) statefun.StatefulFunction {
	return statefun.StatefulFunctionPointer(func(ctx statefun.Context, msg statefun.Message) error {
		var n int64
		ctx.Storage().Get(kCountSpec, &n)
		n++
		ctx.Storage().Set(kCountSpec, n)
		v := append(append(slices.Clip(msg.RawValue()), ':'), strconv.FormatInt(n, 10)...)
		ctx.SendEgress(statefun.KafkaEgressBuilder{Target: kEgressType, Topic: out, Key: ctx.Self().Id, Value: v})
		return nil
	})
}

func kafkaEngine(addr, in, out string, n int64, keys int, suffix string) (kafkaResult, error) {
	dir, err := os.MkdirTemp("", "statefun-bench-kafka-")
	if err != nil {
		return kafkaResult{}, err
	}
	defer os.RemoveAll(dir)
	mod := filepath.Join(dir, "module.yaml")
	if err := os.WriteFile(mod, []byte(fmt.Sprintf(`kind: io.statefun.kafka.v1/ingress
spec:
  id: bench/kin
  address: %[1]s
  consumerGroupId: engine-%[2]s
  startupPosition:
    type: earliest
  topics:
    - topic: %[3]s
      valueType: bench/raw
      targets: [bench/kcounter]
---
kind: io.statefun.kafka.v1/egress
spec:
  id: bench/kout
  address: %[1]s
  deliverySemantic:
    type: exactly-once
    transactionTimeout: 1min
  properties:
    - transactional.id.prefix: bench-%[2]s
`, addr, suffix, in)), 0o644); err != nil {
		return kafkaResult{}, err
	}

	// The read_committed consumer: counts outputs, and measures the latency
	// of the live records (value prefix "L").
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(out),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return kafkaResult{}, err
	}
	defer cons.Close()
	var (
		seen    atomic.Int64
		mu      sync.Mutex
		lat     []time.Duration
		maxSeen atomic.Int64
	)
	cctx, ccancel := context.WithCancel(context.Background())
	cdone := make(chan struct{})
	go func() {
		defer close(cdone)
		for cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			now := time.Now().UnixNano()
			var c int64
			fs.EachRecord(func(r *kgo.Record) {
				c++
				v := r.Value
				if len(v) > 0 && v[0] == 'L' {
					if i := slices.Index(v, ':'); i > 1 {
						if ts, err := strconv.ParseInt(string(v[1:i]), 10, 64); err == nil {
							mu.Lock()
							lat = append(lat, time.Duration(now-ts))
							mu.Unlock()
						}
					}
					return
				}
				if i := bytes.LastIndexByte(v, ':'); i >= 0 {
					if k, err := strconv.ParseInt(string(v[i+1:]), 10, 64); err == nil && k > maxSeen.Load() {
						maxSeen.Store(k)
					}
				}
			})
			seen.Add(c)
		}
	}()
	defer func() { ccancel(); <-cdone }()

	cfg := app.Config{
		Modules: []string{mod}, StateDir: filepath.Join(dir, "state"), Parallelism: 2,
		CheckpointInterval: time.Second, Functions: []statefun.StatefulFunctionSpec{{FunctionType: kCounterType, States: []statefun.ValueSpec{kCountSpec}, Function: kCounter(out)}},
		Logger: benchLogger(), ShutdownTimeout: 30 * time.Second,
	}
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	stopRSS := make(chan struct{})
	peak := make(chan int64)
	go trackRSS(stopRSS, peak)
	runDone := make(chan error, 1)
	start := time.Now()
	go func() { _, err := app.Run(rctx, cfg); runDone <- err }()
	wait := func(target int64, timeout time.Duration) error {
		deadline := time.Now().Add(timeout)
		for seen.Load() < target {
			select {
			case err := <-runDone:
				return fmt.Errorf("app.Run returned early (%d of %d outputs): %v", seen.Load(), target, err)
			case <-time.After(5 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d outputs after %v", seen.Load(), target, timeout)
			}
		}
		return nil
	}
	if err := wait(n, 150*time.Second); err != nil {
		return kafkaResult{}, err
	}
	res := kafkaResult{dur: time.Since(start), n: n}
	if want := (n + int64(keys) - 1) / int64(keys); maxSeen.Load() != want {
		return kafkaResult{}, fmt.Errorf("highest count seen %d, want %d", maxSeen.Load(), want)
	}
	close(stopRSS)
	res.peakRSS = <-peak

	// Live phase: records at a fixed rate, value "L<unix nanos>".
	live := *kafkaLiveN
	if live > 0 {
		prod, err := kafkaProducer(addr, kgo.ProducerLinger(0))
		if err != nil {
			return kafkaResult{}, err
		}
		per := time.Second / time.Duration(*kafkaLiveHz)
		t0 := time.Now()
		for i := range live {
			if d := time.Until(t0.Add(time.Duration(i) * per)); d > 0 {
				time.Sleep(d)
			}
			prod.Produce(context.Background(), &kgo.Record{Topic: in, Key: []byte("key-" + strconv.Itoa(i%keys)),
				Value: append([]byte{'L'}, strconv.AppendInt(nil, time.Now().UnixNano(), 10)...)}, nil)
		}
		err = prod.Flush(context.Background())
		prod.Close()
		if err != nil {
			return kafkaResult{}, err
		}
		if err := wait(n+int64(live), 60*time.Second); err != nil {
			return kafkaResult{}, fmt.Errorf("live phase: %w", err)
		}
		mu.Lock()
		l := slices.Clone(lat)
		mu.Unlock()
		slices.Sort(l)
		if len(l) > 0 {
			res.liveN = len(l)
			res.p50, res.p99, res.max = l[len(l)/2], l[len(l)*99/100], l[len(l)-1]
		}
	}
	rcancel()
	select {
	case err := <-runDone:
		if err != nil && !errors.Is(err, context.Canceled) {
			return kafkaResult{}, fmt.Errorf("app.Run: %w", err)
		}
	case <-time.After(60 * time.Second):
		return kafkaResult{}, errors.New("app.Run did not return within 60 s of the stop")
	}
	return res, nil
}

func kafkaGoka(addr, in string, n int64, keys int, suffix string) (kafkaResult, error) {
	dir, err := os.MkdirTemp("", "statefun-bench-goka-")
	if err != nil {
		return kafkaResult{}, err
	}
	defer os.RemoveAll(dir)
	group := "counter-" + suffix
	var calls atomic.Int64
	g := goka.DefineGroup(goka.Group(group),
		goka.Input(goka.Stream(in), new(codec.Bytes), func(ctx goka.Context, _ interface{}) {
			var c int64
			if v := ctx.Value(); v != nil {
				c = v.(int64)
			}
			ctx.SetValue(c + 1)
			calls.Add(1)
		}),
		goka.Persist(new(codec.Int64)),
	)
	scfg := goka.DefaultConfig()
	scfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	scfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	goka.ReplaceGlobalConfig(scfg)
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = 1
	tmc.Stream.Replication = 1
	quiet := log.New(io.Discard, "", 0)
	p, err := goka.NewProcessor([]string{addr}, g,
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithTopicManagerConfig(tmc)),
		goka.WithStorageBuilder(storage.DefaultBuilder(dir)),
		goka.WithLogger(quiet))
	if err != nil {
		return kafkaResult{}, err
	}
	adm, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return kafkaResult{}, err
	}
	defer adm.Close()
	ka := kadm.NewClient(adm)

	// The input also holds the engine's live records: goka processes all
	// of them, and its rate is over all of them.
	ends, err := ka.ListEndOffsets(context.Background(), in)
	if err != nil {
		return kafkaResult{}, err
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total < n {
		return kafkaResult{}, fmt.Errorf("input holds %d records, want >= %d", total, n)
	}

	stopRSS := make(chan struct{})
	peak := make(chan int64)
	go trackRSS(stopRSS, peak)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	start := time.Now()
	go func() { runDone <- p.Run(ctx) }()
	deadline := start.Add(150 * time.Second)
	var committed int64
	for committed < total {
		select {
		case err := <-runDone:
			return kafkaResult{}, fmt.Errorf("processor stopped early (%d of %d committed): %v", committed, total, err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return kafkaResult{}, fmt.Errorf("%d of %d offsets committed after 150 s (%d callbacks)", committed, total, calls.Load())
		}
		fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
		offs, err := ka.FetchOffsets(fctx, group)
		fcancel()
		if err != nil {
			continue
		}
		committed = 0
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == in && o.Err == nil {
				committed += o.At
			}
		})
	}
	res := kafkaResult{dur: time.Since(start), n: total}
	close(stopRSS)
	res.peakRSS = <-peak
	// Verify a sample of keys.
	want := n / int64(keys)
	for i := 0; i < keys; i += max(1, keys/100) {
		v, err := p.Get("key-" + strconv.Itoa(i))
		if err != nil {
			return kafkaResult{}, fmt.Errorf("get: %w", err)
		}
		if c, _ := v.(int64); c < want {
			return kafkaResult{}, fmt.Errorf("goka count of key-%d is %d, want >= %d", i, c, want)
		}
	}
	cancel()
	select {
	case err := <-runDone:
		if err != nil && !errors.Is(err, context.Canceled) {
			return kafkaResult{}, fmt.Errorf("processor: %w", err)
		}
	case <-time.After(30 * time.Second):
		return kafkaResult{}, errors.New("goka processor did not stop within 30 s")
	}
	return res, nil
}
