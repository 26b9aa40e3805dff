#include "env/python_env.h"

#include <unistd.h>
#include <cstdlib>

#include <gtest/gtest.h>

#include "testing/temp_dir.h"
#include "util/fs.h"
#include "util/process.h"

namespace rtenv::env {
namespace {

// A stand-in for uv that logs its calls: `pip compile` prints fixed pins, `pip install` records
// the requirements in the venv (or fails, or hangs, as RTENV_FAKE_UV says), `pip check` passes.
constexpr const char* kFakeUv = R"(#!/bin/sh
echo "$*" >> "$RTENV_FAKE_UV_LOG"
case "$1 $2" in
  "pip compile")
    cat >/dev/null
    printf 'alpha==1.0 \\\n    --hash=sha256:aaa \\\n    --hash=sha256:bbb\n    # via -r -\nbeta==2.0 \\\n    --hash=sha256:ccc\n'
    ;;
  "pip install")
    case "$RTENV_FAKE_UV" in
      fail) echo "Resolved 2 packages" >&2
            echo "  x Failed to download alpha==1.0" >&2
            echo "  -> error: index https://user:s3cret@idx.example/simple/ answered 404" >&2
            exit 1 ;;
      hang) sleep 30 ;;
      down) echo "error: Request failed after 3 retries" >&2
            echo "  Caused by: error sending request for url http://127.0.0.1:1/simple/alpha/" >&2
            echo "  Caused by: tcp connect error: Connection refused, os error 111" >&2
            exit 2 ;;
    esac
    shift 2
    while [ $# -gt 0 ]; do
      case "$1" in
        --python) python=$2; shift ;;
        --prefix) prefix=$2; shift ;;
        -r) requirements=$2; shift ;;
      esac
      shift
    done
    cp "$requirements" "$prefix/lib/python3.11/site-packages/installed.txt"
    # A console script, as installers write it when installing through another interpreter.
    printf '#!%s\nimport sys\n' "$python" > "$prefix/bin/tool"
    chmod 755 "$prefix/bin/tool"
    ;;
esac
)";

class PythonEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = *Home::at(dir_ / "home");
    dir_.write("uv", kFakeUv, 0755);
    ::setenv("RTENV_FAKE_UV_LOG", (dir_ / "uv.log").c_str(), 1);
    ::unsetenv("RTENV_FAKE_UV");
    python_ = {"/usr/bin/python3", "3.11.2", "linux-x86_64", "cpython"};
    installer_ = {Installer::Tool::kUv, dir_ / "uv"};
  }
  void TearDown() override {
    ::unsetenv("RTENV_FAKE_UV");
    ::unsetenv("RTENV_FAKE_UV_LOG");
  }
  size_t uv_calls() const {
    auto log = read_file(dir_ / "uv.log");
    return log ? static_cast<size_t>(std::count(log->begin(), log->end(), '\n')) : 0;
  }
  spec::PythonPackages loose(std::vector<std::string> packages) const {
    spec::PythonPackages p;
    p.packages = std::move(packages);
    return p;
  }
  PythonEnvRequest request(const spec::PythonPackages& locked) const {
    return *PythonEnvRequest::make(locked, python_, installer_);
  }

  testing::TempDir dir_;
  Home home_;
  Interpreter python_;
  Installer installer_;
};

