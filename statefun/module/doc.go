// Package module loads StateFun module files (module.yaml) into typed
// endpoint, ingress and egress definitions for the translator.
//
// It owns the whole YAML surface users write, exactly as Apache Flink
// StateFun 3.x accepts it:
//
//   - the current format: a multi-document stream in which each non-empty
//     document is a component {kind: <typename>, spec: <object>};
//   - the deprecated single-root version "3.0" layout (module.spec.endpoints,
//     ingresses and egresses), rewritten into components as upstream does;
//   - friendly rejections of the StateFun 2.x formats "1.0" and "2.0" that
//     say how to migrate.
//
// Kinds: io.statefun.endpoints.v1/http and v2/http, io.statefun.kafka.v1
// and io.statefun.kinesis.v1 ingress and egress, and this engine's built-in
// connectors io.statefun.generator.v1/ingress, io.statefun.file.v1/ingress,
// io.statefun.file.v1/egress and io.statefun.stdout.v1/egress. Every spec is
// fully parsed and validated, with the upstream defaults applied. Durations
// use Flink's TimeUtils syntax (ParseDuration); startup dates use a lenient
// form of "yyyy-MM-dd HH:mm:ss.SSS Z" (ParseStartupDate).
//
// Invariants:
//   - All errors at once: Load never stops at the first problem. It checks
//     every file and every component, then the cross-component rules
//     (duplicate bindings, duplicate ingress and egress ids, and with
//     Options.FunctionKnown unknown ingress targets), and returns one
//     *Errors listing every diagnostic.
//   - Positions: every diagnostic carries the file, line and column of the
//     offending YAML node and the path of the field
//     (spec.topics[0].valueType), including for the rewritten legacy layout.
//   - Compatibility: unknown keys inside a spec are warnings, not errors
//     (upstream ignores them), unless Options.Strict is set.
//   - Never panics: wrong YAML types, invalid YAML and arbitrary input give
//     diagnostics (FuzzLoad checks this).
//   - The result is plain data: Module and its specs have no behaviour
//     beyond small helpers (Resolve, URLFor, ConsumerProperties, Describe).
package module
