#!/bin/bash
# PID 1 of a user-mode Linux guest of the real-NFS harness (test/nfs/lib.sh).
# The guest's / is the host's / through hostfs, read-only; the run directory stays shared and
# writable. The kernel command line hands us (as environment variables, since the kernel
# passes unknown key=value parameters to init): nfsg_name, nfsg_ip, nfsg_dir (the run
# directory), nfsg_poll (seconds between looks at the command inbox).
# Commands: the host drops <id>.sh into $nfsg_dir/<name>/in; we run each one with bash in the
# background and leave <id>.out (stdout+stderr) and then <id>.rc (its exit status).
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
while :; do
    for f in "$me"/in/*.sh; do
        [ -e "$f" ] || continue
        id=${f%.sh}
        mv -f "$f" "$id.job" || continue
        ( bash "$id.job" >"$id.out" 2>&1 </dev/null; echo $? >"$id.rc.new"; mv -f "$id.rc.new" "$id.rc" ) &
    done
    read -r -t "$nfsg_poll" -u 7 _
done
