#!/usr/bin/env bash
#
# selftest.sh - proves that the fleet harness (fleet.sh) really behaves like
# several hosts sharing one export: cross-host visibility, deletion, client
# hangs, link cuts, server freezes, per-host network namespaces, and a clean
# teardown.  Needs root.  Prints "N passed, M failed" last; exit 0 only if
# nothing failed.
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=fleet.sh
source "$HERE/fleet.sh"

# Keep the real stdout/stderr on fds 8/9: a signal trap can fire while a
# helper runs with >/dev/null, and the teardown report must still be seen.
exec 8>&1 9>&2
restore_output() {
    if [ -e /dev/fd/8 ] && [ -e /dev/fd/9 ]; then exec 1>&8 2>&9; fi
}

HOSTS=4
BUDGET_S=${SELFTEST_BUDGET_S:-110}
C=$FLEET_CACHE_S
PASS=0
FAIL=0
declare -a MEASURED=()

now_ms() { date +%s%3N; }
ok() { PASS=$((PASS + 1)); printf 'ok %d - %s\n' $((PASS + FAIL)) "$*"; }
nok() { FAIL=$((FAIL + 1)); printf 'not ok %d - %s\n' $((PASS + FAIL)) "$*"; }
# check DESCRIPTION CMD... : CMD runs in an `if`, so it must chain its own
# failures (errexit does not apply inside).
check() {
    local d=$1
    shift
    if "$@"; then ok "$d"; else nok "$d"; fi
}
measure() { MEASURED+=("$*"); printf '# %s\n' "$*"; }
mnt() { printf '%s' "${FLEET_MNT[$1]}"; }
# bounded helpers for anything that touches a mount
bstat() { fleet_timeout "${2:-3}" stat -- "$1" >/dev/null 2>&1; }
bcat() { fleet_timeout "${2:-3}" cat -- "$1" 2>/dev/null; }
# bwrite CONTENT PATH [SECONDS]
# shellcheck disable=SC2016  # $1/$2 are expanded by the inner sh
bwrite() { fleet_timeout "${3:-3}" sh -c 'printf "%s" "$1" > "$2"' _ "$1" "$2" 2>/dev/null; }
netns_inode() { stat -L -c %i "/run/netns/$1"; }
pid_netns() { readlink "/proc/$1/ns/net" 2>/dev/null | tr -dc 0-9; }
veth_bytes() { cat "/sys/class/net/${FLEET_VETH[$1]}/statistics/rx_bytes"; }
# pid of the ssh transport process sshfs spawned for host i (lives in the netns)
transport_pid() {
    local p
    for p in $(ip netns pids "${FLEET_NS[$1]}" 2>/dev/null); do
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = ssh ]; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    return 1
}

# ------------------------------------------------------------ lifecycle ---

SAVED_DIR="" SAVED_RUNID="" SAVED_SSHD=""
WATCHDOG=""

