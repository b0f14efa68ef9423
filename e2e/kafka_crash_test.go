package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/statefun"
)

// The Kafka connectors across process crashes: `statefun run` as a child
// process (this test binary re-executed as the statefun CLI with an
// embedded counting function, see init) reads a Kafka topic and writes a
// Kafka topic; it is killed with SIGKILL at seeded random moments three
// times and restarted on the same state directory each time, then drains
// everything and is stopped with SIGTERM. A read_committed consumer must
// see every "<id>:<n>" exactly once (exactly-once) or at least once
// (at-least-once).
//
// The broker is $KAFKA_BOOTSTRAP when set, else a kfake cluster in the
// test process listening on 127.0.0.1 (reachable by the child).
//
// KAFKA_CRASH_SEED fixes the seed of the kill moments (logged otherwise).

const (
	crashChildEnv = "STATEFUN_E2E_KAFKA_CRASH_CHILD" // set: act as the statefun CLI
	crashOutEnv   = "STATEFUN_E2E_KAFKA_CRASH_OUT"   // the output topic
)

var (
	crashCounterType = statefun.TypeNameFrom("ex/counter")
	crashEgressType  = statefun.TypeNameFrom("ex/out")
	crashCountSpec   = statefun.ValueSpec{Name: "n", ValueType: statefun.Int64Type}
)

// init turns the test binary into the statefun CLI with the counting
// function when started as the child process.
func init() {
	if os.Getenv(crashChildEnv) == "" {
		return
	}
	out := os.Getenv(crashOutEnv)
	app.Main(app.WithFunctions(statefun.StatefulFunctionSpec{
		FunctionType: crashCounterType,
		States:       []statefun.ValueSpec{crashCountSpec},
		Function: statefun.StatefulFunctionPointer(func(ctx statefun.Context, _ statefun.Message) error {
			var n int64
			ctx.Storage().Get(crashCountSpec, &n)
			n++
			ctx.Storage().Set(crashCountSpec, n)
			id := ctx.Self().Id
			ctx.SendEgress(statefun.KafkaEgressBuilder{Target: crashEgressType, Topic: out, Key: id, Value: fmt.Sprintf("%s:%d", id, n)})
			return nil
		}),
	}))
}

// crashProc is one run of the child engine.
type crashProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

func startCrashProc(t *testing.T, dir, mod, out string) *crashProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "run", "--module", mod, "--state-dir", filepath.Join(dir, "state"),
		"--checkpoint-interval", "200ms", "--parallelism", "2", "--shutdown-timeout", "20s")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashOutEnv+"="+out)
	p := &crashProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *crashProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *crashProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to timeout for a clean exit.
func (p *crashProc) stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("no exit within %v of SIGTERM (killed)", timeout)
	}
}

func crashModule(t *testing.T, dir, addr, group, semantic, prefix, in string) string {
	t.Helper()
	ds := "type: " + semantic
	if semantic == "exactly-once" {
		ds += "\n    transactionTimeout: 1min"
	}
	return writeFile(t, dir, "module.yaml", fmt.Sprintf(`kind: io.statefun.kafka.v1/ingress
spec:
  id: ex/in
  address: %[1]s
  consumerGroupId: %[2]s
  startupPosition:
    type: earliest
  topics:
    - topic: %[3]s
      valueType: ex/raw
      targets: [ex/counter]
---
kind: io.statefun.kafka.v1/egress
spec:
  id: ex/out
  address: %[1]s
  deliverySemantic:
    %[4]s
  properties:
    - transactional.id.prefix: %[5]s
    - linger.ms: 5
`, addr, group, in, ds, prefix))
}

func TestKafkaCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("process crash test")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("KAFKA_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KAFKA_CRASH_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (KAFKA_CRASH_SEED)", seed)
	for i, semantic := range []string{"exactly-once", "at-least-once"} {
		t.Run(semantic, func(t *testing.T) {
			t.Parallel()
			testKafkaCrash(t, semantic, seed+uint64(i))
		})
	}
}

