#!/usr/bin/env bash
# Debezium's PostgreSQL connector 3.6.1 in Kafka Connect standalone, from Maven Central jars (the anchor
# of tests/bench/pg_capture.py).
#
#   deploy/local/debezium.sh fetch                                  fetch the jars (cached)
#   deploy/local/debezium.sh run WORKER.properties CONNECTOR.properties LOGFILE   run in the foreground
#
# Environment: XHUB_DEBEZIUM_HOME (default deploy/local/.debezium: jars; git-ignored),
#              XHUB_DEBEZIUM_HEAP (default 512m).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="${XHUB_DEBEZIUM_HOME:-$here/.debezium}"
lib="$home/lib"
pom="$here/debezium/pom.xml"

die() { echo "debezium.sh: $*" >&2; exit 1; }

fetch() {
  command -v java >/dev/null 2>&1 || die "Java is missing: install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)."
  command -v mvn >/dev/null 2>&1 || die "Maven is missing: install it (Debian: apt-get install maven)."
  if [ -f "$lib/.pom.sha" ] && [ "$(sha256sum "$pom" | cut -d' ' -f1)" = "$(cat "$lib/.pom.sha")" ]; then
    return 0
  fi
  echo "debezium.sh: fetching Kafka Connect and Debezium jars from Maven Central into $lib" >&2
  rm -rf "$lib"; mkdir -p "$lib"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib" \
    || die "Maven could not fetch the Debezium jars (see the output above)."
  sha256sum "$pom" | cut -d' ' -f1 > "$lib/.pom.sha"
}

run() {
  [ $# -eq 3 ] || die "usage: $0 run WORKER.properties CONNECTOR.properties LOGFILE"
  fetch
  exec java -Xms128m -Xmx"${XHUB_DEBEZIUM_HEAP:-512m}" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/debezium/log4j2.yaml" -Dxhub.debezium.log="$3" \
    -cp "$lib/*" org.apache.kafka.connect.cli.ConnectStandalone "$1" "$2"
}

case "${1:-}" in
  fetch) fetch ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 fetch | run WORKER.properties CONNECTOR.properties LOGFILE" >&2; exit 2 ;;
esac
