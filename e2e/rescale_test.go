package e2e

import (
	"context"
	"fmt"
	"log/slog"
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

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/internal/smoke"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/translate"
)

// Rescaling: a savepoint taken from a running job at parallelism 2 is
// restored with --from-savepoint at parallelism 1 and 4 (fresh state
// dirs). Keyed state and delayed messages move with their key groups; an
// ingress position moves only when the ingress has parallelism 1 (a file
// ingress, or the smoke generator declared with parallelism 1); a
// generator ingress of the job's parallelism cannot be split and must be
// refused with a clear error.

// savepointCLI runs `<bin> savepoint --state-dir stateDir` against the
// running job and returns the savepoint directory it prints.
func savepointCLI(t *testing.T, bin, stateDir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "savepoint", "--state-dir", stateDir, "--timeout", "20s").CombinedOutput()
	if err != nil {
		t.Fatalf("%s savepoint --state-dir %s: %v\n%s", filepath.Base(bin), stateDir, err, out)
	}
	dir := strings.TrimSpace(string(out))
	// A canonical savepoint has a _savepoint.json manifest, a stored one
	// (the fallback) a _metadata.
	for _, f := range []string{"_savepoint.json", "_metadata"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return dir
		}
	}
	t.Fatalf("savepoint printed %q: neither _savepoint.json nor _metadata there", out)
	return ""
}

