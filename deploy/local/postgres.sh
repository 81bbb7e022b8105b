#!/usr/bin/env bash
# A real PostgreSQL server on 127.0.0.1 for tests and the demo, from Debian's packages.
#
#   deploy/local/postgres.sh up|down|status|dsn
#
# Installs the Debian package `postgresql` when no server binaries are found (needs root, as on CI).
# Environment: XHUB_PG_PORT (default 55432), XHUB_PG_HOME (default deploy/local/.postgres, git-ignored).
# A second server for fault tests (restarted by the test itself): XHUB_PG_PORT=55433 XHUB_PG_HOME=/tmp/pg2.
# XHUB_PG_OPTIONS: more server options, after ours (e.g. "-c wal_level=replica" to test install's checks).
#
# wal_level=logical with replication slots and WAL senders: the pg_logical source reads the WAL through
# a replication slot (connectors/sources/pg_logical.py). max_slot_wal_keep_size bounds the WAL a
# forgotten slot may hold back (the slot is invalidated instead of filling the disk).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${XHUB_PG_PORT:-55432}"
home="${XHUB_PG_HOME:-$here/.postgres}"
data="$home/data-$port"
logfile="$home/postgres-$port.log"

die() { echo "postgres.sh: $*" >&2; exit 1; }

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

install_server() {
  [ "$(id -u)" = 0 ] || die "PostgreSQL server binaries are missing and we are not root: apt-get install postgresql"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL server binaries are missing and apt-get is not available."
  echo "postgres.sh: installing PostgreSQL from Debian packages" >&2
  apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
    || die "apt-get install postgresql failed."
}

# initdb refuses to run as root: run the server as the `postgres` system user when we are root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

up() {
  local bin
  bin="$(bindir)" || { install_server; bin="$(bindir)" || die "no PostgreSQL server after install."; }
  mkdir -p "$home"
  [ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres; chown postgres "$home"; }
  if [ ! -f "$data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$data" -U xhub --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null \
      || die "initdb failed for $data"
  fi
  if as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    echo "postgres.sh: already running on 127.0.0.1:$port"
    return 0
  fi
  as_owner "$bin/pg_ctl" -D "$data" -l "$logfile" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k /tmp -c fsync=off -c max_connections=200 \
       -c wal_level=logical -c max_replication_slots=40 -c max_wal_senders=40 \
       -c max_slot_wal_keep_size=4GB ${XHUB_PG_OPTIONS:-}" start >/dev/null \
    || { tail -20 "$logfile" >&2; die "PostgreSQL did not start (log: $logfile)"; }
  echo "postgres.sh: up on 127.0.0.1:$port ($("$bin/postgres" --version))"
}

down() {
  local bin; bin="$(bindir)" || { echo "postgres.sh: not installed"; return 0; }
  if [ -f "$data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    echo "postgres.sh: stopped"
  else
    echo "postgres.sh: not running"
  fi
}

status() {
  local bin; bin="$(bindir)" || { echo "postgres.sh: not installed"; return 3; }
  if [ -f "$data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    echo "postgres.sh: running on 127.0.0.1:$port"
  else
    echo "postgres.sh: not running"; return 3
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  dsn) echo "postgresql://xhub@127.0.0.1:$port/postgres" ;;
  *) echo "usage: $0 up|down|status|dsn" >&2; exit 2 ;;
esac
