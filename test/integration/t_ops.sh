#!/usr/bin/env bash
# What a sysadmin and a monitoring system read: the watchdog version per host, status exit
# codes, machine-readable lists, and a push that reaches no host.
source "$(dirname "$0")/lib.sh"

VERSION=$("$WATCHDOG" --version 2>/dev/null | awk '{print $2}')

test_status_shows_each_hosts_watchdog_version() {
  begin
  [ -n "$VERSION" ] || fail "nfsup-watchdog --version printed no version"
  add_host v1; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  assert_eq "$(host_field v1 watchdog_version)" "$VERSION" "the host's status file"
  out=$("$INSTALL" status "$SHARE")
  assert_contains "$out" "WATCHDOG"
  line=$(grep '^v1 ' <<<"$out")
  assert_contains "$line" " $VERSION " "v1's line in status"
  assert_contains "$("$INSTALL" status "$SHARE" --json)" "\"watchdog_version\":\"$VERSION\""
  # A status file from an older watchdog (no such line) still reads, shown as unknown.
  stop_watchdog v1
  grep -v '^watchdog_version ' "$SHARE/hosts/v1/status" > "$T/st" && cp "$T/st" "$SHARE/hosts/v1/status"
  assert_contains "$("$INSTALL" status "$SHARE" --json)" '"watchdog_version":null'
}

test_status_exit_codes_for_monitoring() {
  begin
  add_host m1; add_host m2; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  rc=0; "$INSTALL" status "$SHARE" >/dev/null || rc=$?
  assert_eq "$rc" 0 "status: every host runs the current release"
  rc=0; "$INSTALL" status "$SHARE" --json >/dev/null || rc=$?
  assert_eq "$rc" 0 "status --json: every host runs the current release"
  # A host that went silent is stale: not converged.
  stop_watchdog m2
  rc=0; "$INSTALL" status "$SHARE" --stale-after 1s >/dev/null || rc=$?
  assert_eq "$rc" 1 "status with a stale host"
  # A failed host.
  sed -i 's/^state .*/state failed/' "$SHARE/hosts/m2/status"
  rc=0; "$INSTALL" status "$SHARE" >/dev/null || rc=$?
  assert_eq "$rc" 1 "status with a failed host"
  # The share unreachable (here: gone).
  rc=0; "$INSTALL" status "$T/nowhere" >/dev/null 2>&1 || rc=$?
  assert_eq "$rc" 3 "status of a missing share"
}

test_lists_for_scripts_are_json() {
  begin
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 --no-wait -q
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --no-wait -q --expires 30d
  out=$("$INSTALL" releases "$SHARE" --json)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert [r["version"] for r in d]==["1.0","2.0"], d; assert d[0]["expires"] is None and d[1]["expires"].endswith("Z"), d' "$out" \
    || fail "releases --json: $out"
  out=$("$INSTALL" verify "$SHARE" --json)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["checked"]==["1.0","2.0"] and d["problems"]=={}, d' "$out" \
    || fail "verify --json: $out"
  echo garbage >> "$SHARE/releases/1.0/VERSION"
  rc=0; out=$("$INSTALL" verify "$SHARE" --json) || rc=$?
  assert_eq "$rc" 6 "verify --json with a damaged release"
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert list(d["problems"])==["1.0"], d' "$out" || fail "verify --json problems: $out"
  out=$("$INSTALL" history "$SHARE" --json)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d and all(isinstance(e["pid"], int) for e in d), d' "$out" \
    || fail "history --json pid is not a number: $out"
}

test_status_json_watch_is_ndjson() {
  begin
  add_host n1; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  set +e; timeout -s INT 1.8 "$INSTALL" status "$SHARE" --json --watch --interval 300ms >"$T/out" 2>"$T/err"; set -e
  n=$(wc -l <"$T/out")
  [ "$n" -ge 3 ] || fail "status --json --watch printed $n lines in 1.8 s"
  python3 -c 'import json,sys
for l in open(sys.argv[1]): assert json.loads(l)["schema"]=="nfsup-status/1"' "$T/out" || fail "not one JSON document per line: $(head -c 400 "$T/out")"
  assert_contains "$(cat "$T/err")" "Ctrl-C to stop"
}

test_push_that_no_live_host_takes_fails_unless_allowed() {
  begin
  rc=0; out=$("$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" 2>&1) || rc=$?
  assert_eq "$rc" 1 "push to a share without live hosts"
  assert_contains "$out" "no live host took 1.0"
  assert_contains "$out" "--allow-empty"
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 "${MASTER_OPTS[@]}" --allow-empty -q \
    || fail "push --allow-empty failed"
}

run_tests
