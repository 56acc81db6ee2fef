#!/usr/bin/env bash
# Every flag that a binary's --help (and each of its subcommands' --help) shows must appear in
# that binary's man page source in doc/. A subcommand's flags must appear in its own section
# (".SS sub ..." up to the next .SS/.SH) when the page has one, plus the SWITCH OPTIONS section
# if that section refers to it; global flags (those of the top-level --help) anywhere. Prints one line per missing flag and ends with
# "N passed, M failed" (N = distinct flags checked per page). Exit 1 if anything is missing.
#
#   NFSUP_BUILD  directory with the built binaries (default: build/src)
#   NFSUP_DOC    directory with the roff sources     (default: doc)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${NFSUP_BUILD:-$root/build/src}
DOC=${NFSUP_DOC:-$root/doc}

passed=0
failed=0
declare -A checked=()

# The roff source as plain text for grepping: font escapes dropped, \- and \(hy turned into
# '-', zero-width escapes (\& \% \:) removed.
normalise() {
  sed -E \
    -e 's/\\f(\[[^]]*\]|\(..|.)//g' \
    -e 's/\\(-|\(hy|\[hy\]|\[-\])/-/g' \
    -e 's/\\[&%:|^]//g' \
    "$1"
}

# Flags in a --help text on stdin: every token of the option column (-c,--config -> -c and
# --config), and every --long-flag mentioned anywhere (descriptions included).
flags_in_help() {
  local text
  text=$(cat)
  {
    printf '%s\n' "$text" | sed -nE 's/^ +(-[^ ]+).*/\1/p' | tr ',' '\n'
    printf '%s\n' "$text" | grep -oE '(^|[^[:alnum:]-])--[[:alnum:]][[:alnum:]-]*' | sed -E 's/^[^-]*//'
  } | grep -E '^--?[[:alnum:]][[:alnum:]-]*$' | sort -u
}

# Subcommand names listed in a top-level --help text on stdin.
subcommands_in_help() {
  awk '/^Subcommands:/ { on = 1; next } on && /^[^ ]/ { on = 0 } on && NF { print $1 }'
}

# section PAGE SUB: the normalised text of ".SS SUB ..." up to the next .SS or .SH (empty if the
# page has no such section), followed by SWITCH OPTIONS when the section refers to it.
section() {
  local norm; norm=$(normalise "$1")
  local sec
  sec=$(awk -v sub_="$2" '
    /^\.S[HS] / { on = 0 }
    $1 == ".SS" && $2 == sub_ { on = 1 }
    on { print }' <<<"$norm")
  [ -n "$sec" ] || return 0
  printf '%s\n' "$sec"
  if grep -qiE 'switch-options|SWITCH OPTIONS' <<<"$sec"; then
    awk '/^\.S[HS] / { on = 0 } /^\.SH SWITCH OPTIONS/ { on = 1 } on { print }' <<<"$norm"
  fi
}

check_flag() {  # page-file page-text context flag
  local page=$1 text=$2 context=$3 flag=$4
  local key="$page $context $flag"
  [ -n "${checked[$key]:-}" ] && return
  checked[$key]=1
  # A here-string, not a pipe: with pipefail, grep -q exiting early would fail the pipe.
  if grep -qE -- "(^|[^[:alnum:]-])${flag}([^[:alnum:]-]|\$)" <<<"$text"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $context: flag $flag is not documented in ${where:-$(basename "$page")}"
  fi
}

for bin in nfsup-install nfsup-watchdog nfsup-reconfig; do
  exe=$BUILD/$bin
  page=$(ls "$DOC/$bin".[1-8] 2>/dev/null | head -n 1)
  if [ ! -x "$exe" ]; then
    echo "FAIL: $exe: not built"
    failed=$((failed + 1))
    continue
  fi
  if [ -z "$page" ]; then
    echo "FAIL: $bin: no man page $DOC/$bin.[1-8]"
    failed=$((failed + 1))
    continue
  fi
  text=$(normalise "$page")
  if ! top=$("$exe" --help 2>&1); then
    echo "FAIL: $bin --help exited non-zero"
    failed=$((failed + 1))
    continue
  fi
  global=$(printf '%s\n' "$top" | flags_in_help)
  where=""
  for f in $global; do check_flag "$page" "$text" "$bin --help" "$f"; done
  for sub in $(printf '%s\n' "$top" | subcommands_in_help); do
    if ! help=$("$exe" "$sub" --help 2>&1); then
      echo "FAIL: $bin $sub --help exited non-zero"
      failed=$((failed + 1))
      continue
    fi
    sec=$(section "$page" "$sub")
    if [ -n "$sec" ]; then
      where="the '$sub' section of $(basename "$page")"
    else
      sec=$text where=""
    fi
    for f in $(printf '%s\n' "$help" | flags_in_help); do
      grep -qx -- "$f" <<<"$global" && continue
      check_flag "$page" "$sec" "$bin $sub --help" "$f"
    done
  done
done

if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
  echo "FAIL: no flags found in any --help output"
  failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
