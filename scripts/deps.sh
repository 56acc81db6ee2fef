#!/usr/bin/env bash
# Installs (as root, with apt-get) or names (otherwise) the Debian packages nfsup needs.
# Usage: scripts/deps.sh build|test|harness|nfs|demo ...
set -euo pipefail
declare -a want=()
for what in "$@"; do
  case "$what" in
    build) want+=(g++ meson ninja-build pkg-config libyaml-cpp-dev libcli11-dev libfmt-dev doctest-dev libssl-dev) ;;
    test) want+=(util-linux diffutils procps strace python3 python3-jsonschema) ;;
    harness) want+=(openssh-server openssh-client sshfs fuse3 iproute2 util-linux procps psmisc) ;;
    demo) want+=(diffutils procps) ;;
    nfs) want+=(user-mode-linux nfs-ganesha nfs-ganesha-vfs nfs-common rpcbind kmod iproute2 util-linux procps) ;;
    browser) want+=(chromium) ;;
    *) echo "deps.sh: unknown group '$what'" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "nfsup: missing Debian packages: ${missing[*]}" >&2
  echo "nfsup: install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "nfsup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq "${missing[@]}" >/tmp/nfsup-apt.log 2>&1; then
  apt-get update -qq >>/tmp/nfsup-apt.log 2>&1 || true
  apt-get install -y -qq "${missing[@]}" >>/tmp/nfsup-apt.log 2>&1 || {
    echo "nfsup: apt-get install failed; see /tmp/nfsup-apt.log" >&2; tail -5 /tmp/nfsup-apt.log >&2; exit 1; }
fi
