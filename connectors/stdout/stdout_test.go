package stdout

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow/dataflowtest"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
)

func greeting(name string) *envelope.Envelope {
	v, _ := statefun.EncodeValue(statefun.StringType, "Hello "+name+"!")
	return &envelope.Envelope{
		Kind:      envelope.KindEgress,
		Target:    envelope.Address{Namespace: "ex", Type: "out"},
		Caller:    envelope.Address{Namespace: "ex", Type: "greeter", ID: name},
		HasCaller: true,
		Typename:  "io.statefun.types/string",
		Value:     v,
	}
}

func open(t *testing.T, s *Sink) {
	t.Helper()
	if err := s.Open(dataflowtest.NewContext(t, dataflowtest.Options{Name: "egress"})); err != nil {
		t.Fatal(err)
	}
}

func TestLines(t *testing.T) {
	var buf bytes.Buffer
	s := New(connectors.FormatLines, &buf)
	open(t, s)
	for _, n := range []string{"alice", "bob"} {
		if err := s.Write(greeting(n)); err != nil {
			t.Fatal(err)
		}
	}
	// Buffered until Flush.
	if buf.Len() != 0 {
		t.Errorf("written before Flush: %q", buf.String())
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "Hello alice!\nHello bob!\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestJSONL(t *testing.T) {
	var buf bytes.Buffer
	s := New(connectors.FormatJSONL, &buf)
	open(t, s)
	if err := s.Write(greeting("alice")); err != nil {
		t.Fatal(err)
	}
	// Close flushes.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := `{"egress":"ex/out","from":"ex/greeter/alice","typename":"io.statefun.types/string","value":"Hello alice!"}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLargeOutput(t *testing.T) {
	// More than the 64 KiB buffer: nothing is lost or reordered.
	var buf bytes.Buffer
	s := New(connectors.FormatLines, &buf)
	open(t, s)
	var want strings.Builder
	for i := 0; i < 10000; i++ {
		n := fmt.Sprint("user-", i)
		if err := s.Write(greeting(n)); err != nil {
			t.Fatal(err)
		}
		want.WriteString("Hello " + n + "!\n")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != want.String() {
		t.Errorf("output differs (%d bytes, want %d)", buf.Len(), want.Len())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteError(t *testing.T) {
	s := New(connectors.FormatLines, failingWriter{})
	open(t, s)
	if err := s.Write(greeting("a")); err != nil {
		t.Fatal(err) // buffered
	}
	if err := s.Flush(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Flush: got %v", err)
	}
}

func TestDefaultIsStdout(t *testing.T) {
	if s := New(connectors.FormatLines, nil); s.out != os.Stdout {
		t.Errorf("out = %v, want os.Stdout", s.out)
	}
}

// syncBuffer is a writer shared by several sinks, as os.Stdout is.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestConcurrentSinks(t *testing.T) {
	// Several egress subtasks write to the same standard output from their
	// own goroutines (run with -race): nothing is lost.
	out := &syncBuffer{}
	var wg sync.WaitGroup
	const sinks, lines = 4, 2000
	want := 0
	for i := 0; i < sinks; i++ {
		s := New(connectors.FormatLines, out)
		open(t, s)
		for j := 0; j < lines; j++ {
			want += len(fmt.Sprintf("Hello s%d-%d!\n", i, j))
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < lines; j++ {
				if err := s.Write(greeting(fmt.Sprintf("s%d-%d", i, j))); err != nil {
					t.Error(err)
					return
				}
				if j%100 == 0 {
					if err := s.Flush(); err != nil {
						t.Error(err)
						return
					}
				}
			}
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if got := out.buf.Len(); got != want {
		t.Errorf("%d bytes written, want %d", got, want)
	}
}

// TestSharedStdoutGetsWholeLines checks that two sinks sharing the standard
// output (two stdout egresses, or an egress with parallelism > 1) never
// interleave their lines: the package-level mutex serialises the writers,
// but it only helps if each underlying write carries whole lines.
func TestSharedStdoutGetsWholeLines(t *testing.T) {
	out := &syncBuffer{}
	a, b := New(connectors.FormatLines, out), New(connectors.FormatLines, out)
	open(t, a)
	open(t, b)
	pad := strings.Repeat("x", 97)
	// Sink a writes until its 64 KiB buffer overflows and it writes to the
	// shared output.
	na := 0
	for out.len() == 0 {
		if err := a.Write(greeting(fmt.Sprintf("a-%d-%s", na, pad))); err != nil {
			t.Fatal(err)
		}
		na++
	}
	if got := out.String(); !strings.HasSuffix(got, "\n") {
		i := strings.LastIndexByte(got, '\n')
		t.Errorf("sink a wrote a partial line to the shared output: it ends with %q; "+
			"whatever sink b writes next lands in the middle of that line", got[i+1:])
	}
	if err := b.Write(greeting("b-0")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != na+1 {
		t.Fatalf("%d lines, want %d", len(lines), na+1)
	}
	next := 0
	for _, l := range lines {
		if l == "Hello b-0!" {
			continue
		}
		if want := fmt.Sprintf("Hello a-%d-%s!", next, pad); l != want {
			t.Fatalf("line %q, want %q", l, want)
		}
		next++
	}
}
