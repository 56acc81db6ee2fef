#!/usr/bin/env bash
# The system-call check itself: it must fail on a call planted outside src/os/ (bare, ::-qualified,
# std::), pass on member calls, declarations, comments and strings, and fail on a stale allowlist
# entry. Runs syscalls.py on small trees in a temp directory.
set -u
here=$(cd "$(dirname "$0")" && pwd)
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
passed=0; failed=0
check() {  # check NAME WANT_RC FILE_TEXT [ALLOWLIST_TEXT]
  rm -rf "$t/r"; mkdir -p "$t/r/src/core" "$t/r/src/os" "$t/r/test/docs"
  printf '%s\n' "$3" > "$t/r/src/core/x.cpp"
  printf '::unlink("allowed in src/os");\n' > "$t/r/src/os/y.cpp"
  [ -n "${4:-}" ] && printf '%s\n' "$4" > "$t/r/test/docs/syscalls_allowlist.txt"
  python3 "$here/syscalls.py" "$t/r" > "$t/out" 2>&1; rc=$?
  if [ "$rc" -eq "$2" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: $1: exit $rc, wanted $2"; cat "$t/out"; fi
}
check "planted ::unlink" 1 'void f() { ::unlink(p.c_str()); }'
check "planted bare open" 1 'int g() { int fd = open("/x", 0); return fd; }'
check "planted std::rename" 1 'void h() { std::rename(a, b); }'
check "planted return fsync" 1 'int k(int fd) { return fsync(fd); }'
check "planted sleep_for" 1 'void s() { std::this_thread::sleep_for(std::chrono::seconds(1)); }'
check "planted ifstream" 1 'void m() { std::ifstream f("/proc/self/mountinfo"); }'
check "member calls, declarations, comments, strings" 0 'struct A { Status open(const std::string& p); Result<bool> unlink(int); };
void f(FileSystem& fs) { fs.unlink(p); fs_->read(1); A::open(x); }  // ::unlink(p) in a comment
const char* s = "::rename(a, b)"; /* kill(1, 9); */'
check "an allowlisted file" 0 'void f() { ::unlink(p.c_str()); }' 'src/core/x.cpp  # converted later'
check "a stale allowlist entry" 1 'void f() {}' 'src/core/x.cpp'


echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