TEST_F(PythonEnvTest, LockPinsWithHashesKeepsIndexOptionsAndIsCached) {
  auto in = loose({"--index-url http://127.0.0.1:1/simple/", "alpha"});
  auto locked = lock_packages(in, home_, python_, installer_, {});
  ASSERT_TRUE(locked.ok()) << locked.error().message();
  EXPECT_TRUE(locked->locked);
  EXPECT_EQ(locked->python, "/usr/bin/python3");
  EXPECT_EQ(locked->packages,
            (std::vector<std::string>{"--index-url http://127.0.0.1:1/simple/",
                                      "alpha==1.0 --hash=sha256:aaa --hash=sha256:bbb",
                                      "beta==2.0 --hash=sha256:ccc"}));
  EXPECT_EQ(uv_calls(), 1u);
  // The same list again: the recorded resolution, no resolver.
  auto again = lock_packages(in, home_, python_, installer_, {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->packages, locked->packages);
  EXPECT_EQ(uv_calls(), 1u);
  LockOptions refresh;
  refresh.refresh = true;
  ASSERT_TRUE(lock_packages(in, home_, python_, installer_, refresh).ok());
  EXPECT_EQ(uv_calls(), 2u);
  // A locked list is final.
  ASSERT_TRUE(lock_packages(*locked, home_, python_, installer_, {}).ok());
  EXPECT_EQ(uv_calls(), 2u);
}

TEST_F(PythonEnvTest, KeyFollowsPinsAndInterpreterNotTheTool) {
  auto a = loose({"alpha==1.0"});
  a.locked = true;
  auto b = a;
  b.packages = {"alpha==1.1"};
  EXPECT_EQ(request(a).key, request(a).key);
  EXPECT_NE(request(a).key, request(b).key);
  Interpreter other = python_;
  other.version = "3.12.1";
  EXPECT_NE(request(a).key, PythonEnvRequest::make(a, other, installer_)->key);
  EXPECT_EQ(request(a).key,
            PythonEnvRequest::make(a, python_, Installer{Installer::Tool::kPip, {}})->key);
  auto hidden = a;
  hidden.system_site_packages = false;
  EXPECT_NE(request(a).key, request(hidden).key);
  EXPECT_FALSE(PythonEnvRequest::make(loose({"alpha"}), python_, installer_).ok());
}

TEST_F(PythonEnvTest, BuildsAVirtualenvOnceAndLeasesIt) {
  auto locked = *lock_packages(loose({"alpha"}), home_, python_, installer_, {});
  auto req = request(locked);
  PythonEnvCache cache(home_);
  EXPECT_FALSE(cache.is_ready(req.key));
  auto built = cache.ensure(req, nullptr, -1);
  ASSERT_TRUE(built.ok()) << built.error().message();
  EXPECT_TRUE(*built);
  fs::path dir = cache.dir_of(req.key);
  EXPECT_TRUE(cache.is_ready(req.key));
  EXPECT_EQ(fs::read_symlink(dir / "bin" / "python3.11"), "/usr/bin/python3");
  EXPECT_EQ(fs::read_symlink(dir / "bin" / "python"), "python3.11");
  auto cfg = read_file(dir / "pyvenv.cfg");
  ASSERT_TRUE(cfg.ok());
  EXPECT_NE(cfg->find("home = /usr/bin\n"), std::string::npos);
  EXPECT_NE(cfg->find("include-system-site-packages = true\n"), std::string::npos);
  auto installed = read_file(dir / "lib/python3.11/site-packages/installed.txt");
  ASSERT_TRUE(installed.ok());
  EXPECT_NE(installed->find("beta==2.0 --hash=sha256:ccc"), std::string::npos);
  // Installed through the base interpreter, the script is pointed at the venv's.
  auto script = read_file(dir / "bin" / "tool");
  ASSERT_TRUE(script.ok());
  EXPECT_EQ(*script, "#!" + (dir / "bin" / "python").string() + "\nimport sys\n");
  EXPECT_EQ(fs::status(dir / "bin" / "tool").permissions() & fs::perms::owner_exec,
            fs::perms::owner_exec);
  size_t calls = uv_calls();
  // Ready: a lease starts nothing.
  auto lease = cache.acquire(req, nullptr, -1);
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE(lease->built());
  EXPECT_EQ(uv_calls(), calls);
  EXPECT_EQ(cache.process_leases(req.key), 1u);
  EXPECT_EQ(cache.list(), std::vector<Digest>{req.key});
  // In use: never evicted.
  EXPECT_FALSE(*cache.evict(req.key));
  lease->release();
  EXPECT_TRUE(*cache.evict(req.key));
  EXPECT_FALSE(cache.is_ready(req.key));
  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(PythonEnvTest, AFailedInstallLeavesNothingAndSaysWhy) {
  auto locked = *lock_packages(loose({"alpha"}), home_, python_, installer_, {});
  auto req = request(locked);
  PythonEnvCache cache(home_);
  ::setenv("RTENV_FAKE_UV", "fail", 1);
  std::vector<std::string> progress;
  auto built = cache.ensure(
      req, [&](const std::string& l) { progress.push_back(l); }, -1);
  ASSERT_FALSE(built.ok());
  const std::string& m = built.error().message();
  EXPECT_NE(m.find("exit status 1"), std::string::npos) << m;
  EXPECT_NE(m.find("Failed to download alpha==1.0"), std::string::npos) << m;
  EXPECT_EQ(m.find("s3cret"), std::string::npos) << m;
  EXPECT_NE(m.find("https://user:****@idx.example"), std::string::npos) << m;
  EXPECT_FALSE(progress.empty());
  EXPECT_FALSE(cache.is_ready(req.key));
  EXPECT_FALSE(fs::exists(cache.dir_of(req.key)));
  EXPECT_EQ(built.error().code(), ErrorCode::kInvalidArgument);  // the user must act
  // An index that cannot be reached is worth another try later.
  ::setenv("RTENV_FAKE_UV", "down", 1);
  auto down = cache.ensure(req, nullptr, -1);
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code(), ErrorCode::kUnavailable) << down.error().message();
  EXPECT_TRUE(down.error().retryable());
  // The next attempt builds from scratch.
  ::unsetenv("RTENV_FAKE_UV");
  EXPECT_TRUE(*cache.ensure(req, nullptr, -1));
}

TEST_F(PythonEnvTest, AnInstallPastTheDeadlineTimesOut) {
  auto locked = *lock_packages(loose({"alpha"}), home_, python_, installer_, {});
  auto req = request(locked);
  PythonEnvCache cache(home_);
  ::setenv("RTENV_FAKE_UV", "hang", 1);
  auto built = cache.ensure(req, nullptr, 300);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.error().code(), ErrorCode::kTimeout);
  EXPECT_NE(built.error().message().find("timed out"), std::string::npos);
  EXPECT_FALSE(fs::exists(cache.dir_of(req.key)));
}

