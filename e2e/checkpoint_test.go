package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/statefun-go/statefun/checkpoint/store"
	"github.com/statefun-go/statefun/internal/smoke"
)

// Checkpoints and restore of `statefun run --state-dir D
// --checkpoint-interval I` as a real process: the smoke application
// (internal/smoke: random nested commands, delayed messages and
// cancellations, two file egresses) is killed, stopped, corrupted and
// restarted, and its outputs must still be exactly those of its model
// (smoke.Check: every counter exact, every egress record exactly once).

var (
	smokeOnce sync.Once
	smokeBin  string
	smokeErr  error
)

// smokeBinary builds internal/smoke/smokecmd once, next to the greeter
// binary (whose directory TestMain removes).
func smokeBinary(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(greeter(t))
	smokeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		smokeBin, smokeErr = smoke.Build(ctx, dir)
	})
	if smokeErr != nil {
		t.Fatal(smokeErr)
	}
	return smokeBin
}

// smokeJob is one smoke application with its directory: module.yaml, the
// egress files and state/.
type smokeJob struct {
	t      *testing.T
	bin    string
	p      smoke.Params
	m      smoke.Model
	dir    string
	state  string
	module string
}

// smokeParams are small enough for a few seconds per run, paced so that
// a run takes about two seconds and several checkpoints.
func smokeParams(seed uint64) smoke.Params {
	p := smoke.Params{N: 16, MessageCount: 2000, Seed: seed, Rate: 1000}
	p.EnsureDefaults()
	return p
}

func newSmokeJob(t *testing.T, p smoke.Params) *smokeJob {
	t.Helper()
	p.EnsureDefaults()
	j := &smokeJob{t: t, bin: smokeBinary(t), p: p, m: p.Model(), dir: t.TempDir()}
	j.state = filepath.Join(j.dir, "state")
	var err error
	if j.module, err = smoke.WriteModule(j.dir); err != nil {
		t.Fatal(err)
	}
	return j
}

// start runs `smokecmd run` at parallelism 2 with a checkpoint every
// 100 ms and no restart; extra flags come last (and win).
func (j *smokeJob) start(extra ...string) *smoke.Proc {
	j.t.Helper()
	args := append([]string{"run", "--module", j.module, "--parallelism", "2", "--checkpoint-interval", "100ms",
		"--state-dir", j.state, "--restart-attempts", "0"}, extra...)
	proc, err := smoke.Start(j.bin, j.dir, j.p.Env(), args...)
	if err != nil {
		j.t.Fatal(err)
	}
	j.t.Cleanup(func() { proc.Kill() }) // no process outlives its test
	return proc
}

// runToEnd runs until the job finishes by itself; exit code 0 required.
func (j *smokeJob) runToEnd(extra ...string) *smoke.Proc {
	j.t.Helper()
	proc := j.start(extra...)
	if code, err := proc.Wait(60 * time.Second); err != nil || code != 0 {
		j.t.Fatalf("exit code %d, %v\nstderr:\n%s", code, err, proc.Stderr())
	}
	return proc
}

// waitCheckpoints waits until n more checkpoints than before completed.
func (j *smokeJob) waitCheckpoints(proc *smoke.Proc, n int) []uint64 {
	j.t.Helper()
	have, err := smoke.CompleteCheckpoints(j.state)
	if err != nil {
		j.t.Fatal(err)
	}
	var last uint64
	if len(have) > 0 {
		last = have[len(have)-1]
	}
	ids, err := smoke.WaitForCheckpoints(proc, j.state, last+uint64(n), 20*time.Second)
	if err != nil {
		proc.Kill()
		j.t.Fatalf("%v\nstderr:\n%s", err, proc.Stderr())
	}
	return ids
}

// killAfterCheckpoints starts a run, waits for n new complete checkpoints
// and kills it with SIGKILL. It returns the complete checkpoints left.
func (j *smokeJob) killAfterCheckpoints(n int, extra ...string) []uint64 {
	j.t.Helper()
	proc := j.start(extra...)
	j.waitCheckpoints(proc, n)
	if !proc.Kill() {
		j.t.Fatalf("the job finished before it could be killed: make it slower\nstderr:\n%s", proc.Stderr())
	}
	ids, err := smoke.CompleteCheckpoints(j.state)
	if err != nil {
		j.t.Fatal(err)
	}
	j.t.Logf("killed after checkpoints %v; restored %v", ids, smoke.RestoredIDs(proc.Stderr()))
	return ids
}

// checkOutput applies the smoke oracle to the egress files.
func (j *smokeJob) checkOutput() {
	j.t.Helper()
	out, err := smoke.ReadOutput(j.dir)
	if err != nil {
		j.t.Fatal(err)
	}
	if err := smoke.Check(j.m, out); err != nil {
		j.t.Fatalf("the output is not exactly once:\n%v", err)
	}
	j.t.Logf("output exactly once: %d verification and %d discard records (%s)", len(out.Verifications), len(out.Discards), j.m.Stats)
}

