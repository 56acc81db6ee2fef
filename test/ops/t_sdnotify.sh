#!/usr/bin/env bash
# sd_notify support of `nfsup-watchdog run` without systemd: a small python3 listener binds
# the datagram socket named in NOTIFY_SOCKET (a path, or an abstract '@' name), the daemon is
# started with the ExecStart= line of packaging/systemd/nfsup-watchdog.service (paths replaced
# by the built binary and a temp config), and the messages that arrive are checked:
# READY=1 after the first tick, WATCHDOG=1 rate-limited, the watchdog and start timeouts
# widened for a long switch, and no NOTIFY_SOCKET in the agent's environment.
source "$(dirname "$0")/lib.sh"

UNIT="$NFSUP_SRC/packaging/systemd/nfsup-watchdog.service"

# listen ADDRESS OUTFILE: prints the listener's pid once the socket is bound. Each datagram is
# written to OUTFILE followed by a line "--".
listen() {
  python3 - "$1" "$2" >"$2.log" 2>&1 <<'EOF' &
import os, socket, sys
addr, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
open(out + ".bound", "w").close()
with open(out, "a") as f:
    while True:
        f.write(s.recv(65536).decode("utf-8", "replace") + "\n--\n")
        f.flush()
EOF
  local pid=$!
  wait_until 10 test -e "$2.bound" || { cat "$2.log" >&2; return 1; }
  echo "$pid"
}

# setup NAME: a share with release 1.0 pushed, and a watchdog config for host NAME whose agent
# writes its environment to $TMP/NAME/agent.env.
setup() {
  local d="$TMP/$1"
  mkdir -p "$d/rel/bin" "$d/state"
  new_share "$d/share"
  cat >"$d/rel/bin/agent" <<'EOF'
#!/bin/sh
env >"$1.env"
trap 'exit 0' TERM INT
while :; do sleep 1 & wait $!; done
EOF
  chmod +x "$d/rel/bin/agent"
  "$INSTALL" -q push "$d/share" "$d/rel" --version 1.0 --no-wait >/dev/null
  cat >"$d/watchdog.yaml" <<EOF
share: $d/share
host: $1
poll_interval: 50ms
heartbeat_interval: 500ms
share_timeout: 2s
state_dir: $d/state
agent:
  command: [bin/agent, "$d/agent"]
  stop_timeout: 2s
  start_grace: 200ms
  reconfig_timeout: 40s
EOF
}

# The unit's ExecStart= with the built binary and the test config; without --syslog so the
# log goes to a file.
exec_start() {
  grep -E '^ExecStart=' "$UNIT" | head -1 | sed -e 's/^ExecStart=//' \
    -e "s|/usr/bin/nfsup-watchdog|$WATCHDOG|" -e "s|/etc/nfsup/watchdog.yaml|$1|" -e 's/ --syslog//'
}

# start_daemon NAME NOTIFY_SOCKET [WATCHDOG_USEC]: runs the daemon with WATCHDOG_PID set to its
# own pid, as systemd does.
start_daemon() {
  local d="$TMP/$1" cmd
  cmd=$(exec_start "$d/watchdog.yaml")
  [[ "$cmd" == "$WATCHDOG run "* ]] || fail "unexpected ExecStart in $UNIT: $cmd"
  NOTIFY_SOCKET=$2 WUSEC=${3:-} setsid sh -c \
    'if [ -n "$WUSEC" ]; then export WATCHDOG_USEC=$WUSEC WATCHDOG_PID=$$; fi; exec '"$cmd" \
    >>"$d/watchdog.log" 2>&1 &
  echo $!
}

stop_daemon() {
  kill -TERM "$1" 2>/dev/null || true
  wait_until 10 sh -c "! kill -0 $1" || kill -KILL "$1" 2>/dev/null || true
}

msgs() { grep -c -x "$1" "$2" || true; }

check_python3() {
  need_cmd python3 python3-minimal || fail "python3 is needed for the notify-socket listener"
}