func testKafkaCrash(t *testing.T, semantic string, seed uint64) {
	const (
		total = 3000
		keys  = 50
		kills = 3
	)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	addr := kafkaAddr(t)
	topics := kafkaTopics(t, addr, 4, "crash-in", "crash-out")
	in, out := topics[0], topics[1]
	dir := t.TempDir()
	prefix := filepath.Base(out)
	mod := crashModule(t, dir, addr, "group-"+prefix, semantic, prefix, in)
	committed := watchTopic(t, addr, out, true)

	// Input: key k-(i mod keys), value = the record's index. A third before
	// the first start, the rest paced while the engine runs and crashes.
	var recs []*kgo.Record
	want := map[string]int{}
	for i := range total {
		k := fmt.Sprintf("k-%d", (i*7)%keys)
		want[k]++
		recs = append(recs, &kgo.Record{Topic: in, Key: []byte(k), Value: []byte(strconv.Itoa(i))})
	}
	produceKafka(t, addr, recs[:total/3])
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()
	produceErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			produceErr <- err
			return
		}
		defer cl.Close()
		rest := recs[total/3:]
		for len(rest) > 0 && ctx.Err() == nil {
			n := min(40, len(rest))
			if err := cl.ProduceSync(ctx, rest[:n]...).FirstErr(); err != nil {
				produceErr <- err
				return
			}
			rest = rest[n:]
			time.Sleep(100 * time.Millisecond) // 400 records/s: ~5 s, across the kills
		}
		produceErr <- nil
	}()

	var logs []string
	defer func() {
		if t.Failed() {
			for i, l := range logs {
				t.Logf("run %d log:\n%s", i+1, l)
			}
		}
	}()
	for i := range kills {
		p := startCrashProc(t, dir, mod, out)
		after := time.Duration(300+rng.IntN(1500)) * time.Millisecond
		time.Sleep(after)
		if p.exited() {
			logs = append(logs, p.stderr.String())
			t.Fatalf("run %d exited by itself before the kill: %v", i+1, p.err)
		}
		p.kill()
		logs = append(logs, p.stderr.String())
		t.Logf("run %d: SIGKILL after %v; %d committed output records so far", i+1, after, len(committed.all()))
	}
	if err := <-produceErr; err != nil {
		t.Fatalf("produce: %v", err)
	}

	var expect []string
	for k, n := range want {
		for c := 1; c <= n; c++ {
			expect = append(expect, fmt.Sprintf("%s:%d", k, c))
		}
	}
	slices.Sort(expect)
	p := startCrashProc(t, dir, mod, out)
	deadline := time.Now().Add(40 * time.Second)
	// SIGTERM is handled only once the job runs.
	for !strings.Contains(p.stderr.String(), "job started") {
		if p.exited() || time.Now().After(deadline) {
			logs = append(logs, p.stderr.String())
			t.Fatalf("final run did not start: %v", p.err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		got := committed.all()
		if semantic == "exactly-once" && len(got) >= len(expect) {
			break
		}
		if semantic != "exactly-once" {
			if missing, _ := multisetDiff(expect, dedup(got), strings.Compare); len(missing) == 0 {
				break
			}
		}
		if p.exited() {
			logs = append(logs, p.stderr.String())
			t.Fatalf("final run exited by itself: %v (%d of %d output records)", p.err, len(got), len(expect))
		}
		if time.Now().After(deadline) {
			p.kill()
			logs = append(logs, p.stderr.String())
			missing, _ := multisetDiff(expect, dedup(got), strings.Compare)
			t.Fatalf("final run: %d output records (%d distinct missing, e.g. %q) after 40 s, want %d", len(got), len(missing), head(missing, 10), len(expect))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if semantic == "exactly-once" {
		time.Sleep(500 * time.Millisecond) // let a late duplicate show up
	}
	err := p.stop(30 * time.Second)
	logs = append(logs, p.stderr.String())
	if err != nil {
		t.Fatalf("final run: %v", err)
	}
	if !strings.Contains(p.stderr.String(), "summary:") {
		t.Logf("final run printed no summary line")
	}

	got := committed.all()
	if semantic == "exactly-once" {
		missing, extra := multisetDiff(expect, got, strings.Compare)
		if len(missing)+len(extra) > 0 {
			t.Fatalf("%d output records, want %d: missing %q, extra %q", len(got), len(expect), head(missing, 20), head(extra, 20))
		}
	} else {
		missing, extra := multisetDiff(expect, dedup(got), strings.Compare)
		if len(missing)+len(extra) > 0 {
			t.Fatalf("missing %q, unexpected %q", head(missing, 20), head(extra, 20))
		}
		t.Logf("at-least-once: %d output records for %d distinct", len(got), len(expect))
	}
}