TEST(PyExecutableTest, ClassifiesPathsNamesAndFilesOfWorkingDir) {
  auto path = PyExecutable::parse("/usr/bin/../bin/python3");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(path->form, PyExecutable::Form::kPath);
  EXPECT_EQ(path->value, "/usr/bin/python3");
  auto name = PyExecutable::parse("python3.11");
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(name->form, PyExecutable::Form::kName);
  EXPECT_EQ(name->value, "python3.11");
  auto relative = PyExecutable::parse("./.venv/bin/python");
  ASSERT_TRUE(relative.ok());
  EXPECT_EQ(relative->form, PyExecutable::Form::kInWorkingDir);
  EXPECT_EQ(relative->value, ".venv/bin/python");
}

TEST(PyExecutableTest, ACommandWithArgumentsIsRefused) {
  for (const char* value : {"uv run --with x", "python3 -X dev", "/no/such/python -u"}) {
    auto r = PyExecutable::parse(value);
    ASSERT_FALSE(r.ok()) << value;
    EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
    EXPECT_NE(r.error().message().find("not supported: py_executable with arguments"),
              std::string::npos)
        << r.error().message();
    EXPECT_NE(r.error().message().find("give an interpreter path or name"), std::string::npos);
  }
  // An existing file whose path has a space is a path, not a command.
  testing::TempDir dir;
  dir.write("my python", "#!/bin/sh\n", 0755);
  auto spaced = PyExecutable::parse((dir / "my python").string());
  ASSERT_TRUE(spaced.ok()) << spaced.error().message();
  EXPECT_EQ(spaced->form, PyExecutable::Form::kPath);
}

TEST_F(PythonEnvTest, ALauncherExecsTheInterpreterAsNamed) {
  // A path a shell would split or expand, to see the quoting hold.
  dir_.write("it's $here/py", "#!/bin/sh\necho \"$0 $*\"\n", 0755);
  fs::path target = dir_ / "it's $here" / "py";
  auto req = PythonEnvRequest::make_launcher(target);
  EXPECT_EQ(req.key, PythonEnvRequest::make_launcher(target).key);
  EXPECT_NE(req.key, PythonEnvRequest::make_launcher("/usr/bin/python3").key);
  PythonEnvCache cache(home_);
  auto built = cache.ensure(req, nullptr, -1);
  ASSERT_TRUE(built.ok()) << built.error().message();
  EXPECT_TRUE(*built);
  EXPECT_FALSE(*cache.ensure(req, nullptr, -1));
  fs::path dir = cache.dir_of(req.key);
  EXPECT_FALSE(fs::exists(dir / "pyvenv.cfg"));  // not a venv: the interpreter runs as it is
  for (const char* name : {"python", "python3"}) {
    ProcessSpec p;
    p.argv = {(dir / "bin" / name).string(), "a b", "c"};
    auto out = run_process(p);
    ASSERT_TRUE(out.ok()) << out.error().message();
    EXPECT_EQ(out->out, target.string() + " a b c\n") << name;
  }
  EXPECT_TRUE(*cache.evict(req.key));
  EXPECT_FALSE(fs::exists(dir));
}

