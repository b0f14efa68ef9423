package dataflow

import "fmt"

// DefaultMaxParallelism is the number of key groups when none is configured.
// It bounds the parallelism a job can ever be rescaled to, and it must never
// change for a job that has state.
const DefaultMaxParallelism = 128

// MaxKeyGroups is the largest supported max parallelism (key groups are u16).
const MaxKeyGroups = 1 << 15

// KeyGroup is the unit of state ownership and rescaling: a key belongs to
// exactly one key group, and a key group to exactly one subtask.
type KeyGroup uint16

// KeyGroupFor maps a key to its key group in [0, maxParallelism).
//
// The hash is FNV-1a over the key bytes followed by the murmur3 finalizer,
// so it is stable across processes and versions (it is part of the state
// format: keys are stored under their key group).
func KeyGroupFor(key string, maxParallelism int) KeyGroup {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return KeyGroup(h % uint32(maxParallelism))
}

// SubtaskFor returns the subtask that owns key group kg: kg*parallelism/maxParallelism,
// as Flink's KeyGroupRangeAssignment. Each subtask owns a contiguous range.
func SubtaskFor(kg KeyGroup, maxParallelism, parallelism int) int {
	return int(kg) * parallelism / maxParallelism
}

// KeyGroupRange is the half-open range [Start, End) of key groups.
type KeyGroupRange struct {
	Start, End KeyGroup
}

// Contains reports whether kg is in r.
func (r KeyGroupRange) Contains(kg KeyGroup) bool { return kg >= r.Start && kg < r.End }

// Len is the number of key groups in r.
func (r KeyGroupRange) Len() int { return int(r.End) - int(r.Start) }

func (r KeyGroupRange) String() string { return fmt.Sprintf("[%d,%d)", r.Start, r.End) }

// RangeForSubtask returns the key groups owned by subtask i of parallelism p.
// It is the inverse of SubtaskFor: kg is in RangeForSubtask(i) iff
// SubtaskFor(kg) == i.
func RangeForSubtask(i, parallelism, maxParallelism int) KeyGroupRange {
	start := (i*maxParallelism + parallelism - 1) / parallelism
	end := ((i+1)*maxParallelism + parallelism - 1) / parallelism
	return KeyGroupRange{Start: KeyGroup(start), End: KeyGroup(end)}
}
