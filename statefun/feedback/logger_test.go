package feedback

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// logModel is what a log must replay: per key group, records in append order.
type logModel map[dataflow.KeyGroup][]*envelope.Envelope

func (m logModel) expect(r dataflow.KeyGroupRange, maxP int) []*envelope.Envelope {
	var out []*envelope.Envelope
	for kg := int(r.Start); kg < int(r.End) && kg < maxP; kg++ {
		out = append(out, m[dataflow.KeyGroup(kg)]...)
	}
	return out
}

// fillLogger appends n records with ids spread over many key groups.
func fillLogger(t testing.TB, l *Logger, maxP, n, pad int, rng *rand.Rand) logModel {
	t.Helper()
	m := logModel{}
	for i := 0; i < n; i++ {
		e := rec(uint64(i), rng.IntN(pad+1))
		e.Target.ID = fmt.Sprintf("id-%d", rng.IntN(200))
		if err := l.Append(e); err != nil {
			t.Fatal(err)
		}
		kg := dataflow.KeyGroupFor(e.Target.ID, maxP)
		m[kg] = append(m[kg], e)
	}
	return m
}

func replay(t testing.TB, lg *Log, r dataflow.KeyGroupRange) []*envelope.Envelope {
	t.Helper()
	var out []*envelope.Envelope
	if err := lg.Replay(r, func(e *envelope.Envelope) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameRecords(t testing.TB, what string, got, want []*envelope.Envelope) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !envEqual(got[i], want[i]) {
			t.Fatalf("%s: record %d is %+v, want %+v", what, i, got[i], want[i])
		}
	}
}

func TestLoggerReplay(t *testing.T) {
	const maxP = 32
	for _, tc := range []struct {
		name   string
		budget int64
		spill  bool
	}{
		{"memory", 0, false},
		{"spill", 16 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := LoggerOptions{MemoryBytes: tc.budget}
			if tc.spill {
				opts.SpillDir = dir
			}
			l := NewLogger(maxP, nil, opts)
			rng := rand.New(rand.NewPCG(1, 2))
			m := fillLogger(t, l, maxP, 8000, 120, rng)
			st := l.Stats()
			t.Logf("stats: %+v", st)
			if st.Records != 8000 {
				t.Fatalf("records %d", st.Records)
			}
			if tc.spill && (st.SpilledBytes == 0 || st.MemoryBytes > tc.budget+maxP*minSpillPage) {
				t.Fatalf("expected spilling within the budget: %+v", st)
			}
			lg, err := l.Seal()
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Append(rec(0, 0)); err == nil {
				t.Fatal("Append after Seal accepted")
			}
			if _, err := l.Seal(); err == nil {
				t.Fatal("second Seal accepted")
			}
			if err := l.Close(); err != nil { // a no-op: the log owns the file
				t.Fatal(err)
			}
			if lg.Len() != 8000 || lg.MaxParallelism() != maxP {
				t.Fatalf("log len %d max parallelism %d", lg.Len(), lg.MaxParallelism())
			}
			for _, r := range []dataflow.KeyGroupRange{
				{Start: 0, End: maxP},
				{Start: 3, End: 9},
				{Start: 7, End: 8},
				{Start: 5, End: 5},
				{Start: 30, End: 100}, // beyond max parallelism: clipped
			} {
				sameRecords(t, "replay "+r.String(), replay(t, lg, r), m.expect(r, maxP))
			}
			if err := lg.Replay(dataflow.KeyGroupRange{Start: 5, End: 4}, func(*envelope.Envelope) error { return nil }); err == nil {
				t.Fatal("inverted range accepted")
			}
			// Replay stops at fn's first error and returns it as is.
			boom := errors.New("boom")
			calls := 0
			if err := lg.Replay(dataflow.KeyGroupRange{Start: 0, End: maxP}, func(*envelope.Envelope) error { calls++; return boom }); err != boom || calls != 1 {
				t.Fatalf("replay error %v after %d calls", err, calls)
			}

			// Round trip through WriteTo / ReadLog, with trailing bytes that
			// ReadLog must not consume.
			var buf bytes.Buffer
			n, err := lg.WriteTo(&buf)
			if err != nil || n != int64(buf.Len()) {
				t.Fatalf("WriteTo: %d %v (buffer %d)", n, err, buf.Len())
			}
			buf.WriteString("NEXT")
			lg2, err := ReadLog(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if buf.String() != "NEXT" {
				t.Fatalf("ReadLog left %q", buf.String())
			}
			if lg2.Len() != lg.Len() || lg2.MaxParallelism() != maxP {
				t.Fatalf("read log len %d max parallelism %d", lg2.Len(), lg2.MaxParallelism())
			}
			for _, r := range []dataflow.KeyGroupRange{{Start: 0, End: maxP}, {Start: 3, End: 9}} {
				sameRecords(t, "read log "+r.String(), replay(t, lg2, r), m.expect(r, maxP))
			}
			// Writing the read log gives the same bytes.
			var a, b bytes.Buffer
			if _, err := lg.WriteTo(&a); err != nil {
				t.Fatal(err)
			}
			if _, err := lg2.WriteTo(&b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatal("rewriting a read log changed its bytes")
			}

			if err := lg.Close(); err != nil {
				t.Fatal(err)
			}
			if err := lg.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if files := spillFiles(t, dir); len(files) != 0 {
				t.Fatalf("spill files left after Close: %v", files)
			}
			if err := lg.Replay(dataflow.KeyGroupRange{Start: 0, End: 1}, func(*envelope.Envelope) error { return nil }); err == nil {
				t.Fatal("Replay after Close accepted")
			}
		})
	}
}

