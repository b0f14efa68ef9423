package smoke

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The smoke test proper (contract §6.1 plus the chaos it lists): smokecmd
// runs as a child process with checkpoints every 100 ms and is killed with
// SIGKILL at seeded random moments, restarted on the same state directory
// each time, then left to finish. The outputs must be exactly the model's,
// and byte-identical (as sorted lines) to those of a run without kills.
//
//	go test ./internal/smoke -run TestSmoke -v                 # short: 3 kills
//	SMOKE_LONG=1 go test ./internal/smoke -run TestSmoke -v    # 10 kills, bigger
//	SMOKE_TEST_SEED=123 ...                                     # replay a seed
//	SMOKE_RACE=1 ...                                            # smokecmd built with -race

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// smokeBinary builds smokecmd once per test binary run.
func smokeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "smoke-bin-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		start := time.Now()
		binPath, buildErr = Build(ctx, binDir)
		t.Logf("built smokecmd in %v", time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func runArgs(module, stateDir string, parallelism int) []string {
	return []string{"run", "--module", module, "--parallelism", strconv.Itoa(parallelism), "--checkpoint-interval", "100ms",
		"--state-dir", stateDir, "--restart-attempts", "0"}
}

func newRunDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteModule(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SMOKE_TEST_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("SMOKE_TEST_SEED: %v", err)
		}
	}
	return seed
}

// chaos describes a run with kills.
type chaos struct {
	p                Params
	kills            int
	killMin, killMax time.Duration
	// parallelism picks the parallelism of attempt k (1-based; the final
	// attempt is kills+1).
	parallelism func(k int) int
}

// run runs smokecmd in dir with SIGKILLs at seeded random moments, each
// attempt restarting on the same state dir, then lets it finish. It checks
// that every attempt restored the newest complete checkpoint.
func (c chaos) run(t *testing.T, bin, dir string, rng *rand.Rand) {
	t.Helper()
	stateDir := filepath.Join(dir, "state")
	module := filepath.Join(dir, ModuleFile)
	for k := 1; k <= c.kills; k++ {
		before, err := CompleteCheckpoints(stateDir)
		if err != nil {
			t.Fatal(err)
		}
		par := c.parallelism(k)
		proc, err := Start(bin, dir, c.p.Env(), runArgs(module, stateDir, par)...)
		if err != nil {
			t.Fatal(err)
		}
		delay := c.killMin + time.Duration(rng.Int64N(int64(c.killMax-c.killMin)))
		select {
		case <-proc.Done():
		case <-time.After(delay):
		}
		killed := proc.Kill()
		stderr := proc.Stderr()
		restored := RestoredIDs(stderr)
		after, _ := CompleteCheckpoints(stateDir)
		t.Logf("attempt %d (parallelism %d): SIGKILL %v after start (killed=%v); restored %v; complete checkpoints before %v, after %v",
			k, par, delay.Round(time.Millisecond), killed, restored, before, after)
		checkRestored(t, k, before, restored, stderr)
		if over, err := OverCounts(dir); err != nil || len(over) > 0 {
			t.Fatalf("attempt %d: over-count (duplicate processing) %+v, %v\nstderr:\n%s", k, over, err, stderr)
		}
		if strings.Contains(stderr, "WARNING: DATA RACE") {
			t.Errorf("attempt %d: data race in smokecmd:\n%s", k, stderr)
		}
		if !killed {
			if code, err := proc.exitCode(); err != nil || code != 0 {
				t.Fatalf("attempt %d exited by itself with code %d (%v) before the kill\nstderr:\n%s", k, code, err, stderr)
			}
			t.Logf("attempt %d finished before its kill: the remaining kills are skipped", k)
			return
		}
	}
	before, _ := CompleteCheckpoints(stateDir)
	par := c.parallelism(c.kills + 1)
	proc, err := Start(bin, dir, c.p.Env(), runArgs(module, stateDir, par)...)
	if err != nil {
		t.Fatal(err)
	}
	if code, err := proc.Wait(60 * time.Second); err != nil || code != 0 {
		t.Fatalf("final attempt: exit code %d, %v\nstderr:\n%s", code, err, proc.Stderr())
	}
	restored := RestoredIDs(proc.Stderr())
	t.Logf("final attempt (parallelism %d): restored %v (checkpoints before %v), ran %v", par, restored, before, time.Since(proc.Started).Round(time.Millisecond))
	checkRestored(t, c.kills+1, before, restored, proc.Stderr())
}

