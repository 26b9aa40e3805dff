#include "util/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "util/clock.h"
#include "util/fs.h"
#include "util/interrupt.h"

extern char** environ;

namespace rtenv {

namespace {

constexpr size_t kMaxErr = size_t{1} << 20;
constexpr int64_t kKillGraceMs = 2000;
constexpr int64_t kPollSliceMs = 50;        // how often the child's exit is checked
constexpr int64_t kDrainAfterExitMs = 500;  // reading on after it, for output still in flight

std::vector<std::string> make_environment(
    const std::map<std::string, std::optional<std::string>>& changes) {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    std::string name(entry.substr(0, entry.find('=')));
    if (!changes.contains(name)) out.emplace_back(entry);
  }
  for (const auto& [name, value] : changes) {
    if (value) out.push_back(name + "=" + *value);
  }
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Feeds complete lines of `chunk` to `on_line`, keeping a partial last line in `pending`.
void split_lines(std::string& pending, std::string_view chunk,
                 const std::function<void(std::string_view)>& on_line) {
  if (!on_line) return;
  pending.append(chunk);
  size_t start = 0;
  for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(pending.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    on_line(line);
  }
  pending.erase(0, start);
}

}  // namespace

std::string ProcessOutcome::describe() const {
  if (timed_out) return "timed out";
  if (out_too_large) return "killed: it wrote too much on stdout";
  if (term_signal != 0)
    return fmt::format("killed by signal {} ({})", term_signal, ::strsignal(term_signal));
  return fmt::format("exit status {}", exit_code);
}

std::optional<fs::path> find_program(const std::string& name,
                                     const std::optional<std::string>& path_value) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return fs::path(name);
    return std::nullopt;
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path_value ? std::string_view(*path_value)
                          : path     ? std::string_view(path)
                                     : std::string_view("/usr/local/bin:/usr/bin:/bin");
  while (true) {
    size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    if (colon == std::string_view::npos) return std::nullopt;
    dirs.remove_prefix(colon + 1);
  }
}

