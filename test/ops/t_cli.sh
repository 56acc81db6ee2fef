#!/usr/bin/env bash
# What a sysadmin meets first on the command line: --version on every binary, an unknown
# command named, and flags that make no sense refused with one line and exit 2 before anything
# is written. Black-box, with the built binaries and local-directory shares.
source "$(dirname "$0")/lib.sh"

# expect_usage DESC NEEDLE CMD...: CMD exits 2 with one line on stderr that contains NEEDLE.
expect_usage() {
  local desc=$1 needle=$2 out rc=0; shift 2
  out=$("$@" 2>&1 >/dev/null) || rc=$?
  assert_eq "$rc" 2 "$desc: exit status" || return 1
  assert_contains "$out" "$needle" "$desc" || return 1
  assert_eq "$(wc -l <<<"$out")" 1 "$desc: lines on stderr ($out)"
}

check_version_flag_on_every_binary() {
  local b out want
  want=$(sed -nE "s/^ *version: '([^']+)'.*/\1/p" "$NFSUP_SRC/meson.build")
  [ -n "$want" ] || fail "no version in meson.build"
  for b in "$INSTALL" "$WATCHDOG" "$RECONFIG"; do
    out=$("$b" --version 2>&1) || fail "$(basename "$b") --version failed: $out"
    assert_eq "$out" "$(basename "$b") $want" "$(basename "$b") --version"
  done
}

check_push_version_still_names_the_release() {
  # --version after `push` is the release's version, not the program's.
  new_share "$TMP/s"
  make_release "$TMP/r" 1.0
  "$INSTALL" push "$TMP/s" "$TMP/r" --version 1.0 --no-wait --allow-empty -q || fail "push --version 1.0 failed"
  assert_eq "$(ls "$TMP/s/releases")" "1.0"
}

check_unknown_command_is_named() {
  expect_usage "nfsup-install pus" "unknown command 'pus'" "$INSTALL" pus /tmp/x
  expect_usage "nfsup-install -q pus" "unknown command 'pus'" "$INSTALL" -q pus
  expect_usage "nfsup-watchdog chek" "unknown command 'chek'" "$WATCHDOG" chek
  local out
  out=$("$INSTALL" pus 2>&1) || true
  assert_contains "$out" "push" "the list of commands"
}

# share_listing DIR: every path and file content on a share, to show nothing was written.
share_listing() { (cd "$1" && find . | LC_ALL=C sort && find . -type f -exec cat {} + 2>/dev/null); }

check_duplicate_key_in_watchdog_yaml_is_refused() {
  mkdir -p "$TMP/dup"
  cat >"$TMP/dup/w.yaml" <<EOC
share: $TMP/dup/share
state_dir: $TMP/dup/state
poll_interval: 2s
agent:
  command: [bin/agent]
poll_interval: 100ms
EOC
  expect_usage "duplicate top-level key" "$TMP/dup/w.yaml:6:1: duplicate key 'poll_interval' (first at line 3)" \
    "$WATCHDOG" validate -c "$TMP/dup/w.yaml"
  sed -i '$d' "$TMP/dup/w.yaml"
  printf '  stop_timeout: 5s\n  stop_timeout: 9s\n' >>"$TMP/dup/w.yaml"
  expect_usage "duplicate key under agent" "$TMP/dup/w.yaml:7:3: duplicate key 'stop_timeout'" \
    "$WATCHDOG" validate -c "$TMP/dup/w.yaml"
}

check_unknown_key_in_modules_spec_is_refused() {
  new_share "$TMP/ms"
  make_release "$TMP/mr" 1.0
  cat >"$TMP/mods.yaml" <<EOC
modules:
  core:
    paths: [bin, VERSION]
    provdes: {core-api: 1}
EOC
  local before; before=$(share_listing "$TMP/ms")
  expect_usage "misspelt key" "$TMP/mods.yaml:4:5: unknown key 'provdes' in module core" \
    "$INSTALL" push "$TMP/ms" "$TMP/mr" --version 1.0 --modules "$TMP/mods.yaml" --no-wait
  printf 'modules:\n  core:\n    paths: [bin, VERSION]\nclases: {}\n' >"$TMP/mods.yaml"
  expect_usage "misspelt top-level key" "$TMP/mods.yaml:4:1: unknown key 'clases'" \
    "$INSTALL" push "$TMP/ms" "$TMP/mr" --version 1.0 --modules "$TMP/mods.yaml" --no-wait
  assert_eq "$(share_listing "$TMP/ms")" "$before" "the share after refused pushes"
}

