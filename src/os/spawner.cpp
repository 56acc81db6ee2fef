// nfsup os: the spawner (see spawner.h).
#include "spawner.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <sched.h>

namespace nfsup {

namespace {

constexpr size_t kMaxRequest = 1 << 18;
// How long the spawner waits for a child's exec to succeed or fail before it answers with
// the pid anyway (an exec that reads a program from a hung share), and how long the caller
// waits for that answer before it starts children itself.
constexpr int kExecWaitMs = 2000;
constexpr int kAnswerWaitMs = 10000;

std::mutex g_mu;
int g_sock = -1;     // the caller's end of the socket pair; -1: no spawner
pid_t g_pid = -1;    // the spawner

struct Answer {
  int64_t pid = -1;
  int32_t err = 0;  // errno of a failed chdir/exec (Child), of fork, or of a bad request
};

// ---- the request: mode, new_session, cwd, argc, argv..., then env key/value pairs, each
// field ended by a NUL; the child's stdout (if any) rides along as SCM_RIGHTS.

std::string encode(const SpawnSpec& s, SpawnMode mode) {
  std::string m;
  auto put = [&m](const std::string& f) {
    m += f;
    m += '\0';
  };
  put(std::to_string(static_cast<int>(mode)));
  put(s.new_session ? "1" : "0");
  put(s.cwd);
  put(std::to_string(s.argv.size()));
  for (const auto& a : s.argv) put(a);
  for (const auto& [k, v] : s.env) {
    put(k);
    put(v);
  }
  return m;
}

bool decode(const char* p, size_t n, SpawnSpec* s, SpawnMode* mode) {
  std::vector<std::string> f;
  size_t at = 0;
  while (at < n) {
    const void* z = std::memchr(p + at, '\0', n - at);
    if (!z) return false;
    size_t end = static_cast<size_t>(static_cast<const char*>(z) - p);
    f.emplace_back(p + at, end - at);
    at = end + 1;
  }
  if (f.size() < 4) return false;
  int m = std::atoi(f[0].c_str());
  if (m < 0 || m > 2) return false;
  *mode = static_cast<SpawnMode>(m);
  s->new_session = f[1] == "1";
  s->cwd = f[2];
  size_t argc = static_cast<size_t>(std::strtoul(f[3].c_str(), nullptr, 10));
  if (argc == 0 || 4 + argc > f.size() || (f.size() - 4 - argc) % 2 != 0) return false;
  s->argv.assign(f.begin() + 4, f.begin() + 4 + static_cast<long>(argc));
  for (size_t i = 4 + argc; i + 1 < f.size(); i += 2) s->env[f[i]] = f[i + 1];
  return true;
}

// ---- in the spawner

// A child of the spawner's parent (CLONE_PARENT): the caller reaps it and gets its SIGCHLD.
// The spawner is single-threaded, so the child may run ordinary code before it execs.
Answer start_child(const SpawnSpec& s, SpawnMode mode, int out_fd) {
  int ep[2] = {-1, -1};
  if (mode == SpawnMode::Child && ::pipe2(ep, O_CLOEXEC) != 0) return {-1, errno};
  long pid = ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, 0);
  if (pid == 0) {
    if (ep[0] >= 0) ::close(ep[0]);
    exec_child(s, out_fd, ep[1]);
  }
  int fork_err = errno;
  if (ep[1] >= 0) ::close(ep[1]);
  Answer a{pid, pid < 0 ? fork_err : 0};
  if (pid > 0 && ep[0] >= 0) {
    pollfd p{ep[0], POLLIN, 0};
    int e = 0;
    if (::poll(&p, 1, kExecWaitMs) > 0 && ::read(ep[0], &e, sizeof e) == static_cast<ssize_t>(sizeof e)) a.err = e;
  }
  if (ep[0] >= 0) ::close(ep[0]);
  return a;
}

Answer start_detached(const SpawnSpec& s, int out_fd) {
  int e = 0;
  pid_t g = start_detached_process(s, out_fd, &e);
  return {g, g > 0 ? 0 : e};
}

Answer serve_one(const char* buf, size_t n, int out_fd) {
  SpawnSpec s;
  SpawnMode mode{};
  if (!decode(buf, n, &s, &mode)) return {-1, EINVAL};
  return mode == SpawnMode::Detach ? start_detached(s, out_fd) : start_child(s, mode, out_fd);
}
}  // namespace

pid_t start_detached_process(const SpawnSpec& s, int out_fd, int* err) {
  int pp[2];
  if (::pipe2(pp, O_CLOEXEC) != 0) {
    *err = errno;
    return -1;
  }
  pid_t mid = ::fork();
  if (mid == 0) {
    ::close(pp[0]);
    ::setsid();
    pid_t g = ::fork();
    if (g == 0) {
      ::close(pp[1]);
      SpawnSpec s2 = s;
      s2.new_session = false;  // a session leader's child: its own group in that session
      ::setpgid(0, 0);
      exec_child(s2, out_fd, -1);
    }
    (void)!::write(pp[1], &g, sizeof g);
    ::_exit(0);
  }
  int fork_err = errno;
  ::close(pp[1]);
  pid_t g = -1;
  ssize_t n = mid > 0 ? ::read(pp[0], &g, sizeof g) : -1;
  ::close(pp[0]);
  if (mid > 0) (void)::waitpid(mid, nullptr, 0);
  *err = mid < 0 ? fork_err : EAGAIN;
  if (mid < 0 || n != static_cast<ssize_t>(sizeof g) || g <= 0) return -1;
  return g;
}

