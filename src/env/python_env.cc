#include "env/python_env.h"

#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "env/package_cache.h"
#include "env/records.h"
#include "env/shared_build.h"
#include "env/venv_verify.h"
#include "pack/packer.h"
#include "spec/pip_options.h"
#include "util/clock.h"
#include "util/interrupt.h"
#include "util/lines.h"
#include "util/process.h"
#include "util/redact.h"
#include "util/signature.h"
#include "util/size.h"

namespace rtenv::env {

using nlohmann::json;

namespace {

// Compiles the bytecode of what `dir` holds in the background, nice'd, once the env is ready.
// uv writes none unless asked and a fetched venv arrives without (bytecode is not published),
// while a process started with PYTHONDONTWRITEBYTECODE, as workers often are, would compile the
// env's modules again at every start; compiling before the env is ready would delay its first
// use by as much (a few hundred ms for a big env). Processes started meanwhile compile what they
// import, as without it. Best effort; `-E`: PYTHONPYCACHEPREFIX and the like are not followed.
void compile_bytecode_later(const std::string& python, const fs::path& dir) {
  (void)start_detached({python, "-E", "-m", "compileall", "-q", "-j", "0", dir.string()},
                       /*niceness=*/10);
}

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// Prints what rtenv needs to know about an interpreter, as one JSON line. -I: no PYTHON*
// variables, no user site; -S: no site import (faster, and nothing of the env leaks in). Without
// `site`, sys.prefix is the base's even in a venv, so the venv is found here as site.venv() finds
// it: a pyvenv.cfg beside the interpreter or one directory up, the venv being that directory's
// parent. Its site-packages are what site.getsitepackages gives with sys.prefix set to it, as
// site.venv() sets it (Debian's site lists dist-packages otherwise). A venv's executable is its
// base interpreter's (what a new venv links to).
constexpr const char* kProbe = R"(import json,os,platform,site,sys,sysconfig
exe=os.path.abspath(sys.executable)
bindir=os.path.dirname(exe)
top=os.path.dirname(bindir)
cfgs=[c for c in (os.path.join(bindir,'pyvenv.cfg'),os.path.join(top,'pyvenv.cfg')) if os.path.isfile(c)]
real=os.path.realpath(sys.executable)
venv=None
if cfgs:
    system='true'
    with open(cfgs[0],encoding='utf-8') as f:
        for line in f:
            k,eq,v=line.partition('=')
            if eq and k.strip().lower()=='include-system-site-packages':
                system=v.strip().lower()
    sys.prefix=sys.exec_prefix=top
    venv={'dir':top,'python':exe,'site_packages':[d for d in site.getsitepackages([top]) if os.path.isdir(d)],'system_site_packages':system=='true'}
    base=os.path.realpath(getattr(sys,'_base_executable',None) or sys.executable)
    if os.access(base,os.X_OK):
        real=base
print(json.dumps({'executable':real,'version':platform.python_version(),'platform':sysconfig.get_platform(),'implementation':sys.implementation.name,'venv':venv}))
)";

// The probe's answer (or its cached copy) as an Interpreter.
Interpreter interpreter_of(const json& j) {
  Interpreter py{j.value("executable", ""), j.value("version", ""), j.value("platform", ""),
                 j.value("implementation", "")};
  auto venv = j.find("venv");
  if (venv != j.end() && venv->is_object()) {
    BaseVenv base;
    base.dir = venv->value("dir", "");
    base.python = venv->value("python", "");
    base.system_site_packages = venv->value("system_site_packages", false);
    if (auto dirs = venv->find("site_packages"); dirs != venv->end() && dirs->is_array()) {
      for (const auto& d : *dirs) {
        if (d.is_string()) base.site_packages.emplace_back(d.get<std::string>());
      }
    }
    py.venv = std::move(base);
  }
  return py;
}

// A file's identity: a changed or replaced interpreter is probed again.
std::string file_identity(const struct stat& st) {
  return fmt::format("{}:{}:{}:{}.{}", st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec);
}

bool is_option_line(const std::string& line) { return line.starts_with("-"); }

// Lines worth showing from an installer's output: from the first line that reads like the
// failure on, at most 20; without such a line, the last 12. Colour codes removed, credentials
// redacted.
std::string relevant_lines(const std::string& text) {
  std::vector<std::string> lines;
  for (std::string_view rest = text; !rest.empty();) {
    std::string clean = printable_line(next_line(&rest));
    if (!clean.empty()) lines.push_back(std::move(clean));
  }
  static const char* kMarkers[] = {"error",  "ERROR",       "×",         "Because",
                                   "hint:",  "No matching", "Could not", "Failed",
                                   "failed", "Traceback",   "conflict",  "not installed"};
  size_t first = lines.size();
  for (size_t i = 0; i < lines.size() && first == lines.size(); ++i) {
    for (const char* m : kMarkers) {
      if (lines[i].find(m) != std::string::npos) {
        first = i;
        break;
      }
    }
  }
  size_t from = first < lines.size() ? first : (lines.size() > 12 ? lines.size() - 12 : 0);
  size_t to = std::min(lines.size(), from + 20);
  std::string out;
  for (size_t i = from; i < to; ++i) out += "\n    " + lines[i];
  if (to < lines.size()) out += fmt::format("\n    ... ({} more lines)", lines.size() - to);
  return out;
}

// Runs one installer step; a failure becomes an error naming the step, how it ended and the
// installer's relevant lines.
Result<ProcessOutcome> run_step(const std::string& step, ProcessSpec spec,
                                const InstallProgress& progress) {
  spec.env["NO_COLOR"] = "1";
  spec.env["UV_NO_PROGRESS"] = "1";
  spec.env["UV_PYTHON_DOWNLOADS"] = "never";  // the interpreter is given; never fetch one
  spec.env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1";
  spec.env["PIP_NO_INPUT"] = "1";
  spec.env["PIP_PROGRESS_BAR"] = "off";
  spec.env["PYTHONDONTWRITEBYTECODE"] = std::nullopt;
  if (progress) {
    spec.on_stderr_line = [&](std::string_view line) {
      if (!line.empty()) progress(redact_url_credentials(line));
    };
  }
  int64_t timeout_ms = spec.timeout_ms;
  RTENV_ASSIGN_OR_RETURN(ProcessOutcome outcome, run_process(spec));
  if (outcome.timed_out) {
    return make_error(
        ErrorCode::kTimeout,
        "{}: timed out after {:.0f} s (config.setup_timeout_seconds); raise it, or -1 "
        "for no limit",
        step, static_cast<double>(timeout_ms) / 1000.0);
  }
  if (!outcome.success()) {
    std::string lines = relevant_lines(outcome.err + "\n" + outcome.out);
    // An index that could not be reached may answer next time (retryable); anything else (no
    // such package, no solution, a failing build) needs the user.
    static const char* kUnreachable[] = {"Connection refused",
                                         "error sending request",
                                         "tcp connect error",
                                         "Network is unreachable",
                                         "Temporary failure in name resolution",
                                         "503 Service Unavailable",
                                         "502 Bad Gateway",
                                         "NewConnectionError",
                                         "Max retries exceeded"};
    ErrorCode code = ErrorCode::kInvalidArgument;
    for (const char* marker : kUnreachable) {
      if (lines.find(marker) != std::string::npos) code = ErrorCode::kUnavailable;
    }
    return make_error(code, "{} failed ({}){}", step, outcome.describe(),
                      lines.empty() ? " with no output" : ":" + lines);
  }
  return outcome;
}

// "name==1.0 \" + "    --hash=sha256:..." continuation lines joined, comments dropped.
std::vector<std::string> parse_pins(const std::string& text) {
  std::vector<std::string> out;
  std::string logical;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(start, nl - start);
    start = nl + 1;
    if (auto hash = line.find(" #"); hash != std::string::npos) line.erase(hash);
    if (line.starts_with("#")) line.clear();
    bool more = !line.empty() && line.back() == '\\';
    if (more) line.pop_back();
    // Collapse whitespace.
    std::string collapsed;
    for (char c : line) {
      if (std::isspace(static_cast<unsigned char>(c))) {
        if (!collapsed.empty() && collapsed.back() != ' ') collapsed += ' ';
      } else {
        collapsed += c;
      }
    }
    if (!collapsed.empty())
      logical += (logical.empty() || logical.back() == ' ' ? "" : " ") + collapsed;
    if (!more) {
      while (!logical.empty() && logical.back() == ' ') logical.pop_back();
      if (!logical.empty() && !is_option_line(logical)) out.push_back(logical);
      logical.clear();
    }
    if (nl == text.size()) break;
  }
  return out;
}