check_expires_needs_a_unit_and_is_shown() {
  new_share "$TMP/es"
  make_release "$TMP/er" 1.0
  expect_usage "--expires 90" "--expires '90': give a duration with a unit" \
    "$INSTALL" push "$TMP/es" "$TMP/er" --version 1.0 --expires 90 --no-wait
  [ ! -e "$TMP/es/releases/1.0" ] || fail "a refused push staged the release"
  local out want
  want=$(date -u -d '+90 days' +%Y-%m-%d)
  out=$("$INSTALL" push "$TMP/es" "$TMP/er" --version 1.0 --expires 90d --no-wait 2>&1) || fail "push --expires 90d: $out"
  assert_contains "$out" "release 1.0 expires at $want"
  assert_contains "$("$INSTALL" releases "$TMP/es")" "1.0  expires $want"
  assert_contains "$("$INSTALL" releases "$TMP/es" --json)" "{\"version\":\"1.0\",\"expires\":\"$want"
}

check_reconfig_must_be_an_executable_program() {
  new_share "$TMP/rs"
  make_release "$TMP/rr" 1.0
  local before; before=$(share_listing "$TMP/rs")
  printf 'level: two\n' >"$TMP/notes.txt"; chmod +x "$TMP/notes.txt"
  expect_usage "text file" "--reconfig $TMP/notes.txt: neither a script with a #! line nor an ELF program" \
    "$INSTALL" push "$TMP/rs" "$TMP/rr" --version 1.0 --reconfig "$TMP/notes.txt" --no-wait
  printf '#!/bin/sh\nexit 0\n' >"$TMP/rc.sh"; chmod -x "$TMP/rc.sh"
  expect_usage "not executable" "--reconfig $TMP/rc.sh: not executable" \
    "$INSTALL" push "$TMP/rs" "$TMP/rr" --version 1.0 --reconfig "$TMP/rc.sh" --no-wait
  assert_eq "$(share_listing "$TMP/rs")" "$before" "the share after refused pushes"
  chmod +x "$TMP/rc.sh"
  "$INSTALL" push "$TMP/rs" "$TMP/rr" --version 1.0 --reconfig "$TMP/rc.sh" --no-wait -q || fail "a #! script was refused"
  cp /bin/true "$TMP/rr-true"
  "$INSTALL" push "$TMP/rs" "$TMP/rr" --version 1.1 --reconfig "$TMP/rr-true" --no-wait -q || fail "an ELF program was refused"
}

check_senseless_flags_are_refused_before_anything_is_written() {
  new_share "$TMP/fs"
  make_release "$TMP/fr" 1.0
  local before; before=$(share_listing "$TMP/fs")
  expect_usage "--batch 150%" "--batch '150%': must be between 1% and 100%" \
    "$INSTALL" push "$TMP/fs" "$TMP/fr" --version 1.0 --strategy rolling --batch 150%
  expect_usage "--batch x" "--batch 'x'" "$INSTALL" push "$TMP/fs" "$TMP/fr" --version 1.0 --strategy rolling --batch x
  expect_usage "--timeout 0" "--timeout '0': must be more than 0" "$INSTALL" push "$TMP/fs" "$TMP/fr" --version 1.0 --timeout 0
  expect_usage "--stale-after 0" "--stale-after '0': must be more than 0" "$INSTALL" status "$TMP/fs" --stale-after 0
  expect_usage "--interval 0" "--interval '0': at least 100ms" "$INSTALL" status "$TMP/fs" --watch --interval 0
  expect_usage "rolling flags on all-at-once" "--batch, --hold-acting: only for --strategy rolling" \
    "$INSTALL" push "$TMP/fs" "$TMP/fr" --version 1.0 --batch 2 --hold-acting
  expect_usage "--max-unavailable on all-at-once" "--max-unavailable: only for --strategy rolling" \
    "$INSTALL" push "$TMP/fs" "$TMP/fr" --version 1.0 --max-unavailable 2 --dry-run
  assert_eq "$(share_listing "$TMP/fs")" "$before" "the share after refused commands"
}

check_init_refuses_local_disk_without_local() {
  local out rc=0
  mkdir -p "$TMP/ls"
  out=$("$INSTALL" init "$TMP/ls/share" 2>&1) || rc=$?
  assert_eq "$rc" 2 "init on local disk"
  assert_contains "$out" "init $TMP/ls/share: on "
  assert_contains "$out" "not a network file system"
  assert_contains "$out" "--local"
  [ ! -e "$TMP/ls/share" ] || fail "a refused init created $TMP/ls/share"
  "$INSTALL" init --local "$TMP/ls/share" -q || fail "init --local failed"
  [ -f "$TMP/ls/share/nfsup-share" ] || fail "init --local made no share"
}

