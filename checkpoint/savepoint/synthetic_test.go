package savepoint

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/statefun-go/statefun/checkpoint/store"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/state"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/dispatch/opstate"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/feedback"
)

// The synthetic checkpoint: parallelism 2, max parallelism 8, written
// with the same building blocks as the engine (dataflow/state, the
// operator blob layout, feedback.Logger), with every kind of row.
const (
	synMaxP = 8
	synTS   = int64(1_700_000_000_000) // ms
)

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func enc(t testing.TB, typ statefun.SimpleType, v any) []byte {
	t.Helper()
	b, err := statefun.EncodeValue(typ, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func addr(typ, id string) envelope.Address {
	return envelope.Address{Namespace: "test", Type: typ, ID: id}
}

func msg(t testing.TB, to envelope.Address, from *envelope.Address, v string) *envelope.Envelope {
	e := &envelope.Envelope{Target: to, Typename: "io.statefun.types/string", Value: enc(t, statefun.StringType, v)}
	if from != nil {
		e.Caller, e.HasCaller = *from, true
	}
	return e
}

// rawBlob encodes an operator blob with a remote section, as dispatch does.
func rawBlob(remote, fifo []*envelope.Envelope, delayed []MessageRow) []byte {
	st := opstate.State{Remote: remote, Queued: fifo}
	for i := range delayed {
		d := &delayed[i]
		st.Delayed = append(st.Delayed, opstate.Delayed{Owner: d.Owner, Token: d.Token, FireAt: d.FireAt, Envelope: &d.Envelope})
	}
	return opstate.Encode(&st)
}

type synthetic struct {
	cp       *store.Checkpoint
	state    []StateRow // expected rows, sorted
	messages []MessageRow
	sources  []SourceRow
}

func idsOf(sub int) []string {
	var out []string
	for i := 0; len(out) < 6; i++ {
		id := fmt.Sprintf("id-%d", i)
		if dataflow.SubtaskFor(dataflow.KeyGroupFor(id, synMaxP), synMaxP, 2) == sub {
			out = append(out, id)
		}
	}
	return out
}

func buildSynthetic(t *testing.T, root string) *synthetic {
	t.Helper()
	st := must[*store.Store](t)(store.Open(root, "job", store.Options{Explicit: true, Compress: true}))
	p := must[*store.Pending](t)(st.Begin(5))
	syn := &synthetic{}
	work := t.TempDir()
	props := map[string]string{}
	for sub := range 2 {
		r := dataflow.RangeForSubtask(sub, 2, synMaxP)
		task := fmt.Sprintf("functions-%d", sub)
		props["task/"+task] = fmt.Sprintf("%d:%d:%d:functions", sub, r.Start, r.End)
		props[fmt.Sprintf("task/feedback-%d", sub)] = fmt.Sprintf("%d:%d:%d:feedback", sub, r.Start, r.End)
		db := must[*state.Store](t)(state.Open(state.Options{Dir: filepath.Join(work, task)}))
		ids := idsOf(sub)
		for i, id := range ids {
			kg := dataflow.KeyGroupFor(id, synMaxP)
			rows := []StateRow{
				{Name: "count", Value: enc(t, statefun.Int64Type, int64(i+1))},
				{Name: "name", Value: enc(t, statefun.StringType, "name of "+id)},
				{Name: "flag", Value: enc(t, statefun.BoolType, true)},
				{Name: "json", Value: []byte(fmt.Sprintf(`{"id":%q,"n":%d}`, id, i))},
				{Name: "zero", Value: []byte{}},
				{Name: "ttl", Value: enc(t, statefun.Int32Type, int32(7)), ExpiresAt: (synTS + 3600_000) * 1e6},
			}
			for _, row := range rows {
				row.KeyGroup, row.Space, row.Namespace, row.Type, row.ID = kg, state.SpaceValue, "test", "f", id
				if err := db.Set(row.Key(), row.Value, row.ExpiresAt); err != nil {
					t.Fatal(err)
				}
				syn.state = append(syn.state, row)
			}
			// Expired at the checkpoint's time: left out.
			k := state.Key{KeyGroup: kg, Space: state.SpaceValue, Namespace: "test", Type: "g", ID: id, Name: "gone"}
			if err := db.Set(k, []byte("x"), (synTS-1)*1e6); err != nil {
				t.Fatal(err)
			}
		}
		ck := filepath.Join(work, task+"-ck")
		if err := db.Checkpoint(ck); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.AddPebbleCheckpoint(task+".state", ck); err != nil {
			t.Fatal(err)
		}

		caller := addr("g", "caller")
		remote := []*envelope.Envelope{msg(t, addr("f", ids[0]), nil, "r0"), msg(t, addr("f", ids[1]), &caller, "r1")}
		fifo := []*envelope.Envelope{msg(t, addr("f", ids[0]), &caller, "q0"), msg(t, addr("f", ids[2]), nil, "q1"), msg(t, addr("f", ids[0]), nil, "q2")}
		fifo[1].Typename, fifo[1].Value = "test/json", []byte(`{"a":[1,2]}`)
		delayed := []MessageRow{
			{Kind: KindDelayed, Envelope: *msg(t, addr("f", ids[3]), &caller, "d0"), Owner: addr("f", ids[1]), Token: "tok", FireAt: synTS + 1000},
			{Kind: KindDelayed, Envelope: *msg(t, addr("f", ids[3]), nil, "d1"), Owner: addr("f", ids[1]), FireAt: synTS + 2000},
		}
		if err := p.AddFile(task, operatorBlob, rawBlob(remote, fifo, delayed)); err != nil {
			t.Fatal(err)
		}
		lg := feedback.NewLogger(synMaxP, nil, feedback.LoggerOptions{})
		fb := []*envelope.Envelope{msg(t, addr("f", ids[0]), &caller, "f0"), msg(t, addr("f", ids[4]), &caller, "f1"), msg(t, addr("f", ids[0]), &caller, "f2")}
		for _, e := range fb {
			if err := lg.Append(e); err != nil {
				t.Fatal(err)
			}
		}
		sealed := must[*feedback.Log](t)(lg.Seal())
		var buf bytes.Buffer
		if _, err := sealed.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		sealed.Close()
		if err := p.AddFile(task, feedbackBlob, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		for _, e := range append(remote, fifo...) {
			syn.messages = append(syn.messages, MessageRow{KeyGroup: dataflow.KeyGroupFor(e.Target.ID, synMaxP), Kind: KindQueued, Envelope: *e})
		}
		for _, e := range fb {
			syn.messages = append(syn.messages, MessageRow{KeyGroup: dataflow.KeyGroupFor(e.Target.ID, synMaxP), Kind: KindFeedback, Envelope: *e})
		}
		for _, d := range delayed {
			d.KeyGroup = dataflow.KeyGroupFor(d.Owner.ID, synMaxP)
			syn.messages = append(syn.messages, d)
		}
	}
	syn.sources = []SourceRow{
		{Vertex: "egress test/out", Task: "egress_test_out-0", KeyGroups: dataflow.KeyGroupRange{End: synMaxP}, Position: []byte("sink-pos")},
		{Vertex: "ingress test/done", Task: "ingress_test_done-0", KeyGroups: dataflow.KeyGroupRange{End: synMaxP}, Position: []byte{}, Finished: true},
		{Vertex: "ingress test/in", Task: "ingress_test_in-0", KeyGroups: dataflow.KeyGroupRange{End: 4}, Position: []byte("pos-0")},
		{Vertex: "ingress test/in", Task: "ingress_test_in-1", Subtask: 1, KeyGroups: dataflow.KeyGroupRange{Start: 4, End: 8}},
	}
	for _, s := range syn.sources {
		props["task/"+s.Task] = fmt.Sprintf("%d:%d:%d:%s", s.Subtask, s.KeyGroups.Start, s.KeyGroups.End, s.Vertex)
		if s.Position != nil {
			if err := p.AddFile(s.Task, positionBlob, s.Position); err != nil {
				t.Fatal(err)
			}
		}
		if s.Finished {
			if err := p.AddFile(s.Task, finishedBlob, []byte{1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.Commit(store.Metadata{Parallelism: 2, MaxParallelism: synMaxP, Timestamp: synTS, Properties: props}); err != nil {
		t.Fatal(err)
	}
	syn.cp = must[*store.Checkpoint](t)(st.Load(5))

	slices.SortFunc(syn.state, func(a, b StateRow) int {
		return bytes.Compare(state.EncodeKey(nil, a.Key()), state.EncodeKey(nil, b.Key()))
	})
	slices.SortStableFunc(syn.messages, func(a, b MessageRow) int {
		if a.KeyGroup != b.KeyGroup {
			return int(a.KeyGroup) - int(b.KeyGroup)
		}
		return a.Kind.rank() - b.Kind.rank()
	})
	for i := range syn.messages {
		if i > 0 && syn.messages[i-1].KeyGroup == syn.messages[i].KeyGroup && syn.messages[i-1].Kind == syn.messages[i].Kind {
			syn.messages[i].Order = syn.messages[i-1].Order + 1
		}
	}
	return syn
}

func readAll(t testing.TB, sp *Savepoint) (rows []StateRow, msgs []MessageRow) {
	t.Helper()
	if err := sp.ScanState(func(r *StateRow) error { rows = append(rows, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := sp.ScanMessages(func(r *MessageRow) error { msgs = append(msgs, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	return rows, msgs
}

func tableBytes(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, n := range []string{StateFile, MessagesFile, SourcesFile} {
		out[n] = must[[]byte](t)(os.ReadFile(filepath.Join(dir, n)))
	}
	return out
}

func sameTables(t testing.TB, what string, want, got map[string][]byte) {
	t.Helper()
	for n, w := range want {
		if !bytes.Equal(w, got[n]) {
			t.Errorf("%s: %s differs (%d vs %d bytes)", what, n, len(w), len(got[n]))
		}
	}
}

func TestSyntheticWriteOpen(t *testing.T) {
	syn := buildSynthetic(t, t.TempDir())
	dir := filepath.Join(t.TempDir(), "sp")
	if err := Write(syn.cp, dir); err != nil {
		t.Fatal(err)
	}
	for _, leftover := range []string{dir + ".inprogress", dir + ".work"} {
		if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind", leftover)
		}
	}
	sp := must[*Savepoint](t)(Open(dir))
	m := sp.Manifest
	if m.SourceCheckpointID != 5 || m.Parallelism != 2 || m.MaxParallelism != synMaxP || m.Timestamp != synTS || m.CreatedBy != "checkpoint" {
		t.Errorf("manifest %+v", m)
	}
	rows, msgs := readAll(t, sp)
	if !reflect.DeepEqual(rows, syn.state) {
		t.Errorf("state rows differ:\n got %d %v\nwant %d %v", len(rows), rows, len(syn.state), syn.state)
	}
	if !reflect.DeepEqual(msgs, syn.messages) {
		t.Errorf("message rows differ:\n got %v\nwant %v", msgs, syn.messages)
	}
	if !reflect.DeepEqual(sp.Sources(), syn.sources) {
		t.Errorf("sources differ:\n got %+v\nwant %+v", sp.Sources(), syn.sources)
	}
	if err := Write(syn.cp, dir); !errors.Is(err, ErrExists) {
		t.Errorf("Write over an existing savepoint: %v", err)
	}
	if !IsSavepointDir(dir) || IsSavepointDir(syn.cp.Dir) {
		t.Error("IsSavepointDir")
	}

	// Inspect.
	stats := must[*Stats](t)(Inspect(sp))
	if stats.StateRows != int64(len(syn.state)) || stats.Messages[KindQueued] != 10 || stats.Messages[KindFeedback] != 6 || stats.Messages[KindDelayed] != 4 {
		t.Errorf("stats %+v", stats)
	}
	var out bytes.Buffer
	if err := stats.Print(&out, dir, 4); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"test/f", "addresses", "[0,2)", "ingress_test_in-1"} {
		if !strings.Contains(strings.ToLower(out.String()), strings.ToLower(want)) {
			t.Errorf("inspect output lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("inspect:\n%s", out.String())
}

// ToCheckpoint at parallelism 1, 2, 3 and 8, then Write again: the same
// bytes. And what each subtask gets is in its key groups, in the format
// the dispatcher reads.
func TestSyntheticRescaleCanonical(t *testing.T) {
	syn := buildSynthetic(t, t.TempDir())
	dir := filepath.Join(t.TempDir(), "sp")
	if err := Write(syn.cp, dir); err != nil {
		t.Fatal(err)
	}
	sp := must[*Savepoint](t)(Open(dir))
	want := tableBytes(t, dir)
	root := t.TempDir()
	st := must[*store.Store](t)(store.Open(root, "job", store.Options{Explicit: true}))
	for _, p := range []int{1, 2, 3, 8} {
		cp, err := sp.ToCheckpoint(st, 0, p)
		if err != nil {
			t.Fatalf("parallelism %d: %v", p, err)
		}
		if cp.Meta.Parallelism != p || cp.Meta.MaxParallelism != synMaxP {
			t.Errorf("parallelism %d: meta %+v", p, cp.Meta)
		}
		tasks, err := parseTasks(&cp.Meta)
		if err != nil {
			t.Fatal(err)
		}
		nfn := 0
		for _, ti := range tasks {
			if ti.vertex != functionsVertex {
				continue
			}
			nfn++
			blob := must[[]byte](t)(cp.ReadFile(ti.id, operatorBlob))
			queued, delayed, err := decodeOperatorBlob(blob)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range queued {
				if !ti.keyGroups.Contains(dataflow.KeyGroupFor(e.Target.ID, synMaxP)) {
					t.Errorf("parallelism %d: %s holds a message for %s", p, ti.id, e.Target)
				}
			}
			for _, d := range delayed {
				if !ti.keyGroups.Contains(dataflow.KeyGroupFor(d.Owner.ID, synMaxP)) {
					t.Errorf("parallelism %d: %s holds a delayed message of %s", p, ti.id, d.Owner)
				}
			}
			lg := must[*feedback.Log](t)(feedback.ReadLog(bytes.NewReader(must[[]byte](t)(cp.ReadFile(ti.id, feedbackBlob)))))
			_ = lg.Replay(dataflow.KeyGroupRange{End: synMaxP}, func(e *envelope.Envelope) error {
				if !ti.keyGroups.Contains(dataflow.KeyGroupFor(e.Target.ID, synMaxP)) {
					t.Errorf("parallelism %d: %s logs feedback for %s", p, ti.id, e.Target)
				}
				return nil
			})
			lg.Close()
		}
		if nfn != p {
			t.Errorf("parallelism %d: %d function subtasks", p, nfn)
		}
		again := filepath.Join(t.TempDir(), fmt.Sprintf("sp-%d", p))
		if err := Write(cp, again); err != nil {
			t.Fatalf("parallelism %d: Write: %v", p, err)
		}
		sameTables(t, fmt.Sprintf("parallelism %d", p), want, tableBytes(t, again))
	}
	if _, err := sp.ToCheckpoint(st, 0, synMaxP+1); err == nil {
		t.Error("parallelism above the max parallelism accepted")
	}
}

func TestSyntheticExportImportRoundTrip(t *testing.T) {
	syn := buildSynthetic(t, t.TempDir())
	dir := filepath.Join(t.TempDir(), "sp")
	if err := Write(syn.cp, dir); err != nil {
		t.Fatal(err)
	}
	sp := must[*Savepoint](t)(Open(dir))
	want := tableBytes(t, dir)
	for _, format := range []string{FormatJSONL, FormatParquet, FormatArrow} {
		out := filepath.Join(t.TempDir(), "export")
		if err := Export(sp, format, out); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		back := filepath.Join(t.TempDir(), "imported")
		if err := Import(out, format, back, WithMaxParallelism(synMaxP)); err != nil {
			t.Fatalf("%s: import: %v", format, err)
		}
		sameTables(t, format+" round trip", want, tableBytes(t, back))
	}

	// The JSONL export decodes what it can.
	out := filepath.Join(t.TempDir(), "jsonl")
	if err := Export(sp, FormatJSONL, out); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	forLines(t, filepath.Join(out, "state.jsonl"), func(m map[string]any) {
		switch m["name"] {
		case "count":
			c, _ := m["value_candidates"].(map[string]any)
			if c == nil || c["io.statefun.types/long"] == nil || m["value_decoded"] != nil {
				t.Errorf("count row %v", m)
			}
		case "name":
			if m["value_type"] != "io.statefun.types/string" || !strings.HasPrefix(fmt.Sprint(m["value_decoded"]), "name of ") || m["value_type_inferred"] != true {
				t.Errorf("name row %v", m)
			}
		case "flag":
			if m["value_decoded"] != true {
				t.Errorf("flag row %v", m)
			}
		case "json":
			if _, ok := m["value_json"].(map[string]any); !ok {
				t.Errorf("json row %v", m)
			}
		case "zero":
			if m["value"] != "" || m["value_decoded"] != nil {
				t.Errorf("zero row %v", m)
			}
		case "ttl":
			if m["expires_at"].(float64) == 0 {
				t.Errorf("ttl row %v", m)
			}
		}
		seen[fmt.Sprint(m["name"])] = true
	})
	if len(seen) != 6 {
		t.Errorf("state names seen: %v", seen)
	}
	kinds := map[string]int{}
	forLines(t, filepath.Join(out, "messages.jsonl"), func(m map[string]any) {
		kinds[m["kind"].(string)]++
		if m["typename"] == "io.statefun.types/string" && m["value_decoded"] == nil {
			t.Errorf("message not decoded: %v", m)
		}
		if m["kind"] == "delayed" && m["fire_at"] == nil {
			t.Errorf("delayed message without fire_at: %v", m)
		}
	})
	if kinds["queued"] != 10 || kinds["feedback"] != 6 || kinds["delayed"] != 4 {
		t.Errorf("message kinds %v", kinds)
	}
}

func forLines(t testing.TB, path string, fn func(map[string]any)) {
	t.Helper()
	f := must[*os.File](t)(os.Open(path))
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		fn(m)
	}
}

func TestCorruption(t *testing.T) {
	syn := buildSynthetic(t, t.TempDir())
	base := filepath.Join(t.TempDir(), "sp")
	if err := Write(syn.cp, base); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		corrupt func(dir string)
		unsupp  bool
	}{
		{"flipped byte in state.arrow", func(dir string) { flip(t, filepath.Join(dir, StateFile), 100) }, false},
		{"flipped byte in messages.arrow", func(dir string) { flip(t, filepath.Join(dir, MessagesFile), -20) }, false},
		{"truncated sources.arrow", func(dir string) {
			p := filepath.Join(dir, SourcesFile)
			b := must[[]byte](t)(os.ReadFile(p))
			_ = os.WriteFile(p, b[:len(b)-9], 0o644)
		}, false},
		{"missing state.arrow", func(dir string) { _ = os.Remove(filepath.Join(dir, StateFile)) }, false},
		{"bad manifest", func(dir string) { _ = os.WriteFile(filepath.Join(dir, ManifestName), []byte("{"), 0o644) }, false},
		{"future version", func(dir string) { editManifest(t, dir, func(m *Manifest) { m.Version = 99 }) }, true},
		{"manifest sources differ", func(dir string) {
			editManifest(t, dir, func(m *Manifest) { m.Sources[0].Tasks[0].Position = []byte("x") })
		}, false},
		{"consistent but unsorted state", func(dir string) {
			// A rewritten state.arrow with a valid checksum but rows out of
			// order: caught by the scan.
			rows := slices.Clone(syn.state)
			rows[0], rows[1] = rows[1], rows[0]
			p := filepath.Join(dir, StateFile)
			_ = os.Remove(p)
			tw := must[*tableWriter](t)(newTableWriter(dir, StateFile, stateSchema))
			for i := range rows {
				_ = tw.appendState(&rows[i])
			}
			fi := must[FileInfo](t)(tw.close())
			editManifest(t, dir, func(m *Manifest) { *m.File(StateFile) = fi })
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "sp")
			copyDir(t, base, dir)
			c.corrupt(dir)
			sp, err := Open(dir)
			if err == nil {
				_, err = Inspect(sp)
			}
			switch {
			case c.unsupp && !errors.Is(err, ErrUnsupported):
				t.Fatalf("want ErrUnsupported, got %v", err)
			case !c.unsupp && !IsCorruption(err):
				t.Fatalf("want a corruption error, got %v", err)
			}
			t.Logf("%v", err)
		})
	}
}

func flip(t testing.TB, path string, off int) {
	b := must[[]byte](t)(os.ReadFile(path))
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func editManifest(t testing.TB, dir string, fn func(*Manifest)) {
	p := filepath.Join(dir, ManifestName)
	var m Manifest
	if err := json.Unmarshal(must[[]byte](t)(os.ReadFile(p)), &m); err != nil {
		t.Fatal(err)
	}
	fn(&m)
	if err := os.WriteFile(p, must[[]byte](t)(json.Marshal(&m)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t testing.TB, from, to string) {
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range must[[]os.DirEntry](t)(os.ReadDir(from)) {
		b := must[[]byte](t)(os.ReadFile(filepath.Join(from, e.Name())))
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriteRejectsUnknownFiles(t *testing.T) {
	root := t.TempDir()
	st := must[*store.Store](t)(store.Open(root, "job", store.Options{Explicit: true}))
	p := must[*store.Pending](t)(st.Begin(1))
	if err := p.AddFile("functions-0", "mystery", []byte("?")); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(store.Metadata{Parallelism: 1, MaxParallelism: 4, Properties: map[string]string{"task/functions-0": "0:0:4:functions"}}); err != nil {
		t.Fatal(err)
	}
	cp := must[*store.Checkpoint](t)(st.Load(1))
	dir := filepath.Join(t.TempDir(), "sp")
	if err := Write(cp, dir); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("want ErrUnsupported, got %v", err)
	}
	if _, err := os.Stat(dir + ".inprogress"); !errors.Is(err, os.ErrNotExist) {
		t.Error("in-progress directory left behind")
	}
}

func TestImportJSONL(t *testing.T) {
	in := filepath.Join(t.TempDir(), "state.jsonl")
	lines := []string{
		`{"namespace":"test","type":"counter","id":"a","name":"count","value_type":"long","value_decoded":41}`,
		`{"namespace":"test","type":"counter","id":"b","name":"count","value_type":"io.statefun.types/long","value_decoded":9007199254740993}`,
		`{"namespace":"test","type":"counter","id":"a","name":"last","value_type":"string","value_decoded":"hello"}`,
		`{"namespace":"test","type":"counter","id":"a","name":"obj","value_type":"com.example/Thing","value_decoded":{"x": 1, "y": [true]}}`,
		`{"namespace":"test","type":"counter","id":"b","name":"raw","value":"AQID","expires_at":"2100-01-01T00:00:00Z"}`,
		`{"namespace":"test","type":"counter","id":"c","name":"f","value_type":"float","value_decoded":1.5}`,
	}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "sp")
	if err := Import(in, FormatJSONL, dir, WithMaxParallelism(16)); err != nil {
		t.Fatal(err)
	}
	sp := must[*Savepoint](t)(Open(dir))
	if sp.MaxParallelism() != 16 || sp.Manifest.CreatedBy != "import" {
		t.Errorf("manifest %+v", sp.Manifest)
	}
	rows, msgs := readAll(t, sp)
	if len(rows) != 6 || len(msgs) != 0 {
		t.Fatalf("%d rows, %d messages", len(rows), len(msgs))
	}
	got := map[string]StateRow{}
	for _, r := range rows {
		if r.KeyGroup != dataflow.KeyGroupFor(r.ID, 16) {
			t.Errorf("%v: key group", r.Key())
		}
		got[r.ID+"/"+r.Name] = r
	}
	var n int64
	if err := statefun.DecodeValue(statefun.Int64Type, got["b/count"].Value, &n); err != nil || n != 9007199254740993 {
		t.Errorf("b/count = %d, %v", n, err)
	}
	var s string
	if err := statefun.DecodeValue(statefun.StringType, got["a/last"].Value, &s); err != nil || s != "hello" {
		t.Errorf("a/last = %q, %v", s, err)
	}
	if string(got["a/obj"].Value) != `{"x":1,"y":[true]}` {
		t.Errorf("a/obj = %s", got["a/obj"].Value)
	}
	if !bytes.Equal(got["b/raw"].Value, []byte{1, 2, 3}) || got["b/raw"].ExpiresAt != 4102444800*1e9 {
		t.Errorf("b/raw = %+v", got["b/raw"])
	}

	// Errors name the row.
	bad := filepath.Join(t.TempDir(), "state.jsonl")
	_ = os.WriteFile(bad, []byte(lines[0]+"\n"+`{"namespace":"test","type":"counter","id":"a","name":"count","value_type":"long","value_decoded":"x"}`+"\n"), 0o644)
	if err := Import(bad, FormatJSONL, filepath.Join(t.TempDir(), "x")); err == nil || !strings.Contains(err.Error(), "row 2") {
		t.Errorf("bad value: %v", err)
	}
	dup := filepath.Join(t.TempDir(), "state.jsonl")
	_ = os.WriteFile(dup, []byte(lines[0]+"\n"+lines[0]+"\n"), 0o644)
	if err := Import(dup, FormatJSONL, filepath.Join(t.TempDir(), "x")); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate key: %v", err)
	}
}