// TestRescaleSmokeFromSavepoint: the smoke job (generator ingress of
// parallelism 1, so its position moves) runs at parallelism 2; `smokecmd
// savepoint` takes a savepoint while it runs, then the job is killed. Each
// restore (parallelism 1 and 4, fresh state dir, the egress files as the
// killed job left them) must end with exactly the model's output: the
// counters continued from the savepoint, the egress files were cut back to
// it, and nothing was lost or repeated.
func TestRescaleSmokeFromSavepoint(t *testing.T) {
	t.Parallel()
	p := smokeParams(707)
	p.SourceParallelism = 1
	j := newSmokeJob(t, p)
	proc := j.start()
	j.waitCheckpoints(proc, 2)
	sp := savepointCLI(t, j.bin, j.state)
	if !proc.Kill() {
		t.Fatalf("the job finished before it was killed: make it slower\nstderr:\n%s", proc.Stderr())
	}
	if !strings.Contains(proc.Stderr(), "savepoint: "+sp) {
		t.Errorf("the job's stderr does not report the savepoint %s:\n%s", sp, proc.Stderr())
	}
	t.Logf("savepoint %s taken %v after start", sp, time.Since(proc.Started).Round(time.Millisecond))
	for _, par := range []int{1, 4} {
		t.Run("parallelism-"+strconv.Itoa(par), func(t *testing.T) {
			t.Parallel()
			r := newSmokeJob(t, p)
			for _, f := range []string{smoke.DiscardFile, smoke.VerificationFile} {
				if err := smoke.CopyFile(filepath.Join(j.dir, f), filepath.Join(r.dir, f)); err != nil {
					t.Fatal(err)
				}
			}
			proc := r.runToEnd("--from-savepoint", sp, "--parallelism", strconv.Itoa(par))
			if !strings.Contains(proc.Stderr(), `msg="restoring from savepoint" dir=`+sp) {
				t.Errorf("no \"restoring from savepoint\" line for %s:\n%s", sp, proc.Stderr())
			}
			r.checkOutput()
		})
	}
	// The egress files are gone (a restore on another machine, a cleaned
	// directory): the file egress cannot continue its output. It must
	// refuse, naming the file, rather than pad the file to its
	// checkpointed length with NUL bytes.
	t.Run("egress-files-missing", func(t *testing.T) {
		t.Parallel()
		r := newSmokeJob(t, p)
		proc := r.start("--from-savepoint", sp, "--parallelism", "3")
		code, err := proc.Wait(60 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{smoke.DiscardFile, smoke.VerificationFile} {
			if b, err := os.ReadFile(filepath.Join(r.dir, f)); err == nil && slices.Contains(b, 0) {
				t.Errorf("%s holds NUL bytes (%d of %d bytes): the restore padded the missing file to its checkpointed length", f, countByte(b, 0), len(b))
			}
		}
		if code != 1 || !strings.Contains(proc.Stderr(), smoke.DiscardFile) {
			t.Errorf("exit code %d; want 1 and an error naming %s\nstderr:\n%s", code, smoke.DiscardFile, lastLines(proc.Stderr(), 5))
		}
	})
}

func countByte(b []byte, c byte) (n int) {
	for _, x := range b {
		if x == c {
			n++
		}
	}
	return n
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestRescaleGeneratorIngressRefused: the greeter with a generator ingress
// (io.statefun.generator.v1, parallelism = the job's) runs at parallelism
// 2 and takes a savepoint through the CLI. Restoring it at parallelism 4
// must fail at once (exit code 1) saying that the generator's position
// cannot be split; restoring it with another max parallelism must fail
// (exit code 1) naming the max parallelism.
func TestRescaleGeneratorIngressRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "module.yaml", `kind: io.statefun.generator.v1/ingress
spec:
  id: example/names
  targets: [example/greeter]
  rate: 100
  count: 1000
  keys: 4
  keyPrefix: user-
---
kind: io.statefun.stdout.v1/egress
spec:
  id: example/stdout
---
kind: io.statefun.file.v1/egress
spec:
  id: example/greetings
  path: greetings.txt
`)
	bin := greeter(t)
	state := filepath.Join(dir, "state")
	proc, err := smoke.Start(bin, dir, nil, "run", "--module", "module.yaml", "--parallelism", "2", "--state-dir", state, "--checkpoint-interval", "100ms")
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Kill()
	if _, err := smoke.WaitForCheckpoints(proc, state, 1, 20*time.Second); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, proc.Stderr())
	}
	sp := savepointCLI(t, bin, state)
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := proc.Wait(15 * time.Second); err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit code %d, %v\nstderr:\n%s", code, err, proc.Stderr())
	}
	for _, c := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"parallelism-4", []string{"--parallelism", "4"},
			[]string{"cannot restore ingress example/names", "the snapshot has 2 subtask(s) of it, this job 4", "cannot be split"}},
		{"max-parallelism-64", []string{"--parallelism", "2", "--max-parallelism", "64"},
			[]string{"max parallelism"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"run", "--module", "module.yaml", "--state-dir", filepath.Join(t.TempDir(), "state"),
				"--checkpoint-interval", "100ms", "--from-savepoint", sp}, c.flags...)
			start := time.Now()
			res := runGreeter(t, dir, 30*time.Second, args...)
			took := time.Since(start)
			if res.code != 1 {
				t.Errorf("exit code %d, want 1 (refused); stdout %d bytes; stderr:\n%s", res.code, len(res.stdout), res.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(res.stderr, "statefun: ") || !strings.Contains(res.stderr, w) {
					t.Errorf("stderr does not report %q on a \"statefun: \" line:\n%s", w, res.stderr)
				}
			}
			if strings.Contains(res.stderr, "restarting") || took > 5*time.Second {
				t.Errorf("a restore that cannot work must not be retried (took %v):\n%s", took, res.stderr)
			}
		})
	}
}

