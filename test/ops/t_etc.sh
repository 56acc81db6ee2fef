#!/usr/bin/env bash
# The example files in etc/: the commented watchdog.yaml must validate with the built
# nfsup-watchdog, must document every key the parser accepts, and its commented-out examples
# must be valid too; the cron.d example must be a well-formed /etc/cron.d entry whose command
# really runs a tick and exits 4 at once while another tick holds the local lock.
source "$(dirname "$0")/lib.sh"

EXAMPLE="$NFSUP_SRC/etc/watchdog.yaml"
CRON="$NFSUP_SRC/etc/cron.d/nfsup-watchdog"

# example_copy OUT SHARE [STATE]: etc/watchdog.yaml with share: (and state_dir:) replaced.
example_copy() {
  sed -e "s|^#\?share: .*|share: $2|" -e "s|^state_dir: .*|state_dir: ${3:-/var/lib/nfsup}|" "$EXAMPLE" >"$1"
  grep -q "^share: $2\$" "$1" || fail "etc/watchdog.yaml has no top-level 'share:' line to replace"
}

check_example_validates() {
  mkdir -p "$TMP/share1"
  example_copy "$TMP/w1.yaml" "$TMP/share1"
  local out
  out=$("$WATCHDOG" validate -c "$TMP/w1.yaml" 2>&1) || fail "validate refused the example: $out"
  assert_contains "$out" "$TMP/w1.yaml: ok"
  assert_contains "$out" "share $TMP/share1"
  assert_contains "$out" "poll 2s"
  assert_contains "$out" "agent bin/myagent"
}

check_shipped_file_is_refused_until_share_is_set() {
  # The file as shipped (and installed as /etc/nfsup/watchdog.yaml) must not pass `validate`,
  # which the daemon unit runs as ExecStartPre=: a placeholder share would let an unedited host
  # start and poll a path that is not an nfsup share. One line, naming the file and the key.
  local out rc=0
  out=$("$WATCHDOG" validate -c "$EXAMPLE" 2>&1) || rc=$?
  assert_eq "$rc" 2 "exit code of validate on the unedited example"
  assert_eq "$(grep -c . <<<"$out")" 1 "number of lines (got: $out)"
  assert_contains "$out" "$EXAMPLE"
  assert_contains "$out" "'share'"
}

