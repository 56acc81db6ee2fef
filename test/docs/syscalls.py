#!/usr/bin/env python3
"""Fails when a system call is made outside src/os/ (issue 16: src/os is the only code that
makes system calls), except in the places test/docs/syscalls_allowlist.txt still lists.

Looks in src/**/*.{cpp,h} for a call of a libc system-call wrapper (or a C++ stream or sleep
that does the same): `open(`, `::open(`, `std::rename(`, ... with comments and string
literals removed first. A member call (`fs.open(`, `x->read(`), a qualified definition
(`MasterLog::open(`) and a declaration (`Status open(`) are not calls of the wrapper.
Usage: syscalls.py [SOURCE_ROOT]   (default: the repository this script is in)
"""
import os
import re
import sys

WRAPPERS = """
open openat openat2 creat read write close stat fstat lstat fstatat statx statvfs fstatvfs
rename renameat renameat2 unlink unlinkat remove mkdir mkdirat rmdir fsync fdatasync syncfs
truncate ftruncate pread pwrite readv writev lseek flock fcntl ioctl
opendir fdopendir readdir closedir dirfd scandir
chmod fchmod fchmodat chown fchown lchown fchownat utimensat futimens umask
symlink symlinkat readlink readlinkat link linkat access faccessat realpath mkstemp mkostemp mkdtemp
fork vfork clone posix_spawn posix_spawnp execv execve execvp execvpe execl execlp execle system popen
kill killpg raise waitpid wait wait3 wait4 waitid pidfd_open pidfd_send_signal setsid setpgid prctl
pipe pipe2 dup dup2 dup3 eventfd signalfd poll ppoll select pselect epoll_create1 epoll_ctl epoll_wait
signal sigaction sigprocmask pthread_sigmask pause alarm
chdir fchdir getpid getppid getuid geteuid getgid getpwuid getpwnam gethostname uname isatty setrlimit
socket connect bind listen accept send sendto sendmsg recv recvfrom mmap munmap mount umount umount2
sleep usleep nanosleep clock_gettime clock_nanosleep gettimeofday time syscall fopen fdopen
""".split()
# Not a bare wrapper name, but the same system calls under another spelling.
OTHER = [r"std::(?:ifstream|ofstream|fstream)\b", r"std::filesystem::", r"\bsleep_for\s*\(", r"\bsleep_until\s*\("]

CALL = re.compile(r"(?<![\w.>:])((?:::|std::)?)(" + "|".join(WRAPPERS) + r")\s*\(")
OTHER_RE = re.compile("|".join(OTHER))
# A declaration or definition: the name follows a type (an identifier other than a keyword
# that can precede an expression, or a closing template bracket, & or *).
KEYWORDS = {"return", "else", "case", "do", "co_return", "throw", "not", "and", "or"}
PREV_TYPE = re.compile(r"([\w>&*]+)\s*$")


def strip(text):
    """Comments and string/char literals blanked (newlines kept, so line numbers hold)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c == 'R' and text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append('""' + "".join(ch for ch in text[i:j] if ch == "\n"))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def calls(text):
    """(line number, what) of every system call in the text of one source file."""
    found = []
    for lineno, line in enumerate(strip(text).split("\n"), 1):
        for m in CALL.finditer(line):
            before = line[: m.start()]
            if not m.group(1):
                p = PREV_TYPE.search(before)
                if p and p.group(1) not in KEYWORDS and not p.group(1).endswith("&&"):
                    continue  # a declaration: `Status open(`, `Result<int> read(`
            found.append((lineno, m.group(1) + m.group(2)))
        for m in OTHER_RE.finditer(line):
            found.append((lineno, m.group(0).rstrip("( ")))
    return found


def load_allowlist(path):
    allowed = []
    for raw in open(path, encoding="utf-8"):
        line = raw.split("#", 1)[0].strip()
        if line:
            allowed.append(line)
    return allowed


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    allow_file = os.path.join(root, "test", "docs", "syscalls_allowlist.txt")
    allowed = load_allowlist(allow_file) if os.path.exists(allow_file) else []
    bad, used = [], set()
    for dirpath, _, names in sorted(os.walk(os.path.join(root, "src"))):
        for name in sorted(names):
            if not name.endswith((".cpp", ".h")):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if rel.startswith("src/os/"):
                continue
            hits = calls(open(os.path.join(root, rel), encoding="utf-8").read())
            entry = next((a for a in allowed if rel == a or (a.endswith("/") and rel.startswith(a))), None)
            if entry:
                used.add(entry) if hits else None
                continue
            bad += [f"{rel}:{ln}: {what}() outside src/os/ (call a src/os function instead)" for ln, what in hits]
    stale = [a for a in allowed if a not in used]
    for line in bad:
        print(line)
    for a in stale:
        print(f"{allow_file}: {a}: listed but makes no system call any more; remove it from the list")
    failed = 1 if bad or stale else 0
    print(f"{1 - failed} passed, {failed} failed")
    return failed


if __name__ == "__main__":
    sys.exit(main())
