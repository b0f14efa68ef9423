package savepoint

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/state"
)

// Stats summarises a savepoint (Inspect).
type Stats struct {
	Manifest Manifest
	// StateRows and StateBytes count all state rows and their value bytes.
	StateRows, StateBytes int64
	// Messages counts messages by kind.
	Messages map[MessageKind]int64
	// Functions are the function types with state or messages, by name.
	Functions []FunctionStats
	// KeyGroups has one entry per key group.
	KeyGroups []KeyGroupStats
	Sources   []SourceRow
}

// FunctionStats counts the state and messages of one function type
// ("namespace/type"; "" for rows outside the value space).
type FunctionStats struct {
	Type       string
	Addresses  int64            // ids with state
	StateRows  int64            // values
	StateBytes int64            // value bytes
	States     map[string]int64 // values per state name
	Messages   map[MessageKind]int64
}

// KeyGroupStats counts the rows of one key group.
type KeyGroupStats struct {
	StateRows, StateBytes, Messages int64
}

// Inspect scans the savepoint and counts its rows.
func Inspect(sp *Savepoint) (*Stats, error) {
	s := &Stats{Manifest: sp.Manifest, Messages: map[MessageKind]int64{}, Sources: sp.Sources(),
		KeyGroups: make([]KeyGroupStats, sp.MaxParallelism())}
	fns := map[string]*FunctionStats{}
	fn := func(t string) *FunctionStats {
		f := fns[t]
		if f == nil {
			f = &FunctionStats{Type: t, States: map[string]int64{}, Messages: map[MessageKind]int64{}}
			fns[t] = f
		}
		return f
	}
	var prev StateRow
	err := sp.ScanState(func(r *StateRow) error {
		s.StateRows++
		s.StateBytes += int64(len(r.Value))
		kg := &s.KeyGroups[r.KeyGroup]
		kg.StateRows++
		kg.StateBytes += int64(len(r.Value))
		t := ""
		if r.Space == state.SpaceValue {
			t = r.Namespace + "/" + r.Type
		}
		f := fn(t)
		f.StateRows++
		f.StateBytes += int64(len(r.Value))
		f.States[r.Name]++
		if s.StateRows == 1 || r.Space != prev.Space || r.Namespace != prev.Namespace || r.Type != prev.Type || r.ID != prev.ID {
			f.Addresses++
		}
		prev = StateRow{Space: r.Space, Namespace: r.Namespace, Type: r.Type, ID: r.ID}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = sp.ScanMessages(func(r *MessageRow) error {
		s.Messages[r.Kind]++
		s.KeyGroups[r.KeyGroup].Messages++
		fn(r.Envelope.Target.FunctionType()).Messages[r.Kind]++
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(fns)) {
		s.Functions = append(s.Functions, *fns[k])
	}
	return s, nil
}

// Print renders the stats as text, with the key groups in the ranges of
// the given parallelism (0: the savepoint's original parallelism, else 1).
func (s *Stats) Print(w io.Writer, dir string, parallelism int) error {
	m := &s.Manifest
	maxP := len(s.KeyGroups)
	if parallelism <= 0 {
		parallelism = max(m.Parallelism, 1)
	}
	parallelism = min(parallelism, maxP)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("savepoint %s\n", dir)
	origin := "import"
	if m.CreatedBy != "import" {
		kind := "checkpoint"
		if m.SourceSavepoint {
			kind = "savepoint"
		}
		origin = fmt.Sprintf("%s %d taken %s at parallelism %d", kind, m.SourceCheckpointID,
			time.UnixMilli(m.Timestamp).UTC().Format(time.RFC3339), m.Parallelism)
	}
	p("format\tversion %d, from %s; max parallelism %d\n", m.Version, origin, m.MaxParallelism)
	p("\nTABLE\tROWS\tBYTES\tCRC32C\n")
	for _, f := range m.Files {
		p("%s\t%d\t%d\t%08x\n", f.Name, f.Rows, f.Size, f.CRC32C)
	}
	p("\nstate\t%d values, %d value bytes\n", s.StateRows, s.StateBytes)
	p("messages\t%d queued, %d feedback, %d delayed\n", s.Messages[KindQueued], s.Messages[KindFeedback], s.Messages[KindDelayed])
	if len(s.Functions) > 0 {
		p("\nFUNCTION TYPE\tADDRESSES\tVALUES\tVALUE BYTES\tQUEUED\tFEEDBACK\tDELAYED\tSTATES\n")
		for _, f := range s.Functions {
			t := f.Type
			if t == "" {
				t = "(other spaces)"
			}
			var states []string
			for _, n := range slices.Sorted(maps.Keys(f.States)) {
				states = append(states, fmt.Sprintf("%s=%d", n, f.States[n]))
			}
			p("%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", t, f.Addresses, f.StateRows, f.StateBytes,
				f.Messages[KindQueued], f.Messages[KindFeedback], f.Messages[KindDelayed], strings.Join(states, " "))
		}
	}
	p("\nKEY GROUPS (parallelism %d)\tSUBTASK\tVALUES\tVALUE BYTES\tMESSAGES\n", parallelism)
	for i := range parallelism {
		r := dataflow.RangeForSubtask(i, parallelism, maxP)
		var kg KeyGroupStats
		for g := r.Start; g < r.End; g++ {
			kg.StateRows += s.KeyGroups[g].StateRows
			kg.StateBytes += s.KeyGroups[g].StateBytes
			kg.Messages += s.KeyGroups[g].Messages
		}
		p("%s\t%d\t%d\t%d\t%d\n", r, i, kg.StateRows, kg.StateBytes, kg.Messages)
	}
	if len(s.Sources) > 0 {
		p("\nVERTEX\tTASK\tSUBTASK\tPOSITION BYTES\tFINISHED\n")
		rows := slices.Clone(s.Sources)
		slices.SortFunc(rows, func(a, b SourceRow) int { return cmp.Compare(a.Vertex+a.Task, b.Vertex+b.Task) })
		for _, r := range rows {
			pos := "none"
			if r.Position != nil {
				pos = fmt.Sprint(len(r.Position))
			}
			p("%s\t%s\t%d\t%s\t%v\n", r.Vertex, r.Task, r.Subtask, pos, r.Finished)
		}
	}
	return tw.Flush()
}
