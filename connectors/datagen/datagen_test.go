package datagen

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/dataflowtest"
	"github.com/statefun-go/statefun/statefun"
)

const (
	typeString = "io.statefun.types/string"
	typeLong   = "io.statefun.types/long"
	typeInt    = "io.statefun.types/int"
)

// msg is one generated record, decoded.
type msg struct {
	key   string
	value string // decoded value, as text
}

func decode(t *testing.T, valueType string, r connectors.Record) msg {
	t.Helper()
	if !r.HasKey {
		t.Fatalf("record without key: %+v", r)
	}
	if r.Route != "" {
		t.Fatalf("record with route %q", r.Route)
	}
	var v string
	switch valueType {
	case typeString:
		if err := statefun.DecodeValue(statefun.StringType, r.Value, &v); err != nil {
			t.Fatal(err)
		}
	case typeLong:
		var n int64
		if err := statefun.DecodeValue(statefun.Int64Type, r.Value, &n); err != nil {
			t.Fatal(err)
		}
		v = fmt.Sprint(n)
	case typeInt:
		var n int32
		if err := statefun.DecodeValue(statefun.Int32Type, r.Value, &n); err != nil {
			t.Fatal(err)
		}
		v = fmt.Sprint(n)
	}
	return msg{r.Key, v}
}

func open(t *testing.T, cfg Config, subtask, par int) (*Source, *dataflowtest.Context) {
	t.Helper()
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Name: "ingress", Subtask: subtask, Parallelism: par})
	s := New(cfg)
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