// TestLoggerCustomKeyGroups checks that keyGroupOf decides the partition and
// that an out-of-range key group is an error.
func TestLoggerCustomKeyGroups(t *testing.T) {
	kgOf := func(id string) dataflow.KeyGroup {
		var kg int
		fmt.Sscanf(id, "kg%d", &kg)
		return dataflow.KeyGroup(kg)
	}
	l := NewLogger(4, kgOf, LoggerOptions{})
	defer l.Close()
	order := []string{"kg2-a", "kg0-a", "kg2-b", "kg3-a", "kg0-b", "kg2-c"}
	for _, id := range order {
		if err := l.Append(&envelope.Envelope{Target: envelope.Address{Namespace: "n", Type: "t", ID: id}}); err != nil {
			t.Fatal(err)
		}
	}
	err := l.Append(&envelope.Envelope{Target: envelope.Address{ID: "kg4"}})
	if err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("key group 4 of 4: %v", err)
	}
	if err := l.Append(nil); err == nil {
		t.Fatal("nil envelope accepted")
	}
	lg, err := l.Seal()
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	ids := func(r dataflow.KeyGroupRange) string {
		var s []string
		for _, e := range replay(t, lg, r) {
			s = append(s, e.Target.ID)
		}
		return strings.Join(s, " ")
	}
	if got := ids(dataflow.KeyGroupRange{Start: 0, End: 4}); got != "kg0-a kg0-b kg2-a kg2-b kg2-c kg3-a" {
		t.Fatalf("replay: %s", got)
	}
	if got := ids(dataflow.KeyGroupRange{Start: 1, End: 3}); got != "kg2-a kg2-b kg2-c" {
		t.Fatalf("replay [1,3): %s", got)
	}

	for _, p := range []int{0, -1, dataflow.MaxKeyGroups + 1} {
		bad := NewLogger(p, nil, LoggerOptions{})
		if err := bad.Append(rec(0, 0)); err == nil {
			t.Fatalf("max parallelism %d accepted by Append", p)
		}
		if _, err := bad.Seal(); err == nil {
			t.Fatalf("max parallelism %d accepted by Seal", p)
		}
	}
}

