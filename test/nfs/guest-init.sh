#!/bin/bash
# PID 1 of a user-mode Linux guest of the real-NFS harness (test/nfs/lib.sh).
# The guest's / is the host's / through hostfs, read-only; the run directory stays shared and
# writable. The kernel command line hands us (as environment variables, since the kernel
# passes unknown key=value parameters to init): nfsg_name, nfsg_ip, nfsg_dir (the run
# directory), nfsg_poll (seconds between looks at the command inbox).
# Commands: the host drops <id>.sh into $nfsg_dir/<name>/in (by rename); we run each one in a
# subshell in the background and leave <id>.out (stdout+stderr) and then <id>.rc (its exit
# status, written in one write: a non-empty <id>.rc is complete). The host removes the files.
# One fork per command and no exec: every process creation in a guest is ptraced by the UML
# kernel and cost 0.2-0.5 s on a loaded 2-core machine (a mv + bash + mv per command did).
# shellcheck disable=SC2154  # nfsg_* come from the kernel command line
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
me=$nfsg_dir/$nfsg_name
say() { echo "[$nfsg_name $(cut -d' ' -f1 /proc/uptime)] $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# Private, writable places: the host's / is read-only in here.
for d in /run /tmp /var/tmp; do mount -t tmpfs -o mode=1777 tmpfs "$d"; done
mkdir -p "$nfsg_dir" 2>/dev/null   # a mount point inside the fresh /tmp
mount -t hostfs -o "$nfsg_dir" hostfs "$nfsg_dir" || say "cannot mount the run directory"
hostname "$nfsg_name"            # the NFSv4 client id is derived from it: one per guest
# The UML kernel's modules are not under /lib/modules: a wrapper points modprobe at them, also
# for the kernel's own on-demand loading.
echo "$nfsg_dir/bin/modprobe" >/proc/sys/kernel/modprobe
"$nfsg_dir/bin/modprobe" -a nfsv4 nfsv3 rpcsec_gss_krb5 || say "modprobe failed"
printf '%s\n' 'link set lo up' 'link set eth0 up' "addr add $nfsg_ip/24 dev eth0" | ip -batch -
mkfifo /run/nap && exec 7<>/run/nap    # read -t on it sleeps without a fork
mkdir -p "$me/in"
echo "$(cut -d' ' -f1 /proc/uptime)" >"$me/ready"
say "ready"
declare -A started=()
while :; do
    for f in "$me"/in/*.sh; do
        [ -e "$f" ] && [ -z "${started[$f]:-}" ] || continue
        started[$f]=1
        id=${f%.sh}
        # shellcheck disable=SC1090
        # (the trap names the file now: the command may set variables of any name)
        ( exec >"$id.out" 2>&1 </dev/null 7<&-; trap "echo \$? >'$id.rc'" EXIT; unset started; . "$f" ) &
    done
    read -r -t "$nfsg_poll" -u 7 _
done
