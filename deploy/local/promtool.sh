#!/usr/bin/env bash
# promtool for the alerting-rule tests (tests/unit/test_monitoring.py): checks and unit-tests
# deploy/monitoring/xhub-alerts.rules.yaml. Uses the promtool on PATH when there is one; otherwise takes the
# binary out of Debian's prometheus package into deploy/local/.promtool/ (installing the package itself
# would also enable and start a Prometheus server on :9090 wherever systemd runs).
#
#   deploy/local/promtool.sh          install if needed, print "promtool=<path> (<version>)"
#   deploy/local/promtool.sh status   exit 0 when promtool is there, 1 otherwise (installs nothing)
#   deploy/local/promtool.sh path     print the path only (exit 1 when missing)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
LOCAL="$HERE/.promtool/promtool"
# shellcheck source=apt.sh
source "$HERE/apt.sh"

find_promtool() {
  if command -v promtool >/dev/null 2>&1; then
    command -v promtool
  elif [[ -x "$LOCAL" ]]; then
    echo "$LOCAL"
  else
    return 1
  fi
}

print_path() {
  local path
  path="$(find_promtool)"
  echo "promtool=$path ($("$path" --version 2>&1 | head -1))"
}

case "${1:-install}" in
  status)
    if find_promtool >/dev/null; then print_path; exit 0; fi
    echo "promtool missing (run deploy/local/promtool.sh)" >&2
    exit 1
    ;;
  path)
    find_promtool
    exit $?
    ;;
  install) ;;
  *)
    echo "usage: $0 [install|status|path]" >&2
    exit 2
    ;;
esac

if ! find_promtool >/dev/null; then
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "error: promtool not found and no apt-get/dpkg-deb: install Prometheus' promtool and put it on PATH" >&2
    exit 1
  fi
  apt_root "fetching Debian's prometheus package (apt-get update)"
  echo "fetching promtool from Debian's prometheus package" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  apt_update
  (cd "$work" && "${APT_ROOT[@]}" apt-get download -qq prometheus >/dev/null)
  dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
  mkdir -p "$(dirname "$LOCAL")"
  install -m 0755 "$work/root/usr/bin/promtool" "$LOCAL"
  if ! find_promtool >/dev/null; then
    echo "error: the prometheus package was fetched but $LOCAL is still missing" >&2
    exit 1
  fi
fi
print_path
