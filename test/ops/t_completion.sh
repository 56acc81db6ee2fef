#!/usr/bin/env bash
# Bash completion (packaging/completion/nfsup): sourced into this shell, its functions are called
# with COMP_WORDS/COMP_CWORD set as bash would set them, on the built binaries and a temp share
# with two releases pushed (--no-wait). The main check: `rollback SHARE --to <TAB>` lists the
# kept versions. bash-completion itself is not needed.
source "$(dirname "$0")/lib.sh"

COMPLETION="$NFSUP_SRC/packaging/completion/nfsup"
SHARE="$TMP/share"

setup_share() {
  [ -e "$SHARE/nfsup-share" ] && return 0
  new_share "$SHARE"
  make_release "$TMP/rel" 1.0
  "$INSTALL" -q push "$SHARE" "$TMP/rel" --version 1.0 --no-wait >/dev/null
  echo "release 2.0" >"$TMP/rel/VERSION"
  "$INSTALL" -q push "$SHARE" "$TMP/rel" --version 2.0 --no-wait >/dev/null
  mkdir -p "$TMP/pick/dir-a" "$TMP/pick/dir-b"
  touch "$TMP/pick/file-a"
}

# complete_words WORD...: runs the completion function registered for basename(WORD[0]) with the
# cursor at the end of the last word, and prints COMPREPLY sorted, one per line.
complete_words() {
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE="$*"
  COMP_POINT=${#COMP_LINE}
  local spec fn
  spec=$(complete -p "$(basename "$1")" 2>/dev/null) || { echo "no completion for $1" >&2; return 1; }
  fn=$(sed -n 's/.*-F \([^ ]*\).*/\1/p' <<<"$spec")
  COMPREPLY=()
  "$fn" "$(basename "$1")" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" 2>/dev/null
  printf '%s\n' "${COMPREPLY[@]}" | sort
}

# expect WANT WORD...: WANT is the space-separated, sorted list of completions.
expect() {
  local want=$1; shift
  local got
  got=$(complete_words "$@" | tr '\n' ' ' | sed 's/ $//')
  assert_eq "$got" "$want" "completing [$*]"
}

check_source_and_register() {
  # shellcheck disable=SC1090
  source "$COMPLETION" || fail "sourcing $COMPLETION failed"
  local c
  for c in nfsup-install nfsup-watchdog nfsup-reconfig; do
    complete -p "$c" >/dev/null 2>&1 || fail "no completion registered for $c"
  done
  bash -n "$COMPLETION" || fail "syntax error"
}

check_rollback_to_lists_kept_versions() {
  source "$COMPLETION"
  setup_share
  assert_eq "$("$INSTALL" releases "$SHARE" | tr '\n' ' ')" "1.0 2.0 " "releases of the temp share"
  expect "1.0 2.0" "$INSTALL" rollback "$SHARE" --to ""
  expect "2.0" "$INSTALL" rollback "$SHARE" --to 2
  # Flags (with and without values) before the share do not hide it.
  expect "1.0 2.0" "$INSTALL" -q rollback --timeout 5m --no-wait "$SHARE" --dry-run --to ""
  # --to=<TAB>: bash splits the word at '='.
  expect "1.0 2.0" "$INSTALL" rollback "$SHARE" --to = ""
  expect "1.0" "$INSTALL" rollback "$SHARE" --to = 1
  # ~ in the share path.
  if [[ $SHARE == "$HOME"/* ]]; then expect "1.0 2.0" "$INSTALL" rollback "~${SHARE#"$HOME"}" --to ""; fi
  # No share (yet), or not a share: nothing, and no error.
  expect "" "$INSTALL" rollback --to ""
  expect "" "$INSTALL" rollback "$TMP/pick" --to ""
  # The program found on PATH, as an operator would type it.
  PATH="$NFSUP_BUILD:$PATH" expect "1.0 2.0" nfsup-install rollback "$SHARE" --to ""
}

check_install_subcommands_and_flags() {
  source "$COMPLETION"
  setup_share
  local subs
  # Every subcommand in --help is offered (whatever the list is today).
  subs=$("$INSTALL" --help | sed -n '/^Subcommands:/,/^$/p' | awk 'NR > 1 && NF {print $1}' | sort | tr '\n' ' ' | sed 's/ $//')
  [ -n "$subs" ] || fail "could not read subcommands from nfsup-install --help"
  for s in init push status rollback abort resume verify releases; do
    grep -qw "$s" <<<"$subs" || fail "nfsup-install --help lacks '$s'"
  done
  expect "$subs" "$INSTALL" ""
  expect "push" "$INSTALL" pu
  expect "rollback" "$INSTALL" -v ro
  local flags
  flags=$(complete_words "$INSTALL" push --)
  for f in --version --reconfig --no-wait --lease --stale-after --timeout --share-timeout --dry-run; do
    grep -qx -- "$f" <<<"$flags" || fail "push --<TAB> lacks $f: $(tr '\n' ' ' <<<"$flags")"
  done
  expect "--force" "$INSTALL" abort "$SHARE" --fo
  expect "--force" "$INSTALL" resume "$SHARE" --fo
  expect "--json" "$INSTALL" status --js
}

check_install_values() {
  source "$COMPLETION"
  setup_share
  # The share is a directory: only directories are offered.
  expect "$TMP/pick/dir-a $TMP/pick/dir-b" "$INSTALL" status "$TMP/pick/"
  expect "$TMP/pick/dir-a $TMP/pick/dir-b" "$INSTALL" rollback --no-wait "$TMP/pick/d"
  # push's source: files too.
  expect "$TMP/pick/dir-a $TMP/pick/dir-b $TMP/pick/file-a" "$INSTALL" push "$SHARE" "$TMP/pick/"
  # After the last positional, nothing.
  expect "" "$INSTALL" verify "$SHARE" ""
  # Values of other flags: nothing for durations and new version names.
  expect "" "$INSTALL" push "$SHARE" --timeout ""
  expect "" "$INSTALL" push "$SHARE" "$TMP/rel" --version ""
  # The flags whose values the completion knows still exist in some subcommand.
  local f all_help
  all_help=$(for s in $("$INSTALL" --help | sed -n '/^Subcommands:/,/^$/p' | awk 'NR > 1 && NF {print $1}'); do
    "$INSTALL" "$s" --help; done)
  for f in --to --min-compatible --strategy --out --sign-key --reconfig --migrate --html; do
    grep -qE -- "^ +(-[a-z],)?$f " <<<"$all_help" || fail "the completion completes $f, which no subcommand has now"
  done
  expect "all-at-once rolling" "$INSTALL" push --strategy ""
  expect "$TMP/pick/dir-a $TMP/pick/dir-b $TMP/pick/file-a" "$INSTALL" report "$SHARE" --html "$TMP/pick/"
}

check_watchdog() {
  source "$COMPLETION"
  expect "check run validate" "$WATCHDOG" ""
  expect "--config" "$WATCHDOG" check --conf
  local flags
  flags=$(complete_words "$WATCHDOG" run -)
  for f in -c --config -q --quiet --syslog; do
    grep -qx -- "$f" <<<"$flags" || fail "run -<TAB> lacks $f"
  done
  expect "$TMP/pick/dir-a $TMP/pick/dir-b $TMP/pick/file-a" "$WATCHDOG" validate -c "$TMP/pick/"
}

check_reconfig_versions_from_config() {
  source "$COMPLETION"
  setup_share
  cat >"$TMP/wd.yaml" <<EOF
share: "$SHARE"   # quoted, with a comment
agent:
  command: [bin/agent]
EOF
  expect "1.0 2.0" "$NFSUP_BUILD/nfsup-reconfig" -c "$TMP/wd.yaml" --from ""
  expect "2.0" "$NFSUP_BUILD/nfsup-reconfig" --config="$TMP/wd.yaml" --from 1.0 --to 2
  expect "--dry-run" "$NFSUP_BUILD/nfsup-reconfig" -c "$TMP/wd.yaml" --dr
}

check_fallback_without_binary() {
  # If the program cannot run (not installed on this machine), the static lists are used.
  # They must match what the built programs offer today.
  source "$COMPLETION"
  local subs
  subs=$("$INSTALL" --help | sed -n '/^Subcommands:/,/^$/p' | awk 'NR > 1 && NF {print $1}' | sort | tr '\n' ' ' | sed 's/ $//')
  expect "$subs" /nonexistent/nfsup-install ""
  expect "check run validate" /nonexistent/nfsup-watchdog ""
}

# --hosts and --class values come from the share named on the command line (SHARE/hosts/*/status,
# its class line); no completion lists a candidate twice.
check_install_hosts_classes_no_duplicates() {
  source "$COMPLETION"
  setup_share
  local h c
  for h in web01:web web02:web db01:db; do
    mkdir -p "$SHARE/hosts/${h%%:*}"
    printf 'nfsup-status 1\nhost %s\nstate running\nclass %s\n' "${h%%:*}" "${h#*:}" >"$SHARE/hosts/${h%%:*}/status"
  done
  expect "db01 web01 web02" "$INSTALL" push "$SHARE" "$TMP/rel" --hosts ""
  expect "web01 web02" "$INSTALL" push "$SHARE" "$TMP/rel" --hosts w
  expect "db web" "$INSTALL" push "$SHARE" "$TMP/rel" --class ""
  # A comma-separated list: the word after the last comma, among the hosts not listed yet.
  expect "web01,db01 web01,web02" "$INSTALL" push "$SHARE" "$TMP/rel" --hosts web01,
  expect "web01,db01,web02" "$INSTALL" push "$SHARE" "$TMP/rel" --hosts web01,db01,w
  for c in "push $SHARE -" "status $SHARE -" "report $SHARE -" "rollback $SHARE -" "-" ""; do
    # shellcheck disable=SC2086
    d=$(complete_words "$INSTALL" $c "" | uniq -d)
    [ "$c" = "" ] || d=$(complete_words "$INSTALL" $c | uniq -d)
    [ -z "$d" ] || fail "duplicate candidates for [$c]: $d"
  done
}

run_checks
