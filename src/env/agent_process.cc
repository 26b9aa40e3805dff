#include "env/agent_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>

#include "util/fs.h"

namespace rtenv::env {

std::string self_executable() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "rtenv" : p.string();
}

Result<StartedAgent> start_agent_process(const Home& home) {
  std::string idle = std::to_string(home.config().agent_idle_exit_seconds());
  // The lean agent binary beside this one, if installed: one exec instead of two.
  std::string exe = self_executable();
  std::string lean = (fs::path(exe).parent_path() / "rtenv-agent").string();
  bool use_lean = ::access(lean.c_str(), X_OK) == 0;
  std::string log = (home.logs() / "agent.log").string();
  StartedAgent started;
  std::error_code ec;
  if (auto size = fs::file_size(log, ec); !ec) started.log_offset = size;
  // The grandchild (the agent) sends its pid back through this pipe.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return make_error(ErrorCode::kIo, "cannot start the agent: {}", errno_text());
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return make_error(ErrorCode::kIo, "cannot start the agent: {}", errno_text());
  }
  if (pid == 0) {
    ::close(fds[0]);
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    pid_t self = ::getpid();
    (void)!::write(fds[1], &self, sizeof self);
    ::close(fds[1]);
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    }
    // Nothing of the caller's but stdio: a lease descriptor a job passed down would otherwise
    // keep that job's packages "in use" for the agent's whole life.
    ::close_range(3, ~0U, 0);
    if (::chdir("/") != 0) ::_exit(127);
    ::signal(SIGPIPE, SIG_DFL);
    ::setenv("RTENV_HOME", home.root.c_str(), 1);
    if (use_lean) {
      ::execl(lean.c_str(), lean.c_str(), "--idle-exit", idle.c_str(), "--on-demand", nullptr);
    }
    ::execl(exe.c_str(), exe.c_str(), "agent", "--idle-exit", idle.c_str(), "--on-demand", nullptr);
    ::_exit(127);
  }
  ::close(fds[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  pid_t agent = 0;
  ssize_t n;
  do {
    n = ::read(fds[0], &agent, sizeof agent);
  } while (n < 0 && errno == EINTR);
  ::close(fds[0]);
  if (n != static_cast<ssize_t>(sizeof agent) || agent <= 0) {
    return Error(ErrorCode::kIo, "cannot start the agent: its process did not start");
  }
  started.pid = agent;
  return started;
}

std::string agent_log_tail(const Home& home, const StartedAgent& started) {
  auto text = read_file(home.logs() / "agent.log");
  if (!text || text->size() <= started.log_offset) return {};
  std::string tail = text->substr(started.log_offset);
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  constexpr size_t kMax = 2000;
  if (tail.size() > kMax) {
    tail = tail.substr(tail.size() - kMax);
    if (size_t nl = tail.find('\n'); nl != std::string::npos) tail = tail.substr(nl + 1);
  }
  return tail;
}

bool process_alive(pid_t pid) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
  // A zombie has exited; only its parent's wait is missing (the agent's parent is init, or a
  // subreaper that may be slow to reap).
  auto stat = read_file(fs::path("/proc") / std::to_string(pid) / "stat");
  if (!stat) return true;
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size()) return true;
  char state = (*stat)[paren + 2];
  return state != 'Z' && state != 'X';
}

bool agent_process_running(const Home& home) {
  auto text = read_file(home.root / "agent.pid");
  if (!text) return false;
  pid_t pid = static_cast<pid_t>(std::atol(text->c_str()));
  return pid > 0 && ::kill(pid, 0) == 0;
}

}  // namespace rtenv::env
