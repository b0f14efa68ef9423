// Command benchmarks runs the engine's macro benchmarks side by side and
// prints their figures. `make bench` runs it.
//
//	go run ./benchmarks [-n 2000000] [-keys 100000] [-suite embedded,ring,memory]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/connectors/datagen"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/translate"
)

var (
	countType = statefun.TypeNameFrom("bench/counter")
	relayType = statefun.TypeNameFrom("bench/relay")
	countSpec = statefun.ValueSpec{Name: "count", ValueType: statefun.Int64Type}
	outEgress = statefun.TypeNameFrom("bench/out")
)

// counter counts messages per key in state and emits the new count.
func counter(ctx statefun.Context, _ statefun.Message) error {
	var n int64
	ctx.Storage().Get(countSpec, &n)
	n++
	ctx.Storage().Set(countSpec, n)
	ctx.SendEgress(statefun.GenericEgressBuilder{Target: outEgress, Value: n, ValueType: statefun.Int64Type})
	return nil
}

// relay forwards each message to the counter at another id, so most
// messages cross subtasks (function-to-function through the feedback loop).
func relay(ctx statefun.Context, msg statefun.Message) error {
	ctx.Send(statefun.MessageBuilder{
		Target: statefun.Address{FunctionType: countType, Id: ctx.Self().Id + "-r"},
		Value:  msg.AsString(), ValueType: statefun.StringType,
	})
	return nil
}

// countingSink counts egress records without writing them.
type countingSink struct{ n *atomic.Int64 }

func (s countingSink) Open(dataflow.Context) error    { return nil }
func (s countingSink) Write(*envelope.Envelope) error { s.n.Add(1); return nil }
func (s countingSink) Flush() error                   { return nil }
func (s countingSink) Close() error                   { return nil }

// benchLogger discards logs unless BENCH_LOG=debug.
func benchLogger() *slog.Logger {
	if os.Getenv("BENCH_LOG") == "debug" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type result struct {
	name     string
	messages int64
	dur      time.Duration
	peakRSS  int64
}

func (r result) rate() float64 { return float64(r.messages) / r.dur.Seconds() }

func runPipeline(name string, par int, n int64, keys int, target string) (result, error) {
	return runPipelineCfg(name, par, n, keys, target, 0)
}

func runPipelineCfg(name string, par int, n int64, keys int, target string, interval time.Duration) (result, error) {
	var egressed atomic.Int64
	b := statefun.StatefulFunctionsBuilder()
	_ = b.WithSpec(statefun.StatefulFunctionSpec{FunctionType: countType, States: []statefun.ValueSpec{countSpec}, Function: statefun.StatefulFunctionPointer(counter)})
	_ = b.WithSpec(statefun.StatefulFunctionSpec{FunctionType: relayType, Function: statefun.StatefulFunctionPointer(relay)})
	gen := datagen.Config{Count: n, Keys: keys, KeyPrefix: "k", ValueType: "io.statefun.types/string"}
	dir, err := os.MkdirTemp("", "statefun-bench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	cfg := app.Config{
		StateDir:    dir,
		Parallelism: par,
		Functions:   b.Specs(),
		Logger:      benchLogger(),
		Ingresses: []translate.Ingress{{
			ID: "bench/gen", ValueType: "io.statefun.types/string", Targets: []string{target},
			Source: func(int) connectors.Source { return datagen.New(gen) },
		}},
		Egresses: []translate.Egress{{ID: "bench/out", Sink: func(int) connectors.Sink { return countingSink{&egressed} }}},
	}
	cfg.CheckpointInterval = interval
	stop := make(chan struct{})
	peak := make(chan int64)
	go trackRSS(stop, peak)
	sum, err := app.Run(context.Background(), cfg)
	close(stop)
	rss := <-peak
	if err != nil {
		return result{}, err
	}
	if egressed.Load() != n {
		return result{}, fmt.Errorf("%s: %d egress records, want %d", name, egressed.Load(), n)
	}
	return result{name: name, messages: sum.Invocations, dur: sum.Duration, peakRSS: rss}, nil
}

// trackRSS samples the process's resident set size until stop closes.
func trackRSS(stop <-chan struct{}, out chan<- int64) {
	var peak int64
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if r := currentRSS(); r > peak {
			peak = r
		}
		select {
		case <-stop:
			out <- peak
			return
		case <-t.C:
		}
	}
}

func currentRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, rss int64
	fmt.Sscan(string(b), &size, &rss)
	return rss * int64(os.Getpagesize())
}

