// Package state is the keyed state of one subtask: a Pebble instance behind
// a write-back cache.
//
// # Ownership
//
// The function dispatcher opens one Store per subtask and uses it only from
// the subtask's goroutine; a Store has no locks. The Store holds everything
// the subtask snapshots as keyed state (DESIGN.md §6–§7): function state
// (SpaceValue), delayed messages and their cancellation-token index
// (SpaceDelayed, SpaceTokenIndex), per-address remote request state and
// batches (SpaceRequest), and per-key-group bookkeeping (SpaceMeta). At a
// barrier the subtask calls Checkpoint (a Pebble checkpoint: hard links);
// savepoints and rescaling read key-group ranges with Scan.
//
// # Key layout
//
// A Key is encoded as
//
//	[keyGroup u16 big-endian][space u8]
//	[uvarint len][namespace][uvarint len][type][uvarint len][id]
//	[name: remaining bytes]
//
// so all keys of one key group, of one (key group, space) pair and of one
// address form contiguous spans, and a key-group range is one span of the
// Pebble key space (for Scan and span-restricted checkpoints). Lengths are
// canonical uvarints, which makes the encoding a bijection: DecodeKey
// accepts exactly the outputs of EncodeKey.
//
// # Value header
//
// Each Pebble value starts with one header byte so that TTL survives
// restarts and checkpoints:
//
//	0x00 payload                     never expires
//	0x01 expiresAt(u64 BE) payload   expires at expiresAt, unix nanoseconds
//
// Other header bytes are reserved and reported as ErrCorrupt. A value is
// live while expiresAt == 0 or now < expiresAt, with now from Options.Now.
//
// # Write-back cache
//
// Get, Set, Touch and Delete work on an in-memory cache (cache.go): one byte
// arena holding a record per cached key (flags, lengths, optional expiry,
// encoded key, value) and an open-addressing index of uint64 slots (32-bit
// hash, 32-bit arena offset). It has no Go pointers per entry, so the
// garbage collector never scans it, and a cached key costs its record plus
// an index slot: about 60 bytes for a 36-byte key and a 9-byte value, so a
// million such keys fit in the default 64 MiB budget. A Get miss reads Pebble
// once and caches the result, including absence, so a new key costs one
// Pebble read. Writes rewrite the record in place when the value fits (else
// the record moves to the end of the arena) and mark it dirty. When arena
// plus index exceed Options.WriteBackBytes, every dirty record is written in
// one Pebble batch, clean records are evicted (CLOCK: recently used ones get
// a second chance) down to 75% of the budget, and the live records are
// compacted into a fresh arena; a shrink frees at least a quarter of the
// budget, so its cost is amortised O(1) per cached byte. Invariants:
//
//   - A clean record equals what Pebble holds (for an absent record: Pebble
//     holds nothing live); a dirty record is newer than Pebble and is never
//     evicted.
//   - Dirty records are always written to Pebble before Checkpoint, Scan and
//     Close complete; Flush writes them without syncing (Checkpoint syncs the
//     WAL).
//   - An expired value is never returned, whether it comes from the cache or
//     from Pebble; it is turned into a pending delete on read, and
//     SweepExpired deletes expired values nobody reads.
//   - Set copies its value. Get returns a slice into the arena, which must
//     not be modified; only a later Set of the same key overwrites its
//     bytes (in place). Touch and Delete rewrite headers only or move the
//     record, and compaction copies live records into a fresh arena, so they
//     never overwrite bytes a returned slice may point into.
//
// A negative Options.WriteBackBytes disables the cache: every Get reads
// Pebble and every write commits its own Pebble batch (for comparison
// benchmarks and debugging).
package state
