#pragma once
// Python environments: the `pip` and `uv` fields (and `py_executable`, which names their base
// interpreter or, alone, the process's). A requirement list is resolved once to exact pins (a
// lock); each distinct locked set gets its own virtualenv on the node, built with uv (or pip)
// from a package cache all envs share.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "env/home.h"
#include "env/published_dirs.h"
#include "spec/runtime_env.h"
#include "store/blob_store.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/result.h"

namespace rtenv::env {

/// The virtualenv an interpreter runs in (a `pyvenv.cfg` beside it or one directory up, as
/// Python's own `site` finds it). Envs built on such an interpreter layer on that venv: they see
/// its packages behind their own (docs/python.md).
struct BaseVenv {
  fs::path dir;     ///< the venv's directory (its sys.prefix)
  fs::path python;  ///< the interpreter as the venv names it (not resolved): "<dir>/bin/python3"
  std::vector<fs::path> site_packages;  ///< its site-packages directories that exist
  bool system_site_packages = false;    ///< whether it sees the base interpreter's site-packages
};

/// A base interpreter, identified by running it once (the answer is cached under
/// $RTENV_HOME/python/, keyed by the file's identity and its venv's pyvenv.cfg, so later calls
/// start no process).
struct Interpreter {
  fs::path executable;         ///< the real binary, links resolved (a venv's: its base's)
  std::string version;         ///< "3.11.7"
  std::string platform;        ///< sysconfig.get_platform(): "linux-x86_64"
  std::string implementation;  ///< "cpython"
  std::optional<BaseVenv> venv = std::nullopt;  ///< set when it runs in a virtualenv

  /// How an env names this interpreter (`pip.python` of a lock), so that every node finds the
  /// same environment: the venv's python for one in a venv, else the executable.
  fs::path named() const { return venv ? venv->python : executable; }
  /// Whether `other` runs the same interpreter in the same environment.
  bool same_environment(const Interpreter& other) const {
    return executable == other.executable &&
           (venv ? venv->dir.string() : "") == (other.venv ? other.venv->dir.string() : "");
  }
};

/// The base interpreter of Python envs: `wanted` (a path or a name on PATH) if given, else
/// $RTENV_PYTHON, else `python3` on PATH. kNotFound (with what to set) if there is none;
/// kInvalidArgument if it is not executable or does not run. The messages name the file.
Result<Interpreter> find_interpreter(const Home& home,
                                     const std::optional<std::string>& wanted = std::nullopt);

/// A `py_executable` value: how it names the process's interpreter.
struct PyExecutable {
  enum class Form {
    kPath,          ///< an absolute path
    kName,          ///< a command name, found on PATH
    kInWorkingDir,  ///< a relative path with a '/', inside the node's copy of working_dir
  };
  Form form = Form::kName;
  std::string value;

