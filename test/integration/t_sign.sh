#!/usr/bin/env bash
# Signed releases: hosts with trusted_keys refuse unsigned, wrongly signed, revoked, expired,
# tampered and rolled-back releases, and replayed pointers, and keep running what they run.
source "$(dirname "$0")/lib.sh"

signed_hosts() {  # signed_hosts KEYFILES... : three hosts trusting those keys, running signed 1.0
  "$INSTALL" keygen --out "$T/keys" --name fleet -q
  "$INSTALL" keygen --out "$T/keys" --name other -q
  "$INSTALL" keygen --out "$T/keys" --name next -q
  for h in s1 s2 s3; do
    add_host $h
    printf 'trusted_keys: [%s/keys/fleet.pub, %s/keys/next.pub]\n' "$T" "$T" >> "$T/hosts/$h/watchdog.yaml"
  done
  start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "signed 1.0 not running everywhere"
}

expect_refused() {  # expect_refused VERSION TEXT [push args...]
  local v=$1 text=$2; shift 2
  set +e; out=$("$INSTALL" push "$SHARE" "$(make_release "$v")" --version "$v" "${MASTER_OPTS[@]}" "$@" 2>&1); rc=$?; set -e
  assert_eq "$rc" 1 "push of $v should fail on every host"
  for h in s1 s2 s3; do
    assert_contains "$out" "$h: failed: "
    assert_eq "$(agent_alive_version $h)" 1.0 "$h keeps running 1.0"
  done
  assert_contains "$out" "$text"
}

