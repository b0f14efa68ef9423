// Package store keeps checkpoints and savepoints on the local file system
// (DESIGN.md §6): what the checkpoint coordinator commits when every task
// has acknowledged, and what a restarted job restores from.
//
// # Who calls it
//
// The coordinator opens one Store per job (Open(<state-dir>/checkpoints,
// job)), calls Begin when it triggers checkpoint n, hands the Pending to the
// tasks' asynchronous snapshot phase (AddFile for small blobs such as source
// positions or the sealed feedback log, AddPebbleCheckpoint for the output
// of a Pebble db.Checkpoint), calls Commit once all tasks acknowledged (or
// Abort), then Retain. On restore it calls Latest (or Load, or OpenDir for
// --from-savepoint) and gives each task its ReadFile blobs and a
// MaterializePebble directory to open.
//
// # Layout
//
//	<root>/<job>/chk-<n>/_metadata            the commit record of checkpoint n
//	<root>/<job>/chk-<n>/<task>/<name>        files private to checkpoint n
//	<root>/<job>/chk-<n>.inprogress/          checkpoint n while it is written
//	<root>/<job>/shared/<crc32c>-<size>-<name> immutable sstables, shared
//	<state-dir>/savepoints/<id>/              self-contained (BeginSavepoint)
//
// _metadata is a fixed-width text header (format version, body length,
// crc32c) and a JSON body (Metadata) listing every file with its size and
// crc32c; see metadata.go.
//
// # Invariants (each has a test)
//
//   - Visibility: a checkpoint is listed by List, Latest and Load only once
//     chk-<n> exists, and Commit creates chk-<n> (by renaming the in-progress
//     directory) only after every file it references, their directory
//     entries and _metadata are fsynced (Pending.Commit documents the order).
//     In-progress directories are never read.
//   - Crash atomicity: a crash or power loss at any point of Begin,
//     AddFile, AddPebbleCheckpoint or Commit leaves either the previous
//     state or the new complete checkpoint (crash_test.go stops after every
//     file-system operation, drops what was not durable, reopens and checks
//     Latest). A checkpoint whose _metadata was written but whose directory
//     was not yet renamed is discarded, not recovered: Commit had not
//     returned, so the coordinator never declared it complete.
//   - Detection: a truncated or altered _metadata, or a referenced file that
//     is missing or has a wrong size or crc32c, makes that checkpoint fail
//     validation with a *CorruptionError naming the file and the reason;
//     Latest then falls back to the previous complete checkpoint and reports
//     each skipped one ("chk-7: _metadata: truncated").
//   - Retention: Retain never deletes a shared file referenced by a
//     remaining checkpoint or by a pending one, and never deletes a
//     savepoint.
//   - Containment: every name taken from metadata (job, task, file, shared)
//     is a single path component: no "..", no separators, no absolute paths,
//     no control characters. A crafted _metadata cannot make the store read,
//     link or delete outside its directories.
//   - Immutability: shared files are hard links of sstables of live Pebble
//     DBs (and MaterializePebble hard-links them back). Pebble never writes
//     to an sstable, and neither may anyone else.
//
// # Incremental checkpoints
//
// A Pebble checkpoint hard-links the DB's sstables. AddPebbleCheckpoint
// hard-links each sstable into shared/ under a name derived from its
// crc32c, size and file name; an sstable already stored by an earlier
// checkpoint is only referenced. The Store remembers, per inode, the shared
// name it gave a file, so an unchanged sstable of the next checkpoint (the
// same inode) is recognised with two stats and no read; only new sstables
// are read (once, for their checksum). The same holds after a restore, since
// MaterializePebble links the shared files into the new DB directory. A
// shared name that already exists is reused only when it is the same inode
// or holds the same bytes, so a crc32c collision cannot mix up state.
//
// # Concurrency
//
// Store, Pending and Checkpoint are safe for concurrent use. Lock order:
// Pending.mu before Store.mu; Store.mu is held only for short map updates
// and stats, links and renames in shared/, and for the whole of Retain.
// Checkpoint verification reads files on GOMAXPROCS goroutines that end
// before the call returns.
//
// # Not done, on purpose
//
//   - No lock file: one process (the job manager) owns a job directory.
//   - No object-store backend yet: the write path goes through a small
//     internal interface (writeFS) so one can be added; tests use it to inject
//     crashes.
package store