  /// Classifies `value`. kUnsupported for a command prefix with arguments ("uv run --with x":
  /// whitespace in anything but an existing absolute path), and for an empty value.
  static Result<PyExecutable> parse(const std::string& value);
};

/// The base interpreter of an env's Python envs (its pip/uv virtualenv, its py_modules wheels):
/// `pip`'s or `uv`'s `python`, else `py_executable`, else the node's default. When both
/// `python` and `py_executable` are given they must run the same interpreter (kInvalidArgument
/// naming both otherwise); a `py_executable` relative to working_dir cannot be a base
/// (kUnsupported: that file exists on the node only once working_dir is materialized).
/// Errors carry the field ("runtime_env.py_executable: ...").
Result<Interpreter> find_env_interpreter(const spec::RuntimeEnv& env, const Home& home);

/// What installs packages: uv when available, else pip (the base interpreter's).
struct Installer {
  enum class Tool { kUv, kPip };
  Tool tool = Tool::kPip;
  fs::path uv;  ///< the uv binary, when tool is kUv
  const char* name() const { return tool == Tool::kUv ? "uv" : "pip"; }
};

/// The config's installer ("uv", "pip" or "auto", the default; RTENV_INSTALLER) decides; uv is
/// the config's uv (RTENV_UV), else the uv installed beside the interpreter, else `uv` on PATH.
/// The `uv` field needs uv (kNotFound saying how to get it).
Result<Installer> find_installer(const config::Config& config, const Interpreter& python,
                                 spec::Installer field);

/// Reports a line of an installer's progress.
using InstallProgress = std::function<void(const std::string& line)>;

struct LockOptions {
  int64_t timeout_ms = -1;  ///< for the resolver process; negative: none
  bool refresh = false;     ///< resolve again even if this requirement list was resolved before
  InstallProgress progress;
  /// Called with a one-line summary when a resolver has finished ("resolved 3 Python
  /// requirements to 7 pins with uv in 2.1 s").
  InstallProgress report;
  /// Called once just before a resolver starts (the list was not resolved before): the slow
  /// path, which a caller may use to start other work meanwhile.
  std::function<void()> before_resolving;
  /// Resolve for an interpreter that is not on this machine yet (a conda env's, before the env
  /// is installed), given by its version ("3.11.2") and uv's name of its platform
  /// ("x86_64-unknown-linux-gnu"), instead of for `python`. uv only.
  struct Target {
    std::string python_version;
    std::string platform;
  };
  std::optional<Target> target;
};

/// Resolves `loose` to exact pins with hashes (`uv pip compile --generate-hashes`, or
/// `pip install --dry-run --report`), keeping its index options; the result is `locked`.
/// Resolutions are cached under $RTENV_HOME/locks/ by the requirement list and interpreter, so
/// a job submitted again gets the same versions without asking the index. Already locked:
/// returned as is. Errors carry the installer's relevant lines.
Result<spec::PythonPackages> lock_packages(const spec::PythonPackages& loose, const Home& home,
                                           const Interpreter& python, const Installer& installer,
                                           const LockOptions& options);

/// The env with its `pip`/`uv` field locked (lock_packages); unchanged without one.
Result<spec::RuntimeEnv> lock_python(const spec::RuntimeEnv& env, const Home& home,
                                     const LockOptions& options);

/// A virtualenv a locked package set needs, and its key: SHA-256 of the pins, the installer
/// options and the interpreter (path, version, platform, and the venv it runs in, if any: two
/// venvs on one base interpreter get envs of their own).
struct PythonEnvRequest {
  spec::PythonPackages packages;  ///< locked
  Interpreter python;
  Installer installer;
  Digest key;
  /// Set for a py_modules wheel: the .whl file on the node, installed (without its
  /// dependencies) into a private target directory instead of a virtualenv.
  std::optional<fs::path> wheel;
  /// Set for a `py_executable` without packages: the interpreter (an absolute path on the node,
  /// possibly a wrapper script or another venv's python) that the env's bin/python and
  /// bin/python3 start with `exec`, so that it runs exactly as named. No virtualenv, no
  /// packages; `python` and `installer` are unused.
  std::optional<fs::path> launcher;

  static Result<PythonEnvRequest> make(const spec::PythonPackages& locked, Interpreter python,
                                       Installer installer);
  /// A wheel's target directory, keyed by the wheel (`wheel_uri`: its package URI and file name)
  /// and the interpreter.
  static PythonEnvRequest make_wheel(const std::string& wheel_uri, fs::path wheel_file,
                                     Interpreter python, Installer installer);
  /// The bin/ of python launchers for `py_executable` (an absolute path), keyed by that path.
  static PythonEnvRequest make_launcher(fs::path py_executable);
  /// "pyenv://<key>": how references and listings name it.
  std::string uri() const { return std::string(kUriPrefix) + key.hex(); }
  static constexpr std::string_view kUriPrefix = "pyenv://";
};

/// The keys a shared build is signed and checked with (python_env.cc).
struct BuildKeys;

/// The node's virtualenvs, each in $RTENV_HOME/pyenvs/<key>/ with <key>.lock (users hold it
/// shared; builders and eviction exclusive) and <key>.ready (written last: an env without it is
/// never used, and is removed and rebuilt by the next builder). Venvs are built in place (their
/// scripts name their own absolute path), under the exclusive lock, which the installer
/// processes inherit so that a builder that dies does not let another start while its children
/// still write. Thread-compatible; safe across processes.
class PythonEnvCache {
 public:
  explicit PythonEnvCache(Home home)
      : home_(std::move(home)), dirs_(home_.pyenvs(), home_.tmp(), ".ready") {}

