package kafka

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fixture: topic "in" with 2 partitions; partition p holds old0p..old4p
// stamped at t0 and new0p..new4p stamped an hour later.
func startupFixture(t *testing.T, t0 time.Time) (addr string) {
	_, addr = cluster(t, 2, []string{"in"})
	var recs []*kgo.Record
	for p := range int32(2) {
		for i := range 5 {
			r := rec("in", p, "k", "old"+string(rune('0'+i))+string(rune('0'+p)))
			r.Timestamp = t0
			recs = append(recs, r)
		}
		for i := range 5 {
			r := rec("in", p, "k", "new"+string(rune('0'+i))+string(rune('0'+p)))
			r.Timestamp = t0.Add(time.Hour)
			recs = append(recs, r)
		}
	}
	manual(t, addr, recs...)
	commitGroups(t, addr)
	return addr
}

func vals(prefix string, idx []int, parts ...int) []string {
	var out []string
	for _, p := range parts {
		for _, i := range idx {
			out = append(out, prefix+string(rune('0'+i))+string(rune('0'+p)))
		}
	}
	slices.Sort(out)
	return out
}

func all5() []int { return []int{0, 1, 2, 3, 4} }

// groups: g1 committed p0:2, p1:3; g2 committed p0 out of range.
func commitGroups(t *testing.T, addr string) {
	adm := kadm.NewClient(client(t, addr))
	ctx := context.Background()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "in", Partition: 0, At: 2, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "in", Partition: 1, At: 3, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "g1", offs); err != nil {
		t.Fatal(err)
	}
	offs = kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "in", Partition: 0, At: 999, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "g2", offs); err != nil {
		t.Fatal(err)
	}
}

// TestSourceStartupPositions: every startup position, with the fallback
// to auto.offset.reset; each case on its own cluster.
func TestSourceStartupPositions(t *testing.T) {
	t.Parallel()
	t0 := time.Now().Add(-2 * time.Hour).Truncate(time.Millisecond)
	everything := append(vals("old", all5(), 0, 1), vals("new", all5(), 0, 1)...)
	slices.Sort(everything)
	cases := []struct {
		name  string
		props map[string]string
		start StartupPosition
		want  []string
	}{
		{"earliest", nil, StartupPosition{Type: StartEarliest}, everything},
		{"latest", nil, StartupPosition{Type: StartLatest}, nil},
		{"default-is-latest", nil, StartupPosition{}, nil},
		{"group-offsets", map[string]string{"group.id": "g1"}, StartupPosition{Type: StartGroupOffsets},
			sorted(vals("old", []int{2, 3, 4}, 0), vals("new", all5(), 0), vals("old", []int{3, 4}, 1), vals("new", all5(), 1))},
		// p0 out of range and p1 without a commit: auto.offset.reset.
		{"group-offsets-fallback-earliest", map[string]string{"group.id": "g2", "auto.offset.reset": "earliest"}, StartupPosition{Type: StartGroupOffsets}, everything},
		{"group-offsets-fallback-latest", map[string]string{"group.id": "g2"}, StartupPosition{Type: StartGroupOffsets}, nil},
		// p1 is not listed: no group, so auto.offset.reset (earliest).
		{"specific-offsets", map[string]string{"auto.offset.reset": "earliest"}, StartupPosition{Type: StartSpecificOffsets, Offsets: Offsets{"in": {0: 7}}},
			sorted(vals("new", []int{2, 3, 4}, 0), vals("old", all5(), 1), vals("new", all5(), 1))},
		// p1 is not listed: the group's committed offset.
		{"specific-offsets-group", map[string]string{"group.id": "g1"}, StartupPosition{Type: StartSpecificOffsets, Offsets: Offsets{"in": {0: 9}}},
			sorted(vals("new", []int{4}, 0), vals("old", []int{3, 4}, 1), vals("new", all5(), 1))},
		{"specific-offsets-out-of-range", nil, StartupPosition{Type: StartSpecificOffsets, Offsets: Offsets{"in": {0: 50, 1: 5}}},
			vals("new", all5(), 1)},
		{"date", nil, StartupPosition{Type: StartDate, Date: t0.Add(30 * time.Minute)}, vals("new", all5(), 0, 1)},
		{"date-exact", nil, StartupPosition{Type: StartDate, Date: t0}, everything},
		// No record at or after the date: auto.offset.reset.
		{"date-future-earliest", map[string]string{"auto.offset.reset": "earliest"}, StartupPosition{Type: StartDate, Date: time.Now().Add(time.Hour)}, everything},
		{"date-future-latest", nil, StartupPosition{Type: StartDate, Date: time.Now().Add(time.Hour)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			addr := startupFixture(t, t0)
			props := map[string]string{"bootstrap.servers": addr}
			for k, v := range c.props {
				props[k] = v
			}
			s, _ := openSource(t, SourceConfig{ID: "test/in", Topics: []string{"in"}, Properties: props, Startup: c.start}, 0, 1, nil)
			got := recValues(read(t, s, len(c.want), 10*time.Second))
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %q\nwant %q", got, c.want)
			}
			// Records produced after Open are read in every case.
			manual(t, addr, rec("in", 0, "k", "later-"+c.name))
			got = recValues(read(t, s, 1, 10*time.Second))
			if !slices.Equal(got, []string{"later-" + c.name}) {
				t.Fatalf("after open: got %q", got)
			}
		})
	}
}

