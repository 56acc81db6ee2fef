# shellcheck shell=bash
# Real-NFS test harness: Linux kernel NFS clients (user-mode Linux guests) against nfs-ganesha.
#
# Source this file, then:
#   nfs_missing                    names what is missing to run here (empty: all there)
#   nfs_deps                       installs the Debian packages (scripts/deps.sh nfs)
#   nfs_up N                       server + N guests g1..gN, booted in parallel; sets NFS_DIR,
#                                  NFS_EXPORT (the server's directory, readable on the host)
#   nfs_down                       stops everything nfs_up made (idempotent, for an EXIT trap)
#   nfs_mount G MNT VERS [OPTS]    mounts the export at MNT inside guest G (VERS 3, 4.1, 4.2;
#                                  OPTS are added to the defaults, so caches stay at the kernel's
#                                  defaults unless OPTS change them); nosharecache is always set
#   nfs_umount G MNT
#   nfs_exec G CODE [SECONDS]      runs bash CODE in guest G; prints its output, returns its exit
#                                  status (124 if it did not finish within SECONDS, default 120)
#   nfs_guest_pause G / nfs_guest_resume G       SIGSTOP/SIGCONT of the guest's UML main process
#   nfs_server_pause / nfs_server_resume         SIGSTOP/SIGCONT of ganesha
#   nfs_server_restart [GRACE [LEASE]]           SIGKILL ganesha (a crash) and start it again;
#                                  GRACE seconds of grace period (0 = graceless), LEASE the NFSv4
#                                  lease (default NFS_LEASE)
#   nfs_link G down|up             cuts / restores guest G's network (its tap goes down)
#   nfs_mountstats G MNT           the /proc/self/mountstats block of MNT in guest G
#   nfs_gc                         removes runs whose owning shell died (netns, processes, files)
#
# Layout: a private network namespace nfsup-nfs-<runid> holds a bridge (server address
# $NFS_SRV), one tap per guest, and every process the harness starts: a holder process with a
# private mount namespace (tmpfs /run) in which rpcbind and ganesha run, and the guests. So
# "everything in that namespace" is exactly what to stop, and nothing of it is visible outside.
# Guests see the host's / read-only (hostfs), with private tmpfs /run, /tmp, /var/tmp and the
# run directory $NFS_DIR shared read-write. The host reads the server's files directly under
# $NFS_EXPORT.
#
# Guest processes are ptraced by the UML kernel: never signal a guest's whole process group
# (SIGSTOP/SIGCONT to its helper processes panics the guest); pause its main process only.

: "${NFS_GUEST_MEM:=128M}"
: "${NFS_LEASE:=60}"
: "${NFS_AGENT_POLL:=0.1}"
NFS_DIR=""
NFS_RUNID=""
NFS_NS=""
NFS_N=0
NFS_EXPORT=""
NFS_SRV=10.77.0.1
NFS_MNT_PORT=20048
NFS_BOOT_S=""

_nfs_log() { printf '[nfs] %s\n' "$*" >&2; }
nfs_now_ms() { local t=${EPOCHREALTIME/./}; echo "${t:0:13}"; }

nfs_missing() {
    local -a miss=()
    [ "$(id -u)" -eq 0 ] || miss+=("root")
    [ -c /dev/net/tun ] || miss+=("/dev/net/tun")
    [ -e /proc/self/ns/net ] || miss+=("network namespaces")
    local c
    for c in linux.uml ganesha.nfsd rpcbind modprobe mount.nfs ip nsenter unshare setsid; do
        command -v "$c" >/dev/null 2>&1 || miss+=("$c")
    done
    compgen -G '/usr/lib/*/ganesha/libfsalvfs.so' >/dev/null || miss+=("nfs-ganesha-vfs")
    compgen -G '/usr/lib/uml/modules/*/kernel/fs/nfs' >/dev/null || miss+=("UML nfs modules")
    echo "${miss[*]}"
}

nfs_deps() {
    local top
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    [ "$(id -u)" -eq 0 ] && [ -c /dev/net/tun ] || return 0
    "$top/scripts/deps.sh" nfs
}

# ------------------------------------------------------------ internals ----