/// The env's own installer options for `tool` (uv or pip): a `uv` field's
/// uv_pip_install_options (given to uv as they are, when installing), a `pip` field's
/// pip_install_options (given to pip as they are, to uv as uv spells them, at both steps).
std::vector<std::string> installer_args(const spec::PythonPackages& pkgs, bool uv, bool install) {
  if (pkgs.installer == spec::Installer::kUv) {
    return install ? pkgs.install_options : std::vector<std::string>{};
  }
  return spec::pip_install_args(pkgs.install_options, uv, install);
}

std::string requirements_text(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

Result<std::vector<std::string>> resolve_with_uv(const spec::PythonPackages& loose,
                                                 const Home& home, const Interpreter& python,
                                                 const Installer& installer,
                                                 const LockOptions& options) {
  ProcessSpec p;
  p.argv = {installer.uv.string(), "pip",         "compile",       "-",
            "--generate-hashes",   "--no-header", "--no-annotate", "--quiet"};
  if (options.target) {
    p.argv.insert(p.argv.end(), {"--python-version", options.target->python_version,
                                 "--python-platform", options.target->platform});
  } else {
    p.argv.insert(p.argv.end(), {"--python", python.executable.string()});
  }
  for (std::string& arg : installer_args(loose, /*uv=*/true, /*install=*/false)) {
    p.argv.push_back(std::move(arg));
  }
  p.env["UV_CACHE_DIR"] = home.uv_cache().string();
  p.stdin_data = requirements_text(loose.packages);
  p.timeout_ms = options.timeout_ms;
  RTENV_ASSIGN_OR_RETURN(
      ProcessOutcome outcome,
      run_step("resolving Python packages (uv pip compile)", p, options.progress));
  return parse_pins(outcome.out);
}

Result<std::vector<std::string>> resolve_with_pip(const spec::PythonPackages& loose,
                                                  const Home& home, const Interpreter& python,
                                                  const LockOptions& options) {
  fs::path work = home.tmp() / unique_name("resolve");
  RTENV_TRY(make_dirs(work));
  struct Cleanup {
    fs::path dir;
    ~Cleanup() { (void)remove_tree(dir); }
  } cleanup{work};
  RTENV_TRY(write_file_atomic(work / "requirements.txt", requirements_text(loose.packages), 0600));
  ProcessSpec p;
  // A venv's own python: its pip, which the base may not have (Debian's python3 without pip).
  p.argv = {python.named().string(),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            (work / "report.json").string(),
            "-r",
            (work / "requirements.txt").string()};
  for (std::string& arg : installer_args(loose, /*uv=*/false, /*install=*/false)) {
    p.argv.push_back(std::move(arg));
  }
  p.env["PIP_CACHE_DIR"] = home.pip_cache().string();
  p.timeout_ms = options.timeout_ms;
  RTENV_TRY(run_step("resolving Python packages (pip install --dry-run)", p, options.progress));
  RTENV_ASSIGN_OR_RETURN(std::string text, read_file(work / "report.json"));
  json report = json::parse(text, nullptr, false);
  if (report.is_discarded() || !report.contains("install")) {
    return Error(ErrorCode::kCorrupt, "resolving Python packages: pip wrote no usable report");
  }
  std::vector<std::string> pins;
  for (const auto& item : report["install"]) {
    std::string name = item["metadata"].value("name", "");
    std::string version = item["metadata"].value("version", "");
    const json& info = item.value("download_info", json::object());
    if (item.value("is_direct", false)) {
      pins.push_back(name + " @ " + info.value("url", ""));
      continue;
    }
    std::string pin = name + "==" + version;
    const json& archive = info.value("archive_info", json::object());
    if (archive.contains("hashes") && archive["hashes"].contains("sha256")) {
      pin += " --hash=sha256:" + archive["hashes"]["sha256"].get<std::string>();
    } else if (std::string h = archive.value("hash", ""); h.starts_with("sha256=")) {
      pin += " --hash=sha256:" + h.substr(7);
    }
    pins.push_back(pin);
  }
  std::sort(pins.begin(), pins.end());
  return pins;
}

// "3.11.7" -> "3.11"
std::string major_minor(const std::string& version) {
  size_t first = version.find('.');
  size_t second = first == std::string::npos ? first : version.find('.', first + 1);
  return version.substr(0, second);
}

Result<void> make_symlink(const std::string& target, const fs::path& link) {
  if (::symlink(target.c_str(), link.c_str()) != 0) return io_error("cannot create", link, errno);
  return ok_result();
}

constexpr const char* kActivate =
    R"(# Use with ". bin/activate" (sh, bash, zsh); "deactivate" undoes it.
deactivate () {
    if [ -n "${_RTENV_OLD_PATH:-}" ]; then
        PATH="$_RTENV_OLD_PATH"
        export PATH
        unset _RTENV_OLD_PATH
    fi
    unset VIRTUAL_ENV
    hash -r 2>/dev/null
    if [ "${1:-}" != "keep" ]; then unset -f deactivate; fi
}
deactivate keep
VIRTUAL_ENV="@DIR@"
export VIRTUAL_ENV
_RTENV_OLD_PATH="$PATH"
PATH="$VIRTUAL_ENV/bin:$PATH"
export PATH
hash -r 2>/dev/null
)";

