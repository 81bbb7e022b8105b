#!/usr/bin/env bash
# One Apache Kafka KRaft node (broker + controller) from the Maven jars of deploy/local/pom.xml: the
# broker of the `broker` target of the Containerfile, as deploy/local/kafka.sh runs it on a laptop.
#
# Environment (deploy/compose/compose.yaml sets them):
#   KAFKA_NODE_ID          this node's id (1, 2, 3)
#   KAFKA_QUORUM_VOTERS    id@host:port of every controller, e.g. 1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093
#   KAFKA_CLUSTER_ID       the same 22-character id on every node (format refuses a node of another cluster)
#   KAFKA_ADVERTISED_HOST  the name clients reach this node by (default: the hostname)
#   KAFKA_REPLICATION      replication factor of the internal topics (default 3); min ISR is one less
#   KAFKA_HEAP             JVM heap (default 1g)
set -euo pipefail

die() { echo "kafka-node: $*" >&2; exit 1; }
: "${KAFKA_NODE_ID:?set KAFKA_NODE_ID}"
: "${KAFKA_QUORUM_VOTERS:?set KAFKA_QUORUM_VOTERS}"
: "${KAFKA_CLUSTER_ID:?set KAFKA_CLUSTER_ID}"
host="${KAFKA_ADVERTISED_HOST:-$(hostname)}"
replication="${KAFKA_REPLICATION:-3}"
min_isr=$(( replication > 1 ? replication - 1 : 1 ))
lib=/opt/kafka/lib
data=/var/lib/kafka/data
props=/var/lib/kafka/server.properties

cat > "$props" <<PROPS
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_QUORUM_VOTERS
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093
advertised.listeners=PLAINTEXT://$host:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=3
default.replication.factor=$replication
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replication
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replication
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS

java_opts=(-Dlog4j2.configurationFile=/opt/kafka/log4j2.yaml -Dkafka.logs.dir=/var/lib/kafka/logs)
if [ ! -f "$data/meta.properties" ]; then
  java -cp "$lib/*" "${java_opts[@]}" kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$props" \
    || die "formatting the KRaft storage failed"
fi
exec java -Xms256m -Xmx"${KAFKA_HEAP:-1g}" -XX:+UseG1GC -Djava.awt.headless=true "${java_opts[@]}" \
  -cp "$lib/*" kafka.Kafka "$props"