// TestRescaleCountsContinue (in-process): a counting function fed by a
// file ingress runs at parallelism 2. Each first visit of a key schedules
// a delayed "tick" to itself 3 s later. A savepoint is taken once every
// record was counted, and restored at parallelism 1 and 4 with a second
// file ingress feeding more records for the same keys. The restored job
// must not read the first file again (its ingress had finished: it stays
// finished), must continue every key's count from the savepoint's value,
// in order, and must deliver each key's pending tick exactly once.
//
// NB: the engine takes no checkpoint or savepoint once every source has
// finished ("checkpoint: no live source"), although the job still runs
// (delayed messages, feedback). A code-declared source that ends only when
// the test releases it keeps one source live until the savepoint is done.
func TestRescaleCountsContinue(t *testing.T) {
	t.Parallel()
	const hold = 3 * time.Second
	counterType := statefun.TypeNameFrom("test/rescale-counter")
	tickType := statefun.MakeJsonType(statefun.TypeNameFrom("test/rescale-tick"))
	outEgress := statefun.TypeNameFrom("test/rescale-out")
	count := statefun.ValueSpec{Name: "count", ValueType: statefun.Int32Type}
	emit := func(ctx statefun.Context, s string) {
		ctx.SendEgress(statefun.GenericEgressBuilder{Target: outEgress, Value: s, ValueType: statefun.StringType})
	}
	fn := func(ctx statefun.Context, msg statefun.Message) error {
		id := ctx.Self().Id
		if msg.Is(tickType) {
			emit(ctx, "tick:"+id)
			return nil
		}
		if got := msg.AsString(); got != id {
			return fmt.Errorf("message %q at %s", got, id)
		}
		var n int32
		ctx.Storage().Get(count, &n)
		n++
		ctx.Storage().Set(count, n)
		emit(ctx, fmt.Sprintf("%s:%d", id, n))
		if n == 1 {
			ctx.SendAfter(hold, statefun.MessageBuilder{Target: ctx.Self(), Value: struct{}{}, ValueType: tickType})
		}
		return nil
	}
	fns := specs(t, statefun.StatefulFunctionSpec{FunctionType: counterType, States: []statefun.ValueSpec{count}, Function: statefun.StatefulFunctionPointer(fn)})

	keys := make([]string, 12)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	var before, after []string // records before and after the savepoint
	for i := range 40 {
		before = append(before, keys[(i*7)%len(keys)])
	}
	for i := range 30 {
		after = append(after, keys[(i*5+3)%len(keys)])
	}
	countsOf := func(recs []string) map[string]int {
		m := map[string]int{}
		for _, k := range recs {
			m[k]++
		}
		return m
	}
	fileIngress := func(id, path string) string {
		return fmt.Sprintf(`kind: io.statefun.file.v1/ingress
spec:
  id: %s
  path: %s
  format: lines
  valueType: io.statefun.types/string
  targets: [test/rescale-counter]
`, id, path)
	}
	// keepalive is a code-declared ingress that emits nothing and ends
	// once release is closed.
	keepalive := func(release <-chan struct{}) translate.Ingress {
		return translate.Ingress{ID: "test/keepalive", Parallelism: 1, ValueType: "io.statefun.types/string",
			Targets: []string{counterType.String()},
			Source:  func(int) connectors.Source { return &gateSource{release: release} }}
	}
	// run runs the job in the background; done receives app.Run's error.
	// The test waits for the job in its cleanup (a failed test must not
	// leave it running).
	run := func(t *testing.T, cfg app.Config) (done chan error) {
		done = make(chan error, 1)
		finished := make(chan struct{})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		go func() {
			defer close(finished)
			defer cancel()
			_, err := app.Run(ctx, cfg)
			if ctx.Err() != nil {
				err = fmt.Errorf("did not finish within 30 s: %v", err)
			}
			done <- err
		}()
		t.Cleanup(func() { cancel(); <-finished })
		return done
	}

	// The first job, at parallelism 2.
	dir := t.TempDir()
	writeFile(t, dir, "names.txt", strings.Join(before, "\n")+"\n")
	mod := writeFile(t, dir, "module.yaml", fileIngress("test/names", "names.txt"))
	var out1 capture
	reqs := make(chan struct{}, 1)
	spDone := make(chan string, 1)
	release := make(chan struct{})
	stop := sync.OnceFunc(func() { close(release) })
	start := time.Now()
	done1 := run(t, app.Config{
		Modules: []string{mod}, StateDir: filepath.Join(dir, "state"), Parallelism: 2,
		CheckpointInterval: 100 * time.Millisecond, Functions: fns, Ingresses: []translate.Ingress{keepalive(release)},
		Egresses: []translate.Egress{out1.egress(outEgress.String())}, SavepointRequests: reqs,
		OnSavepoint: func(d string) { spDone <- d }, Logger: testLogger(t), ShutdownTimeout: 5 * time.Second,
	})
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for len(out1.all()) < len(before) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d records counted within 10 s", len(out1.all()), len(before))
		}
		time.Sleep(5 * time.Millisecond)
	}
	reqs <- struct{}{}
	var sp string
	select {
	case sp = <-spDone:
	case err := <-done1:
		t.Fatalf("the job ended before the savepoint: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no savepoint within 10 s")
	}
	stop()
	took := time.Since(start)
	t.Logf("savepoint %s %v after start", sp, took.Round(time.Millisecond))
	if took > hold-500*time.Millisecond {
		t.Skipf("the savepoint took %v: the ticks (%v) may have fired before it; the machine is too slow for this test", took, hold)
	}
	if err := <-done1; err != nil {
		t.Fatalf("first job: %v", err)
	}
	checkCounts(t, "first job", capturedStrings(t, &out1), map[string]int{}, countsOf(before), keys)

	for _, par := range []int{1, 4} {
		t.Run("parallelism-"+strconv.Itoa(par), func(t *testing.T) {
			t.Parallel()
			rdir := t.TempDir()
			writeFile(t, rdir, "names.txt", strings.Join(before, "\n")+"\n")
			writeFile(t, rdir, "more.txt", strings.Join(after, "\n")+"\n")
			mod := writeFile(t, rdir, "module.yaml", fileIngress("test/names", "names.txt")+"---\n"+fileIngress("test/more-names", "more.txt"))
			open := make(chan struct{})
			close(open)
			var out capture
			logs := &syncBuffer{}
			err := <-run(t, app.Config{
				Modules: []string{mod}, StateDir: filepath.Join(rdir, "state"), Parallelism: par,
				CheckpointInterval: 100 * time.Millisecond, FromSavepoint: sp, Functions: fns,
				Ingresses: []translate.Ingress{keepalive(open)}, Egresses: []translate.Egress{out.egress(outEgress.String())},
				Logger: slog.New(slog.NewTextHandler(logs, nil)), ShutdownTimeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatalf("restored job: %v\n%s", err, logs)
			}
			if !strings.Contains(logs.String(), `msg="restoring from savepoint"`) {
				t.Errorf("no \"restoring from savepoint\" in the log:\n%s", logs)
			}
			checkCounts(t, "restored job", capturedStrings(t, &out), countsOf(before), countsOf(after), keys)
		})
	}
}