func checkModel(t *testing.T, what, dir string, m Model) Output {
	t.Helper()
	out, err := ReadOutput(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(m, out); err != nil {
		t.Fatalf("%s: the output is not exactly the model's:\n%v", what, err)
	}
	t.Logf("%s: %d verification records, %d discard records: exactly the model's", what, len(out.Verifications), len(out.Discards))
	return out
}

func TestSmoke(t *testing.T) {
	seed := testSeed(t)
	c := chaos{p: Params{N: 32, MessageCount: 3000, Seed: seed, Rate: 1000}, kills: 3,
		killMin: 200 * time.Millisecond, killMax: 1000 * time.Millisecond, parallelism: func(int) int { return 2 }}
	if os.Getenv("SMOKE_LONG") == "1" {
		c.p.N, c.p.MessageCount, c.p.Rate = 128, 100000, 5000
		c.kills, c.killMax = 10, 2500*time.Millisecond
	}
	p := &c.p
	p.EnsureDefaults()
	t.Logf("seed %d (replay with SMOKE_TEST_SEED=%d): N=%d, %d commands at %.0f/s, %d kills", seed, seed, p.N, p.MessageCount, p.Rate, c.kills)
	start := time.Now()
	m := p.Model()
	t.Logf("model: %s (%v)", m.Stats, time.Since(start).Round(time.Millisecond))
	bin := smokeBinary(t)

	// The reference run without kills, concurrently.
	refDir := newRunDir(t, "reference")
	refDone := make(chan *Proc, 1)
	defer func() {
		for range refDone { // the goroutine must not outlive the test
		}
	}()
	go func() {
		defer close(refDone)
		proc, err := Start(bin, refDir, p.Env(), runArgs(filepath.Join(refDir, ModuleFile), filepath.Join(refDir, "state"), 2)...)
		if err != nil {
			t.Error(err)
			return
		}
		if code, err := proc.Wait(90 * time.Second); err != nil || code != 0 {
			t.Errorf("reference run: exit code %d, %v\nstderr:\n%s", code, err, proc.Stderr())
			return
		}
		t.Logf("reference run (no kills): %v", time.Since(proc.Started).Round(time.Millisecond))
		refDone <- proc
	}()

	dir := newRunDir(t, "chaos")
	c.run(t, bin, dir, rand.New(rand.NewPCG(seed, 0x5eed)))
	out := checkModel(t, "chaos run", dir, m)

	if ref := <-refDone; ref == nil {
		t.FailNow()
	}
	refOut := checkModel(t, "reference run", refDir, m)
	if !slices.Equal(out.VerificationLines, refOut.VerificationLines) || !slices.Equal(out.DiscardLines, refOut.DiscardLines) {
		t.Errorf("sorted outputs differ between the chaos and the reference run")
	}
}

// TestSmokeRescaleOnRestart: as TestSmoke, but every restart picks another
// parallelism (1 to 4) and restores the latest checkpoint into it. The
// generator ingress is declared with parallelism 1, so its position moves
// too; keyed state, queued and delayed messages move with their key
// groups.
func TestSmokeRescaleOnRestart(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x7e5ca1e))
	c := chaos{p: Params{N: 32, MessageCount: 3000, Seed: seed, Rate: 1000, SourceParallelism: 1}, kills: 3,
		killMin: 200 * time.Millisecond, killMax: 1000 * time.Millisecond,
		parallelism: func(int) int { return 1 + rng.IntN(4) }}
	if os.Getenv("SMOKE_LONG") == "1" {
		c.p.N, c.p.MessageCount, c.p.Rate = 128, 50000, 5000
		c.kills, c.killMax = 8, 2500*time.Millisecond
	}
	c.p.EnsureDefaults()
	t.Logf("seed %d (replay with SMOKE_TEST_SEED=%d): N=%d, %d commands at %.0f/s, %d kills", seed, seed, c.p.N, c.p.MessageCount, c.p.Rate, c.kills)
	m := c.p.Model()
	dir := newRunDir(t, "chaos")
	c.run(t, smokeBinary(t), dir, rng)
	checkModel(t, "rescaled chaos run", dir, m)
}

// checkRestored checks that an attempt restored the newest complete
// checkpoint that existed before it started (or none when there was none).
func checkRestored(t *testing.T, attempt int, before, restored []uint64, stderr string) {
	t.Helper()
	switch {
	case len(before) == 0 && len(restored) == 0:
	case len(before) == 0:
		t.Errorf("attempt %d restored %v although no checkpoint existed", attempt, restored)
	case len(restored) == 0:
		if strings.Contains(stderr, "job started") {
			t.Errorf("attempt %d started without restoring although checkpoints %v existed\nstderr:\n%s", attempt, before, stderr)
		}
		// Killed before it got to the restore: nothing to check.
	case restored[0] != before[len(before)-1]:
		t.Errorf("attempt %d restored checkpoint %d, the latest complete one is %d (skipped: %q)", attempt, restored[0], before[len(before)-1], SkippedReasons(stderr))
	}
}
