#!/usr/bin/env bash
# Seeing what happens: status --watch, history, and the HTML report checked in headless Chromium.
source "$(dirname "$0")/lib.sh"

chromium_bin() { command -v chromium || command -v chromium-browser || true; }
CHROME_FLAGS=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --window-size=1000,900)

test_html_report_renders_every_host_in_chromium() {
  begin
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0)
  add_host web01; add_host web02; add_host web03
  for h in web01 web02; do sed -i "s/^host: $h$/host: $h\ngroup: pair1/" "$T/hosts/$h/watchdog.yaml"; done
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  "$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" -q
  out=$("$INSTALL" report "$SHARE" --html "$T/report.html")
  assert_contains "$out" "wrote $T/report.html"
  html=$(cat "$T/report.html")
  for h in web01 web02 web03; do assert_contains "$html" "data-host=\"$h\""; done
  assert_contains "$html" 'push 1.0 &rarr; 2.0 (all-at-once, generation 2)'
  grep -q 'src=\|href=\|<script' "$T/report.html" && fail "report is not self-contained"
  chrome=$(chromium_bin)
  if [ -z "$chrome" ]; then
    [ -z "${CI:-}" ] || fail "CI must have chromium (scripts/test.sh installs it)"
    echo "    skipped the browser part: chromium not installed"; return 0
  fi
  timeout -s KILL 90 "$chrome" "${CHROME_FLAGS[@]}" --user-data-dir="$T/ud1" --screenshot="$T/shot.png" "file://$T/report.html" >/dev/null 2>&1 || true
  [ -s "$T/shot.png" ] || fail "no screenshot"
  size=$(stat -c %s "$T/shot.png")
  # A blank 1000x900 page compresses to a few KB; a page with tables and a timeline is far larger.
  [ "$size" -gt 20000 ] || fail "screenshot looks empty ($size bytes)"
  dom=$(timeout -s KILL 90 "$chrome" "${CHROME_FLAGS[@]}" --user-data-dir="$T/ud2" --dump-dom "file://$T/report.html" 2>/dev/null)
  for h in web01 web02 web03; do
    assert_contains "$dom" "data-host=\"$h\""
    grep -q "<rect[^>]*><title>$h running 2.0</title>" <<<"$dom" || fail "timeline has no running 2.0 bar for $h"
  done
  assert_contains "$dom" '<b id="current">2.0</b>'
  assert_contains "$dom" '<td>pair1</td>'
  echo "    screenshot $size bytes"
}

test_status_watch_and_history() {
  begin
  add_host w1; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  set +e; out=$(timeout -s INT 2.5 "$INSTALL" status "$SHARE" --watch --interval 500ms); set -e
  n=$(grep -c '^current:  1.0' <<<"$out")
  [ "$n" -ge 3 ] || fail "status --watch refreshed $n times in 2.5 s"
  out=$("$INSTALL" history "$SHARE")
  assert_contains "$out" "push"
  assert_contains "$out" "[ok]"
  assert_contains "$("$INSTALL" history "$SHARE" --json)" '"action":"push"'
}

test_status_json_validates_against_its_schema() {
  begin
  add_host j1; add_host j2; start_all
  schema="$(dirname "$FIXTURES")/../doc/status-schema.json"
  validate() { python3 -c 'import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))' "$schema" "$1"; }
  python3 -c 'import jsonschema' 2>/dev/null || { [ -z "${CI:-}" ] || fail "CI must have python3-jsonschema"; echo "    skipped: python3-jsonschema missing"; return 0; }
  "$INSTALL" status "$SHARE" --json > "$T/s0.json"; validate "$T/s0.json" || fail "empty share status invalid"
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  "$INSTALL" status "$SHARE" --json > "$T/s1.json"; validate "$T/s1.json" || fail "status invalid: $(cat "$T/s1.json")"
  # Hostile content must stay valid JSON (escapes) and still match the schema.
  printf 'nfsup-status 1\nhost j2\nstate failed\nrunning 1.0\ngeneration 1\nheartbeat 9\nreason quote%%22back%%5Cslash%%0Anewline%%01\n' > "$SHARE/hosts/j2/status"
  stop_watchdog j2
  rc=0; "$INSTALL" status "$SHARE" --json > "$T/s2.json" || rc=$?
  assert_eq "$rc" 1 "status exit code with a failed host"
  validate "$T/s2.json" || fail "status with hostile reason invalid: $(cat "$T/s2.json")"
  # A document missing a required field must fail validation (the check can fail).
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); del d["hosts"][0]["state"]; json.dump(d, open(sys.argv[2],"w"))' "$T/s1.json" "$T/bad.json"
  validate "$T/bad.json" 2>/dev/null && fail "schema accepted a host without state"
  true
}

