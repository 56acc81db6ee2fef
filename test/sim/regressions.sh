#!/bin/bash
# Replays every seed in regressions.txt (seeds that once found a violated invariant).
sim=$1
dir=$(dirname "$0")
rc=0
while read -r seed why; do
  case $seed in ''|'#'*) continue ;; esac
  if ! "$sim" --seed "$seed" >/dev/null; then echo "seed $seed ($why): violated again"; rc=1; fi
done < "$dir/regressions.txt"
exit $rc
