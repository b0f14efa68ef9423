package checkpoint

import (
	"fmt"
	"strings"
	"testing"

	"github.com/statefun-go/statefun/dataflow"
)

// TestAligner runs event scripts through the aligner and compares the
// narrated outcome.
func TestAligner(t *testing.T) {
	for _, tc := range []struct {
		name     string
		channels int
		script   string // "b<ch>:<id>" barrier, "e<ch>" end of input
		want     string
	}{
		{"single channel completes at once", 1, "b0:1", "b0:1 complete"},
		{"two channels", 2, "b0:1 b1:1", "b0:1 blocked[0] | b1:1 complete"},
		{"two checkpoints", 2, "b1:1 b0:1 b0:2 b1:2", "b1:1 blocked[1] | b0:1 complete | b0:2 blocked[0] | b1:2 complete"},
		{"end completes pending alignment", 3, "b0:5 b2:5 e1", "b0:5 blocked[0] | b2:5 blocked[0 2] | e1 complete"},
		{"ended channel no longer awaited", 2, "e0 b1:1", "e0 | b1:1 complete"},
		{"end of a blocked channel", 2, "b0:1 e0 b1:1", "b0:1 blocked[0] | e0 | b1:1 complete"},
		{"mixed ids rejected", 2, "b0:1 b1:2", "b0:1 blocked[0] | b1:2 error: checkpoint: barrier 2 on channel 1 while aligning 1"},
		{"duplicate rejected", 2, "b0:1 b0:1", "b0:1 blocked[0] | b0:1 error: checkpoint: barrier 1 twice on channel 0"},
		{"old id rejected", 1, "b0:3 b0:2", "b0:3 complete | b0:2 error: checkpoint: barrier 2 on channel 0 is not newer than 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAligner(tc.channels)
			var out []string
			for _, step := range strings.Fields(tc.script) {
				var ch int
				var id uint64
				var res string
				if step[0] == 'b' {
					fmt.Sscanf(step, "b%d:%d", &ch, &id)
					done, err := a.OnBarrier(ch, dataflow.Barrier{ID: dataflow.CheckpointID(id)})
					switch {
					case err != nil:
						res = "error: " + err.Error()
					case done:
						res = "complete"
					}
				} else {
					fmt.Sscanf(step, "e%d", &ch)
					if a.OnEndOfInput(ch) {
						res = "complete"
					}
				}
				if res == "" {
					var bl []string
					for i := 0; i < tc.channels; i++ {
						if a.Blocked(i) {
							bl = append(bl, fmt.Sprint(i))
						}
					}
					if len(bl) > 0 {
						res = "blocked[" + strings.Join(bl, " ") + "]"
					}
				}
				out = append(out, strings.TrimSpace(step+" "+res))
			}
			if got := strings.Join(out, " | "); got != tc.want {
				t.Errorf("\ngot  %s\nwant %s", got, tc.want)
			}
		})
	}
}