// `bytes` as a Python bytes literal (b'...'): printable ASCII as is, anything else escaped, so
// a path of any bytes survives, whatever the encoding Python reads the file with.
std::string python_bytes_literal(std::string_view bytes) {
  std::string out = "b'";
  for (char c : bytes) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += c;
    } else if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      out += fmt::format("\\x{:02x}", u);
    }
  }
  return out + "'";
}

// The file in a venv's site-packages that layers it on its base interpreter's venv. Its name
// sorts after the names packages give their .pth files (ASCII letters, digits, '_'), so the
// paths those add come before the base venv's.
constexpr const char* kBaseVenvPth = "~rtenv-base-venv.pth";

// A CPython virtualenv as PEP 405 defines it, written directly: pyvenv.cfg, bin/ with links to
// the base interpreter, an empty site-packages. What `python -m venv --without-pip` makes, in
// well under a millisecond instead of tens (no interpreter start).
//
// When the interpreter runs in a venv of its own (Ray installed in a venv) and `system_site` is
// set, the new venv sees what that interpreter sees, behind its own packages: that venv's
// site-packages, added by a .pth file with site.addsitedir (which also reads that venv's own
// .pth files: editable installs, namespace packages), and the base interpreter's site-packages
// only if that venv includes them. A .pth rather than a copy of that venv (what Ray's pip field
// does): nothing is copied, and what is installed there later is seen at once, as it is by the
// processes Ray starts from it.
Result<void> write_venv(const fs::path& dir, const Interpreter& python, bool system_site) {
  const std::string xy = major_minor(python.version);
  const std::string versioned = "python" + xy;
  const fs::path site_packages = dir / "lib" / versioned / "site-packages";
  RTENV_TRY(make_dirs(dir / "bin"));
  RTENV_TRY(make_dirs(site_packages));
  RTENV_TRY(make_symlink("lib", dir / "lib64"));
  RTENV_TRY(make_symlink(python.executable.string(), dir / "bin" / versioned));
  RTENV_TRY(make_symlink(versioned, dir / "bin" / "python"));
  if (versioned != "python3") RTENV_TRY(make_symlink(versioned, dir / "bin" / "python3"));
  std::string activate = kActivate;
  activate.replace(activate.find("@DIR@"), 5, dir.string());
  RTENV_TRY(write_file_atomic(dir / "bin" / "activate", activate));
  const bool layered = system_site && python.venv.has_value();
  if (layered) {
    std::string pth = fmt::format("# The packages of {}, the venv this env's interpreter runs in\n",
                                  python.venv->dir.string());
    for (const auto& d : python.venv->site_packages) {
      pth += "import os, site; site.addsitedir(os.fsdecode(" + python_bytes_literal(d.string()) +
             "))\n";
    }
    RTENV_TRY(write_file_atomic(site_packages / kBaseVenvPth, pth));
  }
  const bool base_site = layered ? python.venv->system_site_packages : system_site;
  return write_file_atomic(
      dir / "pyvenv.cfg",
      fmt::format("home = {}\ninclude-system-site-packages = {}\nversion = {}\nexecutable = {}\n",
                  python.executable.parent_path().string(), base_site ? "true" : "false",
                  python.version, python.executable.string()));
}

// Points the scripts in `bin` that start `from` (a shebang, or uv's /bin/sh trampoline for long
// paths, both in the first lines) at `to` instead.
Result<void> retarget_scripts(const fs::path& bin, const std::string& from, const std::string& to) {
  std::error_code ec;
  for (auto it = fs::directory_iterator(bin, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
    auto text = read_file(it->path());
    if (!text) continue;
    auto retargeted = retarget_script_header(*text, from, to);
    if (!retargeted) continue;
    struct stat st;
    mode_t mode = ::stat(it->path().c_str(), &st) == 0 ? st.st_mode & 07777 : 0755;
    RTENV_TRY(write_file_atomic(it->path(), *retargeted, mode));
  }
  return ok_result();
}

}  // namespace

Result<Interpreter> find_interpreter(const Home& home, const std::optional<std::string>& wanted) {
  std::string requested = wanted ? *wanted : home.config().python();
  // What to do about it: the env names its interpreter, or the node's setting does.
  const char* fix = wanted ? "give the path of a Python interpreter on this node, or its name on "
                             "PATH"
                           : "install Python 3 or set RTENV_PYTHON to an interpreter";
  auto path = find_program(requested);
  if (!path) {
    bool is_path = requested.find('/') != std::string::npos;
    struct stat st;
    if (is_path && ::stat(requested.c_str(), &st) == 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "the Python interpreter {} is not an executable file; {}", requested, fix);
    }
    return make_error(ErrorCode::kNotFound, "no Python interpreter: {} was not found{}; {}",
                      requested, is_path ? "" : " on PATH", fix);
  }
  struct stat st;
  if (::stat(path->c_str(), &st) != 0) return io_error("cannot stat", *path, errno);
  // A launcher (a pyenv shim) picks its interpreter by PYENV_VERSION too.
  std::string identity =
      path->string() + "\n" + file_identity(st) + "\n" + env_or("PYENV_VERSION", "");
  // A venv made again at the same path (other packages, include-system-site-packages changed)
  // is probed again: its pyvenv.cfg is part of the identity.
  for (const fs::path& cfg :
       {path->parent_path() / "pyvenv.cfg", path->parent_path().parent_path() / "pyvenv.cfg"}) {
    struct stat cfg_st;
    if (::stat(cfg.c_str(), &cfg_st) == 0 && S_ISREG(cfg_st.st_mode)) {
      identity += "\n" + cfg.string() + " " + file_identity(cfg_st);
      break;
    }
  }
  fs::path cached = home.python() / (Digest::of(identity).hex().substr(0, 32) + ".json");
  if (auto text = read_file(cached)) {
    json j = json::parse(*text, nullptr, false);
    if (!j.is_discarded() && j.value("identity", "") == identity) {
      Interpreter py = interpreter_of(j);
      if (::access(py.executable.c_str(), X_OK) == 0) return py;
    }
  }
  ProcessSpec p;
  p.argv = {path->string(), "-I", "-S", "-c", kProbe};
  p.timeout_ms = 60'000;
  auto outcome = run_process(p);
  if (!outcome || !outcome->success()) {
    std::string why =
        outcome ? outcome->describe() + relevant_lines(outcome->err) : outcome.error().message();
    return make_error(ErrorCode::kInvalidArgument,
                      "the Python interpreter {} does not run ({}); {}", path->string(), why,
                      wanted ? "give a working one" : "set RTENV_PYTHON to a working one");
  }
  json j = json::parse(outcome->out, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{} is not a Python 3 interpreter (it printed {:?}); {}", path->string(),
                      outcome->out.substr(0, 200), fix);
  }
  j["identity"] = identity;
  (void)write_file_atomic(cached, j.dump());  // a cache: failing to write it costs a probe
  return interpreter_of(j);
}