// gateSource emits nothing and ends once release is closed.
type gateSource struct{ release <-chan struct{} }

func (s *gateSource) Open(dataflow.Context) error { return nil }
func (s *gateSource) Read(dst []connectors.Record) ([]connectors.Record, time.Duration, error) {
	select {
	case <-s.release:
		return dst, 0, dataflow.ErrEndOfInput
	default:
		return dst, 10 * time.Millisecond, nil
	}
}
func (s *gateSource) Close() error { return nil }

// checkCounts checks the output of a counting run: for every key, the
// counts from base+1 to base+add in order, and exactly one tick for each
// key (the first visits of the first job schedule them; the restored job
// gets them from the savepoint).
func checkCounts(t *testing.T, what string, got []string, base, add map[string]int, keys []string) {
	t.Helper()
	perKey := map[string][]string{}
	ticks := map[string]int{}
	for _, s := range got {
		if k, ok := strings.CutPrefix(s, "tick:"); ok {
			ticks[k]++
			continue
		}
		k, _, _ := strings.Cut(s, ":")
		perKey[k] = append(perKey[k], s)
	}
	for _, k := range keys {
		var want []string
		for n := base[k] + 1; n <= base[k]+add[k]; n++ {
			want = append(want, fmt.Sprintf("%s:%d", k, n))
		}
		if !slices.Equal(perKey[k], want) {
			t.Errorf("%s: counts of %s:\n got  %q\n want %q", what, k, perKey[k], want)
		}
		if ticks[k] != 1 {
			t.Errorf("%s: %d ticks for %s, want 1", what, ticks[k], k)
		}
	}
	if len(got) != len(keys)+sumCounts(add) {
		t.Errorf("%s: %d records, want %d", what, len(got), len(keys)+sumCounts(add))
	}
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