// A real venv (python -m venv, no pip) made from `base`.
fs::path make_real_venv(const std::string& base, const fs::path& dir, bool system_site) {
  ProcessSpec p;
  p.argv = {base, "-m", "venv", "--without-pip", dir.string()};
  if (system_site) p.argv.push_back("--system-site-packages");
  auto out = run_process(p);
  EXPECT_TRUE(out.ok() && out->success()) << (out.ok() ? out->err : out.error().message());
  return dir / "bin" / "python";
}

TEST_F(PythonEnvTest, TheProbeFindsTheVenvAnInterpreterRunsIn) {
  fs::path venv_python = make_real_venv("python3", dir_ / "ray venv", false);
  auto in_venv = find_interpreter(home_, venv_python.string());
  ASSERT_TRUE(in_venv.ok()) << in_venv.error().message();
  ASSERT_TRUE(in_venv->venv.has_value());
  EXPECT_EQ(in_venv->venv->dir, dir_ / "ray venv");
  EXPECT_EQ(in_venv->venv->python, venv_python);
  EXPECT_FALSE(in_venv->venv->system_site_packages);
  const std::string xy = in_venv->version.substr(0, in_venv->version.rfind('.'));
  EXPECT_EQ(in_venv->venv->site_packages,
            std::vector<fs::path>{dir_ / "ray venv" / "lib" / ("python" + xy) / "site-packages"});
  // An env names it by the venv's python; it links to the real base interpreter.
  EXPECT_EQ(in_venv->named(), venv_python);
  EXPECT_NE(in_venv->executable.string().find("python"), std::string::npos);
  EXPECT_EQ(in_venv->executable.string().find("ray venv"), std::string::npos);

  // The base interpreter itself runs in no venv, and names itself.
  auto base = find_interpreter(home_, in_venv->executable.string());
  ASSERT_TRUE(base.ok()) << base.error().message();
  EXPECT_FALSE(base->venv.has_value());
  EXPECT_EQ(base->named(), base->executable);
  EXPECT_EQ(base->executable, in_venv->executable);
  EXPECT_FALSE(base->same_environment(*in_venv));

  // The venv made again with the base's site-packages visible: probed again, not the cached
  // answer.
  auto cfg = read_file(dir_ / "ray venv" / "pyvenv.cfg");
  ASSERT_TRUE(cfg.ok());
  std::string changed = *cfg;
  auto at = changed.find("include-system-site-packages = false");
  ASSERT_NE(at, std::string::npos);
  changed.replace(at, std::string("include-system-site-packages = false").size(),
                  "include-system-site-packages = true");
  dir_.write("ray venv/pyvenv.cfg", changed);
  auto again = find_interpreter(home_, venv_python.string());
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(again->venv.has_value());
  EXPECT_TRUE(again->venv->system_site_packages);
}

TEST_F(PythonEnvTest, TheProbeFindsTheSitePackagesOfAVenvOfDebiansPython) {
  // Debian's site module lists dist-packages directories unless it knows it runs in a venv.
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  fs::path venv_python = make_real_venv("/usr/bin/python3", dir_ / "venv", false);
  auto in_venv = find_interpreter(home_, venv_python.string());
  ASSERT_TRUE(in_venv.ok()) << in_venv.error().message();
  ASSERT_TRUE(in_venv->venv.has_value());
  const std::string xy = in_venv->version.substr(0, in_venv->version.rfind('.'));
  EXPECT_EQ(in_venv->venv->site_packages,
            std::vector<fs::path>{dir_ / "venv" / "lib" / ("python" + xy) / "site-packages"});
}

