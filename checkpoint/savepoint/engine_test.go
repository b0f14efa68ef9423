package savepoint_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/checkpoint/savepoint"
	"github.com/statefun-go/statefun/checkpoint/store"
	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/state"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/dispatch"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/feedback"
	"github.com/statefun-go/statefun/statefun/translate"
)

// The engine application: a rate-limited ingress (parallelism 1, with a
// checkpointed position) sends the numbers 0..total-1 to test/counter at
// id "k<n mod keys>"; the counter counts them and forwards each to
// test/echo at the same id (through the feedback loop when the id's key
// group is on another subtask), which counts too. With delays, each
// counter address also sends itself a message delayed by an hour (with a
// cancellation token) and the echo keeps a value with a TTL.

var (
	counterType = statefun.TypeNameFrom("test/counter")
	echoType    = statefun.TypeNameFrom("test/echo")
	countSpec   = statefun.ValueSpec{Name: "count", ValueType: statefun.Int64Type}
	lastSpec    = statefun.ValueSpec{Name: "last", ValueType: statefun.StringType}
	seenSpec    = statefun.ValueSpec{Name: "seen", ValueType: statefun.Int64Type}
	recentSpec  = statefun.ValueSpec{Name: "recent", ValueType: statefun.StringType, Expiration: statefun.ExpireAfterWrite(time.Hour)}
)

type engineJob struct {
	total, keys int
	delays      bool
	slow        time.Duration // per counter invocation
	dispatch    dispatch.Config

	mu     sync.Mutex
	latest map[string]int64 // "counter/<id>", "echo/<id>" → count after the last invocation
}

func newJob(total, keys int, delays bool) *engineJob {
	return &engineJob{total: total, keys: keys, delays: delays, latest: map[string]int64{}}
}

func (j *engineJob) observe(k string, v int64) {
	j.mu.Lock()
	j.latest[k] = v
	j.mu.Unlock()
}

// settled reports whether every address has counted all its messages.
func (j *engineJob) settled() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := range j.keys {
		for _, f := range []string{"counter", "echo"} {
			if j.latest[fmt.Sprintf("%s/k%d", f, i)] < int64(j.total/j.keys) {
				return false
			}
		}
	}
	return true
}

func (j *engineJob) processed() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	var n int64
	for k, v := range j.latest {
		if k[0] == 'e' {
			n += v
		}
	}
	return n
}

func (j *engineJob) functions() []statefun.StatefulFunctionSpec {
	counter := func(ctx statefun.Context, msg statefun.Message) error {
		if !msg.IsInt64() {
			return nil // the delayed message
		}
		n := msg.AsInt64()
		if j.slow > 0 {
			time.Sleep(j.slow)
		}
		var c int64
		ctx.Storage().Get(countSpec, &c)
		c++
		ctx.Storage().Set(countSpec, c)
		ctx.Storage().Set(lastSpec, fmt.Sprintf("v%d", n))
		ctx.Send(statefun.MessageBuilder{Target: statefun.Address{FunctionType: echoType, Id: ctx.Self().Id}, Value: n})
		if j.delays && c == 1 {
			tok, _ := statefun.NewCancellationToken("later-" + ctx.Self().Id)
			ctx.SendAfterWithCancellationToken(time.Hour, tok, statefun.MessageBuilder{Target: ctx.Self(), Value: "later"})
		}
		j.observe("counter/"+ctx.Self().Id, c)
		return nil
	}
	echo := func(ctx statefun.Context, msg statefun.Message) error {
		var c int64
		ctx.Storage().Get(seenSpec, &c)
		c++
		ctx.Storage().Set(seenSpec, c)
		if j.delays {
			ctx.Storage().Set(recentSpec, fmt.Sprint(msg.AsInt64()))
		}
		j.observe("echo/"+ctx.Self().Id, c)
		return nil
	}
	return []statefun.StatefulFunctionSpec{
		{FunctionType: counterType, States: []statefun.ValueSpec{countSpec, lastSpec}, Function: statefun.StatefulFunctionPointer(counter)},
		{FunctionType: echoType, States: []statefun.ValueSpec{seenSpec, recentSpec}, Function: statefun.StatefulFunctionPointer(echo)},
	}
}

// numbers is the ingress: batches of 8 records every 2 ms, then idle
// (it never ends, so the job runs until cancelled).
type numbers struct {
	j    *engineJob
	pos  int
	next time.Time
}

