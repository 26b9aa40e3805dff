#pragma once
// What every rtenv command shares: exit codes, error printing, option parsing helpers.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "config/config.h"
#include "env/home.h"
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

/// Sets the configuration main() built, once, before any command runs (it includes the flags).
void set_config(std::shared_ptr<const config::Config> config);
/// The configuration main() set (if none was set: the process environment's, for callers that
/// run without main, such as tests).
const std::shared_ptr<const config::Config>& shared_config();
inline const config::Config& process_config() { return *shared_config(); }
/// The home of the process configuration, with that configuration (directories created).
Result<env::Home> open_home();

/// Opens the store at `url` with every backend this binary has (the lean front: local
/// directories only; the others: also s3:// and http(s)://), with the process configuration's
/// token, CA bundle and S3 endpoint.
Result<std::unique_ptr<store::BlobStore>> open_any_store(const std::string& url);
/// True if this binary cannot open `url` itself and must hand the command to rtenv-full.
bool store_needs_full(const std::string& url);

/// -q: a command prints its answer, warnings and errors only (no progress, no summaries). Set
/// once by main() after parsing.
void set_quiet(bool quiet);
bool quiet();

/// Prints "rtenv: <message>" to stderr and returns `exit_code`.
int fail(int exit_code, const std::string& message);

/// Options of the package limits: --max-package-size, else the process configuration's
/// max_package_size and warn_file_size (RTENV_MAX_PACKAGE_SIZE, RTENV_WARN_FILE_SIZE).
struct SizeLimits {
  std::string max_package_size;  ///< from --max-package-size (also in the configuration)
  Result<void> apply(env::UploadOptions* options) const;
};

/// A one-line live progress display on stderr, drawn only when stderr is a terminal. Any thread
/// may call it.
class ProgressLine {
 public:
  ProgressLine();
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  /// Draws `text` in place of what is shown.
  void show(const std::string& text);
  /// Draws `text` followed by the seconds since the first of a run of show_timed calls, redrawn
  /// a few times a second until the next show or clear: for work that reports nothing of its
  /// own while it runs (a resolver, the agent's install).
  void show_timed(const std::string& text);
  void clear();
  bool enabled() const { return enabled_; }

 private:
  void draw_locked();
  void tick();

  bool enabled_;
  std::mutex mu_;  // progress arrives from worker threads; guards everything below
  std::string text_;
  bool shown_ = false;
  std::optional<std::chrono::steady_clock::time_point> since_;  // set while timed
  bool stopping_ = false;
  std::condition_variable wake_;
  std::thread ticker_;  // started by the first show_timed
};

/// Wires `upload`'s progress to `line`: hashing files, resolving packages (with the time it has
/// taken so far).
void show_setup_progress(env::UploadOptions* upload, ProgressLine* line);

/// An UploadOptions::progress callback that draws on `line`.
std::function<void(const std::string&, const pack::PackProgress&)> pack_progress(
    ProgressLine* line);

}  // namespace rtenv::cli
