#!/usr/bin/env bash
# Builds the Debian package: build/deb/nfsup_<version>_<arch>.deb.
#
# dpkg-buildpackage wants ./debian at the top of the source tree, while the packaging lives in
# packaging/debian. So this copies the tree (the files git knows, plus new files that are not
# ignored, i.e. no build directories) to a temp dir, copies packaging/debian to debian there,
# and builds the binary package there. The working tree is never touched.
# As root it installs what the build needs with apt-get; as a normal user it prints the
# apt-get line and stops. Extra arguments go to dpkg-buildpackage. DEB_BUILD_OPTIONS is
# passed on (e.g. DEB_BUILD_OPTIONS=nocheck skips the unit tests).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)

scripts/deps.sh build
need=()
for p in debhelper dpkg-dev fakeroot; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "nfsup: missing Debian packages: ${need[*]}" >&2
    echo "nfsup: install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "nfsup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${need[@]}" >/tmp/nfsup-apt.log 2>&1 || {
    apt-get update -qq >>/tmp/nfsup-apt.log 2>&1 || true
    apt-get install -y -qq "${need[@]}" >>/tmp/nfsup-apt.log 2>&1 || {
      echo "nfsup: apt-get install failed; see /tmp/nfsup-apt.log" >&2; tail -5 /tmp/nfsup-apt.log >&2; exit 1; }
  }
fi

version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
upstream=${version%-*}
work=$(mktemp -d /tmp/nfsup-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
tree="$work/nfsup-$upstream"
mkdir -p "$tree"

# The tree as git sees it: tracked files that still exist, and new files that are not ignored.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar -c --null -T - -f - | tar -x -C "$tree"
else
  # A source tarball without .git: everything except build directories.
  tar -c --exclude='./build' --exclude='./build-*' --exclude='./debian' -f - . | tar -x -C "$tree"
fi
rm -rf "$tree/debian"
cp -a packaging/debian "$tree/debian"
chmod +x "$tree/debian/rules"

echo "nfsup: building the Debian package $version in $tree" >&2
log="$SRC/build/deb/build.log"
mkdir -p "$SRC/build/deb"
jobs=$(nproc 2>/dev/null || echo 2)
export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$jobs"
if ! (cd "$tree" && dpkg-buildpackage -us -uc -b "$@") >"$log" 2>&1; then
  echo "nfsup: dpkg-buildpackage failed; the last lines of $log:" >&2
  tail -25 "$log" >&2
  exit 1
fi

rm -f "$SRC"/build/deb/*.deb "$SRC"/build/deb/*.ddeb "$SRC"/build/deb/*.changes "$SRC"/build/deb/*.buildinfo
mv "$work"/*.deb "$SRC/build/deb/"
for f in "$work"/*.ddeb "$work"/*.changes "$work"/*.buildinfo; do [ -e "$f" ] && mv "$f" "$SRC/build/deb/"; done
deb=$(ls "$SRC"/build/deb/nfsup_"$version"_*.deb)
echo "nfsup: built ${deb#"$SRC"/}" >&2
echo "$deb"