finish() {
    local rc=$? p c leftovers
    restore_output
    set +e +o pipefail
    trap - EXIT INT TERM
    [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null && wait "$WATCHDOG" 2>/dev/null
    # (interrupted inside fleet_up: the globals already name the run)
    SAVED_DIR=${SAVED_DIR:-$FLEET_DIR} SAVED_RUNID=${SAVED_RUNID:-$FLEET_RUNID}
    SAVED_SSHD=${SAVED_SSHD:-${FLEET_SSHD_PID:-}}
    if [ -n "${FLEET_DIR}" ] && ((FAIL > 0 || rc != 0)); then
        for f in "${FLEET_DIR}"/log/*.log; do
            [ -s "$f" ] && { printf '# --- %s (tail)\n' "${f##*/}"; tail -n 8 "$f" | sed 's/^/#   /'; }
        done
    fi
    fleet_down
    if [ -n "$SAVED_RUNID" ]; then
        check "teardown: no network namespace of run $SAVED_RUNID left" \
            test -z "$(ip netns list | grep -F "nfsup-${SAVED_RUNID}-")"
        check "teardown: no veth of run $SAVED_RUNID left" \
            test -z "$(ip -o link show | grep -F "nf${SAVED_RUNID}")"
        check "teardown: no mount below $SAVED_DIR left" \
            test -z "$(awk -v p="$SAVED_DIR" 'index($5, p) == 1' /proc/self/mountinfo)"
        check "teardown: sshd (${SAVED_SSHD:-not started}) is gone" test ! -d "/proc/${SAVED_SSHD:-0}"
        leftovers=""
        for p in /proc/[0-9]*; do
            p=${p#/proc/}
            [ "$p" = $$ ] && continue
            c=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")
            [[ "$c" == *"$SAVED_DIR"* ]] && leftovers+=" $p"
        done
        check "teardown: no process references the run dir${leftovers:+ (left:$leftovers)}" test -z "$leftovers"
        check "teardown: run dir removed" test ! -e "$SAVED_DIR"
        check "teardown: fleet_down is idempotent" fleet_down
    fi
    if ((rc != 0 && FAIL == 0)); then nok "selftest aborted (exit status $rc)"; fi
    if ((${#MEASURED[@]} > 0)); then
        printf '# measurements (FLEET_CACHE_S=%s):\n' "$C"
        printf '#   %s\n' "${MEASURED[@]}"
    fi
    printf '%d passed, %d failed\n' "$PASS" "$FAIL"
    if ((FAIL > 0)); then exit 1; fi
    exit 0
}
trap finish EXIT
trap 'restore_output; nok "interrupted (signal or ${BUDGET_S}s budget)"; exit 143' INT TERM

# The whole run is bounded: past the budget we get SIGTERM, then teardown.
# shellcheck disable=SC2016  # expanded when the trap fires
(
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$BUDGET_S" &
    sp=$!
    wait "$sp" && kill -TERM $$
) >/dev/null 2>&1 8>&- 9>&- &
WATCHDOG=$!

T_START=$(now_ms)
cd / # nothing below may write relative to the caller's directory

# ---------------------------------------------------------------- tests ---

t_external_mode() {
    local a b rc
    a=$(mktemp -d) b=$(mktemp -d)
    (
        NFSUP_TEST_MOUNTS="$a $b"
        fleet_up 2 2>/dev/null || exit 1
        [ "$FLEET_N" = 2 ] && [ "${FLEET_MNT[1]}" = "$a" ] && [ "${FLEET_MNT[2]}" = "$b" ] &&
            [ "$FLEET_EXPORT" = "$a" ] || exit 1
        rc=0
        fleet_link_down 1 2>/dev/null || rc=$?
        [ "$rc" = 2 ] || exit 1
        rc=0
        fleet_mount_hang 2 2>/dev/null || rc=$?
        [ "$rc" = 2 ] || exit 1
        fleet_exec 2 true || exit 1
        fleet_down || exit 1
        [ -d "$a" ] && [ -d "$b" ] # external mounts are never removed
    )
    rc=$?
    rmdir "$a" "$b"
    return "$rc"
}
check "NFSUP_TEST_MOUNTS: external mounts used as-is, faults return 2" t_external_mode

check "fleet_deps: openssh-server sshfs fuse3 iproute2 present" fleet_deps

# a fleet whose owning shell is SIGKILLed is found and removed by fleet_gc
t_gc() {
    local out dir runid
    out=$(bash -c 'source "$1" && fleet_up 1 2>/dev/null && echo "$FLEET_DIR $FLEET_RUNID" && kill -KILL $$' \
        _ "$HERE/fleet.sh" 8>&- 9>&-) || true
    read -r dir runid <<<"$out"
    [ -n "$dir" ] && [ -d "$dir" ] || return 1
    awk -v m="$dir/mnt/h1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo || return 1
    [[ "$(ip netns list)" == *"nfsup-$runid-h1"* ]] || return 1
    fleet_gc 2>/dev/null || return 1
    [ ! -e "$dir" ] || return 1
    # (no `! A | grep -q`: with pipefail an early-exiting grep can SIGPIPE A)
    # shellcheck disable=SC2143
    [ -z "$(ip netns list | grep -F "nfsup-$runid-")" ] || return 1
    # shellcheck disable=SC2143
    [ -z "$(ip -o link show | grep -F "nf${runid}r")" ] || return 1
    [ -z "$(awk -v p="$dir" 'index($5, p) == 1' /proc/self/mountinfo)" ] || return 1
    [ -z "$(pgrep -f -- "$dir" || true)" ]
}
check "fleet_gc removes a fleet whose owner was SIGKILLed" t_gc

t0=$(now_ms)
if ! fleet_up "$HOSTS"; then
    nok "fleet_up $HOSTS"
    exit 1
fi
ok "fleet_up $HOSTS ($(($(now_ms) - t0)) ms)"
SAVED_DIR=$FLEET_DIR SAVED_RUNID=$FLEET_RUNID SAVED_SSHD=$FLEET_SSHD_PID
measure "fleet_up $HOSTS hosts: $(($(now_ms) - t0)) ms"

t_mounts() {
    local i
    [ "$FLEET_N" = "$HOSTS" ] || return 1
    for ((i = 1; i <= HOSTS; i++)); do
        awk -v m="$(mnt "$i")" '$5 == m && $0 ~ / - fuse\.sshfs / { f = 1 } END { exit !f }' \
            /proc/self/mountinfo || return 1
    done
    # a file placed on the server side is seen by every host
    echo server-side >"$FLEET_EXPORT/marker"
    for ((i = 1; i <= HOSTS; i++)); do
        [ "$(bcat "$(mnt "$i")/marker")" = server-side ] || return 1
    done
}
check "all $HOSTS hosts mount the one export (fuse.sshfs)" t_mounts

# traffic of host i really crosses host i's namespace and veth
t_netns() {
    local i j ino root_ino sp tp conns before=() after=()
    root_ino=$(pid_netns $$)
    for ((i = 1; i <= HOSTS; i++)); do
        ino=$(netns_inode "${FLEET_NS[i]}")
        sp=${FLEET_SSHFS_PID[i]}
        [ "$(cat "/proc/$sp/comm")" = sshfs ] || { echo "# h$i: $sp is not sshfs"; return 1; }
        [ "$(pid_netns "$sp")" = "$ino" ] || { echo "# h$i: sshfs not in ${FLEET_NS[i]}"; return 1; }
        [ "$ino" != "$root_ino" ] || return 1
        tp=$(transport_pid "$i") || { echo "# h$i: no ssh transport in netns"; return 1; }
        [[ "$(tr '\0' ' ' <"/proc/$tp/cmdline")" == *"@${FLEET_SRV_ADDR[i]} "* ]] || return 1
        conns=$(nsenter --net="/run/netns/${FLEET_NS[i]}" ss -Htn state established \
            "( dst ${FLEET_SRV_ADDR[i]} and dport = :${FLEET_SSH_PORT} )")
        [[ "$conns" == *"${FLEET_HOST_ADDR[i]}:"* ]] || { echo "# h$i: no TCP conn from ${FLEET_HOST_ADDR[i]}"; return 1; }
    done
    # 256 KiB written through host i must show up on host i's veth only
    for ((i = 1; i <= HOSTS; i++)); do
        for ((j = 1; j <= HOSTS; j++)); do before[j]=$(veth_bytes "$j"); done
        fleet_timeout 10 dd if=/dev/urandom of="$(mnt "$i")/bytes-h$i" bs=64k count=4 conv=fsync status=none ||
            return 1
        for ((j = 1; j <= HOSTS; j++)); do after[j]=$(veth_bytes "$j"); done
        for ((j = 1; j <= HOSTS; j++)); do
            if ((j == i)); then
                ((after[j] - before[j] >= 262144)) || { echo "# h$i: veth $j grew only $((after[j] - before[j]))"; return 1; }
            else
                ((after[j] - before[j] < 65536)) || { echo "# h$i: veth $j grew $((after[j] - before[j]))"; return 1; }
            fi
        done
        cmp -s "$FLEET_EXPORT/bytes-h$i" <(bcat "$(mnt "$((i % HOSTS + 1))")/bytes-h$i" 10) || return 1
    done
}
check "each host's sshfs+ssh live in its own netns; its bytes cross only its veth" t_netns

# fleet_gc run from another process must leave a live fleet alone
t_gc_live() {
    local i nsl
    # shellcheck disable=SC2016  # $1 is expanded by the inner bash
    env -u FLEET_DIR -u FLEET_RUNID bash -c 'source "$1" && fleet_gc' _ "$HERE/fleet.sh" 2>/dev/null 8>&- 9>&- ||
        return 1
    [ -d "$FLEET_DIR" ] && [ -f "$FLEET_DIR/state" ] || return 1
    nsl=$(ip netns list)
    for ((i = 1; i <= HOSTS; i++)); do
        grep -qw -- "${FLEET_NS[i]}" <<<"$nsl" || return 1
        kill -0 "${FLEET_SSHFS_PID[i]}" || return 1
        [ "$(bcat "$(mnt "$i")/marker")" = server-side ] || return 1
    done
    kill -0 "$FLEET_SSHD_PID"
}
check "fleet_gc leaves a live fleet alone" t_gc_live

t_exec() {
    local out
    out=$(fleet_exec 2 ip -4 -o addr show dev eth0) || return 1
    [[ "$out" == *" ${FLEET_HOST_ADDR[2]}/30 "* ]] || return 1
    [ "$(fleet_exec 2 readlink /proc/self/ns/net | tr -dc 0-9)" = "$(netns_inode "${FLEET_NS[2]}")" ] || return 1
    # root mount namespace kept: the mounts are visible from inside
    [ "$(FLEET_EXEC_TIMEOUT=5 fleet_exec 2 cat "$(mnt 2)/marker")" = server-side ] || return 1
    # shellcheck disable=SC2016  # expanded inside the host
    [ "$(fleet_exec 3 sh -c 'echo $FLEET_HOST')" = 3 ]
}
check "fleet_exec runs in the host netns, keeps the mount namespace" t_exec

# --- visibility of a new file: stat on h3 (after a negative lookup) and
#     directory listing on h4 (after the listing was cached)
t_visible() {
    local name t0 t_stat="" t_ls="" deadline listing
    name=vis-$RANDOM
    bstat "$(mnt 3)/$name" && return 1 # negative lookup now cached on h3
    fleet_timeout 3 ls "$(mnt 4)" >/dev/null || return 1
    bwrite "hello from h1" "$(mnt 1)/$name" || return 1
    t0=$(now_ms)
    deadline=$((t0 + (C + 2) * 1000))
    while [ -z "$t_stat" ] || [ -z "$t_ls" ]; do
        if [ -z "$t_stat" ] && bstat "$(mnt 3)/$name" 2; then t_stat=$(($(now_ms) - t0)); fi
        if [ -z "$t_ls" ]; then
            listing=$(fleet_timeout 2 ls "$(mnt 4)" 2>/dev/null) || listing=""
            if grep -qx -- "$name" <<<"$listing"; then t_ls=$(($(now_ms) - t0)); fi
        fi
        (($(now_ms) > deadline)) && break
        sleep 0.05
    done
    measure "new file visible: h3 stat ${t_stat:-TIMEOUT} ms (after negative lookup), h4 readdir ${t_ls:-TIMEOUT} ms (after cached listing)"
    [ -n "$t_stat" ] && [ -n "$t_ls" ] || return 1
    [ "$(bcat "$(mnt 3)/$name")" = "hello from h1" ] || return 1
    fleet_wait_visible 2 "$name" $((C + 2))
}
check "file written on h1 visible on h3 (stat) and h4 (readdir) within $((C + 2)) s" t_visible

t_delete() {
    local name t0 ms
    name=del-$RANDOM
    bwrite x "$(mnt 1)/$name" || return 1
    fleet_wait_visible 2 "$name" $((C + 2)) || return 1
    bstat "$(mnt 2)/$name" || return 1 # positive entry cached on h2
    fleet_timeout 3 rm -- "$(mnt 1)/$name" || return 1
    t0=$(now_ms)
    fleet_wait_gone 2 "$name" $((2 * C + 5)) || { measure "deleted file still on h2 after $((2 * C + 5)) s"; return 1; }
    ms=$(($(now_ms) - t0))
    measure "deleted file gone on h2 after $ms ms"
}
check "file deleted on h1 disappears on h2" t_delete

# rename over an existing file (the usual atomic-replace) propagates
t_rename() {
    local t0
    bwrite v1 "$(mnt 1)/cfg" || return 1
    fleet_wait_visible 4 cfg $((C + 2)) || return 1
    [ "$(bcat "$(mnt 4)/cfg")" = v1 ] || return 1
    bwrite v2 "$(mnt 1)/cfg.tmp" || return 1
    fleet_timeout 3 mv -f -- "$(mnt 1)/cfg.tmp" "$(mnt 1)/cfg" || return 1
    t0=$(now_ms)
    until [ "$(bcat "$(mnt 4)/cfg")" = v2 ]; do
        (($(now_ms) - t0 > (C + 2) * 1000)) && return 1
        sleep 0.1
    done
    measure "rename-over on h1 seen by h4 after $(($(now_ms) - t0)) ms"
    [ ! -e "$FLEET_EXPORT/cfg.tmp" ] && [ "$(cat "$FLEET_EXPORT/cfg")" = v2 ]
}
check "rename over an existing file on h1 is seen on h4" t_rename

# exclusive create / mkdir are decided by the server, so they are atomic
# across hosts (what lock-free protocols on NFS rely on).  POSIX/flock locks
# are NOT: FUSE/sshfs keeps them local to each mount -- recorded as a note.
t_atomic() {
    local name rc2=0 lk
    name=excl-$RANDOM
    # shellcheck disable=SC2016  # $1 is expanded by the inner sh
    fleet_timeout 3 sh -c 'set -C; echo h1 > "$1"' _ "$(mnt 1)/$name" 2>/dev/null || return 1
    # shellcheck disable=SC2016
    fleet_timeout 3 sh -c 'set -C; echo h2 > "$1"' _ "$(mnt 2)/$name" 2>/dev/null || rc2=$?
    ((rc2 != 0)) && [ "$(cat "$FLEET_EXPORT/$name")" = h1 ] || return 1
    fleet_timeout 3 mkdir "$(mnt 3)/$name.d" || return 1
    ! fleet_timeout 3 mkdir "$(mnt 4)/$name.d" 2>/dev/null || return 1
    lk="$(mnt 1)/$name.lock"
    fleet_timeout 3 touch "$lk" || return 1
    fleet_timeout 10 flock -n "$lk" sleep 2 &
    sleep 0.5
    if fleet_timeout 3 flock -n "$(mnt 2)/$name.lock" true; then
        measure "NOTE: flock/fcntl locks are per mount (h2 got the lock h1 holds): not cluster-wide like NFS"
    else
        measure "flock/fcntl locks are shared across hosts"
    fi
    wait $! || true
}
check "O_EXCL create and mkdir are exclusive across hosts" t_atomic

# --- client hang
t_hang() {
    local t0 ms rc=0
    fleet_mount_hang 2 || return 1
    t0=$(now_ms)
    fleet_timeout 3 stat -- "$(mnt 2)/hang-probe-$RANDOM" >/dev/null 2>&1 || rc=$?
    ms=$(($(now_ms) - t0))
    measure "frozen h2: stat killed after $ms ms (rc=$rc)"
    if ((rc == 0 || ms < 2500)); then fleet_mount_resume 2; return 1; fi
    if ! bwrite "h1 alive" "$(mnt 1)/hang-h1" 5 || [ "$(bcat "$(mnt 1)/hang-h1")" != "h1 alive" ]; then
        fleet_mount_resume 2
        return 1
    fi
    fleet_mount_resume 2 || return 1
    t0=$(now_ms)
    fleet_wait_visible 2 hang-h1 10 || return 1
    bwrite "h2 back" "$(mnt 2)/hang-h2" 5 || return 1
    measure "h2 usable again $(($(now_ms) - t0)) ms after resume"
    [ "$(cat "$FLEET_EXPORT/hang-h2")" = "h2 back" ]
}
check "fleet_mount_hang 2 blocks h2 (timeout 3 stat fails) while h1 works; resume restores h2" t_hang

# --- link cut
t_link() {
    local name t0 ms rc1=0 rc2=0 old_tp new_tp
    old_tp=$(transport_pid 3) || return 1
    fleet_link_down 3 || return 1
    t0=$(now_ms)
    name=link-$RANDOM
    bwrite "written while h3 is cut off" "$(mnt 1)/$name" || { fleet_link_up 3; return 1; }
    fleet_timeout 5 stat -- "$(mnt 3)/$name" >/dev/null 2>&1 || rc1=$?
    bwrite x "$(mnt 3)/$name.h3" 5 || rc2=$?
    measure "h3 cut: stat rc=$rc1, create rc=$rc2 (137 = hung and killed by timeout, 1/2 = I/O error)"
    # the rest of the fleet is unaffected
    bstat "$(mnt 4)/$name" 3 || { fleet_link_up 3; return 1; }
    # keep the wire cut long enough for ssh to declare the link dead, so the
    # reconnect path is exercised
    while (($(now_ms) - t0 < (FLEET_ALIVE_INTERVAL * (FLEET_ALIVE_COUNT + 1) + 1) * 1000)); do sleep 0.2; done
    kill -0 "${FLEET_SSHFS_PID[3]}" || { fleet_link_up 3; return 1; }
    fleet_link_up 3 || return 1
    if ((rc1 == 0 || rc2 == 0)); then return 1; fi
    t0=$(now_ms)
    fleet_wait_visible 3 "$name" 30 || { measure "h3 not recovered 30 s after link up"; return 1; }
    ms=$(($(now_ms) - t0))
    new_tp=$(transport_pid 3) || return 1
    measure "h3 recovered $ms ms after link up (ssh transport pid $old_tp -> $new_tp)"
    [ "$new_tp" != "$old_tp" ] || return 1
    bwrite "h3 writes again" "$(mnt 3)/$name.back" 5 || return 1
    [ "$(bcat "$(mnt 1)/$name.back" 5)" = "h3 writes again" ] && [ ! -e "$FLEET_EXPORT/$name.h3" ]
}
check "fleet_link_down 3 makes h3 unusable; after fleet_link_up 3 it reconnects within 30 s" t_link

# --- server freeze (long enough that clients' ssh give up and reconnect)
t_server() {
    local t0 ms rc=0 i worst=0
    fleet_server_stop || return 1
    t0=$(now_ms)
    fleet_timeout 3 stat -- "$(mnt 1)/srv-probe-$RANDOM" >/dev/null 2>&1 || rc=$?
    ((rc != 0)) || { fleet_server_start; return 1; }
    while (($(now_ms) - t0 < (FLEET_ALIVE_INTERVAL * (FLEET_ALIVE_COUNT + 1) + 1) * 1000)); do sleep 0.2; done
    echo back >"$FLEET_EXPORT/srv-back"
    fleet_server_start || return 1
    t0=$(now_ms)
    for ((i = 1; i <= HOSTS; i++)); do
        fleet_wait_visible "$i" srv-back 30 || { measure "h$i not recovered 30 s after server start"; return 1; }
        ms=$(($(now_ms) - t0))
        ((ms > worst)) && worst=$ms
    done
    measure "server frozen: h1 stat rc=$rc; all hosts usable $worst ms after server start"
}
check "fleet_server_stop freezes the server for all hosts; fleet_server_start recovers them" t_server

measure "total test time before teardown: $(($(now_ms) - T_START)) ms"
# finish (EXIT trap) tears down, verifies the teardown and prints the summary
