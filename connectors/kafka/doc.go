// Package kafka implements the Kafka ingress and egress (module kinds
// io.statefun.kafka.v1/ingress and io.statefun.kafka.v1/egress) on
// franz-go.
//
// Source: one per ingress subtask. Partitions are assigned by the engine
// (partition p of each topic goes to subtask p mod parallelism), never by
// a consumer group, and start offsets are resolved at Open from the
// restored position or the startup position, with auto.offset.reset as
// the fallback for positions outside the log. A goroutine owned by the
// Source polls into a bounded queue (BufferedPolls); Read only drains it.
// The position is the next offset of every assigned partition. Offsets go
// to the consumer group only when a checkpoint completes, for monitoring.
//
// Sink: one per egress subtask, with the delivery semantics none,
// at-least-once (flush at every barrier) or exactly-once (one Kafka
// transaction per checkpoint interval, pre-committed at the barrier and
// committed when the checkpoint completes; see Sink for the protocol and
// its recovery).
//
// Configuration is the Java client's property map; every key is mapped
// onto a franz-go option, accepted as irrelevant here (ignoredKeys: group
// membership, auto-commit, (de)serializers, socket buffers), or is an
// error naming it. Supported:
//
//	both:     bootstrap.servers client.id security.protocol (PLAINTEXT, SSL,
//	          SASL_PLAINTEXT, SASL_SSL) sasl.mechanism (PLAIN, SCRAM-SHA-256,
//	          SCRAM-SHA-512) sasl.jaas.config (username="..." password="...")
//	          ssl.truststore.location|certificates|type (PEM only)
//	          ssl.keystore.location|certificate.chain|key|type (PEM only)
//	          ssl.endpoint.identification.algorithm (https or empty)
//	          request.timeout.ms retry.backoff.ms metadata.max.age.ms
//	          connections.max.idle.ms socket.connection.setup.timeout.ms
//	consumer: group.id auto.offset.reset isolation.level fetch.max.bytes
//	          max.partition.fetch.bytes fetch.min.bytes fetch.max.wait.ms
//	          max.poll.records client.rack
//	producer: acks enable.idempotence compression.type linger.ms batch.size
//	          max.request.size buffer.memory
//	          max.in.flight.requests.per.connection delivery.timeout.ms retries
//	          transaction.timeout.ms transactional.id.prefix (not a Java key)
//
// Optional capabilities beyond connectors.Source/Sink/Checkpointed, found
// by type assertion by the engine:
//   - PositionAt(dataflow.CheckpointID): the position at the barrier of a
//     known checkpoint (exact commit matching);
//   - dataflow.CheckpointListener: group commits (Source), transaction
//     commits (Sink);
//   - dataflow.Pauser (Sink, exactly-once): backpressure while records are
//     held behind a pre-committed transaction.
package kafka