check_broken_config_is_one_line_naming_file_and_key() {
  # Whatever is wrong, validate prints one line that names the file (and the key, where one is
  # at fault) and exits 2; it never touches the share (here: a path that does not exist).
  local f="$TMP/broken.yaml" out rc
  local -a cases=(
    "poll_intervall: 2s|poll_intervall"
    "poll_interval: 2 parsecs|poll_interval"
    "share_timeout: 1ms|share_timeout"
    "state_dir: relative/dir|state_dir"
    "heartbeat_interval: 10s|heartbeat_interval"
  )
  local c line key
  for c in "${cases[@]}"; do
    line=${c%%|*}; key=${c##*|}
    printf 'share: /nonexistent/nfsup-share\nheartbeat_interval: 10s\nagent:\n  command: [bin/a]\n%s\n' "$line" >"$f"
    rc=0; out=$("$WATCHDOG" validate -c "$f" 2>&1) || rc=$?
    assert_eq "$rc" 2 "exit code for '$line'"
    assert_eq "$(grep -c . <<<"$out")" 1 "one line for '$line' (got: $out)"
    assert_contains "$out" "$f:"
    assert_contains "$out" "$key"
  done
  [ ! -e /nonexistent/nfsup-share ] || fail "validate created the share path"
  rc=0; out=$("$WATCHDOG" validate -c "$TMP/no-such.yaml" 2>&1) || rc=$?
  assert_eq "$rc" 2 "exit code for a missing file"
  assert_eq "$(grep -c . <<<"$out")" 1 "one line for a missing file (got: $out)"
  assert_contains "$out" "$TMP/no-such.yaml"
}

check_example_documents_every_key() {
  # The keys the parser accepts, read from its two check_keys() calls.
  local keys k missing=()
  keys=$(python3 -c 'import re, sys
s = open(sys.argv[1]).read()
print("\n".join(sorted({k for b in re.findall(r"check_keys\(c, \w+,\s*\{([^}]*)\}", s) for k in re.findall(r"\"([a-z_]+)\"", b)})))' \
    "$NFSUP_SRC/src/core/config.cpp")
  [ "$(wc -w <<<"$keys")" -ge 15 ] || fail "could not read the key list from src/core/config.cpp (got: $keys)"
  for k in $keys; do
    # (as a key of its own line, of a list item, or inside a flow mapping {a: 1, b: 2})
    grep -qE "^ *#? *(- )?$k:|[{,] *$k:" "$EXAMPLE" || missing+=("$k")
  done
  [ ${#missing[@]} -eq 0 ] || fail "etc/watchdog.yaml does not show: ${missing[*]}"
  # ... and shows no key the parser would refuse.
  local shown
  shown=$(grep -oE '^ *#?[a-z_]+:' "$EXAMPLE" | tr -d ' #:' | sort -u)
  for k in $shown; do
    grep -qx "$k" <<<"$keys" || fail "etc/watchdog.yaml shows '$k:', which the parser does not accept"
  done
}

check_commented_examples_validate() {
  # Uncomment every optional example key (host, group, signatures, health, drain, external
  # control): still valid.
  mkdir -p "$TMP/share2"
  example_copy "$TMP/w2.yaml" "$TMP/share2"
  # (`services:` is the alternative to `agent:`, not an addition: its example block is left out)
  awk '/^#services:/ {skip = 1; next} skip && /^#  / {next} {skip = 0; print}' "$TMP/w2.yaml" >"$TMP/w2.tmp"
  mv "$TMP/w2.tmp" "$TMP/w2.yaml"
  sed -i -E 's/^( *)#( *[a-z_]+:)/\1\2/' "$TMP/w2.yaml"
  local n; n=$(grep -cE '^ *#[a-z_]+:' "$EXAMPLE" || true)
  [ "$n" -ge 4 ] || fail "expected commented-out example keys in etc/watchdog.yaml, found $n"
  if grep -qE '^ *trusted_keys:' "$TMP/w2.yaml"; then
    # The example names a key file; make a real one with the built nfsup-install.
    "$INSTALL" keygen --out "$TMP/keys" --name fleet >/dev/null || fail "nfsup-install keygen failed"
    sed -i -E "s|^( *)trusted_keys: .*|\1trusted_keys: [$TMP/keys/fleet.pub]|" "$TMP/w2.yaml"
  fi
  local out
  out=$("$WATCHDOG" validate -c "$TMP/w2.yaml" 2>&1) || fail "validate refused the uncommented examples: $out"
  assert_contains "$out" "host web01"
}

check_example_is_strict() {
  # The copy is parsed by the real parser: a typo in a key is refused with file:line:column.
  mkdir -p "$TMP/share3"
  example_copy "$TMP/w3.yaml" "$TMP/share3"
  sed -i 's/^poll_interval:/poll_intervall:/' "$TMP/w3.yaml"
  local out rc=0 line
  out=$("$WATCHDOG" validate -c "$TMP/w3.yaml" 2>&1) || rc=$?
  assert_eq "$rc" 2 "exit code for an unknown key"
  line=$(grep -n '^poll_intervall:' "$TMP/w3.yaml" | cut -d: -f1)
  assert_contains "$out" "$TMP/w3.yaml:$line:1: unknown key 'poll_intervall'"
}

check_cron_file_format() {
  local name; name=$(basename "$CRON")
  [[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] || fail "cron ignores /etc/cron.d files named like '$name'"
  [ "$(tail -c1 "$CRON" | od -An -c | tr -d ' ')" = '\n' ] || fail "$CRON must end with a newline"
  local jobs n
  jobs=$(grep -vE '^[[:space:]]*(#|$)' "$CRON" | grep -vE '^[A-Z_]+=')
  n=$(grep -c . <<<"$jobs")
  assert_eq "$n" 1 "number of job lines"
  # minute hour dom month dow user command
  read -r m h dom mon dow user cmd <<<"$jobs"
  assert_eq "$m $h $dom $mon $dow" "* * * * *" "schedule (every minute)"
  assert_eq "$user" root "user field"
  assert_eq "$cmd" "timeout -s KILL 50 /usr/bin/nfsup-watchdog check -q --syslog -c /etc/nfsup/watchdog.yaml" "command"
}

# The job line's command with the installed paths replaced by the built binary and a temp config.
cron_command() {
  grep -vE '^[[:space:]]*(#|$)' "$CRON" | grep -vE '^[A-Z_]+=' | awk '{ $1=$2=$3=$4=$5=$6=""; print }' \
    | sed -e "s|/usr/bin/nfsup-watchdog|$WATCHDOG|" -e "s|/etc/nfsup/watchdog.yaml|$1|"
}

check_cron_command_runs_a_tick() {
  local share="$TMP/cshare" state="$TMP/cstate" cmd rc=0
  new_share "$share"
  example_copy "$TMP/cron.yaml" "$share" "$state"
  cmd=$(cron_command "$TMP/cron.yaml")
  # Nothing pushed yet: the tick has nothing to start and exits 0, and reports this host.
  sh -c "$cmd" >"$TMP/tick.out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code of an idle tick ($(cat "$TMP/tick.out"))"
  [ -e "$state/lock" ] || fail "the tick did not create its lock file $state/lock"
  [ -n "$(ls "$share/hosts" 2>/dev/null)" ] || fail "the tick wrote no status under $share/hosts"
}

check_cron_overlapping_tick_exits_4() {
  local share="$TMP/lshare" state="$TMP/lstate" cmd rc=0 t0 t1
  new_share "$share"
  example_copy "$TMP/lock.yaml" "$share" "$state"
  mkdir -p "$state"
  cmd=$(cron_command "$TMP/lock.yaml")
  # Another tick holds the lock for a while: a process that takes the same flock(2) and then
  # becomes `sleep`, so killing $holder releases the lock (and no child keeps our stdout).
  ( exec 9>"$state/lock"; flock 9; exec sleep 20 ) >/dev/null 2>&1 &
  local holder=$!
  on_exit "kill $holder"
  wait_until 5 sh -c "! flock -n '$state/lock' true" || fail "could not hold the lock"
  t0=$(date +%s%N)
  sh -c "$cmd" >"$TMP/busy.out" 2>&1 || rc=$?
  t1=$(date +%s%N)
  kill "$holder" 2>/dev/null || true
  assert_eq "$rc" 4 "exit code while the lock is held"
  (( (t1 - t0) / 1000000 < 5000 )) || fail "the busy tick took $(( (t1 - t0) / 1000000 ))ms; it must exit at once"
}

run_checks
