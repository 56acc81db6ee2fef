#!/bin/bash
# Replays every seed in regressions.txt (seeds that once found a violated invariant). A line
# is "SEED [mode=MODE] WHY"; the mode is all-at-once unless given.
sim=$1
dir=$(dirname "$0")
rc=0
while read -r seed why; do
  case $seed in ''|'#'*) continue ;; esac
  mode=all-at-once
  case $why in mode=*) mode=${why%% *}; mode=${mode#mode=}; why=${why#* } ;; esac
  if ! "$sim" --mode "$mode" --seed "$seed" >/dev/null; then echo "seed $seed ($mode: $why): violated again"; rc=1; fi
done < "$dir/regressions.txt"
exit $rc
