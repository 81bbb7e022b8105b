#!/usr/bin/env bash
# A real Apache Kafka (KRaft, broker+controller nodes) on 127.0.0.1, built from Maven Central jars.
#
#   deploy/local/kafka.sh up|down|status|bootstrap [--plaintext] [--brokers N]
#   deploy/local/kafka.sh credentials CONFIG_DIR
#   deploy/local/kafka.sh client-env [PARTY]
#
# Secure by default: a TLS listener with client certificates (mutual TLS), each certificate's CN as the
# principal (User:<CN>), KRaft's StandardAuthorizer, allow.everyone.if.no.acl.found=false and one super
# user, User:xhub-admin. `up` makes the local CA and the super user's certificate itself when they are
# missing (openssl); `credentials CONFIG_DIR` adds the certificate of every party named in CONFIG_DIR
# (departments, hubs, registry, apply role, operator). All of it under $XHUB_KAFKA_CREDENTIALS (keys 0600;
# git-ignored). `client-env [PARTY]` prints the environment (XHUB_KAFKA_SECURITY_PROTOCOL,
# XHUB_KAFKA_SSL_CAFILE/CERTFILE/KEYFILE) with which every xhub client, sidecar and hub connects as PARTY
# (default the super user): `eval "$(deploy/local/kafka.sh client-env)"`.
# --plaintext (an explicit option): no TLS, no authorizer; its own data, logs and pid.
#
# --brokers N (default 1): N broker+controller nodes forming an N-voter controller quorum. Node i (1..N)
# takes client port XHUB_KAFKA_PORT+2(i-1) and controller port one above; its data, logs and pid are its
# own (data-cluster-<port> ...), so a cluster never reuses a single node's storage. Internal topics get
# replication min(3, N) and min ISR 2 from 3 nodes on (as do topics created with the broker's defaults);
# `up` starts the nodes that are not running, so it also brings back one node that was stopped. Every
# node of a secure cluster presents the super user's certificate to the others.
#
# Environment:
#   XHUB_KAFKA_PORT   client port (default 9092); the controller listens on port+1
#   XHUB_KAFKA_HOME   state folder (default deploy/local/.kafka: jars, data, logs, pid; git-ignored)
#   XHUB_KAFKA_LIB    the Kafka jars (default $XHUB_KAFKA_HOME/lib)
#   XHUB_KAFKA_CREDENTIALS  the CA and certificates (default $XHUB_KAFKA_HOME/credentials); brokers that
#                     share it trust the same clients
#   XHUB_KAFKA_HEAP   JVM heap (default 1g: the test suite creates a few thousand partitions)
#   XHUB_PYTHON       the Python with exchange-hub installed (default .venv/bin/python of the repo)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
secure=1  # --secure is still accepted (it is the default)
for arg in "$@"; do [ "$arg" = "--plaintext" ] && secure=0; done
if [ "$secure" = 1 ]; then kind="secure-"; else kind=""; fi
port="${XHUB_KAFKA_PORT:-9092}"
home="${XHUB_KAFKA_HOME:-$here/.kafka}"
lib="${XHUB_KAFKA_LIB:-$home/lib}"
heap="${XHUB_KAFKA_HEAP:-1g}"
credentials="${XHUB_KAFKA_CREDENTIALS:-$home/credentials}"
python="${XHUB_PYTHON:-$here/../../.venv/bin/python}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

brokers=1
previous=""
for arg in "$@"; do
  [ "$previous" = "--brokers" ] && brokers="$arg"
  case "$arg" in --brokers=*) brokers="${arg#--brokers=}" ;; esac
  previous="$arg"
done
[[ "$brokers" =~ ^[1-9]$ ]] || die "--brokers takes a node count from 1 to 9, not '$brokers'."
base_port="$port"
if [ "$brokers" = 1 ]; then layout=""; else layout="cluster-"; fi
replication=$((brokers < 3 ? brokers : 3))
min_isr=$((replication >= 3 ? 2 : 1))
cluster_id_file="$home/cluster-$kind$base_port.id"

