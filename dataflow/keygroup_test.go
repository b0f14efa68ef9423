package dataflow

import (
	"fmt"
	"testing"
)

func TestRangeForSubtaskInvertsSubtaskFor(t *testing.T) {
	for _, maxP := range []int{1, 7, 128, 1000} {
		for p := 1; p <= maxP && p <= 64; p++ {
			covered := 0
			for i := 0; i < p; i++ {
				r := RangeForSubtask(i, p, maxP)
				if int(r.Start) != covered {
					t.Fatalf("maxP=%d p=%d subtask %d starts at %d, want %d", maxP, p, i, r.Start, covered)
				}
				for kg := r.Start; kg < r.End; kg++ {
					if got := SubtaskFor(kg, maxP, p); got != i {
						t.Fatalf("maxP=%d p=%d kg=%d: SubtaskFor=%d, range says %d", maxP, p, kg, got, i)
					}
				}
				covered = int(r.End)
			}
			if covered != maxP {
				t.Fatalf("maxP=%d p=%d: ranges cover %d key groups", maxP, p, covered)
			}
		}
	}
}

func TestKeyGroupForIsStableAndSpread(t *testing.T) {
	// Golden values: the hash is part of the on-disk state format.
	golden := map[string]KeyGroup{"": 11, "a": 51, "user-1": 108, "alice": 30}
	for k, want := range golden {
		if got := KeyGroupFor(k, 128); got != want {
			t.Fatalf("KeyGroupFor(%q) = %d, want %d: the state format changed", k, got, want)
		}
	}
	counts := make([]int, 128)
	for i := 0; i < 128000; i++ {
		counts[KeyGroupFor(fmt.Sprintf("key-%d", i), 128)]++
	}
	for kg, c := range counts {
		if c < 800 || c > 1200 {
			t.Fatalf("key group %d has %d of 128000 keys: poor spread", kg, c)
		}
	}
}
