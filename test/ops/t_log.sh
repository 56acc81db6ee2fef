#!/usr/bin/env bash
# nfsup-install --log FILE: the master's own log, beside the audit trail on the share. Each
# run appends a line when it starts (subcommand and command line), the lines it reported
# (progress, warnings, errors; -q does not drop them from the log) and a line with its exit
# code and duration.
source "$(dirname "$0")/lib.sh"

check_push_and_status_are_logged() {
  local share="$TMP/share" log="$TMP/master.log" rc=0
  new_share "$share"
  make_release "$TMP/rel" 1.0
  "$INSTALL" -q --log "$log" push "$share" "$TMP/rel" --version 1.0 --no-wait --allow-empty >/dev/null
  [ -s "$log" ] || fail "no log written"
  grep -qE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z $(hostname -s) pid [0-9]+ push: start: .*nfsup-install -q --log $log push $share $TMP/rel --version 1.0" "$log" \
    || fail "no start line: $(cat "$log")"
  grep -qE " push: exit 0 \(ok\) after [0-9.]+s$" "$log" || fail "no end line: $(cat "$log")"
  # What the push reported goes to the log too, although -q kept it off the terminal.
  [ "$(grep -c ' push: ' "$log")" -ge 3 ] || fail "the push logged nothing between start and end: $(cat "$log")"
  # A second command appends.
  "$INSTALL" --log "$log" status "$share" >/dev/null || rc=$?
  grep -qE " status: exit $rc " "$log" || fail "status not appended: $(cat "$log")"
  assert_eq "$(grep -c ' push: start: ' "$log")" 1 "start lines of push"
}

check_errors_are_logged_with_their_exit_code() {
  local log="$TMP/err.log" rc=0 out
  out=$("$INSTALL" --log "$log" status "$TMP/not-a-share" 2>&1) || rc=$?
  [ "$rc" -ne 0 ] || fail "status on a missing share succeeded"
  grep -qF "status: error: $(sed 's/^nfsup-install: error: //' <<<"$out" | head -1)" "$log" || fail "error not logged: $(cat "$log")"
  grep -qE " status: exit $rc \(" "$log" || fail "exit code $rc not logged: $(cat "$log")"
}

check_unwritable_log_is_refused_before_anything_is_done() {
  local share="$TMP/share2" rc=0 out
  new_share "$share"
  make_release "$TMP/rel2" 1.0
  out=$("$INSTALL" --log "$TMP/no/such/dir/master.log" push "$share" "$TMP/rel2" --version 1.0 --no-wait --allow-empty 2>&1) || rc=$?
  assert_eq "$rc" 2 "exit code for a log that cannot be opened"
  assert_eq "$(grep -c . <<<"$out")" 1 "one line (got: $out)"
  assert_contains "$out" "$TMP/no/such/dir/master.log"
  [ -z "$(ls "$share/releases" 2>/dev/null)" ] || fail "the push went ahead: $(ls "$share/releases")"
}

run_checks