namespace {

// A started process and our ends of its pipes.
struct Spawned {
  fs::path program;
  pid_t pid = -1;
  UniqueFd in_w, out_r, err_r;
};

// Starts `spec` in its own process group with pipes on fds 0-2 (and spec.inherit_fd as fd 3).
Result<Spawned> spawn_piped(const ProcessSpec& spec) {
  if (spec.argv.empty()) return Error(ErrorCode::kInvalidArgument, "no program to run");
  auto program = find_program(spec.argv[0]);
  if (!program) {
    return make_error(ErrorCode::kNotFound, "program not found: {}", spec.argv[0]);
  }
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return io_error("cannot create a pipe for", *program, errno);
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) return io_error("cannot create a pipe for", *program, errno);
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return io_error("cannot create a pipe for", *program, errno);
  UniqueFd err_r(err[0]), err_w(err[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
  UniqueFd inherited;
  if (spec.inherit_fd >= 0) {
    // dup2 onto another number clears close-on-exec (onto itself it would not): go through a
    // copy numbered above 3, so the program always finds it as fd 3.
    inherited = UniqueFd(::fcntl(spec.inherit_fd, F_DUPFD_CLOEXEC, 10));
    if (!inherited.valid()) return io_error("cannot pass a descriptor to", *program, errno);
    posix_spawn_file_actions_adddup2(&actions, inherited.get(), 3);
  }
  if (spec.cwd) posix_spawn_file_actions_addchdir_np(&actions, spec.cwd->c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> argv_s = spec.argv;
  std::vector<std::string> env_s = make_environment(spec.env);
  auto argv = pointers(argv_s);
  auto envp = pointers(env_s);
  pid_t pid = -1;
  note_helper_starting();  // an interrupt from here on ends the helper with this process
  int rc = ::posix_spawn(&pid, program->c_str(), &actions, &attr, argv.data(), envp.data());
  note_helper_started(rc == 0 ? pid : -1);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return io_error("cannot start", *program, rc);
  Spawned started;
  started.program = *program;
  started.pid = pid;
  started.in_w = std::move(in_w);
  started.out_r = std::move(out_r);
  started.err_r = std::move(err_r);
  return started;
}

}  // namespace

Result<ProcessOutcome> run_process(const ProcessSpec& spec) {
  RTENV_ASSIGN_OR_RETURN(Spawned spawned, spawn_piped(spec));
  const fs::path& program = spawned.program;
  const pid_t pid = spawned.pid;
  UniqueFd in_w = std::move(spawned.in_w), out_r = std::move(spawned.out_r),
           err_r = std::move(spawned.err_r);

  ProcessOutcome outcome;
  std::string pending;
  size_t stdin_off = 0;
  if (spec.stdin_data.empty()) in_w.reset();
  ::fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  const int64_t start = steady_ms();
  int64_t kill_at = spec.timeout_ms >= 0 ? start + spec.timeout_ms : -1;
  bool termed = false;
  // The child's exit is watched too, not only its pipes: a process it left behind (a daemon in
  // another session, out of reach of the group kill) may hold the pipes open for good. Once the
  // child is gone, what is already written is read for a moment, then reading stops.
  bool exited = false;
  int status = 0;
  int64_t stop_reading_at = -1;
  char buf[65536];
  auto kill_group = [&] {
    outcome.timed_out = true;
    ::kill(-pid, termed ? SIGKILL : SIGTERM);  // politely, then not
    kill_at = termed ? -1 : steady_ms() + kKillGraceMs;
    termed = true;
  };
  while (out_r.valid() || err_r.valid()) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_r.valid()) fds[out_i = n++] = {out_r.get(), POLLIN, 0};
    if (err_r.valid()) fds[err_i = n++] = {err_r.get(), POLLIN, 0};
    if (in_w.valid()) fds[in_i = n++] = {in_w.get(), POLLOUT, 0};
    int64_t now = steady_ms();
    int64_t wait = exited ? stop_reading_at - now : kPollSliceMs;
    if (!exited && kill_at >= 0) wait = std::min(wait, kill_at - now);
    int ready = ::poll(fds, n, static_cast<int>(std::max<int64_t>(0, wait)));
    if (ready < 0 && errno != EINTR) break;
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      stop_reading_at = steady_ms() + kDrainAfterExitMs;
    }
    if (exited && steady_ms() >= stop_reading_at) break;
    if (!exited && kill_at >= 0 && steady_ms() >= kill_at) {
      kill_group();
      continue;
    }
    if (ready <= 0) continue;
    auto drain = [&](UniqueFd& fd, short revents, bool is_err) {
      if (!(revents & (POLLIN | POLLHUP | POLLERR))) return;
      ssize_t got = ::read(fd.get(), buf, sizeof buf);
      if (got <= 0) {
        if (got < 0 && errno == EINTR) return;
        fd.reset();
        return;
      }
      std::string_view chunk(buf, static_cast<size_t>(got));
      if (!is_err) {
        outcome.out.append(chunk);
        if (spec.max_out > 0 && outcome.out.size() > spec.max_out) {
          outcome.out_too_large = true;
          outcome.out.resize(spec.max_out);
          ::kill(-pid, SIGKILL);
          fd.reset();
        }
        return;
      }
      outcome.err.append(chunk);
      if (outcome.err.size() > 2 * kMaxErr) outcome.err.erase(0, outcome.err.size() - kMaxErr);
      split_lines(pending, chunk, spec.on_stderr_line);
    };
    if (out_i >= 0) drain(out_r, fds[out_i].revents, false);
    if (err_i >= 0) drain(err_r, fds[err_i].revents, true);
    if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t put = ::write(in_w.get(), spec.stdin_data.data() + stdin_off,
                            spec.stdin_data.size() - stdin_off);
      if (put > 0) stdin_off += static_cast<size_t>(put);
      if ((put < 0 && errno != EAGAIN && errno != EINTR) || stdin_off == spec.stdin_data.size()) {
        in_w.reset();
      }
    }
  }
  in_w.reset();
  if (!pending.empty() && spec.on_stderr_line) spec.on_stderr_line(pending);
  if (outcome.err.size() > kMaxErr) outcome.err.erase(0, outcome.err.size() - kMaxErr);

  while (!exited) {
    // The pipes closed; the process is about to exit (or closed them itself: keep the deadline).
    pid_t r = ::waitpid(pid, &status, kill_at >= 0 ? WNOHANG : 0);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return io_error("cannot wait for", program, errno);
    if (r == 0) {
      if (steady_ms() >= kill_at) {
        kill_group();
      } else {
        ::usleep(2000);
      }
    }
  }
  note_helper_reaped(pid);
  // Killed because this process is being interrupted: that is not the helper's failure to
  // report; the interrupt handler ends the process in a moment.
  hold_if_interrupted();
  if (WIFSIGNALED(status)) outcome.term_signal = WTERMSIG(status);
  if (WIFEXITED(status)) outcome.exit_code = WEXITSTATUS(status);
  // Whatever the group left running (a daemonized grandchild) goes with the deadline too.
  if (outcome.timed_out) ::kill(-pid, SIGKILL);
  return outcome;
}

