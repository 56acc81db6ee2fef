# shellcheck shell=bash
# shellcheck disable=SC2034  # FLEET_* globals are consumed by the sourcing script
#
# fleet.sh - simulated multi-host "shared NFS export" fleet for nfsup tests.
#
# Source this file, then:
#
#   fleet_deps                 ensure openssh-server sshfs fuse3 iproute2
#   fleet_up N                 N hosts, each = own netns + own sshfs mount of
#                              ONE exported directory ($FLEET_EXPORT)
#   fleet_down                 tear everything down (idempotent, trap-safe)
#   fleet_exec i CMD...        run CMD in host i's network namespace only
#   fleet_link_down i / fleet_link_up i        cut / restore host i's wire
#   fleet_server_stop / fleet_server_start     freeze / thaw the file server
#   fleet_mount_hang i / fleet_mount_resume i  freeze / thaw host i's client
#   fleet_wait_visible i PATH SECONDS          poll until PATH exists on host i
#   fleet_wait_gone i PATH SECONDS             poll until PATH is gone on host i
#   fleet_probe i PATH [SECONDS]               bounded stat of PATH on host i
#   fleet_timeout SECONDS CMD...               timeout -s KILL, minus the
#                                              shell's "Killed" chatter
#   fleet_gc                                   clean up fleets whose owning
#                                              shell died (e.g. SIGKILLed CI)
#
# Variables set by fleet_up (arrays are 1-based):
#   FLEET_DIR FLEET_RUNID FLEET_N FLEET_EXPORT FLEET_EXTERNAL (exported)
#   FLEET_MNT_LIST (exported, space separated mount points)
#   FLEET_MNT[i] FLEET_NS[i] FLEET_VETH[i] FLEET_SRV_ADDR[i] FLEET_HOST_ADDR[i]
#   FLEET_SSHFS_PID[i] FLEET_SSHD_PID FLEET_SSH_PORT
#
# Tunables (set before fleet_up):
#   FLEET_CACHE_S=3          per-layer metadata cache time (s) of every mount
#   FLEET_ALIVE_INTERVAL=2   ssh ServerAliveInterval (s)
#   FLEET_ALIVE_COUNT=3      ssh ServerAliveCountMax
#   FLEET_CONNECT_TIMEOUT=5  ssh ConnectTimeout (s), bounds each reconnect try
#   FLEET_PORT=2222          first sshd port tried (next free one is used)
#   FLEET_SSHFS_EXTRA_OPTS=  extra "-o" options appended for every mount
#   FLEET_EXEC_TIMEOUT=      if >0, fleet_exec runs CMD under timeout -s KILL
#   NFSUP_TEST_MOUNTS="a b"  use these existing mounts (one per host) instead
#                            of building the simulated fleet
#
# Every harness-internal command that touches a mount which may hang is
# wrapped in `timeout -s KILL`.  Wrap your own accesses too (fleet_timeout):
# a frozen client/server or a cut link makes them block.
#
# What a simulated host looks like / how it differs from NFS:
#   * netns nfsup-<runid>-h<i>, eth0 = 10.<o>.<i>.2/30; the root-namespace end
#     nf<runid>r<i> = 10.<o>.<i>.1 is where sshd listens (o = 213, or the
#     next 10.x/16 not in use).  Only the network is per host: mounts,
#     hostname, pids and files are shared with the caller.
#   * metadata caching (kernel entry/attr/negative + sshfs dir listings) is
#     FLEET_CACHE_S per layer; measured staleness: ~FLEET_CACHE_S for stat /
#     lookup / deletion, up to FLEET_CACHE_S+1 for readdir (sshfs rounds to
#     whole seconds).  File data is re-read on every open (no kernel_cache),
#     i.e. close-to-open like NFS.
#   * O_EXCL create, mkdir, link, rename(over) are atomic on the server.
#     flock/fcntl locks are NOT shared between hosts (FUSE keeps them per
#     mount) -- unlike NFS.
#   * a dead link/server makes accesses block until ssh gives up
#     (ServerAlive*: ~FLEET_ALIVE_INTERVAL*FLEET_ALIVE_COUNT s), then fail
#     with EIO while reconnect attempts fail (NFS "hard" would just block);
#     the mount itself survives and reconnects on the next access.

: "${FLEET_CACHE_S:=3}"
: "${FLEET_ALIVE_INTERVAL:=2}"
: "${FLEET_ALIVE_COUNT:=3}"
: "${FLEET_CONNECT_TIMEOUT:=5}"
: "${FLEET_PORT:=2222}"
: "${FLEET_SSHFS_EXTRA_OPTS:=}"
: "${FLEET_EXEC_TIMEOUT:=}"
: "${FLEET_DIR:=}"
: "${FLEET_RUNID:=}"
: "${FLEET_N:=0}"
: "${FLEET_EXPORT:=}"
: "${FLEET_EXTERNAL:=0}"
: "${FLEET_MNT_LIST:=}"
: "${FLEET_SSHD_PID:=}"
: "${FLEET_SSH_PORT:=}"
: "${FLEET_NET_OCTET:=}"