Result<Installer> find_installer(const config::Config& config, const Interpreter& python,
                                 spec::Installer field) {
  // Checked when the configuration was built: "auto", "uv" or "pip".
  std::string choice = config.installer();
  std::optional<fs::path> uv;
  if (auto v = config.uv()) {
    uv = find_program(*v);
    if (!uv) {
      return make_error(ErrorCode::kNotFound, "uv (from {}) names {}, which is not an executable",
                        config.origin("uv").describe(), *v);
    }
  } else if (fs::path beside = python.named().parent_path() / "uv";
             ::access(beside.c_str(), X_OK) == 0) {
    uv = beside;  // `pip install uv` puts it there; found directly, not through a shim
  } else if (fs::path base = python.executable.parent_path() / "uv";
             python.venv && ::access(base.c_str(), X_OK) == 0) {
    uv = base;
  } else {
    uv = find_program("uv");
  }
  bool needs_uv = field == spec::Installer::kUv || choice == "uv";
  if (uv && (choice != "pip" || field == spec::Installer::kUv)) {
    return Installer{Installer::Tool::kUv, *uv};
  }
  if (needs_uv) {
    return Error(ErrorCode::kNotFound,
                 "uv is needed to install this env and was not found: install it (pip install "
                 "uv) or set RTENV_UV to its path");
  }
  return Installer{Installer::Tool::kPip, {}};
}

Result<spec::PythonPackages> lock_packages(const spec::PythonPackages& loose, const Home& home,
                                           const Interpreter& python, const Installer& installer,
                                           const LockOptions& options) {
  if (loose.locked) return loose;
  std::string key_text =
      options.target
          ? fmt::format("rtenv-lock-target 1\n{}\n{}\n{}", loose.to_json().dump(),
                        options.target->python_version, options.target->platform)
          : fmt::format("rtenv-lock 1\n{}\n{}\n{}\n{}\n{}", loose.to_json().dump(),
                        python.named().string(), python.version, python.platform, installer.name());
  if (options.target && installer.tool != Installer::Tool::kUv) {
    return make_error(ErrorCode::kNotFound,
                      "resolving Python packages for Python {} ({}) needs uv, which was not "
                      "found: install it (pip install uv) or set RTENV_UV",
                      options.target->python_version, options.target->platform);
  }
  fs::path cached = home.locks() / (Digest::of(key_text).hex() + ".json");
  std::vector<std::string> pins;
  bool found = false;
  if (!options.refresh) {
    if (auto text = read_file(cached)) {
      json j = json::parse(*text, nullptr, false);
      if (!j.is_discarded() && j.contains("pins") && j["pins"].is_array()) {
        pins = j["pins"].get<std::vector<std::string>>();
        found = true;
      }
    }
  }
  if (!found) {
    if (options.before_resolving) options.before_resolving();
    // The list's requirements, not its option lines (--index-url ...).
    const std::string requirements =
        count_of(std::count_if(loose.packages.begin(), loose.packages.end(),
                               [](const std::string& l) { return !l.starts_with('-'); }),
                 "Python requirement", "Python requirements");
    const std::string what = fmt::format("resolving {} with {}", requirements, installer.name());
    InterruptActivity busy(what, "nothing was installed");
    LockOptions step = options;
    if (options.progress) {
      options.progress(what);
      step.progress = [&](const std::string& line) { options.progress(what + ": " + line); };
    }
    auto started = std::chrono::steady_clock::now();
    auto resolved = installer.tool == Installer::Tool::kUv
                        ? resolve_with_uv(loose, home, python, installer, step)
                        : resolve_with_pip(loose, home, python, step);
    if (!resolved) return resolved.error();
    pins = std::move(resolved).value();
    if (options.report) {
      options.report(fmt::format(
          "resolved {} to {} with {} in {:.1f} s", requirements,
          count_of(pins.size(), "pin", "pins"), installer.name(),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()));
    }
    json record = {{"pins", pins}, {"python", python.named().string()}};
    RTENV_TRY(write_file_atomic(cached, record.dump(1), 0600));  // pins with index URLs
  }
  spec::PythonPackages out = loose;
  out.packages.clear();
  // The index options stay: every node installs from the same indexes.
  for (const auto& line : loose.packages) {
    if (is_option_line(line)) out.packages.push_back(line);
  }
  out.packages.insert(out.packages.end(), pins.begin(), pins.end());
  out.locked = true;
  // The interpreter the pins were resolved for (one that is not here yet is the caller's to
  // name), as its environment names it: a venv's python, so that nodes layer on that venv.
  if (!options.target) out.python = python.named().string();
  return out;
}

Result<spec::RuntimeEnv> lock_python(const spec::RuntimeEnv& env, const Home& home,
                                     const LockOptions& options) {
  auto packages = env.python_packages();
  if (!packages || (packages->locked && packages->python)) return env;
  const char* field = packages->installer == spec::Installer::kPip ? "pip" : "uv";
  auto locked = [&]() -> Result<spec::PythonPackages> {
    RTENV_ASSIGN_OR_RETURN(Interpreter python, find_env_interpreter(env, home));
    if (packages->locked) {
      // Pinned by the user: only the interpreter is named, so that every process (this one,
      // the agent, another node) builds the same venv.
      spec::PythonPackages named = *packages;
      named.python = python.named().string();
      return named;
    }
    RTENV_ASSIGN_OR_RETURN(Installer installer,
                           find_installer(home.config(), python, packages->installer));
    return lock_packages(*packages, home, python, installer, options);
  }();
  if (!locked) {
    // find_env_interpreter's errors name their field already.
    if (locked.error().message().starts_with("runtime_env.")) return locked.error();
    return locked.error().with_context(fmt::format("runtime_env.{}", field));
  }
  return env.with_field(field, locked->to_json());
}

