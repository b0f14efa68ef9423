package file

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/dataflowtest"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
)

const typeString = "io.statefun.types/string"

// rec is a read record with its value as text: decoded from a StringWrapper
// for io.statefun.types/string, the raw bytes otherwise.
type rec struct {
	key, value, origin string
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "input.txt")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func openSource(t *testing.T, cfg SourceConfig, subtask, par int) (*Source, *dataflowtest.Context) {
	t.Helper()
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Name: "ingress", Subtask: subtask, Parallelism: par})
	s := NewSource(cfg)
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, ctx
}

// readAll reads s to its end (or first error) with batches of batch
// records.
func readAll(t *testing.T, s *Source, valueType string, batch int) ([]rec, error) {
	t.Helper()
	var out []rec
	for i := 0; i < 100000; i++ {
		recs, wait, err := s.Read(make([]connectors.Record, 0, batch))
		if wait != 0 {
			t.Fatalf("wait %v", wait)
		}
		for _, r := range recs {
			if !r.HasKey || r.Route != "" {
				t.Fatalf("record %+v: HasKey %t, Route %q", r, r.HasKey, r.Route)
			}
			v := string(r.Value)
			if valueType == typeString {
				if err := statefun.DecodeValue(statefun.StringType, r.Value, &v); err != nil {
					t.Fatalf("%s: value is not a StringWrapper: %v", r.Origin, err)
				}
			}
			out = append(out, rec{r.Key, v, r.Origin})
		}
		if errors.Is(err, dataflow.ErrEndOfInput) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
	t.Fatal("source does not end")
	return nil, nil
}

func TestLines(t *testing.T) {
	p := writeFile(t, "alice\nbob\n\ncarol\n")
	for _, batch := range []int{1, 2, 512} {
		s, _ := openSource(t, SourceConfig{Path: p, ValueType: typeString}, 0, 1)
		got, err := readAll(t, s, typeString, batch)
		if err != nil {
			t.Fatal(err)
		}
		// The empty line 3 is ignored but counted.
		want := []rec{{"alice", "alice", p + ":1"}, {"bob", "bob", p + ":2"}, {"carol", "carol", p + ":4"}}
		if !slices.Equal(got, want) {
			t.Errorf("batch %d: got %v, want %v", batch, got, want)
		}
	}
}

func TestLinesRawValueType(t *testing.T) {
	// Any other value type carries the text bytes as they are.
	p := writeFile(t, "a,1\nb,2")
	s, _ := openSource(t, SourceConfig{Path: p, Delimiter: ",", ValueType: "com.example/Csv"}, 0, 1)
	got, err := readAll(t, s, "com.example/Csv", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{{"a", "1", p + ":1"}, {"b", "2", p + ":2"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestLinesDelimiter(t *testing.T) {
	// Split at the first occurrence; the value may contain the delimiter.
	p := writeFile(t, "k1::hello\nk2::a::b\n::empty-key\nk3::\n")
	s, _ := openSource(t, SourceConfig{Path: p, Delimiter: "::", ValueType: typeString}, 0, 1)
	got, err := readAll(t, s, typeString, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{{"k1", "hello", p + ":1"}, {"k2", "a::b", p + ":2"}, {"", "empty-key", p + ":3"}, {"k3", "", p + ":4"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestLinesMissingDelimiter(t *testing.T) {
	p := writeFile(t, "k1,v1\nno delimiter here\nk3,v3\n")
	s, _ := openSource(t, SourceConfig{Path: p, Delimiter: ",", ValueType: typeString}, 0, 1)
	got, err := readAll(t, s, typeString, 10)
	if err == nil || !strings.Contains(err.Error(), p+":2: no delimiter \",\" in line") {
		t.Fatalf("got %v, want an error naming %s:2", err, p)
	}
	// The records before the bad line are returned with the error.
	if len(got) != 1 || got[0].key != "k1" {
		t.Errorf("records before the error: %v", got)
	}
}

func TestCRLF(t *testing.T) {
	p := writeFile(t, "a,1\r\nb,2\r\n\r\nc,3")
	s, _ := openSource(t, SourceConfig{Path: p, Delimiter: ",", ValueType: typeString}, 0, 1)
	got, err := readAll(t, s, typeString, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{{"a", "1", p + ":1"}, {"b", "2", p + ":2"}, {"c", "3", p + ":4"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestEmptyFile(t *testing.T) {
	for _, content := range []string{"", "\n\n\r\n"} {
		p := writeFile(t, content)
		s, _ := openSource(t, SourceConfig{Path: p, ValueType: typeString}, 0, 1)
		got, err := readAll(t, s, typeString, 10)
		if err != nil || len(got) != 0 {
			t.Errorf("%q: got %v, %v", content, got, err)
		}
	}
}

func TestLongLines(t *testing.T) {
	// Lines longer than the 256 KiB read buffer are accumulated.
	long := strings.Repeat("x", 700<<10)
	p := writeFile(t, "short,1\nlong,"+long+"\nafter,2\nlast,"+long)
	s, _ := openSource(t, SourceConfig{Path: p, Delimiter: ",", ValueType: "com.example/Raw"}, 0, 1)
	got, err := readAll(t, s, "com.example/Raw", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{{"short", "1", p + ":1"}, {"long", long, p + ":2"}, {"after", "2", p + ":3"}, {"last", long, p + ":4"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %d records (%v...), want 4", len(got), got[0])
	}
}

func TestLineTooLong(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 16 MiB file")
	}
	p := writeFile(t, "ok\n"+strings.Repeat("y", MaxLineBytes+1)+"\n")
	s, _ := openSource(t, SourceConfig{Path: p, ValueType: typeString}, 0, 1)
	_, err := readAll(t, s, typeString, 10)
	if err == nil || !strings.Contains(err.Error(), p+":2: line longer than") {
		t.Fatalf("got %v, want an error naming %s:2", err, p)
	}
}

func TestJSONL(t *testing.T) {
	p := writeFile(t, strings.Join([]string{
		`{"id":"alice","profile":{"age":30}}`,
		`{"id":42,"profile":"text"}`,
		``,
		`{"id":-1.5e3,"profile":[1,2]}`,
		`{"id":"bob"}`,
	}, "\n")+"\n")

	// Whole line as the value.
	s, _ := openSource(t, SourceConfig{Path: p, JSONL: true, KeyField: "id", ValueType: "com.example/User"}, 0, 1)
	got, err := readAll(t, s, "com.example/User", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{
		{"alice", `{"id":"alice","profile":{"age":30}}`, p + ":1"},
		{"42", `{"id":42,"profile":"text"}`, p + ":2"},
		{"-1.5e3", `{"id":-1.5e3,"profile":[1,2]}`, p + ":4"},
		{"bob", `{"id":"bob"}`, p + ":5"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("whole line:\n got %q\nwant %q", got, want)
	}

	// A string value type: the whole line is the text.
	s, _ = openSource(t, SourceConfig{Path: p, JSONL: true, KeyField: "id", ValueType: typeString}, 0, 1)
	got, err = readAll(t, s, typeString, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].value != `{"id":"alice","profile":{"age":30}}` {
		t.Errorf("whole line as string: %q", got)
	}
}

func TestJSONLValueField(t *testing.T) {
	p := writeFile(t, strings.Join([]string{
		`{"id":"a","msg":"hello"}`,
		`{"id":"b","msg":{"x":1}}`,
		`{"id":"c","msg":7}`,
		`{"msg":"first","id":"d"}`,
	}, "\n"))
	// A string value type unquotes JSON strings; other JSON stays as text.
	s, _ := openSource(t, SourceConfig{Path: p, JSONL: true, KeyField: "id", ValueField: "msg", ValueType: typeString}, 0, 1)
	got, err := readAll(t, s, typeString, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{{"a", "hello", p + ":1"}, {"b", `{"x":1}`, p + ":2"}, {"c", "7", p + ":3"}, {"d", "first", p + ":4"}}
	if !slices.Equal(got, want) {
		t.Errorf("string:\n got %q\nwant %q", got, want)
	}
	// Any other type carries the field's raw JSON.
	s, _ = openSource(t, SourceConfig{Path: p, JSONL: true, KeyField: "id", ValueField: "msg", ValueType: "com.example/Msg"}, 0, 1)
	got, err = readAll(t, s, "com.example/Msg", 10)
	if err != nil {
		t.Fatal(err)
	}
	want = []rec{{"a", `"hello"`, p + ":1"}, {"b", `{"x":1}`, p + ":2"}, {"c", "7", p + ":3"}, {"d", `"first"`, p + ":4"}}
	if !slices.Equal(got, want) {
		t.Errorf("raw:\n got %q\nwant %q", got, want)
	}
}

func TestJSONLErrors(t *testing.T) {
	for _, c := range []struct {
		name, line, want string
	}{
		{"invalid JSON", `{"id": "a",`, ":2: invalid JSON"},
		{"not an object", `["a"]`, ":2: invalid JSON"},
		{"missing key", `{"name":"a","msg":"x"}`, `:2: key field "id" is missing`},
		{"object key", `{"id":{"a":1},"msg":"x"}`, `:2: key field "id" must be a string or a number, got {"a":1}`},
		{"bool key", `{"id":true,"msg":"x"}`, `:2: key field "id" must be a string or a number, got true`},
		// A null key is not a key: the record must not be routed to id "".
		{"null key", `{"id":null,"msg":"x"}`, `:2: key field "id" is null: every record needs a key, the target address id`},
		{"missing value", `{"id":"a"}`, `:2: value field "msg" is missing`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, `{"id":"ok","msg":"fine"}`+"\n"+c.line+"\n"+`{"id":"after","msg":"x"}`+"\n")
			cfg := SourceConfig{Path: p, JSONL: true, KeyField: "id", ValueField: "msg", ValueType: typeString}
			s, _ := openSource(t, cfg, 0, 1)
			got, err := readAll(t, s, typeString, 10)
			if err == nil || !strings.Contains(err.Error(), p+c.want) {
				t.Fatalf("got records %q, error %v; want an error containing %q", got, err, p+c.want)
			}

			// Skip mode: the record is counted, logged, and reading goes on.
			cfg.Skip = true
			s, ctx := openSource(t, cfg, 0, 1)
			got, err = readAll(t, s, typeString, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].key != "ok" || got[1].key != "after" {
				t.Errorf("skip: got %q", got)
			}
			if s.Skipped != 1 {
				t.Errorf("skip: Skipped = %d, want 1", s.Skipped)
			}
			if logs := ctx.Logs(); !strings.Contains(logs, "skipping record") || !strings.Contains(logs, p+":2") {
				t.Errorf("skip: the skipped record is not logged with its position: %q", logs)
			}
		})
	}
}

func TestSkipCountsEveryBadLine(t *testing.T) {
	p := writeFile(t, "a,1\nbad\nb,2\nworse\n\nc,3\n")
	s, _ := openSource(t, SourceConfig{Path: p, Delimiter: ",", ValueType: typeString, Skip: true}, 0, 1)
	got, err := readAll(t, s, typeString, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || s.Skipped != 2 {
		t.Errorf("got %q, Skipped %d; want 3 records and 2 skipped", got, s.Skipped)
	}
	if got[2].origin != p+":6" {
		t.Errorf("origin of c: %s, want %s:6", got[2].origin, p)
	}
}

func TestOnlySubtaskZeroReads(t *testing.T) {
	p := writeFile(t, "a\nb\nc\n")
	var total int
	for i := 0; i < 3; i++ {
		s, _ := openSource(t, SourceConfig{Path: p, ValueType: typeString}, i, 3)
		got, err := readAll(t, s, typeString, 10)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && len(got) != 0 {
			t.Errorf("subtask %d read %d records", i, len(got))
		}
		total += len(got)
	}
	if total != 3 {
		t.Errorf("%d records over 3 subtasks, want 3", total)
	}
	// Other subtasks do not even open the file.
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Subtask: 1, Parallelism: 2})
	s := NewSource(SourceConfig{Path: filepath.Join(t.TempDir(), "missing.txt")})
	if err := s.Open(ctx); err != nil {
		t.Errorf("subtask 1 opened the file: %v", err)
	}
}

func TestMissingFile(t *testing.T) {
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{})
	p := filepath.Join(t.TempDir(), "missing.txt")
	err := NewSource(SourceConfig{Path: p}).Open(ctx)
	if err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("got %v, want an error naming the file", err)
	}
}

// --- sink ---

func envelopes() []*envelope.Envelope {
	str, _ := statefun.EncodeValue(statefun.StringType, "Hello alice!")
	long, _ := statefun.EncodeValue(statefun.Int64Type, int64(7))
	out := envelope.Address{Namespace: "ex", Type: "out"}
	from := envelope.Address{Namespace: "ex", Type: "greeter", ID: "alice"}
	return []*envelope.Envelope{
		{Kind: envelope.KindEgress, Target: out, Caller: from, HasCaller: true, Typename: typeString, Value: str},
		{Kind: envelope.KindEgress, Target: out, Caller: from, HasCaller: true, Typename: "io.statefun.types/long", Value: long},
		{Kind: envelope.KindEgress, Target: out, Typename: "ex/json", Value: []byte(`{"a":1}`)},
	}
}

func openSink(t *testing.T, cfg SinkConfig) *Sink {
	t.Helper()
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Name: "egress"})
	s := NewSink(cfg)
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSinkFormats(t *testing.T) {
	for _, c := range []struct {
		format connectors.Format
		want   string
	}{
		{connectors.FormatLines, "Hello alice!\n7\n{\"a\":1}\n"},
		{connectors.FormatJSONL, `{"egress":"ex/out","from":"ex/greeter/alice","typename":"io.statefun.types/string","value":"Hello alice!"}` + "\n" +
			`{"egress":"ex/out","from":"ex/greeter/alice","typename":"io.statefun.types/long","value":7}` + "\n" +
			`{"egress":"ex/out","typename":"ex/json","value":{"a":1}}` + "\n"},
	} {
		// The directory is created.
		p := filepath.Join(t.TempDir(), "sub", "dir", "out.txt")
		s := openSink(t, SinkConfig{Path: p, Format: c.format})
		for _, e := range envelopes() {
			if err := s.Write(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		// Flush hands the data to the OS: readable before Close.
		if got := readFile(t, p); got != c.want {
			t.Errorf("%s after Flush:\n got %q\nwant %q", c.format, got, c.want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, p); got != c.want {
			t.Errorf("%s after Close:\n got %q\nwant %q", c.format, got, c.want)
		}
	}
}

func TestSinkTruncateAndAppend(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.txt")
	if err := os.WriteFile(p, []byte("old line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := envelopes()[0]

	s := openSink(t, SinkConfig{Path: p, Format: connectors.FormatLines, Append: true})
	if err := s.Write(e); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, p), "old line\nHello alice!\n"; got != want {
		t.Errorf("append: got %q, want %q", got, want)
	}

	s = openSink(t, SinkConfig{Path: p, Format: connectors.FormatLines})
	if got := readFile(t, p); got != "" {
		t.Errorf("truncate: Open left %q", got)
	}
	if err := s.Write(e); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, p), "Hello alice!\n"; got != want {
		t.Errorf("truncate: got %q, want %q", got, want)
	}
}

func TestSinkCloseFlushes(t *testing.T) {
	// Close writes out what was buffered without a Flush, and syncs.
	p := filepath.Join(t.TempDir(), "out.txt")
	s := openSink(t, SinkConfig{Path: p, Format: connectors.FormatLines})
	if err := s.Write(envelopes()[1]); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, p); got != "" {
		t.Errorf("written before Flush: %q", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, p); got != "7\n" {
		t.Errorf("after Close: %q", got)
	}
	// Close is idempotent, also on a sink that was never opened.
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := NewSink(SinkConfig{Path: p}).Close(); err != nil {
		t.Errorf("Close without Open: %v", err)
	}
}

func TestSinkParallelismMustBeOne(t *testing.T) {
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Parallelism: 2})
	p := filepath.Join(t.TempDir(), "out.txt")
	err := NewSink(SinkConfig{Path: p}).Open(ctx)
	if err == nil || !strings.Contains(err.Error(), "parallelism must be 1") {
		t.Errorf("got %v", err)
	}
}

func TestSinkOpenError(t *testing.T) {
	// The parent "directory" is a file.
	parent := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(parent, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{})
	if err := NewSink(SinkConfig{Path: filepath.Join(parent, "out.txt")}).Open(ctx); err == nil {
		t.Error("Open succeeded under a regular file")
	}
}
