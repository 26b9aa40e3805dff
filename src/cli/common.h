#pragma once
// What every rtenv command shares: exit codes, error printing, option parsing helpers.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "env/setup.h"
#include "util/result.h"

namespace rtenv::cli {

/// Exit statuses of rtenv itself (a command run inside an env exits with its own status).
inline constexpr int kExitUsage = 2;  ///< invalid runtime_env, bad flag or argument
inline constexpr int kExitSetup = 3;  ///< setting the environment up failed

/// Remembers the command line, for exec_full().
void set_command_line(int argc, char** argv);

/// Replaces this process with `rtenv-full` (installed beside this binary) and the same command
/// line. The `rtenv` binary is a lean front that handles the frequent cases (a warm `run`,
/// `pack`) without loading gRPC, libcurl or libarchive; everything else goes to rtenv-full.
/// Returns only on failure, with the exit status to use.
int exec_full();

/// Opens the store at `url` with every backend this binary has (the lean front: local
/// directories only; the others: also s3:// and http(s)://).
Result<std::unique_ptr<store::BlobStore>> open_any_store(const std::string& url);
/// True if this binary cannot open `url` itself and must hand the command to rtenv-full.
bool store_needs_full(const std::string& url);

/// Prints "rtenv: <message>" to stderr and returns `exit_code`.
int fail(int exit_code, const std::string& message);

/// Options of the package limits, from flags or the environment (RTENV_MAX_PACKAGE_SIZE,
/// RTENV_WARN_FILE_SIZE).
struct SizeLimits {
  std::string max_package_size;  ///< from --max-package-size
  Result<void> apply(env::UploadOptions* options) const;
};

/// A one-line live progress display on stderr, drawn only when stderr is a terminal.
class ProgressLine {
 public:
  ProgressLine();
  ~ProgressLine() { clear(); }
  void show(const std::string& text);
  void clear();
  bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  bool shown_ = false;
  std::mutex mu_;  // progress arrives from worker threads
};

/// An UploadOptions::progress callback that draws on `line`.
std::function<void(const std::string&, const pack::PackProgress&)> pack_progress(
    ProgressLine* line);

}  // namespace rtenv::cli