# (re-sourcing must not wipe the state of a running fleet)
for _fleet_v in FLEET_MNT FLEET_NS FLEET_VETH FLEET_SRV_ADDR FLEET_HOST_ADDR FLEET_SSHFS_PID; do
    declare -p "$_fleet_v" >/dev/null 2>&1 || declare -ga "$_fleet_v=()"
done
unset _fleet_v

# sshd refuses more than 16 listen sockets (MAX_LISTEN_SOCKS in sshd.c).
_FLEET_MAX_HOSTS=16
_FLEET_NETNS_PREFIX=nfsup-

_fleet_log() { printf '[fleet] %s\n' "$*" >&2; }
_fleet_err() { printf '[fleet] ERROR: %s\n' "$*" >&2; }
_fleet_now_ms() { date +%s%3N; }

# fleet_timeout SECONDS CMD...: run CMD under `timeout -s KILL`.  Same exit
# status (137 when killed), CMD keeps its stderr; only bash's own "Killed"
# job report (timeout kills its whole process group, itself included) is
# dropped.
fleet_timeout() {
    local s=${1:-}
    shift || true
    { timeout -s KILL "$s" "$@" 2>&3 3>&-; } 3>&2 2>/dev/null
}

# start time (clock ticks since boot) of a pid, to tell pid reuse apart
_fleet_pid_start() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    local -a f
    read -r -a f <<<"${st##*) }"
    printf '%s\n' "${f[19]:-}"
}

# ---------------------------------------------------------------- deps ----

