package main

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/statefun-go/statefun/checkpoint/store"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/state"
)

// checkpointResult holds the figures of the state-size checkpoint bench.
type checkpointResult struct {
	stateBytes                 int64
	load                       time.Duration
	fullPause, fullTotal       time.Duration
	incrPause, incrTotal       time.Duration
	incrNewBytes, incrNewFiles int64
	restore                    time.Duration
	restoreFiles               int
}

// benchCheckpoint builds a state store of about `bytes` (random values of
// 100 B under 16 B keys spread over all key groups), then measures the
// operator's checkpoint path: the synchronous pause (the write-back flush
// that SnapshotState does on the task goroutine; the Pebble checkpoint runs
// asynchronously) and the total
// (plus storing the files in the checkpoint store and committing the
// metadata); then the same after changing 1% of the keys (incremental);
// then a restore (validate the latest checkpoint, materialize, open, read).
func benchCheckpoint(bytes int64) (checkpointResult, error) {
	var res checkpointResult
	dir, err := os.MkdirTemp("", "statefun-bench-ckpt-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	st, err := state.Open(state.Options{Dir: filepath.Join(dir, "db"), WriteBackBytes: 64 << 20})
	if err != nil {
		return res, err
	}
	defer st.Close()
	const valueLen = 100
	n := int(bytes / (valueLen + 40))
	rng := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, valueLen)
	key := func(i int) state.Key {
		id := fmt.Sprintf("k%09d", i)
		return state.Key{KeyGroup: dataflow.KeyGroupFor(id, 128), Space: state.SpaceValue, Namespace: "bench", Type: "fn", ID: id, Name: "v"}
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		if err := st.Set(key(i), val, 0); err != nil {
			return res, err
		}
	}
	if err := st.Flush(); err != nil {
		return res, err
	}
	res.load = time.Since(start)
	ck, err := store.Open(filepath.Join(dir, "checkpoints"), "job", store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return res, err
	}
	take := func(id uint64) (pause, total time.Duration, err error) {
		start := time.Now()
		tmp := filepath.Join(dir, fmt.Sprintf("snap-%d", id))
		wait, err := st.CheckpointAsync(tmp)
		if err != nil {
			return 0, 0, err
		}
		pause = time.Since(start)
		if err := wait(); err != nil {
			return 0, 0, err
		}
		p, err := ck.Begin(id)
		if err != nil {
			return 0, 0, err
		}
		if err := p.AddPebbleCheckpoint("functions-0.state", tmp); err != nil {
			return 0, 0, err
		}
		if err := p.Commit(store.Metadata{ID: id, Parallelism: 1, MaxParallelism: 128}); err != nil {
			return 0, 0, err
		}
		return pause, time.Since(start), nil
	}
	if res.fullPause, res.fullTotal, err = take(1); err != nil {
		return res, err
	}
	res.stateBytes = dirSize(filepath.Join(dir, "checkpoints"))
	for i := 0; i < n/100; i++ { // 1% of the keys change
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		if err := st.Set(key(rng.IntN(n)), val, 0); err != nil {
			return res, err
		}
	}
	before := dirSize(filepath.Join(dir, "checkpoints"))
	if res.incrPause, res.incrTotal, err = take(2); err != nil {
		return res, err
	}
	res.incrNewBytes = dirSize(filepath.Join(dir, "checkpoints")) - before
	start = time.Now()
	latest, _, err := ck.Latest()
	if err != nil || latest == nil {
		return res, fmt.Errorf("latest: %v", err)
	}
	dst := filepath.Join(dir, "restored")
	if err := latest.MaterializePebble("functions-0.state", dst); err != nil {
		return res, err
	}
	rs, err := state.Open(state.Options{Dir: dst})
	if err != nil {
		return res, err
	}
	if _, ok, err := rs.Get(key(n / 2)); err != nil || !ok {
		return res, fmt.Errorf("restored store misses a key: %v", err)
	}
	res.restore = time.Since(start)
	rs.Close()
	return res, nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// checkpointOverhead runs the embedded counting pipeline with and without
// checkpoints every second.
func checkpointOverhead(n int64, keys int) (without, with result, err error) {
	if without, err = runPipelineCfg("no checkpoints", 2, n, keys, "bench/counter", 0); err != nil {
		return
	}
	with, err = runPipelineCfg("checkpoints every 1s", 2, n, keys, "bench/counter", time.Second)
	return
}
