// Package savepoint converts stored checkpoints (package checkpoint/store)
// into canonical, self-contained savepoints in Arrow IPC files, and back
// into checkpoints for any parallelism (DESIGN.md §6: "self-contained,
// canonical and rescalable ... so they can be read by common data tools").
// It also exports savepoints to Arrow, Parquet and JSON Lines and imports
// them from the same shapes, to inspect, repair or bootstrap state
// (`statefun state export|import|inspect`).
//
// # Who calls it
//
//   - The app, to take a canonical savepoint: after a savepoint completes
//     (Config.OnSavepoint gets the store directory), store.OpenDir(dir)
//     then Write(cp, <canonical dir>).
//   - The app, to restore: when IsSavepointDir(--from-savepoint), Restore
//     (Open + ToCheckpoint) turns it into the next checkpoint of the job's
//     checkpoint store for the job's parallelism, and the job restores from
//     that checkpoint as from any other.
//   - app/state_cmd.go: Export, Import, Inspect.
//
// # Layout
//
//	<dir>/_savepoint.json   manifest (Manifest): format, version, source
//	                        checkpoint id, max and original parallelism,
//	                        source positions (base64) with their task ids,
//	                        and every file with its size, crc32c and rows
//	<dir>/state.arrow       key_group u16, space u8, namespace, type, id,
//	                        name (utf8), value (binary), expires_at i64
//	                        (unix ns, 0: none)
//	<dir>/messages.arrow    key_group, kind ("queued"|"feedback"|"delayed"),
//	                        order i64, envelope_kind u8, target_*, caller_*
//	                        (null without caller), typename, value, and for
//	                        delayed messages owner_*, token, fire_at (unix ms)
//	<dir>/sources.arrow     vertex, task, subtask, key_group_start/end,
//	                        position (binary, null: none), finished
//
// The tables are Arrow IPC files (the random-access format) with zstd
// buffer compression, in record batches of up to 64Ki rows (and ~64 MiB).
// The schemas carry the metadata statefun.savepoint.table/version.
//
// # Invariants
//
//   - Canonical: the files depend only on the logical state, not on the
//     parallelism the checkpoint was taken at or on Pebble's files. State
//     rows are sorted by (key group, encoded state key) (state.EncodeKey:
//     space, then length-prefixed namespace, type, id, then name); messages
//     by (key group, kind in restore order, order), where order numbers the
//     messages of one key group and kind from 0 in their original order;
//     sources by (vertex, subtask). The writers are deterministic (same rows,
//     same bytes), so converting the same state taken at parallelism 1, 2
//     or 4 gives byte-identical table files (tests check it). Only the
//     manifest's provenance fields (source checkpoint id, parallelism,
//     timestamp) differ.
//   - Faithful: Write carries over every file of the checkpoint or fails
//     (ErrUnsupported names a file it does not know), and ToCheckpoint
//     writes back exactly what the dispatcher's restore reads: per key
//     group, queued messages then feedback messages in their order, and
//     delayed messages in firing order. State values already expired at
//     the checkpoint's trigger time are left out.
//   - Atomic: Write and Import build <dir>.inprogress, fsync every file and
//     the directory, then rename it to <dir>; <dir> is absent or complete.
//   - Detection: Open checks the manifest's format and version, every
//     file's size, crc32c (Castagnoli) and Arrow schema, and the sources
//     against the manifest; scans check order, key-group ranges and row
//     counts. Failures wrap ErrCorrupt (IsCorruption).
//
// # Limits, on purpose
//
//   - Import and ToCheckpoint hold the messages (and Import the state) in
//     memory; Write streams the state.
//   - Sources cannot be re-split: their subtasks keep their task ids, so
//     an ingress whose parallelism follows the job's restores only at the
//     same parallelism (as with any checkpoint).
//   - The operator blob format is owned by statefun/dispatch (snapshot.go);
//     this package carries a copy of its decoder and encoder, guarded by
//     the engine round trip in the tests.
package savepoint
