package feedback

import (
	"bytes"
	"errors"
	"testing"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// FuzzReadLog: ReadLog never panics, and what it accepts replays and
// re-serializes to the same bytes.
func FuzzReadLog(f *testing.F) {
	f.Add([]byte{})
	f.Add(smallLog(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		lg, err := ReadLog(bytes.NewReader(data))
		if err != nil {
			return
		}
		n := 0
		if err := lg.Replay(dataflow.KeyGroupRange{Start: 0, End: dataflow.MaxKeyGroups - 1}, func(*envelope.Envelope) error { n++; return nil }); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := lg.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), data[:buf.Len()]) {
			t.Fatal("re-serialized log differs")
		}
	})
}

// FuzzDecodeItems: the spill page decoder never panics.
func FuzzDecodeItems(f *testing.F) {
	p := appendItem(nil, Item{Envelope: rec(1, 3)})
	p = appendItem(p, Item{Marker: 7, IsMarker: true})
	f.Add(p, 2)
	f.Fuzz(func(t *testing.T, payload []byte, count int) {
		if count < 0 || count > len(payload) {
			return
		}
		_, _ = decodeItems(nil, payload, count)
	})
}