test_keygen_modes_and_refusals() {
  begin
  "$INSTALL" keygen --out "$T/k" --name a -q
  assert_eq "$(stat -c %a "$T/k/a.key")" 600 "secret key mode"
  set +e; out=$("$INSTALL" keygen --out "$T/k" --name a 2>&1); rc=$?; set -e
  assert_eq "$rc" 2; assert_contains "$out" "a.key: already exists; not overwriting a key"
  chmod 640 "$T/k/a.key"
  set +e; out=$("$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 --sign-key "$T/k/a.key" 2>&1); rc=$?; set -e
  assert_eq "$rc" 2; assert_contains "$out" "a.key: secret key is readable by group or others (mode 0640); chmod 600 it"
  [ ! -e "$SHARE/releases/1.0" ] || fail "a release was staged with a refused key"
  printf 'share: %s\ntrusted_keys: [%s/k/a.key]\nagent: {command: [bin/a]}\n' "$SHARE" "$T" > "$T/c.yaml"
  set +e; out=$("$WATCHDOG" validate -c "$T/c.yaml" 2>&1); rc=$?; set -e
  assert_eq "$rc" 2; assert_contains "$out" "trusted_keys: $T/k/a.key: not an Ed25519 public key in PEM"
  printf 'share: %s\nallow_unsigned: false\nagent: {command: [bin/a]}\n' "$SHARE" > "$T/c2.yaml"
  set +e; out=$("$WATCHDOG" validate -c "$T/c2.yaml" 2>&1); rc=$?; set -e
  assert_eq "$rc" 2; assert_contains "$out" "allow_unsigned: false needs at least one key"
}

expect_master_refused() {  # expect_master_refused VERSION TEXT [push args...]: refused before anything is written
  local v=$1 text=$2; shift 2
  local before; before=$(cat "$SHARE/current")
  set +e; out=$("$INSTALL" push "$SHARE" "$(make_release "$v")" --version "$v" "${MASTER_OPTS[@]}" "$@" 2>&1); rc=$?; set -e
  assert_eq "$rc" 2 "push of $v refused by the master"
  assert_contains "$out" "$text"
  [ ! -e "$SHARE/releases/$v" ] || fail "$v was staged"
  [ ! -e "$SHARE/MARKER" ] || fail "a marker was left"
  assert_eq "$(cat "$SHARE/current")" "$before" "the pointer"
  for h in s1 s2 s3; do assert_eq "$(agent_alive_version $h)" 1.0 "$h keeps running 1.0"; done
}

# 2.0 pushed and rolled back (both signed); then `rollback --to 2.0` after its manifest.sig was
# changed by the caller's command: every host refuses it and keeps 1.0.
expect_hosts_refuse_2_0() {  # expect_hosts_refuse_2_0 TEXT COMMAND...
  local text=$1; shift
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" -q
  "$INSTALL" rollback "$SHARE" --to 1.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "1.0 not back everywhere"
  chmod u+w "$SHARE/releases/2.0/.nfsup"
  "$@"
  set +e; out=$("$INSTALL" rollback "$SHARE" --to 2.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 1 "switch to 2.0 should fail on every host"
  for h in s1 s2 s3; do
    assert_contains "$out" "$h: failed: "
    assert_eq "$(agent_alive_version $h)" 1.0 "$h keeps running 1.0"
  done
  assert_contains "$out" "$text"
}

# sign_as KEYNAME FILE: a signature file over FILE by $T/keys/KEYNAME.key (as the master writes one).
sign_as() {
  local id sig
  id=$(openssl pkey -pubin -in "$T/keys/$1.pub" -outform DER | tail -c 32 | sha256sum | cut -c1-16)
  sig=$(openssl pkeyutl -sign -rawin -inkey "$T/keys/$1.key" -in "$2" | od -An -v -tx1 | tr -d ' \n')
  printf 'nfsup-signature 1\nalg ed25519\nsig %s %s\n' "$id" "$sig"
}

# A keyless master is refused by a signed fleet before staging (its marker would be ignored);
# the hosts refuse an unsigned release on their own too (here: 2.0's signature removed).
test_unsigned_release_refused_by_every_host() {
  begin; signed_hosts
  expect_master_refused 2.0 "host(s) s1, s2, s3 run in signed mode (trusted_keys) and ignore an unsigned marker"
  expect_hosts_refuse_2_0 "release 2.0 is not signed" rm -f "$SHARE/releases/2.0/.nfsup/manifest.sig"
}

test_wrongly_signed_release_refused() {
  begin; signed_hosts
  id=$(openssl pkey -pubin -in "$T/keys/other.pub" -outform DER | tail -c 32 | sha256sum | cut -c1-16)
  expect_master_refused 2.0 "host(s) s1, s2, s3 do not trust key $id" --sign-key "$T/keys/other.key"
  resign() { sign_as other "$SHARE/releases/2.0/.nfsup/manifest" > "$T/sig"; mv -f "$T/sig" "$SHARE/releases/2.0/.nfsup/manifest.sig"; }
  expect_hosts_refuse_2_0 "no valid signature by a trusted key (signed by $id (not trusted))" resign
}

test_rotated_key_accepted_and_revoked_key_refused() {
  begin; signed_hosts
  out=$("$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --sign-key "$T/keys/next.key" "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "3 host(s) ok, 0 failed"
  id=$(grep -o 'sig [0-9a-f]\{16\}' "$SHARE/releases/2.0/.nfsup/manifest.sig" | cut -d' ' -f2)
  for h in s1 s2 s3; do
    printf 'revoked_keys: [%s]\n' "$id" >> "$T/hosts/$h/watchdog.yaml"; stop_watchdog $h; start_watchdog $h
  done
  # Restarted watchdogs re-verify before starting: the revoked signer is no longer enough.
  wait_until 10 bash -c "grep -q '(revoked)' $T/hosts/s1/watchdog.log" || fail "revoked key still accepted"
}

test_tampered_signed_release_refused() {
  begin; signed_hosts
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" -q
  "$INSTALL" rollback "$SHARE" --to 1.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0
  # Re-sign nothing; just flip a byte in 2.0's agent and a byte of its manifest in turn.
  f="$SHARE/releases/2.0/bin/agent"; chmod u+w "$f"; printf 'Z' | dd of="$f" bs=1 seek=30 conv=notrunc status=none
  set +e; out=$("$INSTALL" rollback "$SHARE" --to 2.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 6 "master refuses a tampered release"
  out=$("$INSTALL" verify "$SHARE" 2>&1) && fail "verify passed a tampered release"
  assert_contains "$out" "releases/2.0/bin/agent: sha256"
  # Tampering the manifest itself (to match the flipped byte) breaks the signature instead.
  m="$SHARE/releases/2.0/.nfsup/manifest"; chmod u+w "$m" "$(dirname "$m")"
  newsha=$(sha256sum "$f" | cut -d' ' -f1)
  sed -i -E "s|^(file bin/agent [0-7]+ [0-9]+ )[0-9a-f]{64}|\1$newsha|" "$m"
  for h in s1 s2 s3; do stop_watchdog $h; done
  printf 'nfsup-current 1\ngeneration 99\nrelease 2.0\nprevious 1.0\naction push\nupdated -\nupdated_by -\n' > "$SHARE/current"
  for h in s1 s2 s3; do start_watchdog $h; done
  wait_until 10 bash -c "grep -q 'no valid signature by a trusted key' $T/hosts/s1/watchdog.log" || fail "forged manifest accepted"
  # (each host refuses on its own first tick after the restart: wait for each, not only s1)
  for h in s1 s2 s3; do
    wait_until 10 bash -c "grep -q 'no valid signature by a trusted key' $T/hosts/$h/watchdog.log" || fail "$h accepted the forged manifest"
    wait_until 5 alive_is "$h" 1.0 || true
    assert_eq "$(agent_alive_version $h)" 1.0 "$h runs the last good release"
  done
}

test_unsigned_rollback_refused_signed_rollback_accepted() {
  begin; signed_hosts
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" -q
  set +e; out=$("$INSTALL" rollback "$SHARE" --to 1.0 "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 2 "keyless rollback"
  assert_contains "$out" "ignore an unsigned marker: sign with --sign-key"
  # An unsigned rollback pointer written on the share: each host refuses to go back. (Its
  # generation is far ahead: a host marks itself failed at the generation it refuses.)
  cp "$SHARE/current" "$T/good"
  gen=$(awk '$1=="generation" {print $2}' "$T/good")
  sed -e "s/^generation .*/generation $((gen + 50))/" -e 's/^release .*/release 1.0/' -e 's/^previous .*/previous 2.0/' \
      -e 's/^action .*/action rollback/' -e '/^sig /d' "$T/good" > "$SHARE/current.tmp"
  mv "$SHARE/current.tmp" "$SHARE/current"
  for h in s1 s2 s3; do
    wait_until 10 bash -c "grep -q 'refusing to go back from 2.0 (newest accepted here) to 1.0' $T/hosts/$h/watchdog.log" ||
      fail "$h did not refuse the unsigned rollback"
    assert_eq "$(agent_alive_version $h)" 2.0
  done
  cp "$T/good" "$SHARE/current.tmp"; mv "$SHARE/current.tmp" "$SHARE/current"
  out=$("$INSTALL" rollback "$SHARE" --to 1.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "3 host(s) ok, 0 failed"
}

test_resume_of_a_signed_fleet_needs_the_key() {
  # resume writes the marker (and, by the failure policy, the pointer): in a signed fleet it is
  # refused without a trusted key, before it touches anything; with the key it finishes.
  begin; signed_hosts
  local rc out before
  master_killed_at switch-done push "$SHARE" "$(make_release 2.0)" --version 2.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}"
  before=$(share_snapshot)
  set +e; out=$("$INSTALL" resume "$SHARE" 2>&1); rc=$?; set -e
  assert_eq "$rc" 2 "keyless resume ($out)"
  assert_contains "$out" "sign with --sign-key"
  assert_eq "$(share_snapshot)" "$before" "share changed by a refused resume"
  out=$("$INSTALL" resume "$SHARE" --sign-key "$T/keys/fleet.key" --timeout 30s 2>&1) || fail "resume with the key: $out"
  wait_until 10 all_run 2.0 || fail "not on 2.0 after resume"
  [ ! -e "$SHARE/MARKER" ] || fail "marker left"
}

test_replayed_pointer_refused() {
  begin; signed_hosts
  cp "$SHARE/current" "$T/old-current"
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" -q
  cp "$T/old-current" "$SHARE/current.tmp" && mv "$SHARE/current.tmp" "$SHARE/current"
  wait_until 10 bash -c "grep -q 'refusing a replayed pointer' $T/hosts/s2/watchdog.log" || fail "replayed pointer not noticed"
  for h in s1 s2 s3; do assert_eq "$(agent_alive_version $h)" 2.0; done
}

test_expired_release_not_started() {
  begin; signed_hosts
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --expires 3s --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" -q
  sleep 4
  kill -KILL "$(awk '$1=="agent" {print $2}' "$T/hosts/s1/state/state")" || true
  wait_until 10 bash -c "grep -q 'expired at unix time' $T/hosts/s1/watchdog.log" || fail "expired release restarted"
}

test_status_warns_about_unsigned_hosts() {
  begin
  add_host u1; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  out=$("$INSTALL" status "$SHARE")
  assert_contains "$out" "WARNING: UNSIGNED MODE on 1 host(s) (u1)"
  assert_contains "$("$INSTALL" status "$SHARE" --json)" '"trust":"unsigned"'
}

# What runs is what was verified: a file replaced on the share after the hosts verified 2.0
# while stopped (the master died after the pointer swap; the lease lapses) never runs.
test_file_replaced_after_verify_is_not_run() {
  begin; signed_hosts
  master_killed_at switch-after-pointer push "$SHARE" "$(make_release 2.0)" --version 2.0 \
    --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}"
  for h in s1 s2 s3; do
    wait_until 10 grep -q "$h: 2.0 verified while stopped" "$T/hosts/$h/watchdog.log" || fail "$h did not prepare 2.0"
  done
  # (written beside the share and renamed in: an unlisted temp file would fail the switch instead)
  { printf '#!/bin/sh\ntouch %s/pwned.$NFSUP_HOST\n' "$T"; tail -n +2 "$FIXTURES/fake-agent"; } > "$T/evil"
  chmod 555 "$T/evil"; mv "$T/evil" "$SHARE/releases/2.0/bin/agent"
  for h in s1 s2 s3; do
    wait_until 15 alive_is $h 2.0 || fail "$h does not run 2.0: '$(agent_alive_version $h)'"
  done
  [ -z "$(ls "$T" | grep pwned)" ] || fail "replaced bytes ran on: $(ls "$T" | grep pwned | tr '\n' ' ')"
}

# Issue 17: a file replaced (bin/agent) or added (bin/healthcheck, which s1's health gate
# names) on the share after the hosts prepared 2.0 is never executed: hosts run the run
# tree they fetched into their store, and the added file is refused, not run.
test_file_replaced_or_added_after_preparation_never_runs() {
  begin; signed_hosts
  sed -i 's|^agent:$|agent:\n  health: {command: [bin/healthcheck], timeout: 3s}|' "$T/hosts/s1/watchdog.yaml"
  stop_watchdog s1; start_watchdog s1
  wait_until 10 host_runs s1 1.0 || fail "s1 not running after its restart"
  master_killed_at switch-after-pointer push "$SHARE" "$(make_release 2.0)" --version 2.0 \
    --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}"
  for h in s1 s2 s3; do
    wait_until 10 grep -q "$h: 2.0 fetched and verified" "$T/hosts/$h/watchdog.log" || fail "$h did not prepare 2.0"
  done
  { printf '#!/bin/sh\ntouch %s/pwned.$NFSUP_HOST\n' "$T"; tail -n +2 "$FIXTURES/fake-agent"; } > "$T/evil"
  chmod 555 "$T/evil"; mv "$T/evil" "$SHARE/releases/2.0/bin/agent"
  printf '#!/bin/sh\ntouch %s/pwned.health\nexit 0\n' "$T" > "$T/evil-health"
  chmod 555 "$T/evil-health"; mv "$T/evil-health" "$SHARE/releases/2.0/bin/healthcheck"
  sleep 6  # the lease lapses (2 s), the hosts switch or refuse
  for h in s1 s2 s3; do
    v=$(agent_alive_version $h)
    [ "$v" == 2.0 ] || [ "$v" == 1.0 ] || fail "$h runs no agent ('$v')"
  done
  [ -z "$(ls "$T" | grep pwned)" ] || fail "bytes added or replaced after preparation ran: $(ls "$T" | grep pwned | tr '\n' ' ')"
}

# A file the manifest does not list (bin/healthcheck planted in a release that ships none)
# is an integrity error: verify names it, and a restart refuses the release instead of running it.
test_unlisted_file_is_an_integrity_error() {
  begin; signed_hosts
  sed -i 's|^agent:$|agent:\n  health: {command: [bin/healthcheck], timeout: 3s}|' "$T/hosts/s1/watchdog.yaml"
  stop_watchdog s1; start_watchdog s1
  wait_until 10 bash -c "grep -q 'does not ship bin/healthcheck' $T/hosts/s1/watchdog.log" || fail "s1 did not restart"
  wait_until 10 host_runs s1 1.0 || fail "s1 not running"
  chmod u+w "$SHARE/releases/1.0/bin"
  printf '#!/bin/sh\ntouch %s/pwned\nexit 0\n' "$T" > "$SHARE/releases/1.0/bin/healthcheck"
  chmod 555 "$SHARE/releases/1.0/bin/healthcheck"
  set +e; out=$("$INSTALL" verify "$SHARE" 2>&1); rc=$?; set -e
  assert_eq "$rc" 6 "verify exit code"
  assert_contains "$out" "releases/1.0/bin/healthcheck: not in the manifest"
  pid=$(awk '$1=="agent" {print $2}' "$T/hosts/s1/state/state")
  kill -KILL "$pid"
  wait_until 10 bash -c "grep -q 'bin/healthcheck: not in the manifest' $T/hosts/s1/watchdog.log || [ -e $T/pwned ]"
  [ ! -e "$T/pwned" ] || fail "the unlisted health check ran"
  grep -q "bin/healthcheck: not in the manifest" "$T/hosts/s1/watchdog.log" || fail "s1 did not refuse the release"
}

# An unsigned pointer (here with generation 999999) never changes what a signed host
# remembers: once the real pointer is back, the next signed push goes through.
test_unsigned_pointer_is_not_remembered() {
  begin; signed_hosts
  cp "$SHARE/current" "$T/good"
  sed -e 's/^generation .*/generation 999999/' -e '/^sig /d' "$T/good" > "$SHARE/current.tmp"
  mv "$SHARE/current.tmp" "$SHARE/current"
  sleep 1.5  # three heartbeats: every host has read it
  cp "$T/good" "$SHARE/current.tmp"; mv "$SHARE/current.tmp" "$SHARE/current"
  set +e
  out=$("$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --sign-key "$T/keys/fleet.key" \
        --stale-after 4s --lease 2s --timeout 10s 2>&1)
  set -e
  assert_contains "$out" "3 host(s) ok, 0 failed"
  for h in s1 s2 s3; do assert_eq "$(agent_alive_version $h)" 2.0; done
}

agent_pids() { for h in s1 s2 s3; do awk '$1=="agent" {print $2}' "$T/hosts/$h/state/state"; done | tr '\n' ' '; }

# A marker not newer than the pointer (a replayed one) stops no agent, nor does a malformed one.
test_replayed_marker_stops_no_agent() {
  begin; signed_hosts
  before=$(agent_pids)
  gen=$(awk '$1=="generation" {print $2}' "$SHARE/current")
  printf 'nfsup-marker 1\ngeneration %s\naction push\nrelease 1.0\nprevious -\nmaster_host old\nmaster_pid 1\nnonce 0123456789abcdef\nlease_ms 60000\nrenewal 0\nstarted -\nstrategy all-at-once\n' \
    "$gen" > "$SHARE/MARKER"
  sleep 1.5
  assert_eq "$(agent_pids)" "$before" "agents after a replayed marker"
  for h in s1 s2 s3; do assert_eq "$(host_field $h state)" running "$h state"; alive_is $h 1.0 || fail "$h stopped"; done
  printf 'nfsup-marker 1\ngeneration\n' > "$SHARE/MARKER"
  sleep 1.5
  assert_eq "$(agent_pids)" "$before" "agents after a malformed marker"
  rm -f "$SHARE/MARKER"
  out=$("$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "3 host(s) ok, 0 failed"
}

# A marker newer than the pointer but not signed by a trusted key (written by someone who can
# write to the share and holds no key) stops no agent on a signed host: each host says so once
# and keeps its agent; the next signed push goes through.
test_forged_unsigned_marker_stops_no_agent() {
  begin; signed_hosts
  before=$(agent_pids)
  gen=$(awk '$1=="generation" {print $2}' "$SHARE/current")
  printf 'nfsup-marker 1\ngeneration %s\naction push\nrelease 1.0\nprevious -\nmaster_host evil\nmaster_pid 1\nnonce 0123456789abcdef\nlease_ms 60000\nrenewal 0\nstarted -\nstrategy all-at-once\n' \
    "$((gen + 1))" > "$SHARE/MARKER.tmp"
  mv "$SHARE/MARKER.tmp" "$SHARE/MARKER"
  sleep 1.5  # 15 polls, three heartbeats
  assert_eq "$(agent_pids)" "$before" "agents after a forged unsigned marker"
  for h in s1 s2 s3; do assert_eq "$(host_field $h state)" running "$h state"; alive_is $h 1.0 || fail "$h stopped"; done
  # A signature by a key the hosts do not trust is no better than none.
  sed -i '/^sig /d' "$SHARE/MARKER"
  printf 'sig %s %s\n' 0123456789abcdef "$(printf '%0128d' 0)" >> "$SHARE/MARKER"
  sleep 1.5
  assert_eq "$(agent_pids)" "$before" "agents after a badly signed marker"
  for h in s1 s2 s3; do
    assert_eq "$(grep -c 'ignoring .*MARKER.*not signed by a trusted key' "$T/hosts/$h/watchdog.log")" 1 "$h says so once"
  done
  rm -f "$SHARE/MARKER"
  out=$("$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "3 host(s) ok, 0 failed"
}

# A release's reconfig script runs only if the manifest it is hashed against is the signed
# one: a script swapped in with a manifest rewritten to list its hash never runs.
test_reconfig_script_checked_against_the_signed_manifest() {
  begin; signed_hosts
  printf '#!/bin/sh\necho "level: two" > "$NFSUP_CONFIG"\n' > "$T/m.sh"; chmod +x "$T/m.sh"
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --reconfig "$T/m.sh" \
    --sign-key "$T/keys/fleet.key" "${MASTER_OPTS[@]}" -q
  r="$SHARE/releases/2.0/.nfsup"
  printf '#!/bin/sh\ntouch %s/pwned\n' "$T" > "$T/evil"; chmod 555 "$T/evil"; mv "$T/evil" "$r/reconfig"
  sha=$(sha256sum "$r/reconfig" | cut -d' ' -f1); size=$(stat -c %s "$r/reconfig")
  sed -i -E "s|^(file .nfsup/reconfig [0-7]+ )[0-9]+ [0-9a-f]{64}$|\1$size $sha|" "$r/manifest"
  grep -q "$sha" "$r/manifest" || fail "test setup: manifest not rewritten"
  set +e; out=$("$RECONFIG" -c "$T/hosts/s1/watchdog.yaml" --from 1.0 --to 2.0 2>&1); rc=$?; set -e
  [ ! -e "$T/pwned" ] || fail "a reconfig script the signed manifest does not list ran"
  assert_eq "$rc" 6 "nfsup-reconfig exit code"
  assert_contains "$out" "no valid signature by a trusted key"
}

run_tests