func main() {
	n := flag.Int64("n", 2_000_000, "messages per embedded run")
	keys := flag.Int("keys", 100_000, "key space of the embedded runs")
	memN := flag.Int64("mem-n", 50_000_000, "messages of the memory run")
	memKeys := flag.Int("mem-keys", 1_000_000, "key space of the memory run")
	suites := flag.String("suite", "embedded,f2f,remote,valve,checkpoint,kafka,memory", "comma-separated suites")
	ckptBytes := flag.Int64("checkpoint-bytes", 1<<30, "state size of the checkpoint benchmark")
	remoteN := flag.Int64("remote-n", 500_000, "messages of the remote run")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("machine: %d CPUs, GOMAXPROCS %d, %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	var failed bool
	report := func(r result, err error) {
		if err != nil {
			fmt.Println("FAIL:", err)
			failed = true
			return
		}
		fmt.Printf("%-44s %12d msgs %8.2fs %12.0f msgs/s   peak RSS %6d MiB\n", r.name, r.messages, r.dur.Seconds(), r.rate(), r.peakRSS>>20)
	}
	for _, s := range strings.Split(*suites, ",") {
		switch s {
		case "embedded":
			for _, p := range []int{1, 2} {
				report(runPipeline(fmt.Sprintf("generator->count(%dk keys)->egress p=%d", *keys/1000, p), p, *n, *keys, "bench/counter"))
			}
		case "f2f":
			for _, p := range []int{1, 2} {
				r, err := runPipeline(fmt.Sprintf("generator->relay->count (f2f) p=%d", p), p, *n/2, *keys, "bench/relay")
				report(r, err)
			}
		case "remote":
			r, err := runRemote(*remoteN, 10_000, 2)
			if err != nil {
				fmt.Println("FAIL:", err)
				failed = true
				continue
			}
			fmt.Printf("%-44s %12.0f msgs/s  p50 %v p99 %v  (avg batch %.1f)\n", "generator->remote SDK count(10k keys)->egress p=2", r.rate, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.avgBatch)
			fmt.Printf("%-44s %12.0f msgs/s  -> runtime reaches %.0f%% of it\n", "  SDK ceiling (handler.Invoke, same batches)", r.sdkCeiling, 100*r.rate/r.sdkCeiling)
			fmt.Printf("%-44s %12.0f msgs/s  -> runtime is %.1fx\n", "  naive client (1 request per message)", r.naive, r.rate/r.naive)
		case "valve":
			// Backpressure when one address is hot and its batches fill up
			// (maxNumBatchRequests 10): upstream pauses the whole task while
			// any address is blocked; we block per address by default.
			for _, whole := range []bool{true, false} {
				r, err := runRemoteCfg(*remoteN/2, 10_000, 2, 10, true, whole, false)
				if err != nil {
					fmt.Println("FAIL:", err)
					failed = true
					continue
				}
				mode := "per-address blocking"
				if whole {
					mode = "whole-task blocking (upstream)"
				}
				fmt.Printf("%-44s %12.0f msgs/s  p50 %v p99 %v\n", "hot key, "+mode, r.rate, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond))
			}
		case "checkpoint":
			without, with, err := checkpointOverhead(*n*2, *keys)
			if err != nil {
				fmt.Println("FAIL:", err)
				failed = true
				continue
			}
			report(without, nil)
			report(with, nil)
			fmt.Printf("%-44s %11.0f%%  (target >= 90%%)\n", "  throughput with checkpoints / without", 100*with.rate()/without.rate())
			cr, err := benchCheckpoint(*ckptBytes)
			if err != nil {
				fmt.Println("FAIL:", err)
				failed = true
				continue
			}
			fmt.Printf("checkpoint of %d MiB of state (loaded in %v):\n", cr.stateBytes>>20, cr.load.Round(time.Millisecond))
			fmt.Printf("  full:        pause %8v  total %8v\n", cr.fullPause.Round(time.Microsecond), cr.fullTotal.Round(time.Millisecond))
			fmt.Printf("  incremental: pause %8v  total %8v  (1%% of keys changed, %d MiB new)\n", cr.incrPause.Round(time.Microsecond), cr.incrTotal.Round(time.Millisecond), cr.incrNewBytes>>20)
			fmt.Printf("  restore (validate + materialize + open + first read): %v\n", cr.restore.Round(time.Millisecond))
		case "kafka":
			failed = !kafkaSuite() || failed
		case "memory":
			report(runPipeline(fmt.Sprintf("memory: %dM msgs over %dk keys p=2", *memN/1_000_000, *memKeys/1000), 2, *memN, *memKeys, "bench/counter"))
		}
	}
	if failed {
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}