Result<PyExecutable> PyExecutable::parse(const std::string& value) {
  if (value.empty()) {
    return Error(ErrorCode::kUnsupported,
                 "runtime_env.py_executable: empty; give an interpreter path or name");
  }
  bool absolute = value.front() == '/';
  bool spaces = std::any_of(value.begin(), value.end(),
                            [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
  std::error_code ec;
  if (spaces && !(absolute && fs::exists(value, ec))) {
    return make_error(ErrorCode::kUnsupported,
                      "runtime_env.py_executable: not supported: py_executable with arguments "
                      "({:?}); give an interpreter path or name (a wrapper script can add the "
                      "arguments)",
                      value);
  }
  if (absolute) return PyExecutable{Form::kPath, fs::path(value).lexically_normal().string()};
  if (value.find('/') == std::string::npos) return PyExecutable{Form::kName, value};
  return PyExecutable{Form::kInWorkingDir, fs::path(value).lexically_normal().string()};
}

Result<Interpreter> find_env_interpreter(const spec::RuntimeEnv& env, const Home& home) {
  auto packages = env.python_packages();
  std::optional<std::string> python = packages ? packages->python : std::nullopt;
  auto exe = env.py_executable();
  if (!exe) {
    auto found = find_interpreter(home, python);
    if (!found && python) {
      return found.error().with_context(fmt::format(
          "runtime_env.{}.python", packages->installer == spec::Installer::kPip ? "pip" : "uv"));
    }
    return found;
  }
  RTENV_ASSIGN_OR_RETURN(PyExecutable named, PyExecutable::parse(*exe));
  if (named.form == PyExecutable::Form::kInWorkingDir) {
    return make_error(ErrorCode::kUnsupported,
                      "runtime_env.py_executable: {} is relative to working_dir, which is not "
                      "supported together with pip, uv or py_modules wheels (their packages are "
                      "installed for the interpreter before working_dir is on the node); give an "
                      "absolute path or a name on PATH",
                      named.value);
  }
  auto interpreter = find_interpreter(home, named.value);
  if (!interpreter) return interpreter.error().with_context("runtime_env.py_executable");
  if (python && *python != named.value) {
    const char* field = packages->installer == spec::Installer::kPip ? "pip" : "uv";
    auto other = find_interpreter(home, python);
    if (!other) return other.error().with_context(fmt::format("runtime_env.{}.python", field));
    if (!other->same_environment(*interpreter)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "runtime_env.py_executable: {} runs {}, and runtime_env.{}.python {} runs "
                        "{}: the env's packages are installed for one interpreter; give the same "
                        "one in both, or leave {}.python out",
                        named.value, interpreter->named().string(), field, *python,
                        other->named().string(), field);
    }
  }
  return interpreter;
}

Result<PythonEnvRequest> PythonEnvRequest::make(const spec::PythonPackages& locked,
                                                Interpreter python, Installer installer) {
  if (!locked.locked) {
    return Error(ErrorCode::kInvalidArgument,
                 "the Python package list is not resolved yet (lock it first: rtenv lock)");
  }
  // Not the installer tool: uv and pip install the same pins into the same layout.
  json identity = {{"packages", locked.to_json()},
                   {"python", python.executable.string()},
                   {"python_version", python.version},
                   {"platform", python.platform},
                   {"implementation", python.implementation}};
  // The venv the interpreter runs in, which the env layers on (an interpreter outside one keeps
  // the key it always had).
  if (python.venv) {
    identity["base_venv"] = {{"dir", python.venv->dir.string()},
                             {"system_site_packages", python.venv->system_site_packages}};
  }
  PythonEnvRequest out{locked,
                       std::move(python),
                       std::move(installer),
                       Digest::of("rtenv-pyenv 1\n" + identity.dump()),
                       std::nullopt,
                       std::nullopt};
  return out;
}

PythonEnvRequest PythonEnvRequest::make_wheel(const std::string& wheel_uri, fs::path wheel_file,
                                              Interpreter python, Installer installer) {
  json identity = {{"wheel", wheel_uri},
                   {"python", python.executable.string()},
                   {"python_version", python.version},
                   {"platform", python.platform},
                   {"implementation", python.implementation}};
  PythonEnvRequest out{{},
                       std::move(python),
                       std::move(installer),
                       Digest::of("rtenv-wheel 1\n" + identity.dump()),
                       std::move(wheel_file),
                       std::nullopt};
  return out;
}

PythonEnvRequest PythonEnvRequest::make_launcher(fs::path py_executable) {
  json identity = {{"launcher", py_executable.string()}};
  PythonEnvRequest out{{},           {},
                       {},           Digest::of("rtenv-launcher 1\n" + identity.dump()),
                       std::nullopt, std::move(py_executable)};
  return out;
}

Result<void> PythonEnvCache::build_launcher(const PythonEnvRequest& request) {
  const fs::path dir = dir_of(request.key);
  RTENV_TRY(remove_tree(dir));
  RTENV_TRY(make_dirs(dir / "bin"));
  // A script that execs the interpreter rather than a symlink to it: the interpreter sees the
  // path it was named by (a venv's python finds its pyvenv.cfg, a wrapper script runs).
  std::string quoted = "'";
  for (char c : request.launcher->string()) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  quoted += "'";
  const std::string script = "#!/bin/sh\nexec " + quoted + " \"$@\"\n";
  for (const char* name : {"python", "python3"}) {
    RTENV_TRY(write_file_atomic(dir / "bin" / name, script, 0755));
  }
  json ready = {{"launcher", request.launcher->string()}};
  return write_file_atomic(sidecar(request.key, ".ready"), ready.dump(1));
}

Result<void> PythonEnvCache::build_wheel_target(const PythonEnvRequest& request,
                                                const FileLock& lock,
                                                const InstallProgress& progress,
                                                int64_t timeout_ms) {
  const fs::path dir = dir_of(request.key);
  RTENV_TRY(remove_tree(dir));
  RTENV_TRY(make_dirs(dir));
  ProcessSpec p;
  const std::string exe = request.python.executable.string();
  if (request.installer.tool == Installer::Tool::kUv) {
    p.argv = {request.installer.uv.string(),
              "pip",
              "install",
              "--python",
              exe,
              "--target",
              dir.string(),
              "--no-deps",
              request.wheel->string()};
  } else {
    p.argv = {request.python.named().string(),
              "-m",
              "pip",
              "install",
              "--target",
              dir.string(),
              "--no-deps",
              request.wheel->string()};
  }
  p.env["UV_CACHE_DIR"] = home_.uv_cache().string();
  p.env["PIP_CACHE_DIR"] = home_.pip_cache().string();
  p.timeout_ms = timeout_ms;
  p.inherit_fd = lock.fd();
  RTENV_TRY(run_step(fmt::format("installing the wheel {}", request.wheel->filename().string()),
                     std::move(p), progress));
  json ready = {{"wheel", request.wheel->filename().string()}, {"python", exe}};
  RTENV_TRY(
      write_file_atomic(sidecar(request.key, ".ready"), redact_url_credentials(ready.dump(1))));
  if (request.installer.tool == Installer::Tool::kUv) compile_bytecode_later(exe, dir);
  return ok_result();
}

Result<void> PythonEnvCache::build(const PythonEnvRequest& request, const FileLock& lock,
                                   const InstallProgress& progress, int64_t timeout_ms) {
  if (request.wheel) return build_wheel_target(request, lock, progress, timeout_ms);
  if (request.launcher) return build_launcher(request);
  const int64_t deadline = deadline_after(timeout_ms);
  const fs::path dir = dir_of(request.key);
  const fs::path py = python_of(dir);
  const auto& pkgs = request.packages;
  const bool uv = request.installer.tool == Installer::Tool::kUv;
  RTENV_TRY(remove_tree(dir));  // what a builder that died left

  auto step = [&](const std::string& name, std::vector<std::string> argv) -> Result<void> {
    ProcessSpec p;
    p.argv = std::move(argv);
    p.env["UV_CACHE_DIR"] = home_.uv_cache().string();
    p.env["PIP_CACHE_DIR"] = home_.pip_cache().string();
    p.env["VIRTUAL_ENV"] = std::nullopt;
    p.timeout_ms = ms_left(deadline);
    p.inherit_fd = lock.fd();
    auto r = run_step(name, std::move(p), progress);
    if (!r) return r.error();
    return ok_result();
  };
  const std::string exe = request.python.executable.string();
  // pip runs from the interpreter's own environment (a venv has pip where its base may not).
  const std::string pip_python = request.python.named().string();
  const std::string uv_bin = request.installer.uv.string();

  if (uv && pkgs.installer == spec::Installer::kUv && pkgs.installer_version) {
    ProcessSpec p;
    p.argv = {uv_bin, "--version"};
    RTENV_ASSIGN_OR_RETURN(ProcessOutcome v, run_process(p));
    std::string have = v.out.substr(0, v.out.find('\n'));  // "uv 0.13.9 (...)"
    std::string version = have.substr(have.find(' ') + 1);
    version = version.substr(0, version.find(' '));
    if (version != *pkgs.installer_version) {
      return make_error(ErrorCode::kInvalidArgument,
                        "uv_version {} is asked for, and the installer is {} ({}); set RTENV_UV "
                        "to a uv of that version",
                        *pkgs.installer_version, have, uv_bin);
    }
  }

  if (request.python.implementation == "cpython") {
    if (auto r = write_venv(dir, request.python, pkgs.system_site_packages); !r) {
      return r.error().with_context("creating the virtualenv");
    }
  } else {
    // Other layouts (PyPy's lib/pypy3.X) are left to the tools that know them.
    std::vector<std::string> venv;
    if (uv) {
      venv = {uv_bin, "venv", dir.string(), "--python", exe, "--no-project", "--quiet"};
    } else {
      venv = {exe, "-m", "venv", "--without-pip", dir.string()};
    }
    if (pkgs.system_site_packages) venv.push_back("--system-site-packages");
    RTENV_TRY(
        step(fmt::format("creating the virtualenv ({})", uv ? "uv venv" : "python -m venv"), venv));
  }

  std::vector<std::string> options, pins;
  for (const auto& line : pkgs.packages) (is_option_line(line) ? options : pins).push_back(line);
  const fs::path requirements = dir / "rtenv-requirements.txt";
  // Index URLs may carry credentials: owner-only.
  RTENV_TRY(write_file_atomic(requirements, requirements_text(pkgs.packages), 0600));
  // uv installs into a venv we wrote ourselves as a prefix, through the base interpreter: uv
  // already knows that one (from resolving), while the new venv's would cost it an interpreter
  // query, a third of a cold install. Scripts then name the base interpreter; they are pointed
  // at the venv's afterwards.
  const bool as_prefix = uv && request.python.implementation == "cpython";
  auto install = [&](const std::string& what, const fs::path& file) -> Result<void> {
    std::vector<std::string> argv;
    if (as_prefix) {
      argv = {uv_bin,     "pip",        "install",   "--python", exe,
              "--prefix", dir.string(), "--no-deps", "-r",       file.string()};
    } else if (uv) {
      argv = {uv_bin, "pip", "install", "--python", py.string(), "--no-deps", "-r", file.string()};
    } else {
      argv = {pip_python, "-m",        "pip", "--python",   py.string(),
              "install",  "--no-deps", "-r",  file.string()};
    }
    const std::vector<std::string> own = installer_args(pkgs, uv, /*install=*/true);
    argv.insert(argv.end(), own.begin(), own.end());
    return step(fmt::format("installing {} ({} pip install)", what, uv ? "uv" : "python -m"), argv);
  };
  if (!pins.empty()) {
    RTENV_TRY(install(fmt::format("{} Python package(s)", pins.size()), requirements));
  }
  if (pkgs.installer == spec::Installer::kPip && pkgs.installer_version) {
    std::vector<std::string> lines = options;
    lines.push_back("pip==" + *pkgs.installer_version);
    const fs::path pip_file = dir / "rtenv-pip-version.txt";
    RTENV_TRY(write_file_atomic(pip_file, requirements_text(lines), 0600));
    RTENV_TRY(install("pip " + *pkgs.installer_version + " (pip_version)", pip_file));
  }
  if (as_prefix) RTENV_TRY(retarget_scripts(dir / "bin", exe, py.string()));
  if (pkgs.check) {
    std::vector<std::string> argv;
    if (uv) {
      argv = {uv_bin, "pip", "check", "--python", py.string()};
    } else {
      argv = {pip_python, "-m", "pip", "--python", py.string(), "check"};
    }
    RTENV_TRY(step(pkgs.installer == spec::Installer::kPip ? "pip_check" : "uv_check", argv));
  }
  json ready = {{"packages", pkgs.to_json()},
                {"python", exe},
                {"python_version", request.python.version},
                {"tool", request.installer.name()}};
  RTENV_TRY(
      write_file_atomic(sidecar(request.key, ".ready"), redact_url_credentials(ready.dump(1))));
  if (uv) compile_bytecode_later(exe, dir / "lib");  // pip compiled as it installed
  return ok_result();
}

// Build once per cluster ---------------------------------------------------------------------

namespace {
// What a published venv leaves out: what names this node's interpreter (recreated on the node
// that fetches it), index credentials, and bytecode.
const std::vector<std::string> kUnpublished = {
    "/bin/python",
    "/bin/python3",
    "/bin/python3.*",
    "/bin/activate",
    "/pyvenv.cfg",
    "/lib64",
    "/rtenv-requirements.txt",
    "/rtenv-pip-version.txt",
    "/.lock",  // uv's lock of the prefix it installs into
    std::string("/lib/python*/site-packages/") + kBaseVenvPth,
    "__pycache__/"};
}  // namespace

/// The keys of shared builds the configuration names: the one this node signs with, and the
/// ones a published venv's record must be signed by (none: records are not signed, and a
/// fetched venv is only checked against its lock).
struct BuildKeys {
  std::optional<SigningKey> signing;
  std::vector<VerifyKey> trusted;

  std::string trusted_ids() const {
    std::vector<std::string> ids;
    for (const auto& k : trusted) ids.push_back(k.id());
    return fmt::format("{}", fmt::join(ids, ", "));
  }
};

namespace {

Result<BuildKeys> build_keys(const config::Config& config) {
  BuildKeys keys;
  if (auto path = config.build_signing_key()) {
    auto key = SigningKey::load(*path);
    if (!key) {
      return key.error().with_context(fmt::format("build_signing_key (from {})",
                                                  config.origin("build_signing_key").describe()));
    }
    keys.trusted.push_back(key->verify_key());
    keys.signing = std::move(key).value();
  }
  if (auto path = config.build_verify_key()) {
    auto key = VerifyKey::load(*path);
    if (!key) {
      return key.error().with_context(
          fmt::format("build_verify_key (from {})", config.origin("build_verify_key").describe()));
    }
    if (std::find(keys.trusted.begin(), keys.trusted.end(), *key) == keys.trusted.end()) {
      keys.trusted.push_back(*key);
    }
  }
  return keys;
}

}  // namespace

Result<void> PythonEnvCache::build_or_fetch(const PythonEnvRequest& request, const FileLock& lock,
                                            const InstallProgress& progress, int64_t deadline) {
  // Wheel targets and launchers are cheap; other layouts than CPython's are not relocated here.
  if (!shared_store_ || request.wheel || request.launcher ||
      request.python.implementation != "cpython") {
    return build(request, lock, progress, ms_left(deadline));
  }
  auto report = [&](const std::string& line) {
    if (progress) progress(line);
  };
  // A key that is configured and cannot be read fails the env: building and publishing unsigned,
  // or trusting any record, would silently undo what the keys are for.
  RTENV_ASSIGN_OR_RETURN(BuildKeys keys, build_keys(home_.config()));
  const std::string name = "pyenvs/" + request.key.hex();
  SharedBuilds builds(*shared_store_, SharedBuilds::options_from(home_.config()));
  auto claim = builds.claim(name + ".json", name + ".lease", deadline, report);
  if (!claim) {
    if (claim.error().code() == ErrorCode::kTimeout) return claim.error();
    report(fmt::format("the store cannot share this build ({}): building it here",
                       claim.error().message()));
    return build(request, lock, progress, ms_left(deadline));
  }
  if (claim->published) {
    auto fetched = fetch_published(request, *claim->published, keys, progress);
    if (fetched) return ok_result();
    report(fmt::format("refusing the Python env in the store ({}): building it here",
                       fetched.error().message()));
    RTENV_TRY(remove_tree(dir_of(request.key)));
    return build(request, lock, progress, ms_left(deadline));
  }
  RTENV_TRY(build(request, lock, progress, ms_left(deadline)));
  // The env is ready here whatever happens next; a failed publication only costs other nodes
  // a build of their own.
  if (!keys.trusted.empty() && !keys.signing) {
    // Its record would be refused by every node that checks signatures, and would stay.
    report(
        "built; not publishing it (this node has a build_verify_key but no build_signing_key "
        "to sign it with)");
  } else if (auto r = publish(request, keys, progress); !r) {
    report(fmt::format("built; publishing it to the store failed: {}", r.error().message()));
  }
  return ok_result();
}

Result<void> PythonEnvCache::publish(const PythonEnvRequest& request, const BuildKeys& keys,
                                     const InstallProgress& progress) {
  if (progress) progress("publishing the Python env to the store");
  const fs::path dir = dir_of(request.key);
  pack::PackOptions options;
  options.excludes = kUnpublished;
  RTENV_ASSIGN_OR_RETURN(pack::PackResult packed, pack::pack_path(dir, *shared_store_, options));
  PublishedVenvRecord record;
  record.package = packed.uri;
  record.venv = dir.string();
  record.python = request.python.executable.string();
  record.python_version = request.python.version;
  record.platform = request.python.platform;
  record.implementation = request.python.implementation;
  record.base_venv = request.python.venv ? request.python.venv->dir.string() : "";
  record.system_site_packages = request.packages.system_site_packages;
  record.tool = request.installer.name();
  record.built_by = SharedBuilds::this_holder();
  record.key = request.key.hex();
  if (keys.signing) {
    record.signed_by = keys.signing->verify_key().id();
    record.signature = keys.signing->sign(signed_text(record, record.key));
  }
  // Created, never replaced: a record names its env for good, and a node that built the same
  // env after another published it (a lease taken over) leaves the first record alone.
  const std::string name = "pyenvs/" + request.key.hex() + ".json";
  auto created = shared_store_->create_record(name, record_text(record));
  if (!created && created.error().code() == ErrorCode::kAlreadyExists) {
    if (progress) progress("another node published this env first; its record stays");
    return ok_result();
  }
  return created;
}

Result<void> PythonEnvCache::fetch_published(const PythonEnvRequest& request,
                                             const std::string& text, const BuildKeys& keys,
                                             const InstallProgress& progress) {
  RTENV_ASSIGN_OR_RETURN(PublishedVenvRecord record, parse_published_venv_record(text));
  const std::string key = request.key.hex();
  // What the record claims is checked against what this node computed, never taken from it.
  if (!record.key.empty() && record.key != key) {
    return make_error(ErrorCode::kCorrupt, "its record is the record of env {}, not of {}",
                      record.key, key);
  }
  if (!keys.trusted.empty()) {
    if (record.signature.empty()) {
      return make_error(ErrorCode::kCorrupt,
                        "its record is not signed, and this node uses only envs signed by key "
                        "{} (build_signing_key, build_verify_key)",
                        keys.trusted_ids());
    }
    const std::string message = signed_text(record, key);
    bool trusted = std::any_of(keys.trusted.begin(), keys.trusted.end(), [&](const VerifyKey& k) {
      return k.verify(message, record.signature);
    });
    if (!trusted) {
      return make_error(ErrorCode::kCorrupt,
                        "its record's signature (by key {:?}) is not a valid signature of this env "
                        "by a key this node trusts ({})",
                        record.signed_by, keys.trusted_ids());
    }
  }
  const Interpreter& py = request.python;
  if (record.python_version != py.version || record.platform != py.platform ||
      record.implementation != py.implementation) {
    return make_error(ErrorCode::kUnsupported,
                      "it was built for {} {} on {}; this node has {} {} on {}",
                      record.implementation, record.python_version, record.platform,
                      py.implementation, py.version, py.platform);
  }
  RTENV_ASSIGN_OR_RETURN(std::vector<PinnedDistribution> pins,
                         pinned_distributions(request.packages));
  if (progress) progress(fmt::format("fetching the Python env built by {}", record.built_by));
  const fs::path dir = dir_of(request.key);
  RTENV_TRY(remove_tree(dir));
  std::string file_list;
  RTENV_TRY(materialize_tree(*shared_store_, record.package, dir, nullptr, nullptr, &file_list));
  // Checked before anything on this node can run it: the venv has no interpreter yet, and is
  // not ready (the caller removes it when this fails).
  std::map<std::string, Digest> digests;
  for (std::string_view rest = file_list; !rest.empty();) {
    std::string_view line = next_line(&rest);
    auto digest = Digest::from_hex(line.substr(0, 64));
    if (line.size() > 65 && digest) digests.emplace(std::string(line.substr(65)), *digest);
  }
  const fs::path site_packages =
      fs::path("lib") / ("python" + major_minor(py.version)) / "site-packages";
  const std::vector<HeaderChange> changes = {
      {record.python, (fs::path(record.venv) / "bin" / "python").string()}};
  if (auto checked = verify_venv_files(dir, site_packages, pins, digests, changes); !checked) {
    return make_error(checked.error().code(),
                      "the venv {} (built by {}) does not match its lock: {}", record.package.str(),
                      record.built_by, checked.error().message());
  }
  RTENV_TRY(write_venv(dir, py, request.packages.system_site_packages));
  const fs::path python = python_of(dir);
  RTENV_TRY(retarget_scripts(dir / "bin", (fs::path(record.venv) / "bin" / "python").string(),
                             python.string()));
  json ready = {
      {"packages", request.packages.to_json()},
      {"python", py.executable.string()},
      {"python_version", py.version},
      {"tool", record.tool},
      {"fetched_from", shared_store_->url()},
      {"verified", keys.trusted.empty() ? "lock" : "lock, signature " + record.signed_by}};
  RTENV_TRY(
      write_file_atomic(sidecar(request.key, ".ready"), redact_url_credentials(ready.dump(1))));
  compile_bytecode_later(py.executable.string(), dir / "lib");
  return ok_result();
}

Result<bool> PythonEnvCache::ensure(const PythonEnvRequest& request,
                                    const InstallProgress& progress, int64_t timeout_ms) {
  const int64_t deadline = deadline_after(timeout_ms);
  fs::path lock_path = sidecar(request.key, ".lock");
  RTENV_ASSIGN_OR_RETURN(FileLock lock,
                         FileLock::try_acquire(lock_path, FileLock::Mode::kExclusive));
  if (!lock.held()) {
    // In use (shared) or being built (exclusive): wait for the builder, if any.
    RTENV_ASSIGN_OR_RETURN(lock,
                           lock_until(lock_path, FileLock::Mode::kShared, deadline, request.uri()));
    if (is_ready(request.key)) return false;
    lock.release();  // its builder failed: build it
    RTENV_ASSIGN_OR_RETURN(
        lock, lock_until(lock_path, FileLock::Mode::kExclusive, deadline, request.uri()));
  }
  if (is_ready(request.key)) return false;
  if (auto r = build_or_fetch(request, lock, progress, deadline); !r) {
    (void)remove_tree(dir_of(request.key));  // nothing half-installed stays
    return r.error();
  }
  return true;
}

Result<PythonEnvCache::Lease> PythonEnvCache::acquire(const PythonEnvRequest& request,
                                                      const InstallProgress& progress,
                                                      int64_t timeout_ms) {
  const int64_t deadline = deadline_after(timeout_ms);
  fs::path lock_path = sidecar(request.key, ".lock");
  Lease lease;
  lease.dir_ = dir_of(request.key);
  for (int attempt = 0;; ++attempt) {
    // The warm path: one shared lock, one stat.
    RTENV_ASSIGN_OR_RETURN(FileLock lock,
                           lock_until(lock_path, FileLock::Mode::kShared, deadline, request.uri()));
    if (is_ready(request.key)) {
      lock.touch();  // the "last used" stamp eviction reads
      lease.lock_ = std::move(lock);
      return lease;
    }
    lock.release();
    if (attempt == 3) break;
    RTENV_ASSIGN_OR_RETURN(bool built, ensure(request, progress, ms_left(deadline)));
    lease.built_ |= built;
  }
  return make_error(ErrorCode::kUnavailable,
                    "the Python env {} was removed each time it was built; is another process "
                    "evicting it?",
                    request.uri());
}

bool PythonEnvCache::is_ready(const Digest& key) const { return dirs_.is_ready(key.hex()); }

Result<bool> PythonEnvCache::evict(const Digest& key) { return dirs_.evict(key.hex()); }

size_t PythonEnvCache::process_leases(const Digest& key) const {
  return dirs_.process_leases(key.hex());
}

int64_t PythonEnvCache::last_leased_ms(const Digest& key) const {
  return dirs_.last_leased_ms(key.hex());
}

std::vector<Digest> PythonEnvCache::list() const {
  std::vector<Digest> out;
  for (const auto& name : dirs_.list_ready()) {
    if (auto d = Digest::from_hex(name)) out.push_back(*d);
  }
  return out;
}

}  // namespace rtenv::env
