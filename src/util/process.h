#pragma once
// Running a helper program (an installer) to completion: output captured, a deadline enforced on
// the whole process group. No domain knowledge.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/fs.h"
#include "util/result.h"

namespace rtenv {

struct ProcessSpec {
  std::vector<std::string> argv;  ///< argv[0] is a path, or a name looked up on PATH
  /// Changes to the caller's environment: a value sets the variable, nullopt removes it.
  std::map<std::string, std::optional<std::string>> env;
  std::optional<std::filesystem::path> cwd;
  std::string stdin_data;  ///< written to the process's stdin, which is then closed
  /// Milliseconds until the process group is killed (TERM, then KILL after a grace period);
  /// negative: no deadline.
  int64_t timeout_ms = -1;
  /// Called with each line the process writes to stderr, without the newline, as it comes.
  std::function<void(std::string_view line)> on_stderr_line;
  /// Bytes of stdout kept at most (0: all). A process that writes more is killed (its whole
  /// group) and its outcome says out_too_large.
  size_t max_out = 0;
  /// A descriptor the process inherits as fd 3: a lock it must hold as long as it runs, even
  /// if its caller dies first. -1: none.
  int inherit_fd = -1;
};

struct ProcessOutcome {
  int exit_code = 0;    ///< valid when term_signal == 0
  int term_signal = 0;  ///< the signal that ended it, or 0
  bool timed_out = false;
  bool out_too_large = false;  ///< killed for writing more than ProcessSpec::max_out
  std::string out;             ///< all of stdout
  std::string err;             ///< all of stderr (the last 1 MiB if it wrote more)

  bool success() const {
    return term_signal == 0 && exit_code == 0 && !timed_out && !out_too_large;
  }
  /// "exit status 2", "killed by signal 9", "timed out".
  std::string describe() const;
};

/// Starts the program in its own process group and waits for it. Errors only when it cannot be
/// started (kNotFound: no such program); a program that fails is a successful call whose
/// outcome says how it ended. Thread-safe.
Result<ProcessOutcome> run_process(const ProcessSpec& spec);

/// Starts `argv` (argv[0] an absolute path) detached: in a session of its own, reparented to
/// init, stdio on /dev/null, no other descriptor of this process, at `niceness` (added to this
/// process's), not waited for and never killed by this process's interrupt handlers (work that
/// may outlive its starter). Errors only when the first fork fails.
Result<void> start_detached(const std::vector<std::string>& argv, int niceness = 0);

/// The executable `name` would run as: itself if it contains a '/', else the first match on
/// `path` (a PATH value; default: this process's $PATH). nullopt if there is none.
std::optional<std::filesystem::path> find_program(
    const std::string& name, const std::optional<std::string>& path = std::nullopt);

/// A helper program kept running to answer requests one at a time: a request is one line on its
/// stdin, its answer one line on its stdout; what it writes to stderr meanwhile goes to the
/// request's `on_stderr_line`. It runs in its own process group. Not thread-safe: its owner
/// serializes the calls.
class LineProcess {
 public:
  /// Starts `spec.argv` with `spec.env` (stdin, timeout and output limits are per call).
  static Result<std::unique_ptr<LineProcess>> start(const ProcessSpec& spec);
  /// Closes its stdin, gives it a moment to leave, then kills its group.
  ~LineProcess();
  LineProcess(const LineProcess&) = delete;
  LineProcess& operator=(const LineProcess&) = delete;

  /// False once it has exited (it may leave by itself, e.g. when idle): start another.
  bool alive();
  /// Sends `request` (one line, no newline in it) and returns its answer line. kTimeout past
  /// `timeout_ms` (negative: none), kTooLarge past `max_answer` bytes, kUnavailable if it exited
  /// (with the end of its stderr); after any error it is stopped.
  Result<std::string> call(std::string_view request, int64_t timeout_ms, size_t max_answer,
                           const std::function<void(std::string_view)>& on_stderr_line = {});

 private:
  LineProcess() = default;
  void stop();

  std::filesystem::path program_;
  pid_t pid_ = -1;
  UniqueFd in_, out_, err_;
};

}  // namespace rtenv