func sorted(parts ...[]string) []string {
	out := slices.Concat(parts...)
	slices.Sort(out)
	return out
}

// TestSourceAssignmentAndRouting: partitions are spread p mod parallelism,
// the route is the topic and the key the id; a subtask without partitions
// idles; a null key is reported with its origin.
func TestSourceAssignmentAndRouting(t *testing.T) {
	t.Parallel()
	_, addr := cluster(t, 5, []string{"a", "b"})
	var recs []*kgo.Record
	for p := range int32(5) {
		recs = append(recs, rec("a", p, "ka"+string(rune('0'+p)), "a"+string(rune('0'+p))), rec("b", p, "kb"+string(rune('0'+p)), "b"+string(rune('0'+p))))
	}
	manual(t, addr, recs...)
	cfg := SourceConfig{ID: "test/in", Topics: []string{"a", "b"}, Properties: map[string]string{"bootstrap.servers": addr},
		Startup: StartupPosition{Type: StartEarliest}}
	want := map[int][]string{0: {"a0", "a2", "a4", "b0", "b2", "b4"}, 1: {"a1", "a3", "b1", "b3"}}
	for sub := range 2 {
		s, _ := openSource(t, cfg, sub, 2, nil)
		got := read(t, s, len(want[sub]), 10*time.Second)
		if v := recValues(got); !slices.Equal(v, want[sub]) {
			t.Errorf("subtask %d: got %q, want %q", sub, v, want[sub])
		}
		for _, r := range got {
			if !r.HasKey || r.Key != "k"+string(r.Value) || r.Route != string(r.Value[:1]) {
				t.Errorf("record %+v: want key k%s and route %c", r, r.Value, r.Value[0])
			}
		}
	}
	idle, _ := openSource(t, cfg, 7, 8, nil)
	recsIdle, wait, err := idle.Read(nil)
	if err != nil || len(recsIdle) != 0 || wait <= 0 {
		t.Errorf("subtask without partitions: %v %v %v", recsIdle, wait, err)
	}
	if pos, err := idle.Position(); err != nil || len(pos) == 0 {
		t.Errorf("idle position %v %v", pos, err)
	}

	manual(t, addr, &kgo.Record{Topic: "a", Partition: 0, Value: []byte("nokey")})
	s, _ := openSource(t, SourceConfig{ID: "test/in", Topics: []string{"a"}, Properties: cfg.Properties,
		Startup: StartupPosition{Type: StartSpecificOffsets, Offsets: Offsets{"a": {0: 1}}}}, 0, 5, nil)
	got := read(t, s, 1, 10*time.Second)
	if got[0].HasKey || got[0].Origin != "a/0@1" {
		t.Errorf("null key record %+v", got[0])
	}
}

