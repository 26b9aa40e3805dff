#include "env/agent_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cstdlib>

#include "util/fs.h"

namespace rtenv::env {

std::string self_executable() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "rtenv" : p.string();
}

Result<void> start_agent_process(const Home& home) {
  std::string idle = "600";
  if (const char* v = std::getenv("RTENV_AGENT_IDLE_EXIT"); v && *v) {
    idle = std::to_string(std::atoi(v));
  }
  // The lean agent binary beside this one, if installed: one exec instead of two.
  std::string exe = self_executable();
  std::string lean = (fs::path(exe).parent_path() / "rtenv-agent").string();
  bool use_lean = ::access(lean.c_str(), X_OK) == 0;
  std::string log = (home.logs() / "agent.log").string();
  pid_t pid = ::fork();
  if (pid < 0) return make_error(ErrorCode::kIo, "cannot start the agent: {}", errno_text());
  if (pid == 0) {
    ::setsid();
    if (::fork() != 0) ::_exit(0);
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
    if (use_lean) ::execl(lean.c_str(), lean.c_str(), "--idle-exit", idle.c_str(), nullptr);
    ::execl(exe.c_str(), exe.c_str(), "agent", "--idle-exit", idle.c_str(), nullptr);
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return ok_result();
}

bool agent_process_running(const Home& home) {
  auto text = read_file(home.root / "agent.pid");
  if (!text) return false;
  pid_t pid = static_cast<pid_t>(std::atol(text->c_str()));
  return pid > 0 && ::kill(pid, 0) == 0;
}

}  // namespace rtenv::env
