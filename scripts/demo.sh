#!/usr/bin/env bash
# nfsup demo: a real upgrade of three hosts on a local-directory share.
# Three watchdog daemons (web1, web2, web3), each with its own state dir and agent config,
# watch one share. We push 1.0, push 2.0 with a config rewrite, look at status, and roll back.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build demo
scripts/build.sh
B=$PWD/build/src
D=$(mktemp -d /tmp/nfsup-demo.XXXXXX)
SHARE=$D/share
HOSTS=(web1 web2 web3)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && echo "(kept $D)" || rm -rf "$D"
}
trap cleanup EXIT
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show_hosts() {
  for h in "${HOSTS[@]}"; do
    printf '  %-5s config: %s\n' "$h" "$(tr '\n' ' ' < "$D/$h/agent.yaml")"
    printf '  %-5s agent : %s\n' "$h" "$(tail -n 1 "$D/$h/state/agent.log" 2>/dev/null)"
  done
}

say "A share at $SHARE (on NFS this is the export every host mounts)"
$B/nfsup-install init --local "$SHARE"

say "Two builds of 'myagent': 1.0, and 2.0 which needs a rewritten config"
for v in 1.0 2.0; do
  mkdir -p "$D/build-$v/bin"; cp scripts/demo/agent "$D/build-$v/bin/myagent"; echo "$v" > "$D/build-$v/VERSION"
done
find "$D"/build-* -type f | sed "s|$D/|  |"

say "Three hosts, each with its own watchdog config, state dir and agent config"
for h in "${HOSTS[@]}"; do
  mkdir -p "$D/$h/state"
  printf 'listen: 0.0.0.0:80%s\nname: %s\n' "${h#web}" "$h" > "$D/$h/agent.yaml"
  cat > "$D/$h/watchdog.yaml" <<EOC
share: $SHARE
host: $h
poll_interval: 250ms
heartbeat_interval: 1s
state_dir: $D/$h/state
agent:
  command: [bin/myagent, "{config}"]
  config: $D/$h/agent.yaml
  stop_signal: TERM
  stop_timeout: 5s
EOC
  $B/nfsup-watchdog run -c "$D/$h/watchdog.yaml" >"$D/$h/watchdog.log" 2>&1 &
  pids+=($!)
done
echo "  web1's config file ($D/web1/watchdog.yaml):"; sed 's/^/    /' "$D/web1/watchdog.yaml"
sleep 1
$B/nfsup-install status "$SHARE"

say "nfsup-install push 1.0: stage, marker, hosts start 1.0"
$B/nfsup-install push "$SHARE" "$D/build-1.0" --version 1.0 --stale-after 10s
show_hosts

say "nfsup-install push 2.0 --reconfig migrate-config.sh"
echo "  (every host stops its agent, the pointer switches, each host rewrites its own config and starts 2.0)"
$B/nfsup-install push "$SHARE" "$D/build-2.0" --version 2.0 --reconfig scripts/demo/migrate-config.sh --stale-after 10s -v
show_hosts

say "nfsup-install status"
$B/nfsup-install status "$SHARE"

say "What the share holds (releases are hard links into a content-addressed store)"
(cd "$SHARE" && find . -path ./audit -prune -o -path ./objects -prune -o -print | sort | sed 's/^/  /')
echo "  objects: $(find "$SHARE/objects" -type f | wc -l) files; audit events: $(ls "$SHARE/audit" | wc -l)"

say "nfsup-reconfig --dry-run: what a move back 2.0 -> 1.0 would do to web3's config"
$B/nfsup-reconfig -c "$D/web3/watchdog.yaml" --from 2.0 --to 1.0 --dry-run || true

say "nfsup-install rollback: back to 1.0, configs restored from the backups taken at the upgrade"
$B/nfsup-install rollback "$SHARE" --stale-after 10s
show_hosts
$B/nfsup-install status "$SHARE"

say "nfsup-install verify: every kept release against its manifest"
$B/nfsup-install verify "$SHARE"

say "Watchdog log of web2"
sed 's/^/  /' "$D/web2/watchdog.log"
say "Demo finished; stopping the watchdogs (they stop their agents) and cleaning up"