fleet_deps() {
    local -a missing=()
    local pkg cmd w
    # package:command-that-proves-it-is-installed
    local -a want=(
        "openssh-server:/usr/sbin/sshd"
        "openssh-client:ssh-keygen"
        "sshfs:sshfs"
        "fuse3:fusermount3"
        "iproute2:ip"
        "iproute2:ss"
        "procps:pgrep"
        "util-linux:nsenter"
        "coreutils:timeout"
    )
    _fleet_missing_pkgs() {
        missing=()
        for w in "${want[@]}"; do
            pkg=${w%%:*} cmd=${w#*:}
            if ! command -v "$cmd" >/dev/null 2>&1; then
                case " ${missing[*]} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
            fi
        done
    }
    _fleet_missing_pkgs
    if ((${#missing[@]} > 0)); then
        if [ "$(id -u)" -ne 0 ]; then
            _fleet_err "missing packages: ${missing[*]} -- run as root, or: apt-get install -y ${missing[*]}"
            return 1
        fi
        _fleet_log "installing missing packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
            apt-get update >&2 || _fleet_err "apt-get update failed"
        fi
        if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
            apt-get update >&2 || true
            apt-get install -y --no-install-recommends "${missing[@]}" >&2 || true
        fi
        _fleet_missing_pkgs
        if ((${#missing[@]} > 0)); then
            _fleet_err "still missing after apt-get install: ${missing[*]}"
            return 1
        fi
    fi
    if [ -z "${NFSUP_TEST_MOUNTS:-}" ]; then
        if [ "$(id -u)" -ne 0 ]; then
            _fleet_err "the simulated fleet needs root (netns, veth, sshd); set NFSUP_TEST_MOUNTS to use existing mounts"
            return 1
        fi
        if [ ! -c /dev/fuse ]; then
            _fleet_err "/dev/fuse is missing (modprobe fuse, or give the container access to it)"
            return 1
        fi
    fi
    return 0
}

# ------------------------------------------------------------- helpers ----

_fleet_check_host() {
    local i=${1:-}
    if ! [[ "$i" =~ ^[0-9]+$ ]] || ((i < 1 || i > FLEET_N)); then
        _fleet_err "bad host index '${i}' (fleet has ${FLEET_N} hosts)"
        return 1
    fi
}

_fleet_external_refuse() {
    if [ "${FLEET_EXTERNAL}" = 1 ]; then
        _fleet_err "${1}: unsupported on external mounts"
        return 0
    fi
    return 1
}

# Print all descendants of the given pids (not the pids themselves).
_fleet_descendants() {
    local -a queue=("$@") next=()
    local p c
    while ((${#queue[@]} > 0)); do
        next=()
        for p in "${queue[@]}"; do
            for c in $(pgrep -P "$p" 2>/dev/null || true); do
                printf '%s\n' "$c"
                next+=("$c")
            done
        done
        queue=("${next[@]}")
    done
}

# Is mountpoint $1 present in our mount namespace?
_fleet_is_mounted() {
    awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# Does /proc/PID/cmdline contain STRING?
_fleet_cmdline_has() {
    local cmd
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
    [[ "$cmd" == *"$2"* ]]
}

# pid of the sshd listener of this run (verified against its command line).
_fleet_sshd_listener() {
    local pid=${FLEET_SSHD_PID:-}
    if [ -z "$pid" ] && [ -n "${FLEET_DIR}" ] && [ -r "${FLEET_DIR}/sshd.pid" ]; then
        pid=$(cat "${FLEET_DIR}/sshd.pid" 2>/dev/null || true)
    fi
    [ -n "$pid" ] || return 1
    _fleet_cmdline_has "$pid" "${FLEET_DIR}/sshd_config" || return 1
    printf '%s\n' "$pid"
}

# All sshd processes of this run: the listener, its descendants, and any
# re-exec'ed child still carrying our config path on its command line.
_fleet_sshd_all() {
    local l p
    {
        if l=$(_fleet_sshd_listener); then
            printf '%s\n' "$l"
            _fleet_descendants "$l"
        fi
        if [ -n "${FLEET_DIR}" ]; then
            for p in $(pgrep -x sshd 2>/dev/null || true); do
                if _fleet_cmdline_has "$p" "${FLEET_DIR}/sshd_config"; then
                    printf '%s\n' "$p"
                    _fleet_descendants "$p"
                fi
            done
        fi
    } | sort -un
}

# Netns names belonging to this run (recorded or discovered by run id).
_fleet_our_netns() {
    [ -n "${FLEET_RUNID}" ] || return 0
    ip netns list 2>/dev/null | awk -v p="${_FLEET_NETNS_PREFIX}${FLEET_RUNID}-h" \
        'index($1, p) == 1 { print $1 }'
}

_fleet_veth_name() { printf 'nf%sr%s' "${FLEET_RUNID}" "$1"; }

_fleet_pick_octet() {
    local o used
    used=$(ip -4 -o addr show 2>/dev/null; ip -4 route show table all 2>/dev/null)
    for o in $(seq 213 250); do
        if ! grep -qE "(^|[^0-9.])10\.$o\." <<<"$used"; then
            printf '%s\n' "$o"
            return 0
        fi
    done
    return 1
}

_fleet_pick_port() {
    local p
    for ((p = FLEET_PORT; p < FLEET_PORT + 200; p++)); do
        if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    return 1
}

# ------------------------------------------------------------------ up ----

fleet_up() {
    local n=${1:-}
    if [ -n "${FLEET_DIR}" ]; then
        _fleet_err "fleet already up (${FLEET_DIR}); call fleet_down first"
        return 1
    fi
    if [ -n "${NFSUP_TEST_MOUNTS:-}" ]; then
        _fleet_up_external "$n"
        return
    fi
    if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > _FLEET_MAX_HOSTS)); then
        _fleet_err "usage: fleet_up N (1..${_FLEET_MAX_HOSTS})"
        return 1
    fi
    if ! _fleet_up_sim "$n"; then
        _fleet_err "fleet_up failed; tearing down the partial fleet"
        fleet_down || true
        return 1
    fi
}

_fleet_up_external() {
    local n=$1 m i=0
    local -a mounts
    read -r -a mounts <<<"${NFSUP_TEST_MOUNTS}"
    if [ -z "$n" ]; then n=${#mounts[@]}; fi
    if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > ${#mounts[@]})); then
        _fleet_err "fleet_up $n: NFSUP_TEST_MOUNTS lists only ${#mounts[@]} mount(s)"
        return 1
    fi
    FLEET_DIR=$(mktemp -d /tmp/nfsup-fleet-ext.XXXXXX) || return 1
    FLEET_RUNID=ext
    FLEET_EXTERNAL=1
    FLEET_N=$n
    FLEET_MNT=() FLEET_NS=() FLEET_VETH=() FLEET_SRV_ADDR=() FLEET_HOST_ADDR=() FLEET_SSHFS_PID=()
    for m in "${mounts[@]:0:n}"; do
        i=$((i + 1))
        if ! fleet_timeout 10 test -d "$m"; then
            _fleet_err "NFSUP_TEST_MOUNTS entry '$m' is not a reachable directory"
            rm -rf "${FLEET_DIR}"
            FLEET_DIR=""
            return 1
        fi
        FLEET_MNT[i]=$m
        FLEET_NS[i]=""
    done
    FLEET_EXPORT=${FLEET_MNT[1]}
    FLEET_MNT_LIST="${FLEET_MNT[*]}"
    export FLEET_DIR FLEET_RUNID FLEET_N FLEET_EXPORT FLEET_EXTERNAL FLEET_MNT_LIST FLEET_CACHE_S
    _fleet_log "using ${n} external mount(s): ${FLEET_MNT_LIST}"
}

# Runs with explicit error checks (it is called in an `if`, so errexit is
# off in here by bash rules).
_fleet_up_sim() {
    local n=$1 i ns veth srv host octet port d sshd_bin usepam key
    sshd_bin=$(command -v sshd || echo /usr/sbin/sshd)
    for key in sshfs fusermount3 ip nsenter ssh-keygen timeout pgrep ss; do
        command -v "$key" >/dev/null || { _fleet_err "missing $key (run fleet_deps)"; return 1; }
    done
    [ -x "$sshd_bin" ] || { _fleet_err "missing sshd (run fleet_deps)"; return 1; }

    FLEET_RUNID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    [ ${#FLEET_RUNID} -eq 6 ] || { _fleet_err "cannot make run id"; return 1; }
    FLEET_DIR=$(mktemp -d "/tmp/nfsup-fleet-${FLEET_RUNID}.XXXXXX") || { FLEET_DIR=""; return 1; }
    export FLEET_DIR FLEET_RUNID
    d=$FLEET_DIR
    FLEET_EXTERNAL=0
    FLEET_N=$n
    FLEET_EXPORT=$d/export
    FLEET_MNT=() FLEET_NS=() FLEET_VETH=() FLEET_SRV_ADDR=() FLEET_HOST_ADDR=() FLEET_SSHFS_PID=()
    mkdir -p "$d/export" "$d/mnt" "$d/ssh" "$d/log" || return 1
    chmod 0755 "$d/export" || return 1

    octet=$(_fleet_pick_octet) || { _fleet_err "no free 10.x.0.0/16 in 10.213-250"; return 1; }
    port=$(_fleet_pick_port) || { _fleet_err "no free TCP port from ${FLEET_PORT}"; return 1; }
    FLEET_NET_OCTET=$octet
    FLEET_SSH_PORT=$port
    # owner = this shell (pid + start time), so fleet_gc can tell whether
    # the run was abandoned; ($BASHPID must be read outside any $(...))
    local owner=$BASHPID
    printf 'runid=%s\noctet=%s\nport=%s\nn=%s\nowner=%s\nowner_start=%s\n' \
        "$FLEET_RUNID" "$octet" "$port" "$n" "$owner" "$(_fleet_pid_start "$owner")" >"$d/state"

    # --- network: one netns + veth pair + /30 per host
    for ((i = 1; i <= n; i++)); do
        ns="${_FLEET_NETNS_PREFIX}${FLEET_RUNID}-h$i"
        veth=$(_fleet_veth_name "$i")
        srv="10.$octet.$i.1"
        host="10.$octet.$i.2"
        FLEET_NS[i]=$ns FLEET_VETH[i]=$veth FLEET_SRV_ADDR[i]=$srv FLEET_HOST_ADDR[i]=$host
        ip netns add "$ns" || { _fleet_err "ip netns add $ns"; return 1; }
        ip link add "$veth" type veth peer name "nf${FLEET_RUNID}n$i" netns "$ns" ||
            { _fleet_err "ip link add $veth"; return 1; }
        # no IPv6 chatter on our wires
        sysctl -qw "net.ipv6.conf.$veth.disable_ipv6=1" >/dev/null 2>&1 || true
        ip -n "$ns" link set "nf${FLEET_RUNID}n$i" name eth0 || return 1
        nsenter --net="/run/netns/$ns" sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1 >/dev/null 2>&1 || true
        ip addr add "$srv/30" dev "$veth" || return 1
        ip link set "$veth" up || return 1
        ip -n "$ns" addr add "$host/30" dev eth0 || return 1
        ip -n "$ns" link set lo up || return 1
        ip -n "$ns" link set eth0 up || return 1
    done

    # --- keys
    ssh-keygen -q -t ed25519 -N '' -C "nfsup-fleet-$FLEET_RUNID-server" -f "$d/ssh/host_ed25519" </dev/null || return 1
    ssh-keygen -q -t ed25519 -N '' -C "nfsup-fleet-$FLEET_RUNID-client" -f "$d/ssh/client_ed25519" </dev/null || return 1
    printf 'restrict %s\n' "$(cat "$d/ssh/client_ed25519.pub")" >"$d/ssh/authorized_keys" || return 1
    printf 'nfsup-fleet-server %s\n' "$(cut -d' ' -f1,2 "$d/ssh/host_ed25519.pub")" >"$d/ssh/known_hosts" || return 1
    chmod 0600 "$d/ssh/authorized_keys" "$d/ssh/client_ed25519" "$d/ssh/host_ed25519" || return 1

    # --- sshd (root namespace, listening on every root-side veth address)
    # With UsePAM=no, sshd refuses accounts whose password is locked ("!");
    # only then fall back to PAM.
    usepam=no
    if [ "$(passwd -S root 2>/dev/null | awk '{print $2}')" = L ]; then usepam=yes; fi
    {
        printf '# nfsup fleet %s\n' "$FLEET_RUNID"
        for ((i = 1; i <= n; i++)); do printf 'ListenAddress %s:%s\n' "${FLEET_SRV_ADDR[i]}" "$port"; done
        cat <<EOF
AddressFamily inet
HostKey $d/ssh/host_ed25519
PidFile $d/sshd.pid
AuthorizedKeysFile $d/ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM $usepam
StrictModes no
UseDNS no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
ClientAliveInterval 5
ClientAliveCountMax 3
LoginGraceTime 20
MaxStartups 100:30:200
LogLevel INFO
Subsystem sftp internal-sftp
EOF
    } >"$d/sshd_config" || return 1

    # ssh client side, used by every sshfs (and its reconnects)
    cat >"$d/ssh/ssh_config" <<EOF || return 1
Host *
  User root
  Port $port
  AddressFamily inet
  IdentityFile $d/ssh/client_ed25519
  IdentitiesOnly yes
  IdentityAgent none
  HostKeyAlias nfsup-fleet-server
  UserKnownHostsFile $d/ssh/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
  CheckHostIP no
  BatchMode yes
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  ConnectTimeout $FLEET_CONNECT_TIMEOUT
  ConnectionAttempts 1
  TCPKeepAlive no
  ControlMaster no
  ControlPath none
  Compression no
  ForwardAgent no
  ForwardX11 no
  LogLevel ERROR
EOF

    mkdir -p /run/sshd && chmod 0755 /run/sshd || return 1   # privsep dir
    "$sshd_bin" -t -f "$d/sshd_config" >"$d/log/sshd-t.log" 2>&1 ||
        { _fleet_err "sshd config test failed: $(cat "$d/log/sshd-t.log")"; return 1; }
    "$sshd_bin" -f "$d/sshd_config" -E "$d/log/sshd.log" </dev/null >/dev/null 2>&1 ||
        { _fleet_err "sshd failed to start: $(tail -n 5 "$d/log/sshd.log" 2>/dev/null)"; return 1; }
    local deadline=$(($(_fleet_now_ms) + 10000)) listening=0
    while (($(_fleet_now_ms) < deadline)); do
        if [ -s "$d/sshd.pid" ]; then
            FLEET_SSHD_PID=$(cat "$d/sshd.pid")
            listening=$(ss -Hltn "sport = :$port" 2>/dev/null | grep -c "10\.$octet\." || true)
            ((listening >= n)) && break
        fi
        sleep 0.1
    done
    if ((listening < n)); then
        _fleet_err "sshd not listening on all $n addresses: $(tail -n 5 "$d/log/sshd.log" 2>/dev/null)"
        return 1
    fi

    # --- one sshfs per host, started inside the host's netns only
    local opts="reconnect,ServerAliveInterval=$FLEET_ALIVE_INTERVAL,ServerAliveCountMax=$FLEET_ALIVE_COUNT"
    opts+=",dir_cache=yes,dcache_dir_timeout=$FLEET_CACHE_S,dcache_link_timeout=$FLEET_CACHE_S,dcache_stat_timeout=0"
    opts+=",entry_timeout=$FLEET_CACHE_S,attr_timeout=$FLEET_CACHE_S,negative_timeout=$FLEET_CACHE_S"
    # NFS close-to-open: an open() fetches fresh attributes, so a file replaced by rename is
    # read whole. FUSE would otherwise cut reads at the old cached size for attr_timeout;
    # direct_io makes reads go to the server like NFS after open (names and stat stay cached).
    opts+=",direct_io"
    [ -n "$FLEET_SSHFS_EXTRA_OPTS" ] && opts+=",$FLEET_SSHFS_EXTRA_OPTS"
    printf '%s\n' "$opts" >"$d/sshfs_opts"
    for ((i = 1; i <= n; i++)); do
        FLEET_MNT[i]=$d/mnt/h$i
        mkdir -p "${FLEET_MNT[i]}" || return 1
        # nsenter only switches the net namespace (no fork, exec in place):
        # the FUSE mount lands in *our* mount namespace while the ssh TCP
        # connection lives in the host's netns.  -f keeps sshfs in the
        # foreground, and the subshell execs, so $! is sshfs' pid.  Fds the
        # caller has open (test-runner pipes...) are closed first so the
        # long-lived sshfs/ssh never hold them.
        (
            for fd in /proc/"$BASHPID"/fd/*; do
                fd=${fd##*/}
                if ((fd > 2)); then eval "exec $fd>&-"; fi
            done 2>/dev/null
            exec nsenter --net="/run/netns/${FLEET_NS[i]}" -- \
                sshfs -f -F "$d/ssh/ssh_config" \
                -o "$opts,fsname=nfsup-fleet-$FLEET_RUNID-h$i" \
                "root@${FLEET_SRV_ADDR[i]}:$FLEET_EXPORT" "${FLEET_MNT[i]}"
        ) </dev/null >>"$d/log/sshfs-h$i.log" 2>&1 &
        FLEET_SSHFS_PID[i]=$!
        printf '%s\n' "${FLEET_SSHFS_PID[i]}" >"$d/sshfs-h$i.pid"
    done
    for ((i = 1; i <= n; i++)); do
        deadline=$(($(_fleet_now_ms) + 20000))
        until _fleet_is_mounted "${FLEET_MNT[i]}"; do
            if ! kill -0 "${FLEET_SSHFS_PID[i]}" 2>/dev/null; then
                _fleet_err "sshfs for host $i exited: $(tail -n 5 "$d/log/sshfs-h$i.log") / sshd: $(tail -n 3 "$d/log/sshd.log")"
                return 1
            fi
            if (($(_fleet_now_ms) > deadline)); then
                _fleet_err "timeout waiting for mount of host $i"
                return 1
            fi
            sleep 0.1
        done
        if [ "$(cat "/proc/${FLEET_SSHFS_PID[i]}/comm" 2>/dev/null)" != sshfs ]; then
            _fleet_err "pid ${FLEET_SSHFS_PID[i]} of host $i is not sshfs"
            return 1
        fi
        fleet_timeout 10 stat -- "${FLEET_MNT[i]}/." >/dev/null ||
            { _fleet_err "mount of host $i not usable"; return 1; }
    done
    FLEET_MNT_LIST="${FLEET_MNT[*]}"
    export FLEET_N FLEET_EXPORT FLEET_EXTERNAL FLEET_MNT_LIST FLEET_CACHE_S
    _fleet_log "up: $n hosts, run $FLEET_RUNID, dir $d, sshd :$port on 10.$octet.<i>.1"
    return 0
}

# ---------------------------------------------------------------- down ----

fleet_down() {
    # Best effort all the way: never abort half-way because the caller runs
    # with errexit/pipefail (we are typically called from an EXIT trap).
    local -
    set +e +o pipefail
    local d=${FLEET_DIR:-} ns p mp veth i
    local -a pids=() nss=()
    if [ -z "$d" ]; then return 0; fi
    case "$d" in
        /tmp/nfsup-fleet-*) ;;
        *) _fleet_err "refusing to tear down unexpected FLEET_DIR '$d'"; return 1 ;;
    esac

    if [ "${FLEET_EXTERNAL}" != 1 ]; then
        mapfile -t nss < <(_fleet_our_netns)
        # 1. thaw everything we may have frozen (server tree, clients)
        mapfile -t pids < <(
            _fleet_sshd_all
            for ns in "${nss[@]}"; do ip netns pids "$ns" 2>/dev/null || true; done
            for i in "${!FLEET_SSHFS_PID[@]}"; do printf '%s\n' "${FLEET_SSHFS_PID[i]}"; done
        )
        for p in "${pids[@]}"; do
            if [ -n "$p" ]; then kill -CONT "$p" 2>/dev/null; fi
        done
        # restore links so nothing is left half-dead while we clean up
        for ((i = 1; i <= FLEET_N; i++)); do
            veth=$(_fleet_veth_name "$i")
            ip link set "$veth" up 2>/dev/null || true
        done

        # 2. detach every mount below the run dir (deepest first)
        while read -r mp; do
            [ -n "$mp" ] || continue
            fleet_timeout 10 fusermount3 -u -z -- "$mp" >/dev/null 2>&1 ||
                fleet_timeout 10 umount -l -- "$mp" >/dev/null 2>&1 ||
                _fleet_err "could not unmount $mp"
        done < <(awk -v p="$d/" 'index($5, p) == 1 { print length($5), $5 }' /proc/self/mountinfo |
            sort -rn | cut -d' ' -f2-)

        # 3. kill every process living in our namespaces (sshfs, its ssh,
        #    leftovers of fleet_exec), then the server
        mapfile -t pids < <(
            for ns in "${nss[@]}"; do ip netns pids "$ns" 2>/dev/null || true; done
            for i in "${!FLEET_SSHFS_PID[@]}"; do
                p=${FLEET_SSHFS_PID[i]}
                [ "$(cat "/proc/$p/comm" 2>/dev/null)" = sshfs ] && printf '%s\n' "$p"
            done
            _fleet_sshd_all
        )
        if ((${#pids[@]} > 0)); then
            for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
            local deadline=$(($(_fleet_now_ms) + 3000)) alive
            while (($(_fleet_now_ms) < deadline)); do
                alive=0
                for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
                ((alive)) || break
                sleep 0.1
            done
            for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
        fi
        # reap our own background children (the sshfs jobs)
        for i in "${!FLEET_SSHFS_PID[@]}"; do
            wait "${FLEET_SSHFS_PID[i]}" 2>/dev/null || true
        done

        # 4. network
        for ((i = 1; i <= _FLEET_MAX_HOSTS; i++)); do
            veth=$(_fleet_veth_name "$i")
            if [ -e "/sys/class/net/$veth" ]; then ip link del "$veth" 2>/dev/null || true; fi
        done
        for ns in "${nss[@]}"; do
            ip netns del "$ns" 2>/dev/null || _fleet_err "could not delete netns $ns"
        done
    fi

    # 5. files (never cross into a still-mounted file system)
    fleet_timeout 30 rm -rf --one-file-system -- "$d" 2>/dev/null ||
        _fleet_err "could not fully remove $d"

    FLEET_DIR="" FLEET_RUNID="" FLEET_N=0 FLEET_EXPORT="" FLEET_EXTERNAL=0 FLEET_MNT_LIST=""
    FLEET_SSHD_PID="" FLEET_SSH_PORT="" FLEET_NET_OCTET=""
    FLEET_MNT=() FLEET_NS=() FLEET_VETH=() FLEET_SRV_ADDR=() FLEET_HOST_ADDR=() FLEET_SSHFS_PID=()
    return 0
}

# Run fleet_down for another (dead) run: locals shadow this shell's globals,
# so a fleet of our own is untouched.
_fleet_down_foreign() {
    local FLEET_DIR=$1 FLEET_RUNID=$2 FLEET_N=0 FLEET_EXTERNAL=0 FLEET_SSHD_PID="" \
        FLEET_EXPORT="" FLEET_MNT_LIST="" FLEET_SSH_PORT="" FLEET_NET_OCTET=""
    local -a FLEET_MNT=() FLEET_NS=() FLEET_VETH=() FLEET_SRV_ADDR=() FLEET_HOST_ADDR=() FLEET_SSHFS_PID=()
    fleet_down
}

# fleet_gc: tear down fleets left behind by shells that died without running
# fleet_down (SIGKILL, OOM, CI job timeout).  Only runs whose owning shell is
# gone are touched, so a live fleet of a concurrent test is left alone.
fleet_gc() {
    local -
    set +e +o pipefail
    local dir runid owner ostart ns cleaned=0
    for dir in /tmp/nfsup-fleet-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f].*; do
        [ -f "$dir/state" ] || continue
        [ "$dir" = "${FLEET_DIR}" ] && continue
        runid=$(sed -n 's/^runid=//p' "$dir/state")
        owner=$(sed -n 's/^owner=//p' "$dir/state")
        ostart=$(sed -n 's/^owner_start=//p' "$dir/state")
        [[ "$runid" =~ ^[0-9a-f]{6}$ ]] || continue
        if [ -n "$owner" ] && [ "$(_fleet_pid_start "$owner")" = "$ostart" ]; then
            continue # owner still running
        fi
        _fleet_log "gc: removing abandoned fleet $runid ($dir)"
        _fleet_down_foreign "$dir" "$runid"
        cleaned=$((cleaned + 1))
    done
    # namespaces whose run directory is already gone
    for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
        [[ "$ns" =~ ^${_FLEET_NETNS_PREFIX}([0-9a-f]{6})-h[0-9]+$ ]] || continue
        runid=${BASH_REMATCH[1]}
        compgen -G "/tmp/nfsup-fleet-$runid.*" >/dev/null && continue
        _fleet_log "gc: removing orphan netns $ns"
        for owner in $(ip netns pids "$ns" 2>/dev/null); do kill -CONT "$owner"; kill -KILL "$owner"; done 2>/dev/null
        ip link del "nf${runid}r${ns##*-h}" 2>/dev/null
        ip netns del "$ns" 2>/dev/null
        cleaned=$((cleaned + 1))
    done
    _fleet_log "gc: cleaned $cleaned item(s)"
    return 0
}

# ---------------------------------------------------------------- exec ----

fleet_exec() {
    local i=${1:-}
    _fleet_check_host "$i" || return 1
    shift
    (($# > 0)) || { _fleet_err "usage: fleet_exec i CMD..."; return 1; }
    local -a pre=()
    if [[ "${FLEET_EXEC_TIMEOUT}" =~ ^[0-9]+$ ]] && ((FLEET_EXEC_TIMEOUT > 0)); then
        pre=(fleet_timeout "$FLEET_EXEC_TIMEOUT")
    fi
    if [ "${FLEET_EXTERNAL}" = 1 ]; then
        "${pre[@]}" env FLEET_HOST="$i" "$@"
    else
        "${pre[@]}" env FLEET_HOST="$i" nsenter --net="/run/netns/${FLEET_NS[i]}" -- "$@"
    fi
}

# -------------------------------------------------------------- faults ----

# Cut host i's wire: the server-side end of its veth goes down, so the host
# sees NO-CARRIER and its packets vanish (TCP times out, like a real cut).
fleet_link_down() {
    _fleet_external_refuse fleet_link_down && return 2
    _fleet_check_host "${1:-}" || return 1
    ip link set "${FLEET_VETH[$1]}" down
}

fleet_link_up() {
    _fleet_external_refuse fleet_link_up && return 2
    _fleet_check_host "${1:-}" || return 1
    ip link set "${FLEET_VETH[$1]}" up
}

# Freeze the file server: SIGSTOP the sshd listener first (no new children)
# then every descendant (per-connection sshd running internal-sftp).
fleet_server_stop() {
    _fleet_external_refuse fleet_server_stop && return 2
    local l p round
    l=$(_fleet_sshd_listener) || { _fleet_err "sshd of this run is not running"; return 1; }
    kill -STOP "$l" || return 1
    for round in 1 2 3; do
        for p in $(_fleet_descendants "$l"); do kill -STOP "$p" 2>/dev/null || true; done
        [ "$round" = 3 ] || sleep 0.05
    done
    : >"${FLEET_DIR}/server_stopped"
}

fleet_server_start() {
    _fleet_external_refuse fleet_server_start && return 2
    local p
    for p in $(_fleet_sshd_all); do kill -CONT "$p" 2>/dev/null || true; done
    rm -f "${FLEET_DIR}/server_stopped"
    _fleet_sshd_listener >/dev/null || { _fleet_err "sshd of this run is not running"; return 1; }
}

# Freeze host i's sshfs daemon: every access to its mount blocks.
fleet_mount_hang() {
    _fleet_external_refuse fleet_mount_hang && return 2
    _fleet_check_host "${1:-}" || return 1
    kill -STOP "${FLEET_SSHFS_PID[$1]}"
}

fleet_mount_resume() {
    _fleet_external_refuse fleet_mount_resume && return 2
    _fleet_check_host "${1:-}" || return 1
    kill -CONT "${FLEET_SSHFS_PID[$1]}"
}

# ------------------------------------------------------------- polling ----

# fleet_probe i PATH [SECONDS]: bounded stat of PATH (relative to the mount).
fleet_probe() {
    local i=${1:-} path=${2:-} t=${3:-3}
    _fleet_check_host "$i" || return 1
    fleet_timeout "$t" stat -- "${FLEET_MNT[i]}/$path" >/dev/null 2>&1
}

# _fleet_poll i PATH SECONDS MODE(present|absent)
# "absent" needs a real ENOENT; a probe that hangs (and is killed) or fails
# with another error (EIO, ENOTCONN) does not count as gone.
_fleet_poll() {
    local i=$1 path=$2 secs=$3 mode=$4 deadline ms err rc
    _fleet_check_host "$i" || return 1
    [[ "$secs" =~ ^[0-9]+([.][0-9]+)?$ ]] || { _fleet_err "bad timeout '$secs'"; return 1; }
    ms=$(awk -v s="$secs" 'BEGIN { printf "%d", s * 1000 }')
    deadline=$(($(_fleet_now_ms) + ms))
    while :; do
        rc=0
        err=$(LC_ALL=C timeout -s KILL 2 stat -- "${FLEET_MNT[i]}/$path" 2>&1 >/dev/null) || rc=$?
        if [ "$mode" = present ] && [ "$rc" -eq 0 ]; then return 0; fi
        if [ "$mode" = absent ] && [ "$rc" -ne 0 ] && [[ "$err" == *"No such file"* ]]; then return 0; fi
        if (($(_fleet_now_ms) >= deadline)); then return 1; fi
        sleep 0.2
    done
}

fleet_wait_visible() {
    (($# == 3)) || { _fleet_err "usage: fleet_wait_visible i PATH SECONDS"; return 1; }
    _fleet_poll "$1" "$2" "$3" present
}

fleet_wait_gone() {
    (($# == 3)) || { _fleet_err "usage: fleet_wait_gone i PATH SECONDS"; return 1; }
    _fleet_poll "$1" "$2" "$3" absent
}