# Text a host writes (a reason, a group, an audit detail) is printed with its control
# characters escaped: a newline cannot forge a row, an ESC sequence never reaches the terminal,
# and JSON stays valid even with bytes that are not UTF-8.
test_host_written_text_is_escaped_everywhere() {
  begin
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 --no-wait -q
  mkdir -p "$SHARE/hosts/h1"
  printf 'nfsup-status 1\nhost h1\nstate failed\nrunning 1.0\ngeneration 1\nheartbeat 9\nupdated u%%1B]0;x%%07%%FE\nreason bad%%0Aforged%%20%%20running%%201.0%%1B[2J%%0D%%FF%%C2%%9B\n' \
    > "$SHARE/hosts/h1/status"
  printf 'nfsup-audit 1\ntime 2026-01-01T00:00:00Z\nhost h1\npid 1\nuser root\naction push\ndetail x%%0A2026-01-01T00:00:01Z%%20%%20forged%%1B[31m\nresult ok%%07\n' \
    > "$SHARE/audit/2026-01-01T00-00-00Z-h1-1-0001-push"
  raw() { LC_ALL=C grep -c $'[\x01-\x09\x0b-\x1f\x7f]' <<<"$1" || true; }
  rc=0; out=$("$INSTALL" status "$SHARE" 2>&1) || rc=$?
  assert_eq "$rc" 1 "status exit code with a failed host"
  assert_eq "$(raw "$out")" 0 "control characters in status: $(od -c <<<"$out" | head -20)"
  grep -q '^forged' <<<"$out" && fail "a newline in a reason forged a status row: $out"
  assert_contains "$out" 'bad\nforged  running 1.0\x1b[2J\r\xff\u{009b}'
  out=$("$INSTALL" history "$SHARE" 2>&1)
  assert_eq "$(raw "$out")" 0 "control characters in history"
  grep -q '^2026-01-01T00:00:01Z' <<<"$out" && fail "a newline in an audit detail forged a history line: $out"
  assert_contains "$out" 'x\n2026-01-01T00:00:01Z  forged\x1b[31m  [ok\x07]'
  "$INSTALL" report "$SHARE" --html "$T/r.html" -q
  assert_eq "$(raw "$(cat "$T/r.html")")" 0 "control characters in the HTML report"
  assert_contains "$(cat "$T/r.html")" 'bad\nforged  running 1.0\x1b[2J'
  for cmd in "status $SHARE --json" "history $SHARE --json"; do
    "$INSTALL" $cmd > "$T/out.json" || [ $? -eq 1 ] || fail "$cmd: exit code"
    python3 -c 'import json,sys; json.loads(open(sys.argv[1],"rb").read().decode("utf-8"))' "$T/out.json" \
      || fail "$cmd is not valid JSON: $(head -c 400 "$T/out.json")"
  done
}

# The report says when it was written, when the rollout it draws began and ended, which one it
# draws (--generation N, default the newest; an unknown N is exit 2 naming it), and "stopped"
# and "failed" differ in colour.
test_html_report_picks_and_marks_its_rollout() {
  begin
  add_host r1; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 "${MASTER_OPTS[@]}" -q
  "$INSTALL" report "$SHARE" --html "$T/new.html" -q
  html=$(cat "$T/new.html")
  grep -q 'id="generated">[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9:]*Z<' <<<"$html" || fail "no generation time: $html"
  grep -q 'id="rollout-start">[0-9]\{4\}-[0-9-]*T[0-9:.]*Z<' <<<"$html" || fail "no rollout start"
  grep -q 'id="rollout-end">[0-9]\{4\}-[0-9-]*T[0-9:.]*Z<' <<<"$html" || fail "no rollout end"
  assert_contains "$html" '<h2 id="drawn">Rollout of generation 2 (the newest)</h2>'
  "$INSTALL" report "$SHARE" --html "$T/old.html" --generation 1 -q
  old=$(cat "$T/old.html")
  assert_contains "$old" '<h2 id="drawn">Rollout of generation 1 (not the newest: 2)</h2>'
  assert_contains "$old" 'push - &rarr; 1.0 (all-at-once, generation 1)'
  rc=0; err=$("$INSTALL" report "$SHARE" --html "$T/x.html" --generation 7 2>&1) || rc=$?
  assert_eq "$rc" 2 "exit code for an unknown generation"
  assert_eq "$(wc -l <<<"$err")" 1 "one line: $err"
  assert_contains "$err" "generation 7"
  [ -e "$T/x.html" ] && fail "a report was written for an unknown generation"
  stopped=$(grep -o '<span style="background:[^"]*">stopped<' <<<"$html" | cut -d: -f2 | cut -d'"' -f1)
  failed=$(grep -o '<span style="background:[^"]*">failed<' <<<"$html" | cut -d: -f2 | cut -d'"' -f1)
  [ -n "$stopped" ] && [ -n "$failed" ] || fail "legend lacks stopped/failed"
  # Not just different strings: far apart (not two shades of red), by RGB distance.
  d=$(python3 -c 'import sys; a,b=[[int(x[i:i+2],16) for i in (1,3,5)] for x in sys.argv[1:]]; print(int(sum((p-q)**2 for p,q in zip(a,b))**0.5))' "$stopped" "$failed")
  [ "$d" -ge 150 ] || fail "stopped $stopped and failed $failed are too alike (distance $d)"
}

run_tests
