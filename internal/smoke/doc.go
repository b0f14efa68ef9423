// Package smoke is our rebuild of upstream StateFun's smoke test
// (statefun-smoke-e2e, contract §6.1) with embedded functions: random,
// deeply nested command trees, interpreted by
// statefun.smoke.e2e/command-interpreter-fn, must leave every function's
// counter exactly where a model computed from the same generator says,
// whatever failures happen in between.
//
// # Pieces
//
//   - commands.go: the protocol (commands.proto as JSON types) and names.
//   - generator.go: command i is a pure function of (seed, i) (upstream's
//     weighted distribution and depth rules); Model walks the same trees
//     and gives the expected counter per id and the exact set of
//     discard-sink records.
//   - interpreter.go: the function, with upstream's semantics plus two
//     oracles of ours (see below).
//   - source.go: the generator ingress statefun.smoke.e2e/command-generator-source,
//     a connectors.Source that is connectors.Checkpointed (the next index
//     is its position, so a restore resumes exactly). After its share of
//     the commands it sends Verify{expected} to its share of the ids and
//     ends: the job is bounded.
//   - harness.go: what tests need to drive the smokecmd binary (build,
//     start, kill, list checkpoints) and Check, the output oracle.
//   - smokecmd: the binary (the statefun CLI plus the function and the
//     ingress); parameters come from SMOKE_* environment variables so that
//     the flags of `statefun run` stay untouched.
//
// # Differences from upstream, on purpose
//
//   - The job is bounded, so Verify is sent once instead of every 2 s
//     forever. A Verify that finds the counter below the expected value
//     re-sends itself after VerifyRetryDelay (a delayed message keeps the
//     job alive), up to Params.VerifyAttempts; it emits its
//     VerificationResult when the counter reached the expected value, went
//     past it, or the attempts ran out. An under-count therefore shows as
//     actual < expected after a bounded wait instead of a 10-minute
//     timeout.
//   - A second state, `verified`, remembers the expected value once the
//     result was emitted: a later increment (necessarily a duplicate) emits
//     a second result with actual > expected.
//   - The delayed message of a SendAfter+Cancel pair carries a canary: if
//     it is ever delivered (the cancellation failed), the interpreter
//     writes an "uncancelled:<token>" record to the discard sink, which no
//     model contains.
//   - Every send_egress command carries a unique id ("<index>-<node>"), so
//     the discard sink is checked record by record, each exactly once.
//   - No async operations (the Go SDK has none).
package smoke
