#!/usr/bin/env bash
# Configures and builds nfsup into ./build (installs build dependencies first).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
if [ ! -f build/build.ninja ]; then
  meson setup build >/dev/null
fi
ninja -C build >/dev/null
echo "nfsup: built build/src/nfsup-install, nfsup-watchdog, nfsup-reconfig" >&2