// TestSourceRestore: a source restored from a position resumes exactly
// after the records it had returned, and commits the checkpointed offsets
// to its group when the checkpoint completes.
func TestSourceRestore(t *testing.T) {
	t.Parallel()
	_, addr := cluster(t, 3, []string{"in"})
	var recs []*kgo.Record
	for i := range 30 {
		recs = append(recs, rec("in", int32(i%3), "k", seq("v", i, i+1)[0]))
	}
	manual(t, addr, recs...)
	cfg := SourceConfig{ID: "test/in", Topics: []string{"in"}, Startup: StartupPosition{Type: StartEarliest},
		Properties: map[string]string{"bootstrap.servers": addr, "group.id": "monitor", "max.poll.records": "4"}}
	s1, _ := openSource(t, cfg, 0, 1, nil)
	first := read(t, s1, 11, 10*time.Second)
	pos, err := s1.PositionAt(1)
	if err != nil {
		t.Fatal(err)
	}
	read(t, s1, 5, 10*time.Second) // read past the checkpoint; lost by the "crash"
	if err := s1.NotifyCheckpointComplete(1); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(client(t, addr))
	deadline := time.Now().Add(10 * time.Second)
	want, _ := decodeOffsets(pos)
	for {
		got, err := adm.FetchOffsets(context.Background(), "monitor")
		n := 0
		if err == nil {
			got.Each(func(o kadm.OffsetResponse) {
				if w, ok := want.lookup(o.Topic, o.Partition); ok && w == o.At {
					n++
				}
			})
		}
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group offsets %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s1.Close()

	// Latest startup: without the restored position it would read nothing.
	cfg.Startup = StartupPosition{Type: StartLatest}
	s2, _ := openSource(t, cfg, 0, 1, pos)
	rest := read(t, s2, 30-11, 10*time.Second)
	all := recValues(append(first, rest...))
	if !slices.Equal(all, seq("v", 0, 30)) {
		t.Fatalf("first %d + restored %d records: %q", len(first), len(rest), all)
	}
	if extra := read(t, s2, -1, 200*time.Millisecond); len(extra) != 0 {
		t.Fatalf("extra records %q", recValues(extra))
	}
}

// TestSourceConfigErrors: unknown properties and missing topics are clear
// errors at start.
func TestSourceConfigErrors(t *testing.T) {
	t.Parallel()
	_, addr := cluster(t, 1, []string{"in"})
	cfg := SourceConfig{ID: "test/in", Topics: []string{"in"}, Properties: map[string]string{
		"bootstrap.servers": addr, "fetch.max.bytez": "1", "isolation.level": "snapshot", "enable.auto.commit": "true"}}
	err := cfg.Validate()
	wantErr(t, err, `"fetch.max.bytez" is unknown`, "isolation.level", "snapshot")
	if strings.Contains(err.Error(), "enable.auto.commit") {
		t.Errorf("enable.auto.commit should be accepted: %v", err)
	}
	s := NewSource(cfg)
	wantErr(t, s.Open(dataflowContext(t)), "fetch.max.bytez")

	for _, c := range []struct {
		props map[string]string
		start StartupPosition
		want  []string
	}{
		{map[string]string{"bootstrap.servers": addr}, StartupPosition{Type: StartGroupOffsets}, []string{"group-offsets needs a consumer group id"}},
		{map[string]string{"bootstrap.servers": addr}, StartupPosition{Type: "newest"}, []string{`unknown startup position "newest"`}},
		{map[string]string{"bootstrap.servers": addr, "security.protocol": "SASL_SSL"}, StartupPosition{}, []string{"needs sasl.mechanism"}},
		{map[string]string{"bootstrap.servers": addr, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "GSSAPI"}, StartupPosition{}, []string{"GSSAPI", "not supported"}},
		{map[string]string{"bootstrap.servers": addr, "ssl.truststore.location": "/x"}, StartupPosition{}, []string{"ssl.* properties need security.protocol SSL"}},
		{map[string]string{"bootstrap.servers": addr, "security.protocol": "SSL", "ssl.truststore.type": "JKS"}, StartupPosition{}, []string{"JKS", "only PEM"}},
		{map[string]string{}, StartupPosition{}, []string{"bootstrap.servers is missing"}},
	} {
		cfg := SourceConfig{ID: "test/in", Topics: []string{"in"}, Properties: c.props, Startup: c.start}
		wantErr(t, cfg.Validate(), c.want...)
	}

	missing := SourceConfig{ID: "test/in", Topics: []string{"in", "nope"}, Properties: map[string]string{"bootstrap.servers": addr}}
	if err := missing.Validate(); err != nil {
		t.Fatal(err)
	}
	s = NewSource(missing)
	err = s.Open(dataflowContext(t))
	s.Close()
	wantErr(t, err, `topic "nope" does not exist`)
}

// TestSourceFetchFaults: fetch errors injected in kfake (a connection cut
// and an error code, once each) are retried by the client: every record
// arrives, once.
func TestSourceFetchFaults(t *testing.T) {
	t.Parallel()
	c, addr := cluster(t, 1, []string{"in"})
	var recs []*kgo.Record
	for i := range 20 {
		recs = append(recs, rec("in", 0, "k", seq("v", i, i+1)[0]))
	}
	manual(t, addr, recs...)
	c.ControlKey(kmsg.Fetch.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		return nil, errors.New("injected: connection cut"), true
	})
	c.ControlKey(kmsg.Fetch.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.FetchRequest)
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	s, _ := openSource(t, SourceConfig{ID: "test/in", Topics: []string{"in"}, Startup: StartupPosition{Type: StartEarliest},
		Properties: map[string]string{"bootstrap.servers": addr}}, 0, 1, nil)
	got := recValues(read(t, s, 20, 20*time.Second))
	if !slices.Equal(got, seq("v", 0, 20)) {
		t.Fatalf("got %q", got)
	}
	if extra := read(t, s, -1, 200*time.Millisecond); len(extra) != 0 {
		t.Fatalf("extra records %q", recValues(extra))
	}
}