func (s *numbers) Open(dataflow.Context) error { return nil }

func (s *numbers) Read(dst []connectors.Record) ([]connectors.Record, time.Duration, error) {
	if s.pos >= s.j.total {
		return dst, 20 * time.Millisecond, nil
	}
	if now := time.Now(); now.Before(s.next) {
		return dst, s.next.Sub(now), nil
	}
	for n := 0; n < 8 && s.pos < s.j.total && len(dst) < cap(dst); n++ {
		v, _ := statefun.EncodeValue(statefun.Int64Type, int64(s.pos))
		dst = append(dst, connectors.Record{Key: fmt.Sprintf("k%d", s.pos%s.j.keys), HasKey: true, Value: v, Origin: fmt.Sprint(s.pos)})
		s.pos++
	}
	s.next = time.Now().Add(2 * time.Millisecond)
	return dst, 0, nil
}

func (s *numbers) Close() error { return nil }

func (s *numbers) Position() ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, uint64(s.pos)), nil
}

func (s *numbers) RestorePosition(pos []byte) error {
	if len(pos) != 8 {
		return fmt.Errorf("bad position %x", pos)
	}
	s.pos = int(binary.BigEndian.Uint64(pos))
	return nil
}

type runOpts struct {
	p, maxP  int
	stateDir string
	from     string
	// savepointWhen triggers the savepoint (polled every 5 ms).
	savepointWhen func() bool
}

// run runs the job until it took one savepoint and returns the savepoint's
// store directory.
func (j *engineJob) run(t *testing.T, o runOpts) string {
	t.Helper()
	logs := &bytes.Buffer{}
	var logMu sync.Mutex
	t.Cleanup(func() {
		if t.Failed() {
			logMu.Lock()
			t.Logf("engine log:\n%s", logs.String())
			logMu.Unlock()
		}
	})
	reqs := make(chan struct{}, 1)
	done := make(chan string, 1)
	cfg := app.Config{
		StateDir: o.stateDir, Parallelism: o.p, MaxParallelism: o.maxP, FromSavepoint: o.from,
		CheckpointInterval: 100 * time.Millisecond, ShutdownTimeout: 300 * time.Millisecond,
		Functions: j.functions(), Dispatch: j.dispatch,
		Ingresses: []translate.Ingress{{ID: "test/numbers", Parallelism: 1, ValueType: "io.statefun.types/long",
			Targets: []string{counterType.String()}, Source: func(int) connectors.Source { return &numbers{j: j} }}},
		SavepointRequests: reqs,
		OnSavepoint: func(dir string) {
			// The app reports the canonical savepoint (sp-<id>); these
			// tests start from the stored one it was written from.
			if id, ok := strings.CutPrefix(filepath.Base(dir), "sp-"); ok {
				dir = filepath.Join(filepath.Dir(dir), "job", "chk-"+id)
			}
			select {
			case done <- dir:
			default:
			}
		},
		Logger: slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
			logMu.Lock()
			defer logMu.Unlock()
			return logs.Write(b)
		}), &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() {
		_, err := app.Run(ctx, cfg)
		runErr <- err
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	requested := false
	var dir string
	for dir == "" {
		select {
		case err := <-runErr:
			t.Fatalf("the job ended before its savepoint: %v", err)
		case dir = <-done:
		case <-tick.C:
			if !requested && o.savepointWhen() {
				requested = true
				reqs <- struct{}{}
			}
		case <-ctx.Done():
			t.Fatalf("no savepoint within 30 s (requested: %v)", requested)
		}
	}
	cancel()
	if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("run: %v", err)
	}
	return dir
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// --- reading stored checkpoints the way the engine restores them ---

type stateEntry struct {
	value []byte
	exp   int64
}

