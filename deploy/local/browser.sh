#!/usr/bin/env bash
# Headless Chromium for the status-page test: installs Debian's chromium, chromium-driver and a CJK font
# (fonts-noto-cjk: without one every Chinese label renders as boxes) when any is missing, then prints
# the paths.
#
#   deploy/local/browser.sh          install if needed, print "chromium=<path>" and "chromedriver=<path>"
#   deploy/local/browser.sh status   exit 0 when both are installed, 1 otherwise (installs nothing)
set -euo pipefail

# shellcheck source=apt.sh
source "$(dirname "$0")/apt.sh"

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
CJK_FONT=/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

installed() {
  [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" && -f "$CJK_FONT" ]]
}

print_paths() {
  echo "chromium=$CHROMIUM ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
  echo "chromedriver=$CHROMEDRIVER ($("$CHROMEDRIVER" --version 2>/dev/null || echo 'version unknown'))"
  echo "cjk_font=$CJK_FONT"
}

case "${1:-install}" in
  status)
    if installed; then print_paths; exit 0; fi
    echo "chromium, chromedriver or the CJK font missing (run deploy/local/browser.sh)" >&2
    exit 1
    ;;
  install) ;;
  *)
    echo "usage: $0 [install|status]" >&2
    exit 2
    ;;
esac

if ! installed; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get not found: install chromium and chromium-driver with your package manager" >&2
    exit 1
  fi
  apt_root "installing chromium (apt-get install chromium chromium-driver fonts-noto-cjk)"
  echo "installing chromium, chromium-driver and fonts-noto-cjk (Debian packages)" >&2
  apt_update
  "${APT_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-noto-cjk >/dev/null
  if ! installed; then
    echo "error: apt-get finished but $CHROMIUM, $CHROMEDRIVER or $CJK_FONT is still missing" >&2
    exit 1
  fi
fi
print_paths
