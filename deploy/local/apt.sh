# Sourced by the scripts that fetch Debian packages (browser.sh, promtool.sh): apt-get needs root.
#
#   apt_root "what needs it"   sets APT_ROOT to () when we are root, (sudo) when sudo is there;
#                              otherwise prints "error: <what needs it> needs root (or sudo)" and exits 1
#   apt_update                 apt-get update, quiet and non-interactive, as APT_ROOT

apt_root() {
  APT_ROOT=()
  [[ $(id -u) -eq 0 ]] && return 0
  if command -v sudo >/dev/null 2>&1; then
    APT_ROOT=(sudo)
    return 0
  fi
  echo "error: $1 needs root (or sudo)" >&2
  exit 1
}

apt_update() {
  "${APT_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
}