# Is pid $1 alive and started by run $NFS_DIR (its command line names the run directory or
# it lives in our network namespace)?
_nfs_ours() {
    local p=$1
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$NFS_DIR" && return 0
    [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$(cat "$NFS_DIR/netns.id" 2>/dev/null)" ]
}

_nfs_pid() { cat "$NFS_DIR/$1" 2>/dev/null; }

# Runs "$@" in the background with no descriptor of ours but 0-2 (a test runner's pipe kept
# open by a long-lived child would make the runner wait for it).
_nfs_bg() {
    (
        for fd in /proc/"$BASHPID"/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-"; fi
        done 2>/dev/null
        exec "$@"
    ) &
    _NFS_BG=$!
    disown "$_NFS_BG"   # no "Killed" job reports at teardown
}

_nfs_write_server_conf() {  # GRACE LEASE
    local grace=$1 lease=$2 graceless=true
    ((grace > 0)) && graceless=false
    cat >"$NFS_DIR/srv/ganesha.conf" <<EOF
NFS_CORE_PARAM {
    Bind_addr = $NFS_SRV;
    Protocols = 3, 4;
    NFS_Port = 2049;
    MNT_Port = $NFS_MNT_PORT;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    mount_path_pseudo = true;
    Plugins_Dir = "$(dirname "$(compgen -G '/usr/lib/*/ganesha/libfsalvfs.so' | head -n1)")";
}
NFSv4 {
    Graceless = $graceless;
    Grace_Period = $((grace > 0 ? grace : 90));
    Lease_Lifetime = $lease;
    RecoveryBackend = fs;
    RecoveryRoot = "$NFS_DIR/srv/recov";
    Minor_Versions = 1, 2;
}
EXPORT {
    Export_Id = 1;
    Path = "$NFS_EXPORT";
    Pseudo = /export;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    Protocols = 3, 4;
    Transports = TCP;
    Attr_Expiration_Time = 0;
    FSAL { Name = VFS; }
}
EOF
}

_nfs_start_server() {  # GRACE LEASE
    local holder t0 d=$NFS_DIR/srv
    holder=$(_nfs_pid srv/holder.pid)
    _nfs_write_server_conf "$1" "$2"
    rm -f "$d/ganesha.pid"
    _nfs_bg nsenter -t "$holder" -m -n -- ganesha.nfsd -F -f "$d/ganesha.conf" -L "$d/ganesha.log" \
        -p "$d/ganesha.pid" -N NIV_EVENT </dev/null >>"$d/ganesha.out" 2>&1
    echo "$_NFS_BG" >"$d/ganesha.main"
    t0=$(nfs_now_ms)
    until ip netns exec "$NFS_NS" ss -Hltn "sport = :2049" 2>/dev/null | grep -q .; do
        _nfs_ours "$(_nfs_pid srv/ganesha.main)" ||
            { _nfs_log "ganesha exited: $(tail -n 3 "$d/ganesha.log" "$d/ganesha.out" 2>/dev/null)"; return 1; }
        (($(nfs_now_ms) - t0 < 30000)) || { _nfs_log "ganesha not listening after 30 s"; return 1; }
        sleep 0.1
    done
}

_nfs_net_up() {
    local n=$1 i
    ip netns add "$NFS_NS" || return 1
    ip netns exec "$NFS_NS" readlink /proc/self/ns/net >"$NFS_DIR/netns.id" || return 1
    ip -n "$NFS_NS" link set lo up &&
        ip -n "$NFS_NS" link add br0 type bridge &&
        ip -n "$NFS_NS" addr add "$NFS_SRV/24" dev br0 &&
        ip -n "$NFS_NS" link set br0 up || return 1
    for ((i = 1; i <= n; i++)); do
        ip -n "$NFS_NS" tuntap add dev "tap$i" mode tap &&
            ip -n "$NFS_NS" link set "tap$i" master br0 &&
            ip -n "$NFS_NS" link set "tap$i" up || return 1
    done
}

_nfs_server_up() {
    local d=$NFS_DIR/srv t
    mkdir -p "$d/recov"
    # The holder keeps a mount namespace with a private /run alive, so that ganesha can be
    # restarted and still find rpcbind's socket, and nothing lands in the host's /run.
    _nfs_bg ip netns exec "$NFS_NS" unshare --mount --propagation private -- /bin/sh -c \
        "mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/rpcbind && chown _rpc: /run/rpcbind &&
         : >$d/holder.ready && exec sleep 2147483647 # $NFS_DIR" </dev/null >"$d/holder.out" 2>&1
    echo "$_NFS_BG" >"$d/holder.pid"
    for t in $(seq 1 100); do [ -e "$d/holder.ready" ] && break; sleep 0.05; done
    [ -e "$d/holder.ready" ] || { _nfs_log "namespace holder did not start: $(cat "$d/holder.out")"; return 1; }
    _nfs_bg nsenter -t "$(_nfs_pid srv/holder.pid)" -m -n -- rpcbind -f </dev/null >"$d/rpcbind.out" 2>&1
    echo "$_NFS_BG" >"$d/rpcbind.pid"
    for t in $(seq 1 100); do
        nsenter -t "$(_nfs_pid srv/holder.pid)" -m -- test -S /run/rpcbind.sock && break
        sleep 0.05
    done
    _nfs_start_server 0 "$NFS_LEASE"
}

_nfs_guest_boot() {
    local i=$1 g=g$1 d=$NFS_DIR/g$1
    mkdir -p "$d/in"
    rm -f "$d/ready"
    # cd: UML opens ./root_fs as its first disk when it exists. TMPDIR: guest RAM is backed by
    # an unlinked file there. The console goes to a file, there is no input.
    (
        cd "$d" || exit 1
        export TMPDIR=/dev/shm
        _nfs_bg ip netns exec "$NFS_NS" setsid linux.uml mem="$NFS_GUEST_MEM" umid="$g" uml_dir="$NFS_DIR/uml" \
            root=/dev/root rootfstype=hostfs ro init="$NFS_HERE/guest-init.sh" \
            nfsg_name="$g" nfsg_ip="10.77.0.$((10 + i))" nfsg_dir="$NFS_DIR" nfsg_poll="$NFS_AGENT_POLL" \
            con=null ssl=null con0=null,fd:1 eth0=tuntap,"tap$i" pty.legacy_count=0 zswap.enabled=0 \
            </dev/null >"$d/console.log" 2>&1
    ) &
    disown $!
}

_nfs_guest_pid() { cat "$NFS_DIR/uml/g$1/pid" 2>/dev/null || cat "$NFS_DIR/g$1/uml.pid" 2>/dev/null; }

_nfs_guest_wait() {
    local i=$1 t0=$2 pid
    until [ -e "$NFS_DIR/g$i/ready" ]; do
        pid=$(_nfs_guest_pid "$i")
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            _nfs_log "guest g$i died: $(tail -n 5 "$NFS_DIR/g$i/console.log")"; return 1
        fi
        (($(nfs_now_ms) - t0 < ${3:-240000})) || { _nfs_log "guest g$i not ready after $(( ${3:-240000} / 1000 )) s: $(tail -n 2 "$NFS_DIR/g$i/console.log" | tr '\n' ' ')"; return 1; }
        sleep 0.2
    done
    # Keep the main pid: <uml_dir>/<umid> goes away when the guest stops.
    _nfs_guest_pid "$i" >"$NFS_DIR/g$i/uml.pid"
}

# For the harness's own test (NFS_TEST_BOOT_FAIL=i): guest i dies while it boots, as one did
# under heavy load, so that nfs_up's second boot is exercised.
_nfs_test_kill_booting() {
    local i=$1 p t
    for t in $(seq 1 150); do p=$(_nfs_guest_pid "$i"); [ -n "$p" ] && break; sleep 0.2; done
    [ -n "$p" ] || return 0
    for p in $(ps -o pid= --sid "$p" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    _nfs_log "test: killed g$i while it booted"
}

# ------------------------------------------------------------------- api ----

nfs_up() {
    local n=${1:-3} i t0
    [ -z "$NFS_DIR" ] || { _nfs_log "already up ($NFS_DIR)"; return 1; }
    NFS_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    NFS_RUNID=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
    NFS_DIR=$(mktemp -d "/tmp/nfsup-nfs-$NFS_RUNID.XXXXXX") || { NFS_DIR=""; return 1; }
    chmod 755 "$NFS_DIR"
    NFS_NS=nfsup-nfs-$NFS_RUNID
    NFS_N=$n
    NFS_EXPORT=$NFS_DIR/export
    mkdir -p "$NFS_EXPORT" "$NFS_DIR/bin" "$NFS_DIR/modroot/lib/modules" "$NFS_DIR/srv" "$NFS_DIR/uml"
    # (the owner's pid taken here: inside "$(...)" $BASHPID is the subshell's, whose start time
    # made nfs_gc take every live run for an abandoned one and tear it down)
    local me=$BASHPID
    printf 'runid=%s\nowner=%s\nowner_start=%s\nns=%s\n' "$NFS_RUNID" "$me" \
        "$(cut -d' ' -f22 "/proc/$me/stat")" "$NFS_NS" >"$NFS_DIR/state"
    local kver
    kver=$(basename "$(compgen -G '/usr/lib/uml/modules/*' | head -n1)")
    ln -s "/usr/lib/uml/modules/$kver" "$NFS_DIR/modroot/lib/modules/$kver"
    printf '#!/bin/sh\nexec /sbin/modprobe -d %s "$@"\n' "$NFS_DIR/modroot" >"$NFS_DIR/bin/modprobe"
    chmod 755 "$NFS_DIR/bin/modprobe"
    t0=$(nfs_now_ms)
    _nfs_net_up "$n" || { _nfs_log "network setup failed"; return 1; }
    _nfs_server_up || return 1
    for ((i = 1; i <= n; i++)); do _nfs_guest_boot "$i"; done
    for ((i = 1; i <= n; i++)); do
        [ "${NFS_TEST_BOOT_FAIL:-}" = "$i" ] && _nfs_test_kill_booting "$i"
        _nfs_guest_wait "$i" "$t0" 120000 && continue
        # A guest that hangs while booting (seen once in ~15 boots under heavy load): once more.
        local p; p=$(_nfs_guest_pid "$i")
        if [ -n "$p" ]; then
            for p in $(ps -o pid= --sid "$p" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
        fi
        rm -rf "$NFS_DIR/uml/g$i"
        _nfs_log "booting g$i again"
        _nfs_guest_boot "$i"
        _nfs_guest_wait "$i" "$(nfs_now_ms)" 180000 || return 1
    done
    NFS_BOOT_S=$(( ($(nfs_now_ms) - t0) / 100 ))
    NFS_BOOT_S="$((NFS_BOOT_S / 10)).$((NFS_BOOT_S % 10))"
    _nfs_log "up: server + $n guests in $NFS_BOOT_S s (run $NFS_DIR)"
}

nfs_exec() {
    local g=$1 code=$2 limit=${3:-120} id d rc t0
    d=$NFS_DIR/$g/in
    [ -d "$d" ] || { _nfs_log "no guest $g"; return 2; }
    id=c$(nfs_now_ms)$RANDOM
    printf '%s\n' "$code" >"$d/.$id" && mv "$d/.$id" "$d/$id.sh"
    t0=$(nfs_now_ms)
    until [ -s "$d/$id.rc" ]; do
        if (($(nfs_now_ms) - t0 > limit * 1000)); then
            _nfs_log "$g: no answer within $limit s to: ${code:0:80}"
            return 124
        fi
        sleep 0.05
    done
    cat "$d/$id.out"
    rc=$(cat "$d/$id.rc")
    rm -f "$d/$id".*
    return "$rc"
}

nfs_mount() {
    local g=$1 mnt=$2 vers=$3 opts=${4:-} type=nfs4 o
    if [ "$vers" = 3 ]; then
        # fixed ports (no portmapper query from the guest); nolock: no NLM/statd in the guests
        type=nfs o="vers=3,proto=tcp,mountproto=tcp,port=2049,mountport=$NFS_MNT_PORT,nolock"
    else
        o="vers=$vers,proto=tcp,port=2049"
    fi
    o+=",nosharecache${opts:+,$opts}"
    nfs_exec "$g" "mkdir -p '$mnt' && mount -t $type -o '$o' $NFS_SRV:/export '$mnt'" 60
}

nfs_umount() { nfs_exec "$1" "umount -f -l '$2'" 30; }

nfs_mountstats() {
    nfs_exec "$1" "awk -v m='$2' '/^device /{on = (\$5 == m)} on' /proc/self/mountstats"
}

nfs_guest_pause() {
    local p; p=$(_nfs_pid "$1/uml.pid")
    _nfs_ours "$p" && kill -STOP "$p"
}
nfs_guest_resume() {
    local p; p=$(_nfs_pid "$1/uml.pid")
    _nfs_ours "$p" && kill -CONT "$p"
}
nfs_server_pause() {
    local p; p=$(_nfs_pid srv/ganesha.main)
    _nfs_ours "$p" && kill -STOP "$p"
}
nfs_server_resume() {
    local p; p=$(_nfs_pid srv/ganesha.main)
    _nfs_ours "$p" && kill -CONT "$p"
}

nfs_server_restart() {
    local grace=${1:-0} lease=${2:-$NFS_LEASE} p
    p=$(_nfs_pid srv/ganesha.main)
    if _nfs_ours "$p"; then
        kill -CONT "$p"; kill -KILL "$p"
        while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
    fi
    _nfs_start_server "$grace" "$lease"
}

nfs_link() { ip -n "$NFS_NS" link set "tap${1#g}" "$2"; }

nfs_down() {
    local -
    set +e +o pipefail
    [ -n "$NFS_DIR" ] || return 0
    case $NFS_DIR in /tmp/nfsup-nfs-*) ;; *) _nfs_log "refusing to remove '$NFS_DIR'"; return 1 ;; esac
    local i p t pids
    # 1. guests: SIGTERM to the main process is a quick power-off (resume a paused one first)
    for ((i = 1; i <= NFS_N; i++)); do
        p=$(_nfs_pid "g$i/uml.pid")
        [ -n "$p" ] || p=$(_nfs_guest_pid "$i")
        if _nfs_ours "$p"; then kill -CONT "$p"; kill -TERM "$p"; fi
    done
    nfs_server_resume 2>/dev/null
    for t in $(seq 1 60); do
        pids=$(ip netns pids "$NFS_NS" 2>/dev/null | grep -vx "$(_nfs_pid srv/holder.pid)\|$(_nfs_pid srv/rpcbind.pid)\|$(_nfs_pid srv/ganesha.main)")
        [ -z "$pids" ] && break
        sleep 0.1
    done
    # 2. everything still in our namespace: guest leftovers, ganesha, rpcbind, the holder
    for t in 1 2 3; do
        pids=$(ip netns pids "$NFS_NS" 2>/dev/null)
        [ -z "$pids" ] && break
        for p in $pids; do kill -KILL "$p" 2>/dev/null; done
        sleep 0.2
    done

    [ -n "$pids" ] && _nfs_log "processes left in $NFS_NS: $pids"
    ip netns del "$NFS_NS" 2>/dev/null
    ip netns list 2>/dev/null | grep -qw "^$NFS_NS" && _nfs_log "could not delete netns $NFS_NS"
    [ -n "${NFS_KEEP:-}" ] && _nfs_log "kept $NFS_DIR" || rm -rf --one-file-system -- "$NFS_DIR"
    NFS_DIR="" NFS_RUNID="" NFS_NS="" NFS_N=0 NFS_EXPORT=""
    return 0
}

# Runs left behind by a shell that died without nfs_down (SIGKILLed CI job).
nfs_gc() {
    local -
    set +e
    local d owner ostart ns p
    for d in /tmp/nfsup-nfs-*.*; do
        [ -f "$d/state" ] || continue
        owner=$(sed -n 's/^owner=//p' "$d/state"); ostart=$(sed -n 's/^owner_start=//p' "$d/state")
        ns=$(sed -n 's/^ns=//p' "$d/state")
        [ -n "$owner" ] && [ "$(cut -d' ' -f22 "/proc/$owner/stat" 2>/dev/null)" = "$ostart" ] && continue
        [[ $ns =~ ^nfsup-nfs-[0-9a-f]{8}$ ]] || continue
        _nfs_log "gc: removing abandoned run $d"
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p"; done 2>/dev/null
        ip netns del "$ns" 2>/dev/null
        rm -rf --one-file-system -- "$d"
    done
    return 0
}