TEST_F(PythonEnvTest, TwoVenvsOnOneBaseGetEnvsOfTheirOwn) {
  auto a = loose({"alpha==1.0"});
  a.locked = true;
  Interpreter in_venv = python_;
  in_venv.venv = BaseVenv{"/opt/ray-a", "/opt/ray-a/bin/python", {}, false};
  Interpreter other_venv = python_;
  other_venv.venv = BaseVenv{"/opt/ray-b", "/opt/ray-b/bin/python", {}, false};
  Interpreter sees_base = in_venv;
  sees_base.venv->system_site_packages = true;
  const Digest plain = request(a).key;
  const Digest ka = PythonEnvRequest::make(a, in_venv, installer_)->key;
  EXPECT_NE(plain, ka);
  EXPECT_NE(ka, PythonEnvRequest::make(a, other_venv, installer_)->key);
  EXPECT_NE(ka, PythonEnvRequest::make(a, sees_base, installer_)->key);
  EXPECT_EQ(ka, PythonEnvRequest::make(a, in_venv, installer_)->key);
  // A lock names the venv's python, so that nodes layer on the same venv.
  auto locked = lock_packages(loose({"alpha"}), home_, in_venv, installer_, {});
  ASSERT_TRUE(locked.ok()) << locked.error().message();
  EXPECT_EQ(locked->python, "/opt/ray-a/bin/python");
}

TEST_F(PythonEnvTest, AnEnvOnAVenvsInterpreterSeesThatVenvBehindItsOwnPackages) {
  Interpreter in_venv = python_;
  in_venv.venv = BaseVenv{dir_ / "ray-venv",
                          dir_ / "ray-venv/bin/python",
                          {dir_ / "ray-venv/lib/python3.11/site-packages", dir_ / "it's\xff"},
                          false};
  auto locked = *lock_packages(loose({"alpha"}), home_, in_venv, installer_, {});
  auto req = *PythonEnvRequest::make(locked, in_venv, installer_);
  PythonEnvCache cache(home_);
  auto built = cache.ensure(req, nullptr, -1);
  ASSERT_TRUE(built.ok()) << built.error().message();
  fs::path dir = cache.dir_of(req.key);
  // Linked to the base interpreter; the base's site-packages only as far as the venv sees them.
  EXPECT_EQ(fs::read_symlink(dir / "bin" / "python3.11"), "/usr/bin/python3");
  auto cfg = read_file(dir / "pyvenv.cfg");
  ASSERT_TRUE(cfg.ok());
  EXPECT_NE(cfg->find("include-system-site-packages = false\n"), std::string::npos);
  auto pth = read_file(dir / "lib/python3.11/site-packages/~rtenv-base-venv.pth");
  ASSERT_TRUE(pth.ok()) << pth.error().message();
  EXPECT_NE(pth->find("import os, site; site.addsitedir(os.fsdecode(b'" + dir_.path().string() +
                      "/ray-venv/lib/python3.11/site-packages'))\n"),
            std::string::npos)
      << *pth;
  EXPECT_NE(
      pth->find("site.addsitedir(os.fsdecode(b'" + dir_.path().string() + "/it\\'s\\xff'))\n"),
      std::string::npos)
      << *pth;

  // The env isolated from the base (system_site_packages false): no layering at all.
  auto hidden = locked;
  hidden.system_site_packages = false;
  auto hidden_req = *PythonEnvRequest::make(hidden, in_venv, installer_);
  ASSERT_TRUE(cache.ensure(hidden_req, nullptr, -1).ok());
  fs::path hidden_dir = cache.dir_of(hidden_req.key);
  EXPECT_FALSE(fs::exists(hidden_dir / "lib/python3.11/site-packages/~rtenv-base-venv.pth"));
  EXPECT_NE(read_file(hidden_dir / "pyvenv.cfg")->find("include-system-site-packages = false\n"),
            std::string::npos);

  // A venv that sees its base's site-packages: so does the env.
  Interpreter sees_base = in_venv;
  sees_base.venv->system_site_packages = true;
  auto open_req = *PythonEnvRequest::make(locked, sees_base, installer_);
  ASSERT_TRUE(cache.ensure(open_req, nullptr, -1).ok());
  EXPECT_NE(read_file(cache.dir_of(open_req.key) / "pyvenv.cfg")
                ->find("include-system-site-packages = true\n"),
            std::string::npos);
}

}  // namespace
}  // namespace rtenv::env