check_ready_and_watchdog_on_a_path_socket() {
  setup h1
  local out="$TMP/h1/notify" lp wd n
  lp=$(listen "$TMP/h1/notify.sock" "$out")
  on_exit "kill $lp"
  # WATCHDOG_USEC=0.6s: pings at most every 200ms, while the loop runs every 50ms.
  wd=$(start_daemon h1 "$TMP/h1/notify.sock" 600000)
  on_exit "kill -9 $wd"
  wait_until 15 grep -qx READY=1 "$out" || fail "no READY=1 (log: $(tail -5 "$TMP/h1/watchdog.log"))"
  # READY=1 comes after the first tick, which has already started the agent on 1.0.
  wait_until 5 test -s "$TMP/h1/agent.env" || fail "the agent did not start"
  grep -qx "STATUS=watching $TMP/h1/share as host h1" "$out" || fail "no STATUS= line with READY=1: $(cat "$out")"
  sleep 3
  n=$(msgs WATCHDOG=1 "$out")
  stop_daemon "$wd"
  # ~3.2s at one ping per 200ms is about 16. Without the rate limit (one per 50ms loop) it
  # would be over 60.
  (( n >= 5 )) || fail "only $n WATCHDOG=1 in 3s"
  (( n <= 25 )) || fail "$n WATCHDOG=1 in 3s: not rate-limited"
  # The watchdog's environment for the agent carries no notify variables.
  ! grep -qE '^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID)=' "$TMP/h1/agent.env" \
    || fail "the agent inherited: $(grep -E '^(NOTIFY_SOCKET|WATCHDOG_)' "$TMP/h1/agent.env")"
  grep -q '^NFSUP_VERSION=1.0$' "$TMP/h1/agent.env" || fail "agent env lacks NFSUP_VERSION=1.0"
}

check_timeouts_widened_for_a_long_switch() {
  # The config above allows a switch far longer than 0.6s: the daemon must ask for a longer
  # watchdog limit, and extend the start timeout before its first tick.
  local out="$TMP/h1/notify" usec ext
  [ -s "$out" ] || skip "needs the previous check's messages"
  usec=$(grep -oE '^WATCHDOG_USEC=[0-9]+$' "$out" | head -1 | cut -d= -f2)
  ext=$(grep -oE '^EXTEND_TIMEOUT_USEC=[0-9]+$' "$out" | head -1 | cut -d= -f2)
  [ -n "$usec" ] || fail "no WATCHDOG_USEC= sent although WATCHDOG_USEC=600000 is too short: $(sort -u "$out")"
  [ -n "$ext" ] || fail "no EXTEND_TIMEOUT_USEC= before the first tick"
  # share 10 x 2s + reconfig 40s + 2 x 2s (start) + 10s = 74s. The drain and the stop of an
  # agent the watchdog started itself do not block a pass (they are phases with deadlines).
  assert_eq "$usec" 74000000 "WATCHDOG_USEC"
  assert_eq "$ext" 74000000 "EXTEND_TIMEOUT_USEC"
  # Both come before the first tick, so before READY=1.
  local first_ext first_usec first_ready
  first_ext=$(grep -n '^EXTEND_TIMEOUT_USEC=' "$out" | head -1 | cut -d: -f1)
  first_usec=$(grep -n '^WATCHDOG_USEC=' "$out" | head -1 | cut -d: -f1)
  first_ready=$(grep -n '^READY=1$' "$out" | head -1 | cut -d: -f1)
  (( first_ext < first_ready )) || fail "EXTEND_TIMEOUT_USEC= came after READY=1"
  (( first_usec < first_ready )) || fail "WATCHDOG_USEC= came after READY=1"
  assert_eq "$(grep -c '^WATCHDOG_USEC=' "$out")" 1 "WATCHDOG_USEC= messages (sent once)"
  grep -q 'systemd watchdog: a switch may take up to 74s with this configuration; asked for 74s instead of WatchdogSec=600ms' \
    "$TMP/h1/watchdog.log" || fail "the widening was not logged: $(grep systemd "$TMP/h1/watchdog.log")"
}

