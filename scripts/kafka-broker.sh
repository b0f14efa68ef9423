#!/usr/bin/env bash
# kafka-broker.sh: one real Apache Kafka broker (KRaft, broker+controller in
# one JVM) on 127.0.0.1, for the Kafka connector tests.
#
#   scripts/kafka-broker.sh start [port]   prints the bootstrap address once
#                                          the broker answers (default port
#                                          19092; the controller uses port+1)
#   scripts/kafka-broker.sh stop           stops it and removes its log dir
#   scripts/kafka-broker.sh status         prints the address if it runs
#
# Kafka (org.apache.kafka:kafka_2.13:$KAFKA_VERSION) and its runtime
# dependencies come from Maven Central through `mvn dependency:copy-
# dependencies` (a throwaway pom in the cache dir), cached in
# ${XDG_CACHE_HOME:-~/.cache}/statefun-go/kafka/<version>. Needs Java 17 and
# Maven.
#
#   KAFKA_BOOTSTRAP=$(scripts/kafka-broker.sh start) go test ./e2e -run Kafka
#   scripts/kafka-broker.sh stop
set -euo pipefail

KAFKA_VERSION=${KAFKA_VERSION:-3.9.1}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/statefun-go/kafka/$KAFKA_VERSION
RUN=${KAFKA_RUN_DIR:-${TMPDIR:-/tmp}/statefun-kafka-broker}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}

log() { echo "kafka-broker: $*" >&2; }

fetch() {
	if [[ -f $CACHE/.complete ]]; then
		return
	fi
	command -v mvn >/dev/null || { log "maven (mvn) is needed"; exit 1; }
	command -v java >/dev/null || { log "java 17 is needed"; exit 1; }
	mkdir -p "$CACHE"
	cat >"$CACHE/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>statefun-go</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- kafka_2.13 declares no logging backend -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
EOF
	log "downloading kafka_2.13:$KAFKA_VERSION and its dependencies (once) into $CACHE/lib"
	rm -rf "$CACHE/lib"
	mvn -B -q -f "$CACHE/pom.xml" dependency:copy-dependencies \
		-DoutputDirectory="$CACHE/lib" -DincludeScope=runtime >&2
	touch "$CACHE/.complete"
}

running() {
	[[ -f $RUN/pid ]] && kill -0 "$(cat "$RUN/pid")" 2>/dev/null
}

answers() { # the listener accepts connections and the broker says it started
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null &&
		grep -q "Kafka Server started" "$RUN/broker.log" 2>/dev/null
}

start() {
	local port=${1:-${KAFKA_PORT:-19092}}
	if running; then
		cat "$RUN/address"
		return
	fi
	fetch
	local cport=$((port + 1)) cp="$CACHE/lib/*"
	mkdir -p "$RUN"
	local data
	data=$(mktemp -d "${TMPDIR:-/tmp}/statefun-kafka-data.XXXXXX")
	echo "$data" >"$RUN/datadir"
	cat >"$RUN/server.properties" <<EOF
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.quorum.voters=1@127.0.0.1:$cport
log.dirs=$data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
EOF
	cat >"$RUN/log4j.properties" <<EOF
log4j.rootLogger=WARN, file
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$RUN/broker.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
	: >"$RUN/broker.log"
	local id
	id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
	java -Dlog4j.configuration="file:$RUN/log4j.properties" -cp "$cp" kafka.tools.StorageTool format \
		-t "$id" -c "$RUN/server.properties" >"$RUN/format.log" 2>&1 ||
		{ log "formatting the storage failed:"; cat "$RUN/format.log" >&2; exit 1; }
	nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
		-Dlog4j.configuration="file:$RUN/log4j.properties" -cp "$cp" \
		kafka.Kafka "$RUN/server.properties" >"$RUN/stdout.log" 2>&1 </dev/null &
	echo $! >"$RUN/pid"
	echo "127.0.0.1:$port" >"$RUN/address"
	local waited=0
	until answers "$port"; do
		if ! running; then
			log "the broker exited; its log:"
			tail -n 40 "$RUN/broker.log" "$RUN/stdout.log" >&2
			rm -f "$RUN/pid"
			exit 1
		fi
		if ((waited >= START_TIMEOUT * 5)); then
			log "the broker did not answer within ${START_TIMEOUT}s"
			stop
			exit 1
		fi
		sleep 0.2
		waited=$((waited + 1))
	done
	cat "$RUN/address"
}

stop() {
	if [[ -f $RUN/pid ]]; then
		local pid
		pid=$(cat "$RUN/pid")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid"
			for _ in $(seq 150); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.2
			done
			kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
		fi
		rm -f "$RUN/pid"
	fi
	if [[ -f $RUN/datadir ]]; then
		rm -rf "$(cat "$RUN/datadir")"
		rm -f "$RUN/datadir"
	fi
}

case ${1:-} in
start) start "${2:-}" ;;
stop) stop ;;
status) running && cat "$RUN/address" || { echo "not running" >&2; exit 1; } ;;
fetch) fetch ;;
*)
	echo "usage: $0 start [port] | stop | status | fetch" >&2
	exit 2
	;;
esac