namespace {

[[noreturn]] void serve(int sock) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::prctl(PR_SET_NAME, "nfsup-spawner");
  signal(SIGINT, SIG_IGN);   // a Ctrl-C reaches the watchdog, which then closes the socket
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGCHLD, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // Only stdio and the socket: not the caller's lock or signal pipe, so children get neither.
  for (int fd = 3; fd < 1024; ++fd)
    if (fd != sock) ::close(fd);
  std::vector<char> buf(kMaxRequest);
  while (true) {
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))];
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl;
    mh.msg_controllen = sizeof ctl;
    ssize_t n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ::_exit(0);  // the caller is gone (or closed its end)
    int out_fd = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) std::memcpy(&out_fd, CMSG_DATA(c), sizeof out_fd);
    Answer a = (mh.msg_flags & MSG_TRUNC) ? Answer{-1, E2BIG} : serve_one(buf.data(), static_cast<size_t>(n), out_fd);
    if (out_fd >= 0) ::close(out_fd);
    if (::send(sock, &a, sizeof a, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof a)) ::_exit(0);
  }
}

// ---- in the caller

bool send_request(const std::string& m, int out_fd) {
  iovec iov{const_cast<char*>(m.data()), m.size()};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (out_fd >= 0) {
    mh.msg_control = ctl;
    mh.msg_controllen = sizeof ctl;
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &out_fd, sizeof out_fd);
  }
  ssize_t n;
  do n = ::sendmsg(g_sock, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(m.size());
}

std::optional<Answer> read_answer() {
  int64_t until = boot_ms() + kAnswerWaitMs;
  while (true) {
    int64_t left = until - boot_ms();
    pollfd p{g_sock, POLLIN, 0};
    int r = left > 0 ? ::poll(&p, 1, static_cast<int>(left)) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return std::nullopt;
    Answer a;
    ssize_t n = ::recv(g_sock, &a, sizeof a, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof a)) return std::nullopt;
    return a;
  }
}

// The spawner stopped answering (or died): children are started directly from now on.
void drop_spawner_locked() {
  ::close(g_sock);
  g_sock = -1;
  if (g_pid > 0) {
    ::kill(g_pid, SIGKILL);
    (void)::waitpid(g_pid, nullptr, 0);
  }
  g_pid = -1;
}

}  // namespace

void exec_child(const SpawnSpec& spec, int out_fd, int err_fd) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int s = 1; s < 32; ++s) signal(s, SIG_DFL);
  if (spec.new_session) setsid();
  if (out_fd >= 0) {
    dup2(out_fd, 1);
    dup2(out_fd, 2);
  }
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, 0);
  auto fail = [err_fd](const char* what, const std::string& arg) {
    int e = errno;
    dprintf(2, "nfsup: %s(%s): %s\n", what, arg.c_str(), strerror(e));
    if (err_fd >= 0) (void)!write(err_fd, &e, sizeof e);
    _exit(127);
  };
  if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) fail("chdir", spec.cwd);
  for (const auto& [k, v] : spec.env) setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());
  fail("exec", spec.argv[0]);
  _exit(127);  // (fail does not return)
}

bool start_spawner() {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_sock >= 0) return true;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return false;
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(sv[0]);
    ::close(sv[1]);
    return false;
  }
  if (pid == 0) {
    ::close(sv[0]);
    serve(sv[1]);
  }
  ::close(sv[1]);
  g_sock = sv[0];
  g_pid = pid;
  return true;
}

void stop_spawner() {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_sock >= 0) drop_spawner_locked();
}

std::optional<Result<pid_t>> spawn_via_spawner(const SpawnSpec& spec, SpawnMode mode, int out_fd) {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_sock < 0) return std::nullopt;
  std::string m = encode(spec, mode);
  if (m.size() > kMaxRequest) return Result<pid_t>(err(Exit::Usage, "command and environment too long to start"));
  if (!send_request(m, out_fd)) {
    drop_spawner_locked();
    return std::nullopt;
  }
  auto a = read_answer();
  if (!a) {
    drop_spawner_locked();
    return std::nullopt;
  }
  if (a->pid > 0 && a->err == 0) return Result<pid_t>(static_cast<pid_t>(a->pid));
  if (a->pid > 0) (void)::waitpid(static_cast<pid_t>(a->pid), nullptr, 0);  // exited 127 after a failed exec
  return Result<pid_t>(err(Exit::Failed, fmt::format("exec({}): {}", spec.argv[0], errno_str(a->err))));
}

}  // namespace nfsup