check_docs_do_not_say_rolling_pushes_skip_the_vote() {
  # A rolling push holds a vote round (src/master/rolling.cpp, rolling); the docs once said it did not.
  grep -q "Hosts that vote with local checks answer for the whole rollout" "$NFSUP_SRC/src/master/rolling.cpp" \
    || skip "the rolling vote round moved out of src/master/rolling.cpp; re-check this claim"
  local hits
  hits=$(grep -rniE "rolling push(es)? (do(es)? not|never) vote|rolling pushes do not vote|rolling push has no vote" \
    "$NFSUP_SRC/doc" "$NFSUP_SRC/etc" "$NFSUP_SRC/README.md" || true)
  [ -z "$hits" ] || fail "docs say rolling pushes do not vote: $hits"
}

check_license_and_package_docs() {
  # MIT, as meson.build and the packages say, with the holder the packages name.
  [ -f "$NFSUP_SRC/LICENSE" ] || fail "no LICENSE at the top of the tree"
  grep -q "^MIT License" "$NFSUP_SRC/LICENSE" || fail "LICENSE is not the MIT licence"
  grep -qE "^Copyright \(c\) [0-9]{4} nfsup developers" "$NFSUP_SRC/LICENSE" || fail "LICENSE names no holder"
  grep -q "license: 'MIT'" "$NFSUP_SRC/meson.build" || fail "meson.build does not say MIT"
  # lintian's copyright-without-copyright-notice: a Copyright field with a year.
  grep -qE "^Copyright: [0-9]{4} nfsup developers" "$NFSUP_SRC/packaging/debian/copyright" \
    || fail "packaging/debian/copyright has no copyright notice with a year"
  grep -qx "README.md" "$NFSUP_SRC/packaging/debian/nfsup.docs" 2>/dev/null || fail "the .deb does not ship README.md"
  grep -q "^%license LICENSE" "$NFSUP_SRC/packaging/rpm/nfsup.spec" || fail "the rpm does not ship LICENSE"
}

check_readme_has_install_and_first_fleet_near_the_top() {
  local r="$NFSUP_SRC/README.md" n
  for h in "## Install" "## First fleet"; do
    n=$(grep -nx -- "$h" "$r" | head -1 | cut -d: -f1)
    [ -n "$n" ] || fail "README.md has no '$h' section"
    [ "$n" -lt 80 ] || fail "README.md's '$h' starts at line $n: not near the top"
  done
  grep -q "systemctl enable --now nfsup-watchdog.service" "$r" || fail "README does not say which unit to enable"
  grep -q "/etc/cron.d/" "$r" || fail "README does not show the cron.d route"
  grep -q "/etc/nfsup/watchdog.yaml" "$r" || fail "README does not say where the config goes"
  # The benchmark history lives in doc/benchmarks.md; README keeps the current table.
  [ -f "$NFSUP_SRC/doc/benchmarks.md" ] || fail "no doc/benchmarks.md"
  ! grep -q "What changed the figures since the first benchmark (" "$r" || fail "README still carries the benchmark history"
}

check_status_json_host_keys_are_documented() {
  # Every key that `status --json` prints for a host appears in nfsup-install(1)'s example
  # (runs_from and watchdog_version were missing, and the page said status does not show
  # runs_from).
  local d="$TMP/sj" keys k
  mkdir -p "$d/state"
  new_share "$d/share"
  printf 'share: %s\nhost: h1\nstate_dir: %s\nagent:\n  command: [bin/agent]\n' "$d/share" "$d/state" >"$d/w.yaml"
  "$WATCHDOG" check -q -c "$d/w.yaml" || true
  keys=$("$INSTALL" status "$d/share" --json | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["hosts"][0].keys()))')
  [ -n "$keys" ] || fail "no host keys from status --json"
  for k in $keys; do
    grep -q "\"$k\":" "$NFSUP_SRC/doc/nfsup-install.1" || fail "nfsup-install(1) does not show the host key '$k' of status --json"
  done
  ! grep -q "^does not show\.\?$" "$NFSUP_SRC/doc/nfsup-install.1" || fail "nfsup-install(1) still says status does not show runs_from"
}

run_checks