// checkpointState materializes every function subtask's Pebble checkpoint
// and scans its key groups.
func checkpointState(t *testing.T, cp *store.Checkpoint) map[state.Key]stateEntry {
	t.Helper()
	out := map[state.Key]stateEntry{}
	for _, ti := range functionTasks(t, cp) {
		if !cp.HasTask(ti.id + ".state") {
			continue
		}
		dir := filepath.Join(t.TempDir(), "db")
		if err := cp.MaterializePebble(ti.id+".state", dir); err != nil {
			t.Fatal(err)
		}
		db, err := state.Open(state.Options{Dir: dir, WriteBackBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Scan(ti.kg, func(k state.Key, v []byte, exp int64) error {
			if _, dup := out[k]; dup {
				return fmt.Errorf("%v twice", k)
			}
			out[k] = stateEntry{append([]byte{}, v...), exp}
			return nil
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

type fnTask struct {
	id string
	kg dataflow.KeyGroupRange
}

func functionTasks(t *testing.T, cp *store.Checkpoint) []fnTask {
	t.Helper()
	var out []fnTask
	for k, v := range cp.Meta.Properties {
		var sub, s, e int
		var vertex string
		if n, _ := fmt.Sscanf(v, "%d:%d:%d:%s", &sub, &s, &e, &vertex); n == 4 && vertex == "functions" {
			out = append(out, fnTask{id: k[len("task/"):], kg: dataflow.KeyGroupRange{Start: dataflow.KeyGroup(s), End: dataflow.KeyGroup(e)}})
		}
	}
	slices.SortFunc(out, func(a, b fnTask) int { return cmp.Compare(a.kg.Start, b.kg.Start) })
	return out
}

// checkpointWork returns, per key group, what restore replays: the queued
// then feedback messages in order, and the delayed messages in order.
func checkpointWork(t *testing.T, cp *store.Checkpoint) (replay, delayed map[dataflow.KeyGroup][]string) {
	t.Helper()
	maxP := cp.Meta.MaxParallelism
	replay, delayed = map[dataflow.KeyGroup][]string{}, map[dataflow.KeyGroup][]string{}
	str := func(e *envelope.Envelope) string {
		return fmt.Sprintf("%v<-%v(%v) %s %x", e.Target, e.Caller, e.HasCaller, e.Typename, e.Value)
	}
	for _, ti := range functionTasks(t, cp) {
		blob, err := cp.ReadFile(ti.id, "operator")
		if err != nil {
			t.Fatal(err)
		}
		queued, ds, err := savepoint.DecodeOperatorBlob(blob)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range queued {
			kg := dataflow.KeyGroupFor(e.Target.ID, maxP)
			replay[kg] = append(replay[kg], "queued "+str(e))
		}
		if fb, err := cp.ReadFile(ti.id, "feedback"); err == nil {
			lg, err := feedback.ReadLog(bytes.NewReader(fb))
			if err != nil {
				t.Fatal(err)
			}
			_ = lg.Replay(ti.kg, func(e *envelope.Envelope) error {
				kg := dataflow.KeyGroupFor(e.Target.ID, maxP)
				replay[kg] = append(replay[kg], "feedback "+str(e))
				return nil
			})
			lg.Close()
		}
		for _, d := range ds {
			kg := dataflow.KeyGroupFor(d.Owner.ID, maxP)
			delayed[kg] = append(delayed[kg], fmt.Sprintf("%v %s %d %s", d.Owner, d.Token, d.FireAt, str(&d.Envelope)))
		}
	}
	return replay, delayed
}

func sourcePositions(t *testing.T, cp *store.Checkpoint) map[string]string {
	out := map[string]string{}
	for k, v := range cp.Meta.Properties {
		var sub, s, e int
		var vertex string
		if n, _ := fmt.Sscanf(v, "%d:%d:%d:%s", &sub, &s, &e, &vertex); n == 4 && vertex == "ingress" {
			task := k[len("task/"):]
			pos, _ := cp.ReadFile(task, "position")
			out[task] = fmt.Sprintf("%s %x", v, pos)
		}
	}
	return out
}

func tables(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, n := range []string{savepoint.StateFile, savepoint.MessagesFile, savepoint.SourcesFile} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = b
	}
	return out
}

func openStore(t *testing.T, root string) *store.Store {
	st, err := store.Open(root, "job", store.Options{Explicit: true, Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestEngineSavepointRoundTrip: a savepoint taken mid-stream at
// parallelism 2 (with delayed messages and TTLs) becomes a canonical
// savepoint; converted back at parallelism 1, 2 and 4 it holds the same
// state, work and positions, and gives the same canonical files; and the
// job restored from it at parallelism 3 finishes with exact counts.
func TestEngineSavepointRoundTrip(t *testing.T) {
	const total, keys, maxP = 600, 24, 32
	j := newJob(total, keys, true)
	// A tiny step budget and local queue: work stays queued across steps,
	// so the savepoint holds queued (and feedback) messages too.
	j.slow = 500 * time.Microsecond
	j.dispatch = dispatch.Config{StepBudget: 2, LocalQueueLimit: 4}
	stateDir := t.TempDir()
	spStore := j.run(t, runOpts{p: 2, maxP: maxP, stateDir: stateDir, savepointWhen: func() bool { return j.processed() >= total/4 }})
	orig, err := store.OpenDir(spStore)
	if err != nil {
		t.Fatal(err)
	}
	canon := filepath.Join(t.TempDir(), "canonical")
	if err := savepoint.Write(orig, canon); err != nil {
		t.Fatal(err)
	}
	sp, err := savepoint.Open(canon)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := savepoint.Inspect(sp)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("savepoint %d: %d state rows, messages %v, sources %d", orig.Meta.ID, stats.StateRows, stats.Messages, len(stats.Sources))
	if stats.Messages[savepoint.KindDelayed] == 0 || stats.StateRows == 0 || len(stats.Sources) != 1 || stats.Sources[0].Position == nil {
		t.Fatalf("the savepoint lacks delayed messages, state or the source position: %+v", stats)
	}

	wantState := checkpointState(t, orig)
	wantReplay, wantDelayed := checkpointWork(t, orig)
	wantPos := sourcePositions(t, orig)
	for k, e := range wantState {
		if k.Name == "recent" && e.exp == 0 {
			t.Errorf("%v: TTL value without expiry", k)
		}
	}
	want := tables(t, canon)
	st := openStore(t, filepath.Join(t.TempDir(), "checkpoints"))
	for _, p := range []int{1, 2, 4} {
		cp, err := sp.ToCheckpoint(st, 0, p)
		if err != nil {
			t.Fatalf("parallelism %d: %v", p, err)
		}
		if got := checkpointState(t, cp); !reflect.DeepEqual(got, wantState) {
			t.Errorf("parallelism %d: state differs (%d vs %d entries)", p, len(got), len(wantState))
		}
		replay, delayed := checkpointWork(t, cp)
		if !reflect.DeepEqual(replay, wantReplay) || !reflect.DeepEqual(delayed, wantDelayed) {
			t.Errorf("parallelism %d: queued work differs:\n got %v %v\nwant %v %v", p, replay, delayed, wantReplay, wantDelayed)
		}
		if got := sourcePositions(t, cp); !reflect.DeepEqual(got, wantPos) {
			t.Errorf("parallelism %d: source positions %v, want %v", p, got, wantPos)
		}
		again := filepath.Join(t.TempDir(), "again")
		if err := savepoint.Write(cp, again); err != nil {
			t.Fatal(err)
		}
		for n, b := range tables(t, again) {
			if !bytes.Equal(b, want[n]) {
				t.Errorf("parallelism %d: %s is not canonical", p, n)
			}
		}
	}

	// Restore at parallelism 3 from a checkpoint built by Restore (what
	// `statefun run --from-savepoint <canonical dir>` will do) and finish
	// the stream: every count is exact (nothing lost, nothing twice).
	stateDir2 := t.TempDir()
	st2 := openStore(t, filepath.Join(stateDir2, "checkpoints"))
	cp3, err := savepoint.Restore(canon, st2, 3)
	if err != nil {
		t.Fatal(err)
	}
	j2 := newJob(total, keys, true)
	final := j2.run(t, runOpts{p: 3, maxP: maxP, stateDir: stateDir2, from: cp3.Dir, savepointWhen: j2.settled})
	fcp, err := store.OpenDir(final)
	if err != nil {
		t.Fatal(err)
	}
	got := checkpointState(t, fcp)
	for i := range keys {
		id := fmt.Sprintf("k%d", i)
		for _, k := range []state.Key{
			{Space: state.SpaceValue, Namespace: "test", Type: "counter", ID: id, Name: "count"},
			{Space: state.SpaceValue, Namespace: "test", Type: "echo", ID: id, Name: "seen"},
		} {
			k.KeyGroup = dataflow.KeyGroupFor(id, maxP)
			var n int64
			if err := statefun.DecodeValue(statefun.Int64Type, got[k].value, &n); err != nil || n != total/keys {
				t.Errorf("%s/%s/%s = %d (%v), want %d", k.Type, id, k.Name, n, err, total/keys)
			}
		}
	}
	_, finalDelayed := checkpointWork(t, fcp)
	nd := 0
	for _, d := range finalDelayed {
		nd += len(d)
	}
	if nd != keys {
		t.Errorf("%d delayed messages after the restore, want one per key (%d)", nd, keys)
	}
}

// TestEngineCanonicalAcrossParallelism: the same logical state (all
// records processed, nothing in flight) taken at parallelism 1, 2 and 4
// gives byte-identical tables.
func TestEngineCanonicalAcrossParallelism(t *testing.T) {
	const total, keys, maxP = 240, 16, 32
	var want map[string][]byte
	for _, p := range []int{1, 2, 4} {
		j := newJob(total, keys, false)
		dir := j.run(t, runOpts{p: p, maxP: maxP, stateDir: t.TempDir(), savepointWhen: j.settled})
		cp, err := store.OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		canon := filepath.Join(t.TempDir(), "canonical")
		if err := savepoint.Write(cp, canon); err != nil {
			t.Fatal(err)
		}
		sp, err := savepoint.Open(canon)
		if err != nil {
			t.Fatal(err)
		}
		if sp.Manifest.Parallelism != p {
			t.Errorf("manifest parallelism %d, want %d", sp.Manifest.Parallelism, p)
		}
		got := tables(t, canon)
		if want == nil {
			want = got
			stats, err := savepoint.Inspect(sp)
			if err != nil {
				t.Fatal(err)
			}
			if stats.StateRows != 3*keys || len(stats.Messages) != 0 {
				t.Fatalf("stats %+v", stats)
			}
			continue
		}
		for n, b := range got {
			if !bytes.Equal(b, want[n]) {
				t.Errorf("parallelism %d: %s differs from parallelism 1", p, n)
			}
		}
	}
}

// TestEngineExportAndBootstrap: export a real savepoint to Parquet and
// read it back with pqarrow; bootstrap a job's state from JSONL and check
// that the function sees it.
func TestEngineExportAndBootstrap(t *testing.T) {
	const total, keys, maxP = 64, 8, 16
	j := newJob(total, keys, false)
	dir := j.run(t, runOpts{p: 2, maxP: maxP, stateDir: t.TempDir(), savepointWhen: j.settled})
	cp, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	canon := filepath.Join(t.TempDir(), "canonical")
	if err := savepoint.Write(cp, canon); err != nil {
		t.Fatal(err)
	}
	sp, err := savepoint.Open(canon)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "parquet")
	if err := savepoint.Export(sp, savepoint.FormatParquet, out); err != nil {
		t.Fatal(err)
	}
	rdr, err := file.OpenParquetFile(filepath.Join(out, "state.parquet"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != 3*keys || tbl.Schema().Field(0).Name != "key_group" || tbl.Schema().Field(6).Name != "value" {
		t.Fatalf("parquet state: %d rows, schema %s", tbl.NumRows(), tbl.Schema())
	}

	// Bootstrap: k0 starts at 1000, k1 at 7.
	in := filepath.Join(t.TempDir(), "state.jsonl")
	lines := `{"namespace":"test","type":"counter","id":"k0","name":"count","value_type":"long","value_decoded":1000}
{"namespace":"test","type":"counter","id":"k1","name":"count","value_type":"long","value_decoded":7}
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	boot := filepath.Join(t.TempDir(), "boot")
	if err := savepoint.Import(in, savepoint.FormatJSONL, boot, savepoint.WithMaxParallelism(maxP)); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	rcp, err := savepoint.Restore(boot, openStore(t, filepath.Join(stateDir, "checkpoints")), 2)
	if err != nil {
		t.Fatal(err)
	}
	j2 := newJob(total, keys, false)
	j2.run(t, runOpts{p: 2, maxP: maxP, stateDir: stateDir, from: rcp.Dir, savepointWhen: j2.settled})
	j2.mu.Lock()
	defer j2.mu.Unlock()
	if c0, c1, c2 := j2.latest["counter/k0"], j2.latest["counter/k1"], j2.latest["counter/k2"]; c0 != 1000+total/keys || c1 != 7+total/keys || c2 != total/keys {
		t.Errorf("counts after bootstrap: k0 %d, k1 %d, k2 %d; want %d, %d, %d", c0, c1, c2, 1000+total/keys, 7+total/keys, total/keys)
	}
}