check_abstract_socket() {
  setup h2
  local name="@nfsup-test-$$-$RANDOM" out="$TMP/h2/notify" lp wd
  lp=$(listen "$name" "$out")
  on_exit "kill $lp"
  # No WATCHDOG_USEC: still READY=1, and a first WATCHDOG=1 at once.
  wd=$(start_daemon h2 "$name")
  on_exit "kill -9 $wd"
  wait_until 15 grep -qx READY=1 "$out" || fail "no READY=1 on abstract socket $name"
  wait_until 5 grep -qx WATCHDOG=1 "$out" || fail "no WATCHDOG=1 on abstract socket $name"
  stop_daemon "$wd"
  ! grep -q '^WATCHDOG_USEC=' "$out" || fail "WATCHDOG_USEC= sent although systemd set no watchdog"
}

check_shipped_config_fits_the_units_watchdogsec() {
  # With etc/watchdog.yaml as shipped (only share:, host: and state_dir: filled in), the
  # longest switch the daemon computes fits the unit's WatchdogSec=: it does not raise the
  # limit at run time (it raised 60s to 3m29s before), and the man page states that figure.
  local d="$TMP/h4" out="$TMP/h4/notify" lp wd ws usec
  mkdir -p "$d/state"
  new_share "$d/share"
  sed -e "s|^#\?share: .*|share: $d/share|" -e "s|^state_dir: .*|state_dir: $d/state|" -e "s|^#host: .*|host: h4|" \
    "$NFSUP_SRC/etc/watchdog.yaml" >"$d/watchdog.yaml"
  ws=$(grep -E '^WatchdogSec=' "$UNIT" | tail -1 | cut -d= -f2)
  case "$ws" in
    *min) usec=$(( ${ws%min} * 60000000 )) ;;
    *s) usec=$(( ${ws%s} * 1000000 )) ;;
    *) usec=$(( ws * 1000000 )) ;;
  esac
  lp=$(listen "$d/notify.sock" "$out")
  on_exit "kill $lp"
  wd=$(start_daemon h4 "$d/notify.sock" "$usec")
  on_exit "kill -9 $wd"
  wait_until 15 grep -qx READY=1 "$out" || fail "no READY=1 (log: $(tail -5 "$d/watchdog.log"))"
  stop_daemon "$wd"
  ! grep -q '^WATCHDOG_USEC=' "$out" \
    || fail "WatchdogSec=$ws was raised to $(grep '^WATCHDOG_USEC=' "$out"): $(grep 'systemd watchdog' "$d/watchdog.log")"
  ! grep -q 'systemd watchdog:' "$d/watchdog.log" || fail "logged a widening: $(grep 'systemd watchdog' "$d/watchdog.log")"
  # The start timeout is still extended by the computed figure, which the man page names.
  local ext; ext=$(grep -oE '^EXTEND_TIMEOUT_USEC=[0-9]+$' "$out" | head -1 | cut -d= -f2)
  assert_eq "$ext" 174000000 "EXTEND_TIMEOUT_USEC for the shipped defaults"
  grep -q '174s' "$NFSUP_SRC/doc/nfsup-watchdog.8" || fail "nfsup-watchdog(8) does not name the default figure 174s"
}

check_no_socket_no_trouble() {
  # Without NOTIFY_SOCKET (or with one nobody listens on) the daemon runs as before.
  setup h3
  local wd
  wd=$(start_daemon h3 "$TMP/h3/nobody.sock" 600000)
  on_exit "kill -9 $wd"
  wait_until 10 test -s "$TMP/h3/agent.env" || fail "the agent did not start with a dead notify socket"
  kill -0 "$wd" || fail "the daemon died: $(tail -5 "$TMP/h3/watchdog.log")"
  stop_daemon "$wd"
}

run_checks
