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
// Get, Set, Touch and Delete work on an in-memory map from encoded key to an
// entry (value, expiry, present/dirty flags). A Get miss reads Pebble once
// and caches the result, including absence, so a new key costs one Pebble
// read. Writes only mark the entry dirty. When the estimated size exceeds
// Options.WriteBackBytes, every dirty entry is written in one Pebble batch
// and clean entries are evicted (CLOCK, second chance for recently used
// entries) down to 75% of the budget, so eviction is amortised O(1) per
// call. Invariants:
//
//   - A clean entry equals what Pebble holds (absent entries: Pebble holds
//     nothing live); a dirty entry is newer than Pebble and is never evicted.
//   - Dirty entries are always written to Pebble before Checkpoint, Scan and
//     Close complete; Flush writes them without syncing (Checkpoint syncs the
//     WAL).
//   - An expired value is never returned, whether it comes from the cache or
//     from Pebble; it is turned into a pending delete on read, and
//     SweepExpired deletes expired values nobody reads.
//   - Values passed to Set are owned by the store; values returned by Get are
//     owned by the store and must not be modified.
//
// A negative Options.WriteBackBytes disables the cache: every Get reads
// Pebble and every write commits its own Pebble batch (for comparison
// benchmarks and debugging).
package state
