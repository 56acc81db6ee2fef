// nfsup os: process control.
#include "procs.h"
#include "spawner.h"

#include <fcntl.h>
#include <cstdio>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace nfsup {

// The child is started with posix_spawn (a vfork-style clone that shares the parent's memory
// until exec): fork() copied the watchdog's page tables for each agent start, and the agent
// starts of a whole fleet's upgrade share the same moment. Same child set-up as child_exec.
static Result<pid_t> spawn_direct(const SpawnSpec& spec, int out_fd) {
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t none, dfl;
  sigemptyset(&none);
  sigemptyset(&dfl);
  for (int sig = 1; sig < 32; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) sigaddset(&dfl, sig);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &dfl);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (spec.new_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&at, flags);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (out_fd >= 0) {
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
  }
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, spec.cwd.c_str());
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    std::string_view k = kv.substr(0, kv.find('='));
    bool replaced = false;
    for (const auto& [key, v] : spec.env) replaced = replaced || key == k;
    if (!replaced) env.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.env) env.push_back(k + "=" + v);
  std::vector<char*> envp, argv;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0], &fa, &at, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (rc != 0) return err(Exit::Failed, fmt::format("exec({}): {}", spec.argv[0], errno_str(rc)));
  return pid;
}

Result<pid_t> spawn(const SpawnSpec& spec) {
  if (spec.argv.empty()) return err(Exit::Usage, "empty command");
  if (!spec.detach) {
    int out_fd = -1;
    if (!spec.stdout_path.empty()) {
      out_fd = open(spec.stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (out_fd < 0) return err(Exit::Failed, fmt::format("open({}): {}", spec.stdout_path, errno_str(errno)));
    }
    auto v = spawn_via_spawner(spec, SpawnMode::Child, out_fd);
    auto r = v ? std::move(*v) : spawn_direct(spec, out_fd);
    if (out_fd >= 0) close(out_fd);
    return r;
  }
  int out_fd = -1;
  if (!spec.stdout_path.empty()) {
    out_fd = open(spec.stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0) return err(Exit::Failed, fmt::format("open({}): {}", spec.stdout_path, errno_str(errno)));
  }
  if (auto v = spawn_via_spawner(spec, SpawnMode::Detach, out_fd)) {
    if (out_fd >= 0) close(out_fd);
    return std::move(*v);
  }
  int e = 0;
  pid_t g = start_detached_process(spec, out_fd, &e);
  if (out_fd >= 0) close(out_fd);
  if (g > 0) return g;
  if (e == EAGAIN) return err(Exit::Failed, "could not start the detached process");
  return err(Exit::Failed, fmt::format("fork: {}", errno_str(e)));
}

Result<RunResult> run_with_timeout(const SpawnSpec& spec_in, int64_t timeout_ms,
                                   const std::function<bool()>& keep_going) {
  SpawnSpec spec = spec_in;
  spec.detach = false;
  spec.new_session = true;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return err(Exit::Failed, "pipe: " + errno_str(errno));
  pid_t pid = -1;
  if (auto v = spawn_via_spawner(spec, SpawnMode::Run, p[1]); v && *v) {
    pid = **v;
  } else if (v) {
    close(p[0]);
    close(p[1]);
    return v->error();
  } else {
    pid = fork();
  }
  if (pid < 0) {
    close(p[0]);
    close(p[1]);
    return err(Exit::Failed, "fork: " + errno_str(errno));
  }
  if (pid == 0) {
    close(p[0]);
    fcntl(p[1], F_SETFD, 0);
    exec_child(spec, p[1], -1);
  }
  close(p[1]);
  RunResult r;
  int64_t deadline = boot_ms() + timeout_ms;
  bool eof = false;
  int status = 0;
  bool reaped = false;
  while (true) {
    int64_t left = deadline - boot_ms();
    if (left <= 0) {
      r.timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      break;
    }
    if (keep_going && !keep_going()) {
      r.cancelled = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      break;
    }
    if (!eof) {
      pollfd pf{p[0], POLLIN, 0};
      int pr = poll(&pf, 1, static_cast<int>(std::min<int64_t>(left, 100)));
      if (pr > 0) {
        char buf[4096];
        ssize_t n = read(p[0], buf, sizeof buf);
        if (n > 0) {
          if (r.output.size() < 65536) r.output.append(buf, static_cast<size_t>(n));
        } else if (n == 0) {
          eof = true;
        }
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      reaped = true;
      // Drain what is left without blocking on grandchildren that keep the pipe open.
      fcntl(p[0], F_SETFL, O_NONBLOCK);
      char buf[4096];
      ssize_t n;
      while ((n = read(p[0], buf, sizeof buf)) > 0)
        if (r.output.size() < 65536) r.output.append(buf, static_cast<size_t>(n));
      break;
    }
  }
  close(p[0]);
  if (!reaped) waitpid(pid, &status, 0);
  if (r.timed_out || r.cancelled) return r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

void signal_process(pid_t pid, int sig) {
  if (pid <= 0) return;
  if (getpgid(pid) == pid) kill(-pid, sig);
  else kill(pid, sig);
}

void wait_for_exit(pid_t pid, int64_t timeout_ms) {
  if (timeout_ms <= 0) return;
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(timeout_ms, 5)));
    return;
  }
  pollfd p{fd, POLLIN, 0};
  (void)::poll(&p, 1, static_cast<int>(std::min<int64_t>(timeout_ms, 1 << 30)));
  ::close(fd);
}