func wantRestored(t *testing.T, stderr string, want uint64) {
	t.Helper()
	got := smoke.RestoredIDs(stderr)
	if len(got) != 1 || got[0] != want {
		t.Fatalf("restored checkpoints %v, want [%d]; skipped %q\nstderr:\n%s", got, want, smoke.SkippedReasons(stderr), stderr)
	}
}

// TestCheckpointCorruptMetadata: the newest checkpoint's _metadata is cut
// in half: the restart says so and restores the previous one.
func TestCheckpointCorruptMetadata(t *testing.T) {
	t.Parallel()
	j := newSmokeJob(t, smokeParams(101))
	ids := j.killAfterCheckpoints(3)
	newest, prev := ids[len(ids)-1], ids[len(ids)-2]
	meta := filepath.Join(smoke.CheckpointDir(j.state, newest), "_metadata")
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(meta, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	proc := j.runToEnd()
	reasons := smoke.SkippedReasons(proc.Stderr())
	t.Logf("skipped: %q", reasons)
	if len(reasons) != 1 || !strings.Contains(reasons[0], "chk-"+itoa(newest)) || !strings.Contains(reasons[0], "_metadata") {
		t.Errorf("want one \"skipping an invalid checkpoint\" naming chk-%d and _metadata, got %q", newest, reasons)
	}
	wantRestored(t, proc.Stderr(), prev)
	j.checkOutput()
}

// TestCheckpointCorruptStateFile flips one byte of a file of the newest
// checkpoint: a private blob (a function subtask's operator state), and a
// shared SST (found after a restore, when Pebble has flushed the replayed
// log). Checksums detect it and the newest checkpoint that does not
// reference the file is restored.
func TestCheckpointCorruptStateFile(t *testing.T) {
	t.Parallel()
	t.Run("blob", func(t *testing.T) {
		t.Parallel()
		j := newSmokeJob(t, smokeParams(202))
		ids := j.killAfterCheckpoints(3)
		newest, prev := ids[len(ids)-1], ids[len(ids)-2]
		file := filepath.Join(smoke.CheckpointDir(j.state, newest), "functions-1", "operator")
		flipByte(t, file)
		proc := j.runToEnd()
		reasons := smoke.SkippedReasons(proc.Stderr())
		t.Logf("skipped: %q", reasons)
		if len(reasons) != 1 || !strings.Contains(reasons[0], "chk-"+itoa(newest)) || !strings.Contains(reasons[0], "functions-1/operator") {
			t.Errorf("want one \"skipping an invalid checkpoint\" naming chk-%d and functions-1/operator, got %q", newest, reasons)
		}
		wantRestored(t, proc.Stderr(), prev)
		j.checkOutput()
	})
	t.Run("shared-sst", func(t *testing.T) {
		t.Parallel()
		j := newSmokeJob(t, smokeParams(303))
		// Keep every checkpoint, so the ones before the SST appeared are
		// still there to fall back to.
		keep := []string{"--retain-checkpoints", "100"}
		first := j.killAfterCheckpoints(2, keep...)
		ids := j.killAfterCheckpoints(2, keep...)
		newest := ids[len(ids)-1]
		// A shared file of the newest checkpoint that the checkpoint the
		// second run restored does not have.
		restoredFrom := first[len(first)-1]
		before := sharedFiles(t, smoke.CheckpointDir(j.state, restoredFrom))
		var victim string
		for name := range sharedFiles(t, smoke.CheckpointDir(j.state, newest)) {
			if !before[name] && strings.HasSuffix(name, ".sst") {
				victim = name
				break
			}
		}
		if victim == "" {
			t.Fatalf("checkpoint %d has no shared SST that checkpoint %d lacks", newest, restoredFrom)
		}
		// The newest checkpoint without the file is what must be restored.
		var want uint64
		var corrupt []uint64
		for _, id := range slices.Backward(ids) {
			if sharedFiles(t, smoke.CheckpointDir(j.state, id))[victim] {
				corrupt = append(corrupt, id)
				continue
			}
			want = id
			break
		}
		flipByte(t, filepath.Join(j.state, "checkpoints", "job", "shared", victim))
		t.Logf("flipped a byte of shared/%s, referenced by checkpoints %v; %d must be restored", victim, corrupt, want)
		proc := j.runToEnd(keep...)
		reasons := smoke.SkippedReasons(proc.Stderr())
		if len(reasons) != len(corrupt) {
			t.Errorf("skipped %q, want one line per checkpoint %v", reasons, corrupt)
		}
		for _, r := range reasons {
			if !strings.Contains(r, "shared/"+victim) {
				t.Errorf("skip reason %q does not name shared/%s", r, victim)
			}
		}
		wantRestored(t, proc.Stderr(), want)
		j.checkOutput()
	})
}

// sharedFiles returns the shared file names a checkpoint references.
func sharedFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	cp, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, task := range cp.Meta.Tasks {
		for _, f := range task.Files {
			if f.Shared != "" {
				out[f.Shared] = true
			}
		}
	}
	return out
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatalf("%s is empty", path)
	}
	b[len(b)/2] ^= 0x40
	// Write in place: a shared file may be a hard link.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b[len(b)/2:len(b)/2+1], int64(len(b)/2)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointFresh: --fresh ignores the checkpoints of the state dir:
// the job starts from empty state and the file egresses start over, so the
// output is still exactly the model's; new checkpoint ids continue after
// the old ones.
func TestCheckpointFresh(t *testing.T) {
	t.Parallel()
	j := newSmokeJob(t, smokeParams(404))
	ids := j.killAfterCheckpoints(3)
	proc := j.runToEnd("--fresh")
	errOut := proc.Stderr()
	if !strings.Contains(errOut, "starting fresh (--fresh)") {
		t.Errorf("no \"starting fresh\" line:\n%s", errOut)
	}
	if got := smoke.RestoredIDs(errOut); len(got) != 0 {
		t.Errorf("--fresh restored checkpoints %v", got)
	}
	after, _ := smoke.CompleteCheckpoints(j.state)
	if len(after) == 0 || after[len(after)-1] <= ids[len(ids)-1] {
		t.Errorf("checkpoints after the fresh run %v: ids must continue after %v", after, ids)
	}
	j.checkOutput()
}

// TestCheckpointRestartInProcess: a function fails once (source command
// 1000, about a second in, after several checkpoints; the "already failed"
// flag is a file outside the state). With --restart-attempts 2 the process
// restarts the job from its latest checkpoint and finishes with exit code
// 0 and an exactly-once output.
func TestCheckpointRestartInProcess(t *testing.T) {
	t.Parallel()
	p := smokeParams(505)
	p.FailFlag = filepath.Join(t.TempDir(), "failed-once")
	p.FailAt = 1000
	j := newSmokeJob(t, p)
	proc := j.runToEnd("--restart-attempts", "2")
	errOut := proc.Stderr()
	if _, err := os.Stat(p.FailFlag); err != nil {
		t.Fatalf("the failure was not injected: %v", err)
	}
	for _, want := range []string{"injected failure at source command 1000", "job failed; restarting from the latest checkpoint"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr has no %q:\n%s", want, errOut)
		}
	}
	if got := smoke.RestoredIDs(errOut); len(got) != 1 {
		t.Errorf("restored checkpoints %v, want one restore (after the failure)\nstderr:\n%s", got, errOut)
	} else {
		t.Logf("restarted in-process from checkpoint %d", got[0])
	}
	j.checkOutput()
}

// TestCheckpointSIGTERMResume: SIGTERM stops the job gracefully (exit 0);
// the next run resumes from the latest complete checkpoint and the output
// is exactly once (what the drain wrote after that checkpoint is cut off
// and produced again).
func TestCheckpointSIGTERMResume(t *testing.T) {
	t.Parallel()
	j := newSmokeJob(t, smokeParams(606))
	proc := j.start()
	j.waitCheckpoints(proc, 3)
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := proc.Wait(15 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit code %d, %v\nstderr:\n%s", code, err, proc.Stderr())
	}
	if !strings.Contains(proc.Stderr(), "summary: ") {
		t.Errorf("no summary after SIGTERM:\n%s", proc.Stderr())
	}
	ids, _ := smoke.CompleteCheckpoints(j.state)
	t.Logf("stopped with checkpoints %v", ids)
	proc = j.runToEnd()
	wantRestored(t, proc.Stderr(), ids[len(ids)-1])
	j.checkOutput()
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// TestCheckpointSavepointOnStop: SIGTERM with --savepoint-on-stop takes a
// savepoint before draining and reports it on stderr; a job restored from
// it (fresh state dir, the egress files as the stopped job left them)
// ends with an exactly-once output.
func TestCheckpointSavepointOnStop(t *testing.T) {
	t.Parallel()
	j := newSmokeJob(t, smokeParams(808))
	proc := j.start("--savepoint-on-stop")
	j.waitCheckpoints(proc, 3)
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := proc.Wait(20 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit code %d, %v\nstderr:\n%s", code, err, proc.Stderr())
	}
	var sp string
	for _, l := range strings.Split(proc.Stderr(), "\n") {
		if d, ok := strings.CutPrefix(l, "savepoint: "); ok {
			sp = d
		}
	}
	if sp == "" {
		t.Fatalf("no \"savepoint: DIR\" line after SIGTERM with --savepoint-on-stop:\n%s", proc.Stderr())
	}
	if !filepath.IsAbs(sp) {
		sp = filepath.Join(j.dir, sp)
	}
	t.Logf("savepoint on stop: %s", sp)
	r := newSmokeJob(t, j.p)
	for _, f := range []string{smoke.DiscardFile, smoke.VerificationFile} {
		if err := smoke.CopyFile(filepath.Join(j.dir, f), filepath.Join(r.dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	r.runToEnd("--from-savepoint", sp)
	r.checkOutput()
}