// ---- LineProcess ------------------------------------------------------------------------------

Result<std::unique_ptr<LineProcess>> LineProcess::start(const ProcessSpec& spec) {
  RTENV_ASSIGN_OR_RETURN(Spawned spawned, spawn_piped(spec));
  std::unique_ptr<LineProcess> p(new LineProcess());
  p->program_ = spawned.program;
  p->pid_ = spawned.pid;
  p->in_ = std::move(spawned.in_w);
  p->out_ = std::move(spawned.out_r);
  p->err_ = std::move(spawned.err_r);
  return p;
}

LineProcess::~LineProcess() { stop(); }

void LineProcess::stop() {
  if (pid_ < 0) return;
  in_.reset();  // end of input: it leaves by itself
  int status = 0;
  for (int i = 0; i < 50; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      note_helper_reaped(pid_);
      pid_ = -1;
      break;
    }
    ::usleep(2000);
  }
  if (pid_ >= 0) {
    ::kill(-pid_, SIGKILL);
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    note_helper_reaped(pid_);
    pid_ = -1;
  }
  out_.reset();
  err_.reset();
}

bool LineProcess::alive() {
  if (pid_ < 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_) return true;
  note_helper_reaped(pid_);
  pid_ = -1;
  return false;
}

Result<std::string> LineProcess::call(std::string_view request, int64_t timeout_ms,
                                      size_t max_answer,
                                      const std::function<void(std::string_view)>& on_stderr_line) {
  if (pid_ < 0) return make_error(ErrorCode::kUnavailable, "{} is not running", program_.string());
  const int64_t deadline = deadline_after(timeout_ms);
  std::string err_tail, pending_err;
  auto gone = [&](const std::string& how) {
    stop();
    hold_if_interrupted();  // it died of this process's interrupt: not its failure to report
    std::string tail = err_tail.size() > 4096 ? err_tail.substr(err_tail.size() - 4096) : err_tail;
    return make_error(ErrorCode::kUnavailable, "{} {}{}{}", program_.string(), how,
                      tail.empty() ? "" : ": ", tail);
  };
  std::string line(request);
  line += '\n';
  for (size_t off = 0; off < line.size();) {
    ssize_t put = ::write(in_.get(), line.data() + off, line.size() - off);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return gone("exited before it read the request");
    off += static_cast<size_t>(put);
  }
  std::string answer;
  char buf[65536];
  while (true) {
    size_t nl = answer.find('\n');
    if (nl != std::string::npos) {
      answer.resize(nl);
      if (!pending_err.empty() && on_stderr_line) on_stderr_line(pending_err);
      return answer;
    }
    if (answer.size() > max_answer) {
      stop();
      return make_error(ErrorCode::kTooLarge, "{} answered more than {} bytes", program_.string(),
                        max_answer);
    }
    int64_t wait = deadline < 0 ? 1000 : deadline - steady_ms();
    if (wait <= 0) {
      stop();
      return make_error(ErrorCode::kTimeout, "{} did not answer in time", program_.string());
    }
    pollfd fds[2] = {{out_.get(), POLLIN, 0}, {err_.get(), POLLIN, 0}};
    int ready = ::poll(fds, err_.valid() ? 2 : 1, static_cast<int>(std::min<int64_t>(wait, 1000)));
    if (ready < 0 && errno != EINTR) return gone("could not be read");
    if (ready <= 0) continue;
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = ::read(err_.get(), buf, sizeof buf);
      if (got > 0) {
        std::string_view chunk(buf, static_cast<size_t>(got));
        err_tail.append(chunk);
        if (err_tail.size() > 2 * kMaxErr) err_tail.erase(0, err_tail.size() - kMaxErr);
        split_lines(pending_err, chunk, on_stderr_line);
      } else if (got == 0) {
        err_.reset();
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = ::read(out_.get(), buf, sizeof buf);
      if (got == 0) return gone("exited without answering");
      if (got > 0) answer.append(buf, static_cast<size_t>(got));
    }
  }
}

Result<void> start_detached(const std::vector<std::string>& argv, int niceness) {
  if (argv.empty()) return make_error(ErrorCode::kInvalidArgument, "start_detached: no program");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return make_error(ErrorCode::kIo, "cannot start {}: {}", argv[0], errno_text());
  if (pid == 0) {
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd >= 0) {
      ::dup2(null_fd, 0);
      ::dup2(null_fd, 1);
      ::dup2(null_fd, 2);
    }
    ::close_range(3, ~0U, 0);
    if (niceness != 0) (void)!::nice(niceness);
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return ok_result();
}

}  // namespace rtenv