bool stop_process(pid_t pid, int sig, int64_t timeout_ms, bool is_child, bool already_sent) {
  if (pid <= 0) return true;
  pid_t pg = getpgid(pid);
  bool group = pg == pid;
  auto send = [&](int s) {
    if (group) kill(-pid, s);
    else kill(pid, s);
  };
  auto gone = [&]() {
    if (is_child) {
      int st;
      pid_t w = waitpid(pid, &st, WNOHANG);
      return w == pid || (w < 0 && errno == ECHILD);
    }
    return kill(pid, 0) != 0 && errno == ESRCH;
  };
  if (gone()) return true;
  if (!already_sent) send(sig);
  if (sig == SIGSTOP) send(SIGCONT);
  int64_t deadline = boot_ms() + timeout_ms;
  while (true) {
    if (gone()) {
      if (group) kill(-pid, SIGKILL);  // leftovers in the group
      return true;
    }
    int64_t left = deadline - boot_ms();
    if (left <= 0) break;
    wait_for_exit(pid, std::min<int64_t>(left, 100));
  }
  send(SIGKILL);
  for (int i = 0; i < 250 && !gone(); ++i) wait_for_exit(pid, 20);
  return false;
}

NFSUP_HOT bool pid_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

uint64_t process_start_time(pid_t pid) {
  char path[48], buf[1024];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  std::string_view s(buf, static_cast<size_t>(n));
  auto rp = s.rfind(')');  // the command name may hold spaces and parentheses
  if (rp == std::string_view::npos || rp + 2 > s.size()) return 0;
  s.remove_prefix(rp + 2);
  // fields after ")": state(3) ppid(4) ... starttime is field 22, index 19 here
  for (int i = 0; i < 20; ++i) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    size_t end = s.find(' ');
    std::string_view tok = s.substr(0, end);
    if (tok.empty()) return 0;
    if (i == 0 && (tok == "Z" || tok == "X")) return 0;
    if (i == 19) {
      uint64_t v = 0;
      for (char c : tok) {
        if (c < '0' || c > '9') return 0;
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      return v;
    }
    if (end == std::string_view::npos) return 0;
    s.remove_prefix(end);
  }
  return 0;
}

NFSUP_HOT bool process_alive(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return false;
  uint64_t st = process_start_time(pid);
  return st != 0 && st == start_time;
}

static int g_sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  (void)!write(g_sig_pipe[1], &b, 1);
  errno = saved;
}

int install_signal_pipe() {
  if (g_sig_pipe[0] >= 0) return g_sig_pipe[0];
  if (pipe2(g_sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaction(s, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return g_sig_pipe[0];
}

std::vector<int> read_signals(int fd) {
  std::vector<int> out;
  unsigned char buf[64];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    for (ssize_t i = 0; i < n; ++i) out.push_back(buf[i]);
  return out;
}

}  // namespace nfsup