# Point port, controller_port, data, logs, pidfile and props at node $1 (1..brokers).
select_node() {
  node="$1"
  port=$((base_port + 2 * (node - 1)))
  controller_port=$((port + 1))
  data="$home/data-$kind$layout$port"
  logs="$home/logs-$kind$layout$port"
  pidfile="$home/kafka-$kind$layout$port.pid"
  props="$home/server-$kind$layout$port.properties"
}
select_node 1

all_nodes() { seq 1 "$brokers"; }

quorum_props() {
  if [ "$brokers" = 1 ]; then
    echo "controller.quorum.bootstrap.servers=127.0.0.1:$controller_port"
    return
  fi
  local voters="" n
  for n in $(all_nodes); do
    voters="$voters${voters:+,}$n@127.0.0.1:$((base_port + 2 * (n - 1) + 1))"
  done
  echo "controller.quorum.voters=$voters"
}

storage_props() {
  cat <<PROPS
log.dirs=$data
num.partitions=3
default.replication.factor=$replication
offsets.topic.replication.factor=$replication
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$replication
share.coordinator.state.topic.min.isr=$min_isr
min.insync.replicas=$min_isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.backoff.ms=1000
PROPS
}

need_tools() {
  command -v java >/dev/null 2>&1 || die "Java is missing: install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)."
  command -v mvn >/dev/null 2>&1 || die "Maven is missing: install it (Debian: apt-get install maven); it fetches the Kafka jars from Maven Central."
}

running_pid() {
  # The pid file names our broker; trust it only if that process is alive and is a Kafka JVM.
  [ -f "$pidfile" ] || return 1
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null && grep -q "kafka.Kafka" "/proc/$pid/cmdline" 2>/dev/null; then
    echo "$pid"; return 0
  fi
  return 1
}