// readAll reads a bounded, unthrottled source to its end with batches of
// batch records.
func readAll(t *testing.T, s *Source, valueType string, batch int) []msg {
	t.Helper()
	var out []msg
	for i := 0; ; i++ {
		if i > 1_000_000 {
			t.Fatal("source does not end")
		}
		recs, wait, err := s.Read(make([]connectors.Record, 0, batch))
		if wait != 0 {
			t.Fatalf("unthrottled source returned wait %v", wait)
		}
		if len(recs) > batch {
			t.Fatalf("Read returned %d records for a room of %d", len(recs), batch)
		}
		for _, r := range recs {
			out = append(out, decode(t, valueType, r))
		}
		if errors.Is(err, dataflow.ErrEndOfInput) {
			if len(recs) != 0 {
				t.Fatalf("records returned with ErrEndOfInput")
			}
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// readAllSubtasks reads every subtask of parallelism par and returns the
// records of each.
func readAllSubtasks(t *testing.T, cfg Config, par, batch int) [][]msg {
	var out [][]msg
	for i := 0; i < par; i++ {
		s, _ := open(t, cfg, i, par)
		out = append(out, readAll(t, s, cfg.ValueType, batch))
	}
	return out
}

func sortedMsgs(parts [][]msg) []msg {
	var all []msg
	for _, p := range parts {
		all = append(all, p...)
	}
	slices.SortFunc(all, func(a, b msg) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(a.value, b.value)
	})
	return all
}

func TestSequentialExactSequence(t *testing.T) {
	cfg := Config{Count: 7, Keys: 3, KeyPrefix: "k-", ValueType: typeLong}
	got := readAllSubtasks(t, cfg, 1, 4)[0]
	want := []msg{{"k-0", "0"}, {"k-1", "1"}, {"k-2", "2"}, {"k-0", "3"}, {"k-1", "4"}, {"k-2", "5"}, {"k-0", "6"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestSubtaskShares(t *testing.T) {
	// Subtask s of p generates the messages i with i mod p == s, in order.
	cfg := Config{Count: 10, Keys: 4, KeyPrefix: "k", ValueType: typeInt}
	parts := readAllSubtasks(t, cfg, 3, 2)
	want := [][]msg{
		{{"k0", "0"}, {"k3", "3"}, {"k2", "6"}, {"k1", "9"}},
		{{"k1", "1"}, {"k0", "4"}, {"k3", "7"}},
		{{"k2", "2"}, {"k1", "5"}, {"k0", "8"}},
	}
	for i := range want {
		if !slices.Equal(parts[i], want[i]) {
			t.Errorf("subtask %d: got %v, want %v", i, parts[i], want[i])
		}
	}
}

func TestSameMultisetWhateverParallelism(t *testing.T) {
	for _, vt := range []string{typeString, typeLong, typeInt} {
		cfg := Config{Count: 1000, Keys: 17, KeyPrefix: "user-", ValueType: vt}
		one := sortedMsgs(readAllSubtasks(t, cfg, 1, 64))
		three := sortedMsgs(readAllSubtasks(t, cfg, 3, 64))
		if len(one) != 1000 {
			t.Fatalf("%s: %d messages, want 1000", vt, len(one))
		}
		if !slices.Equal(one, three) {
			t.Errorf("%s: parallelism 1 and 3 generate different messages", vt)
		}
	}
}

// TestUniformSameMultisetWhateverParallelism checks the package promise
// ("the output is the same whatever the parallelism") for the uniform key
// distribution, whose keys are drawn by a generator seeded with Seed.
func TestUniformSameMultisetWhateverParallelism(t *testing.T) {
	cfg := Config{Count: 300, Keys: 50, KeyPrefix: "u", Uniform: true, Seed: 7, ValueType: typeLong}
	keyOf := func(par int) map[string]string { // sequence number -> key
		m := map[string]string{}
		for _, part := range readAllSubtasks(t, cfg, par, 64) {
			for _, r := range part {
				m[r.value] = r.key
			}
		}
		return m
	}
	one, three := keyOf(1), keyOf(3)
	if len(one) != 300 || len(three) != 300 {
		t.Fatalf("%d and %d messages, want 300", len(one), len(three))
	}
	var diff []string
	for seq, k := range one {
		if three[seq] != k {
			diff = append(diff, fmt.Sprintf("message %s: key %s at parallelism 1, %s at 3", seq, k, three[seq]))
		}
	}
	if len(diff) > 0 {
		slices.Sort(diff)
		t.Errorf("uniform keys depend on the parallelism: %d of 300 messages get another key "+
			"(each subtask draws from its own generator seeded with (Seed, subtask)), e.g. %s", len(diff), diff[0])
	}
}

func TestUniformSeeded(t *testing.T) {
	gen := func(seed int64) []msg {
		cfg := Config{Count: 200, Keys: 10, KeyPrefix: "u", Uniform: true, Seed: seed, ValueType: typeString}
		return readAllSubtasks(t, cfg, 1, 32)[0]
	}
	a, b, c := gen(42), gen(42), gen(43)
	if !slices.Equal(a, b) {
		t.Error("the same seed generated different keys")
	}
	if slices.Equal(a, c) {
		t.Error("seeds 42 and 43 generated the same keys")
	}
	counts := map[string]int{}
	for _, m := range a {
		if m.value != m.key {
			t.Fatalf("string value %q is not the key %q", m.value, m.key)
		}
		counts[m.key]++
	}
	for k := range counts {
		var n int
		if _, err := fmt.Sscanf(k, "u%d", &n); err != nil || n < 0 || n >= 10 {
			t.Errorf("key %q is outside the key space", k)
		}
	}
	if len(counts) < 8 {
		t.Errorf("200 uniform draws over 10 keys hit only %d keys: %v", len(counts), counts)
	}
}

func TestValueEncodings(t *testing.T) {
	for _, c := range []struct {
		vt       string
		typename statefun.SimpleType
		want     []msg
	}{
		{typeString, statefun.StringType, []msg{{"p0", "p0"}, {"p1", "p1"}, {"p0", "p0"}}},
		{typeLong, statefun.Int64Type, []msg{{"p0", "0"}, {"p1", "1"}, {"p0", "2"}}},
		{typeInt, statefun.Int32Type, []msg{{"p0", "0"}, {"p1", "1"}, {"p0", "2"}}},
	} {
		cfg := Config{Count: 3, Keys: 2, KeyPrefix: "p", ValueType: c.vt}
		s, _ := open(t, cfg, 0, 1)
		recs, _, err := s.Read(make([]connectors.Record, 0, 10))
		if err != nil {
			t.Fatal(err)
		}
		var got []msg
		for _, r := range recs {
			got = append(got, decode(t, c.vt, r))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.vt, got, c.want)
		}
		// The bytes are exactly the SDK's encoding of the well-known type.
		var want []byte
		switch c.vt {
		case typeString:
			want, _ = statefun.EncodeValue(c.typename, "p1")
		case typeLong:
			want, _ = statefun.EncodeValue(c.typename, int64(1))
		case typeInt:
			want, _ = statefun.EncodeValue(c.typename, int32(1))
		}
		if string(recs[1].Value) != string(want) {
			t.Errorf("%s: value bytes %x, want %x", c.vt, recs[1].Value, want)
		}
	}
}

func TestEmptyPrefixAndSingleKey(t *testing.T) {
	cfg := Config{Count: 3, Keys: 1, ValueType: typeInt}
	got := readAllSubtasks(t, cfg, 1, 8)[0]
	want := []msg{{"0", "0"}, {"0", "1"}, {"0", "2"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestLargeKeySpace(t *testing.T) {
	// Beyond 1<<20 keys the key strings are not precomputed.
	cfg := Config{Count: 3, Keys: 1<<20 + 5, KeyPrefix: "big-", ValueType: typeLong}
	s, _ := open(t, cfg, 0, 1)
	if s.keys != nil {
		t.Errorf("keys precomputed for %d keys", cfg.Keys)
	}
	got := readAll(t, s, typeLong, 8)
	want := []msg{{"big-0", "0"}, {"big-1", "1"}, {"big-2", "2"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestUnbounded(t *testing.T) {
	cfg := Config{Keys: 2, ValueType: typeLong}
	s, _ := open(t, cfg, 1, 2)
	for round := 0; round < 3; round++ {
		recs, wait, err := s.Read(make([]connectors.Record, 0, 100))
		if err != nil || wait != 0 || len(recs) != 100 {
			t.Fatalf("round %d: %d records, wait %v, err %v", round, len(recs), wait, err)
		}
		if m := decode(t, typeLong, recs[99]); m.value != fmt.Sprint(1+2*(100*round+99)) {
			t.Fatalf("round %d: last value %s", round, m.value)
		}
	}
}

func TestReadAppendsToDst(t *testing.T) {
	cfg := Config{Count: 5, Keys: 5, ValueType: typeLong}
	s, _ := open(t, cfg, 0, 1)
	dst := make([]connectors.Record, 1, 3)
	dst[0] = connectors.Record{Key: "existing"}
	recs, _, err := s.Read(dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].Key != "existing" || recs[1].Key != "0" || recs[2].Key != "1" {
		t.Errorf("got %+v", recs)
	}
}

func TestRateLimit(t *testing.T) {
	// 10 messages per second over one subtask: one is due at once, then
	// one every 100ms.
	cfg := Config{Rate: 10, Keys: 1, KeyPrefix: "r", ValueType: typeLong}
	s, ctx := open(t, cfg, 0, 1)
	read := func() (int, time.Duration) {
		t.Helper()
		recs, wait, err := s.Read(make([]connectors.Record, 0, 1000))
		if err != nil {
			t.Fatal(err)
		}
		return len(recs), wait
	}
	if n, _ := read(); n != 1 {
		t.Fatalf("at start: %d records, want 1", n)
	}
	if n, wait := read(); n != 0 || wait != 100*time.Millisecond {
		t.Fatalf("right after: %d records, wait %v; want 0 and 100ms", n, wait)
	}
	ctx.Advance(99 * time.Millisecond)
	if n, _ := read(); n != 0 {
		t.Fatalf("at +99ms: %d records, want 0", n)
	}
	ctx.Advance(1 * time.Millisecond)
	if n, _ := read(); n != 1 {
		t.Fatalf("at +100ms: %d records, want 1", n)
	}
	ctx.Advance(900 * time.Millisecond)
	if n, _ := read(); n != 9 {
		t.Fatalf("at +1s: %d records, want 9", n)
	}
	// A long pause is made up in one burst, bounded by the room in dst.
	ctx.Advance(10 * time.Second)
	recs, _, err := s.Read(make([]connectors.Record, 0, 40))
	if err != nil || len(recs) != 40 {
		t.Fatalf("after 10s with room 40: %d records, err %v", len(recs), err)
	}
	if n, _ := read(); n != 60 {
		t.Fatalf("rest of the burst: %d records, want 60", n)
	}
}

func TestRateSplitOverSubtasks(t *testing.T) {
	// Rate is over all subtasks: with 3 subtasks at 30/s, each makes 10/s.
	cfg := Config{Rate: 30, Count: 1000, Keys: 1, ValueType: typeLong}
	total := 0
	for i := 0; i < 3; i++ {
		s, ctx := open(t, cfg, i, 3)
		_, wait, err := s.Read(make([]connectors.Record, 0, 1000)) // the one due at start
		if err != nil {
			t.Fatal(err)
		}
		_, wait, _ = s.Read(make([]connectors.Record, 0, 1000))
		if wait != 100*time.Millisecond {
			t.Errorf("subtask %d: wait %v, want 100ms", i, wait)
		}
		ctx.Advance(time.Second)
		recs, _, err := s.Read(make([]connectors.Record, 0, 1000))
		if err != nil {
			t.Fatal(err)
		}
		total += 1 + len(recs)
	}
	if total != 33 {
		t.Errorf("3 subtasks made %d messages in 1s at 30/s, want 33 (1 each at start + 10 each)", total)
	}
}

func TestRateWithCountEnds(t *testing.T) {
	cfg := Config{Rate: 1000, Count: 5, Keys: 1, ValueType: typeLong}
	s, ctx := open(t, cfg, 0, 1)
	ctx.Advance(time.Hour)
	recs, _, err := s.Read(make([]connectors.Record, 0, 100))
	if err != nil || len(recs) != 5 {
		t.Fatalf("%d records, err %v", len(recs), err)
	}
	if _, _, err := s.Read(make([]connectors.Record, 0, 100)); !errors.Is(err, dataflow.ErrEndOfInput) {
		t.Fatalf("after the count: err %v, want ErrEndOfInput", err)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Keys: 1, ValueType: typeString}, ""},
		{Config{Keys: 1, ValueType: "io.statefun.types/bool"}, `unsupported valueType "io.statefun.types/bool"`},
		{Config{Keys: 1}, `unsupported valueType ""`},
		{Config{Keys: 0, ValueType: typeLong}, "keys must be >= 1"},
		{Config{Keys: 1, Count: -1, ValueType: typeLong}, "count and rate >= 0"},
		{Config{Keys: 1, Rate: -1, ValueType: typeLong}, "count and rate >= 0"},
	} {
		err := c.cfg.Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.cfg, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.cfg, err, c.want)
		}
		// Open validates too.
		ctx := dataflowtest.NewContext(t, dataflowtest.Options{})
		if err := New(c.cfg).Open(ctx); err == nil {
			t.Errorf("%+v: Open accepted an invalid config", c.cfg)
		}
	}
}