func TestLoggerCloseUnsealed(t *testing.T) {
	dir := t.TempDir()
	l := NewLogger(8, nil, LoggerOptions{MemoryBytes: 1, SpillDir: dir})
	fillLogger(t, l, 8, 5000, 200, rand.New(rand.NewPCG(3, 4)))
	if l.Stats().SpilledBytes == 0 || len(spillFiles(t, dir)) != 1 {
		t.Fatalf("no spill: %+v", l.Stats())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if files := spillFiles(t, dir); len(files) != 0 {
		t.Fatalf("spill files left after Close: %v", files)
	}
	if err := l.Append(rec(0, 0)); err == nil {
		t.Fatal("Append after Close accepted")
	}
}

func TestLoggerEmpty(t *testing.T) {
	lg, err := NewLogger(128, nil, LoggerOptions{}).Seal()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := lg.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != logHeaderSize+trailerSize {
		t.Fatalf("empty log is %d bytes", buf.Len())
	}
	lg2, err := ReadLog(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if lg2.Len() != 0 || len(replay(t, lg2, dataflow.KeyGroupRange{Start: 0, End: 128})) != 0 {
		t.Fatal("empty log replays records")
	}
}

// smallLog returns the serialized form of a log with a few records in three
// key groups.
func smallLog(t testing.TB) []byte {
	t.Helper()
	l := NewLogger(16, nil, LoggerOptions{})
	fillLogger(t, l, 16, 6, 3, rand.New(rand.NewPCG(5, 6)))
	lg, err := l.Seal()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := lg.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReadLogRejectsDamage: every truncation and every single-byte change of
// a serialized log is rejected with an error wrapping ErrCorrupt.
func TestReadLogRejectsDamage(t *testing.T) {
	good := smallLog(t)
	if _, err := ReadLog(bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < len(good); cut++ {
		_, err := ReadLog(bytes.NewReader(good[:cut]))
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: %v", cut, len(good), err)
		}
	}
	for i := range good {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			bad := slices.Clone(good)
			bad[i] ^= x
			_, err := ReadLog(bytes.NewReader(bad))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d ^ %#x: %v", i, x, err)
			}
		}
	}
	_, err := ReadLog(bytes.NewReader(good[:len(good)-1]))
	t.Logf("truncation: %v", err)
	if !strings.HasPrefix(err.Error(), "feedback: corrupt log: ") {
		t.Fatalf("error message %q", err)
	}

	// A well-formed header of another version is refused by name.
	v2 := slices.Clone(good)
	binary.LittleEndian.PutUint16(v2[4:], 2)
	binary.LittleEndian.PutUint32(v2[16:], crc32.Checksum(v2[:16], crcTable))
	if _, err := ReadLog(bytes.NewReader(v2)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "unsupported version 2") {
		t.Fatalf("version 2: %v", err)
	}
	// A read error is reported as such, not as corruption.
	ioErr := errors.New("disk on fire")
	if _, err := ReadLog(&failingReader{data: good, n: 30, err: ioErr}); !errors.Is(err, ioErr) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("read error: %v", err)
	}
}

type failingReader struct {
	data []byte
	n    int
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := copy(p[:min(len(p), r.n)], r.data)
	r.data, r.n = r.data[k:], r.n-k
	return k, nil
}

// TestLogSpillCorruption corrupts the sealed log's spill file: Replay and
// WriteTo fail with ErrCorrupt.
func TestLogSpillCorruption(t *testing.T) {
	dir := t.TempDir()
	l := NewLogger(8, nil, LoggerOptions{MemoryBytes: 1, SpillDir: dir})
	fillLogger(t, l, 8, 3000, 100, rand.New(rand.NewPCG(7, 8)))
	lg, err := l.Seal()
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	files := spillFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("spill files %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	err = lg.Replay(dataflow.KeyGroupRange{Start: 0, End: 8}, func(*envelope.Envelope) error { return nil })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("replay: %v", err)
	}
	t.Logf("replay: %v", err)
	if _, err := lg.WriteTo(&bytes.Buffer{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("WriteTo: %v", err)
	}
}

func BenchmarkLoggerAppend(b *testing.B) {
	e := rec(1, 16)
	for _, spill := range []bool{false, true} {
		b.Run(fmt.Sprintf("spill=%v", spill), func(b *testing.B) {
			opts := LoggerOptions{}
			if spill {
				opts = LoggerOptions{MemoryBytes: 1 << 20, SpillDir: b.TempDir()}
			}
			l := NewLogger(128, nil, opts)
			defer l.Close()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e.Target.ID = idFor(i)
				i++
				if err := l.Append(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var ids = func() []string {
	s := make([]string, 1024)
	for i := range s {
		s[i] = fmt.Sprintf("id-%d", i)
	}
	return s
}()

func idFor(i int) string { return ids[i%len(ids)] }