  /// Shares virtualenvs through `store`, a store other nodes use too: an env this node builds is
  /// published there (packed by content, keyed by the env's key, which covers the pins, the
  /// interpreter and the platform), an env another node published is fetched instead of
  /// installed, and nodes that need the same new env at once build it once (SharedBuilds).
  /// nullptr: every node builds its own.
  void share_builds(store::BlobStore* store) { shared_store_ = store; }

  /// A virtualenv in use. Move-only; released on destruction.
  class Lease {
   public:
    const fs::path& dir() const { return dir_; }
    int lock_fd() const { return lock_.fd(); }
    bool built() const { return built_; }
    void release() { lock_.release(); }

   private:
    friend class PythonEnvCache;
    fs::path dir_;
    FileLock lock_;
    bool built_ = false;
  };

  /// Builds the env if it is not on the node (or was left unfinished), without a lease.
  /// Returns true if it built it. `timeout_ms` bounds the installer processes (negative: none):
  /// kTimeout past it. Installer failures are kInvalidArgument with its relevant lines.
  Result<bool> ensure(const PythonEnvRequest& request, const InstallProgress& progress,
                      int64_t timeout_ms);
  /// ensure(), then a shared lease that keeps the env from being evicted while held.
  Result<Lease> acquire(const PythonEnvRequest& request, const InstallProgress& progress,
                        int64_t timeout_ms);

  bool is_ready(const Digest& key) const;
  /// Deletes the env if no process holds a lease on it; false if one does.
  Result<bool> evict(const Digest& key);
  size_t process_leases(const Digest& key) const;
  int64_t last_leased_ms(const Digest& key) const;
  /// Keys of the envs that are ready on this node.
  std::vector<Digest> list() const;

  fs::path dir_of(const Digest& key) const { return home_.pyenvs() / key.hex(); }
  /// The interpreter of the virtualenv in `env_dir`.
  static fs::path python_of(const fs::path& env_dir) { return env_dir / "bin" / "python"; }

 private:
  fs::path sidecar(const Digest& key, std::string_view ext) const {
    return dirs_.sidecar(key.hex(), ext);
  }
  Result<void> build(const PythonEnvRequest& request, const FileLock& lock,
                     const InstallProgress& progress, int64_t timeout_ms);
  /// build(), or fetching what another node published, when builds are shared.
  Result<void> build_or_fetch(const PythonEnvRequest& request, const FileLock& lock,
                              const InstallProgress& progress, int64_t deadline);
  /// Publishes the env built here: its tree as a package, and a record naming it (created, never
  /// replaced), signed when the configuration has a signing key.
  Result<void> publish(const PythonEnvRequest& request, const BuildKeys& keys,
                       const InstallProgress& progress);
  /// Fetches the env another node published, refusing it (kCorrupt, the caller builds the env
  /// itself) unless its record is this env's (and signed by a trusted key, when keys are
  /// configured) and its tree matches the lock (venv_verify.h).
  Result<void> fetch_published(const PythonEnvRequest& request, const std::string& record,
                               const BuildKeys& keys, const InstallProgress& progress);
  Result<void> build_wheel_target(const PythonEnvRequest& request, const FileLock& lock,
                                  const InstallProgress& progress, int64_t timeout_ms);
  Result<void> build_launcher(const PythonEnvRequest& request);

  Home home_;
  PublishedDirs dirs_;
  store::BlobStore* shared_store_ = nullptr;
};

}  // namespace rtenv::env