accepts_clients() {
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

fetch_jars() {
  [ -n "${XHUB_KAFKA_LIB:-}" ] && return 0  # jars someone else fetched
  # Cached: the jar folder is stamped with the pom it came from.
  if [ -f "$lib/.pom.sha" ] && [ "$(sha256sum "$here/pom.xml" | cut -d' ' -f1)" = "$(cat "$lib/.pom.sha")" ]; then
    return 0
  fi
  echo "kafka.sh: fetching Apache Kafka jars from Maven Central into $lib" >&2
  rm -rf "$lib"; mkdir -p "$lib"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib" \
    || die "Maven could not fetch the Kafka jars (see the output above)."
  sha256sum "$here/pom.xml" | cut -d' ' -f1 > "$lib/.pom.sha"
}

write_props() {
  cat > "$props" <<PROPS
process.roles=broker,controller
node.id=$node
$(quorum_props)
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
$(storage_props)
PROPS
}

write_secure_props() {
  [ -f "$credentials/xhub-admin.bundle.pem" ] || make_admin_credentials
  cat > "$props" <<PROPS
process.roles=broker,controller
node.id=$node
$(quorum_props)
listeners=SSL://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=SSL://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=SSL:SSL,CONTROLLER:SSL
inter.broker.listener.name=SSL
ssl.keystore.type=PEM
ssl.keystore.location=$credentials/xhub-admin.bundle.pem
ssl.truststore.type=PEM
ssl.truststore.location=$credentials/ca.pem
ssl.client.auth=required
ssl.endpoint.identification.algorithm=
ssl.principal.mapping.rules=RULE:^CN=([^,]+)\$/\$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:xhub-admin
$(storage_props)
PROPS
  chmod 600 "$props"
}

make_admin_credentials() {
  # A fresh clone has no credentials yet: the CA and the super user's certificate (also the broker's
  # server certificate, hence localhost/127.0.0.1), made with openssl so that the broker needs no Python.
  # hub/provision/credentials.py issues the other parties with the same CA (same files, same format).
  command -v openssl >/dev/null 2>&1 || die "openssl is missing: install it (Debian: apt-get install openssl)."
  mkdir -p "$credentials"; chmod 700 "$credentials"
  (
    umask 077; cd "$credentials"
    if [ ! -f ca.pem ] || [ ! -f ca.key ]; then
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
      openssl req -x509 -new -key ca.key -subj "/CN=xhub local CA" -days 825 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.pem
    fi
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out xhub-admin.key
    openssl req -new -key xhub-admin.key -subj "/CN=xhub-admin" -out xhub-admin.csr
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "extendedKeyUsage=clientAuth,serverAuth" \
      "subjectAltName=DNS:localhost,IP:127.0.0.1" > xhub-admin.ext
    openssl x509 -req -in xhub-admin.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
      -days 825 -sha256 -extfile xhub-admin.ext -out xhub-admin.pem
    rm -f xhub-admin.csr xhub-admin.ext
    cat xhub-admin.key xhub-admin.pem ca.pem > xhub-admin.bundle.pem
  ) >/dev/null 2>"$home/openssl.log" || { cat "$home/openssl.log" >&2; die "making the CA and the super user's certificate failed."; }
  echo "kafka.sh: made the local CA and the super user's certificate in $credentials" >&2
}

client_env() {
  local party="${1:-xhub-admin}"
  if [ "$secure" = 0 ]; then
    echo "export XHUB_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"
    echo "unset XHUB_KAFKA_SSL_CAFILE XHUB_KAFKA_SSL_CERTFILE XHUB_KAFKA_SSL_KEYFILE"
    return 0
  fi
  [ -f "$credentials/$party.pem" ] || die "no certificate of $party in $credentials ('$0 up' makes the super user's, '$0 credentials CONFIG_DIR' the parties')."
  # Paths only: the key stays in its 0600 file.
  printf 'export XHUB_KAFKA_SECURITY_PROTOCOL=SSL\n'
  printf 'export XHUB_KAFKA_SSL_CAFILE=%q\n' "$credentials/ca.pem"
  printf 'export XHUB_KAFKA_SSL_CERTFILE=%q\n' "$credentials/$party.pem"
  printf 'export XHUB_KAFKA_SSL_KEYFILE=%q\n' "$credentials/$party.key"
}

credentials_cmd() {
  local config="${1:-}"
  [ -n "$config" ] || die "usage: $0 credentials CONFIG_DIR"
  [ -x "$python" ] || die "no Python with exchange-hub at $python (make install, or set XHUB_PYTHON)."
  "$python" -m hub.cli credentials "$config" --out "$credentials"
}

cluster_id() {
  # One id for every node of a cluster, made at its first start and kept beside the nodes' data.
  if [ ! -s "$cluster_id_file" ]; then
    java -cp "$lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1 > "$cluster_id_file"
  fi
  cat "$cluster_id_file"
}

format_storage() {
  local quorum=(--standalone)  # a single node is its own quorum; a cluster's voters are in its props
  [ "$brokers" = 1 ] || quorum=()
  mkdir -p "$data"
  java -cp "$lib/*" -Dlog4j2.configurationFile="$here/log4j2.yaml" -Dkafka.logs.dir="$logs" \
    kafka.tools.StorageTool format "${quorum[@]}" -t "$(cluster_id)" \
    -c "$props" >"$logs/format.log" 2>&1 || { cat "$logs/format.log" >&2; die "formatting KRaft storage failed."; }
}

# Start the selected node unless it runs; does not wait (a cluster's nodes need each other's quorum).
start_node() {
  mkdir -p "$home" "$logs"
  if pid="$(running_pid)"; then
    echo "kafka.sh: broker already running (pid $pid) on 127.0.0.1:$port"
    return 0
  fi
  if accepts_clients; then
    other="$home/kafka-$([ "$secure" = 1 ] || echo secure-)$port.pid"  # the other mode's broker?
    [ -f "$other" ] && die "port $port is taken by this script's $([ "$secure" = 1 ] && echo plaintext || echo secure) broker: '$0 down$([ "$secure" = 1 ] && echo " --plaintext")' first (the broker is secure by default now)."
    die "port $port is taken by another process; set XHUB_KAFKA_PORT to a free port."
  fi
  if [ "$secure" = 1 ]; then write_secure_props; else write_props; fi
  [ -f "$data/meta.properties" ] || format_storage
  # The start-up wait looks for this start's "started" line; the previous run's log stays beside it.
  [ ! -f "$logs/server.log" ] || mv -f "$logs/server.log" "$logs/server-previous.log"
  nohup java -Xms256m -Xmx"$heap" -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/log4j2.yaml" -Dkafka.logs.dir="$logs" \
    -cp "$lib/*" kafka.Kafka "$props" >"$logs/stdout.log" 2>&1 &
  echo $! > "$pidfile"
}

wait_node_started() {
  local pid; pid="$(cat "$pidfile")"
  for _ in $(seq 1 120); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -30 "$logs/stdout.log" >&2 || true
      die "the broker exited during start-up (logs: $logs)."
    fi
    if accepts_clients && grep -q "Kafka Server started" "$logs/server.log" 2>/dev/null; then
      echo "kafka.sh: broker up (pid $pid) on 127.0.0.1:$port, Kafka $(kafka_version)"
      return 0
    fi
    sleep 0.5
  done
  die "the broker did not accept clients within 60 s (logs: $logs)."
}

up() {
  need_tools
  fetch_jars
  local started=()
  for n in $(all_nodes); do
    select_node "$n"
    running_pid >/dev/null || started+=("$n")
    start_node
  done
  for n in "${started[@]}"; do
    select_node "$n"
    wait_node_started
  done
}

stop_node() {
  local pid
  if ! pid="$(running_pid)"; then
    echo "kafka.sh: no broker running on port $port"
    rm -f "$pidfile"
    return 0
  fi
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "kafka.sh: broker stopped (pid $pid)"; return 0; }
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "kafka.sh: broker killed after 30 s (pid $pid)"
}

down() {
  # All nodes at once: one by one, the last would wait 30 s for a controller quorum that is gone.
  for n in $(all_nodes); do
    select_node "$n"
    stop_node &
  done
  wait
}

kafka_version() {
  ls "$lib" | sed -n 's/^kafka-clients-\(.*\)\.jar$/\1/p'
}

node_status() {
  local pid
  if pid="$(running_pid)"; then
    if accepts_clients; then
      echo "kafka.sh: running (pid $pid) on 127.0.0.1:$port, Kafka $(kafka_version)"
      return 0
    fi
    echo "kafka.sh: process $pid alive but port $port not accepting clients"
    return 1
  fi
  echo "kafka.sh: not running on port $port"
  return 3
}

status() {
  local rc=0 node_rc
  for n in $(all_nodes); do
    select_node "$n"
    node_rc=0; node_status || node_rc=$?
    [ "$rc" != 0 ] || rc="$node_rc"  # the first node that is not running decides the exit code
  done
  return "$rc"
}

bootstrap() {
  local servers=""
  for n in $(all_nodes); do
    select_node "$n"
    servers="$servers${servers:+,}127.0.0.1:$port"
  done
  echo "$servers"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  bootstrap) bootstrap ;;
  credentials) credentials_cmd "${2:-}" ;;
  client-env) party="${2:-}"; [ "${party#--}" = "$party" ] || party=""; client_env "$party" ;;
  *) echo "usage: $0 up|down|status|bootstrap [--plaintext] [--brokers N] | credentials CONFIG_DIR | client-env [PARTY]" >&2; exit 2 ;;
esac
