#include "util/process.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "testing/temp_dir.h"
#include "util/fs.h"

namespace rtenv {
namespace {

TEST(RunProcess, CapturesOutputStdinAndExitStatus) {
  ProcessSpec p;
  p.argv = {"sh", "-c", "read line; echo \"out:$line\"; echo err1 >&2; echo err2 >&2; exit 3"};
  p.stdin_data = "hello\n";
  std::vector<std::string> lines;
  p.on_stderr_line = [&](std::string_view l) { lines.emplace_back(l); };
  auto r = run_process(p);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->out, "out:hello\n");
  EXPECT_EQ(r->err, "err1\nerr2\n");
  EXPECT_EQ(lines, (std::vector<std::string>{"err1", "err2"}));
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->success());
  EXPECT_EQ(r->describe(), "exit status 3");
}

TEST(RunProcess, EnvironmentChangesApply) {
  ::setenv("RTENV_TEST_GONE", "x", 1);
  ProcessSpec p;
  p.argv = {"sh", "-c", "echo \"${RTENV_TEST_SET}-${RTENV_TEST_GONE:-unset}\""};
  p.env["RTENV_TEST_SET"] = "yes";
  p.env["RTENV_TEST_GONE"] = std::nullopt;
  auto r = run_process(p);
  ::unsetenv("RTENV_TEST_GONE");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "yes-unset\n");
}

TEST(RunProcess, DeadlineKillsTheWholeProcessGroup) {
  testing::TempDir dir;
  fs::path marker = dir / "grandchild-survived";
  ProcessSpec p;
  // A grandchild that would outlive its parent: the group kill must take it too.
  p.argv = {"sh", "-c", "(sleep 2; touch " + marker.string() + ") & sleep 30"};
  p.timeout_ms = 200;
  auto start = std::chrono::steady_clock::now();
  auto r = run_process(p);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->success());
  EXPECT_EQ(r->describe(), "timed out");
  EXPECT_LT(took, std::chrono::seconds(10));
  ::sleep(3);
  EXPECT_FALSE(fs::exists(marker));
}

TEST(RunProcess, InheritedDescriptorKeepsALockHeld) {
  testing::TempDir dir;
  fs::path lock_path = dir / "x.lock";
  auto lock = FileLock::acquire(lock_path, FileLock::Mode::kExclusive);
  ASSERT_TRUE(lock.ok());
  ProcessSpec p;
  // The child has the lock file open as fd 3, so the lock lives as long as it does.
  p.argv = {"sh", "-c", "readlink /proc/$$/fd/3"};
  p.inherit_fd = lock->fd();
  auto r = run_process(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, lock_path.string() + "\n");
}

TEST(StartDetached, RunsInASessionOfItsOwnWithoutOurDescriptors) {
  testing::TempDir tmp;
  fs::path out = tmp / "out";
  // A descriptor of ours the program must not get.
  int mine = ::open("/dev/null", O_RDONLY);  // not close-on-exec
  ASSERT_GE(mine, 0);
  std::string script = fmt::format(
      "s=$(cut -d' ' -f6 /proc/$$/stat); n=$(cut -d' ' -f19 /proc/$$/stat); "
      "if [ -e /proc/$$/fd/{} ]; then fd=open; else fd=closed; fi; echo \"$s $n $fd\" > {}.tmp; "
      "mv {}.tmp {}",
      mine, out.string(), out.string(), out.string());
  ASSERT_TRUE(start_detached({"/bin/sh", "-c", script}, 5).ok());
  ::close(mine);
  for (int i = 0; i < 200 && !fs::exists(out); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto text = read_file(out);
  ASSERT_TRUE(text.ok()) << "the detached program did not run";
  std::istringstream words(*text);
  long session = 0, niceness = 0;
  std::string fd;
  words >> session >> niceness >> fd;
  EXPECT_NE(session, static_cast<long>(::getsid(0)));
  EXPECT_EQ(niceness, ::getpriority(PRIO_PROCESS, 0) + 5);
  EXPECT_EQ(fd, "closed");
}

TEST(RunProcess, MissingProgramIsNotFound) {
  ProcessSpec p;
  p.argv = {"rtenv-no-such-program-xyz"};
  auto r = run_process(p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
}

TEST(FindProgram, SearchesTheGivenPath) {
  testing::TempDir dir;
  dir.write("bin/tool", "#!/bin/sh\n", 0755);
  dir.write("bin/not-exec", "", 0644);
  auto found = find_program("tool", (dir / "bin").string() + ":/usr/bin");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, dir / "bin" / "tool");
  EXPECT_FALSE(find_program("not-exec", (dir / "bin").string()).has_value());
  EXPECT_FALSE(find_program("tool", std::string("/nonexistent")).has_value());
}

}  // namespace
}  // namespace rtenv

namespace rtenv {
namespace {

TEST(RunProcess, ADaemonLeftHoldingThePipesDoesNotHoldTheCaller) {
  // The program exits at once, leaving a process in its own session that keeps stdout open.
  ProcessSpec p;
  p.argv = {"sh", "-c", "echo done; setsid sleep 8 & exit 0"};
  auto start = std::chrono::steady_clock::now();
  auto r = run_process(p);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->success()) << r->describe();
  EXPECT_EQ(r->out, "done\n");
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(RunProcess, ADeadlineHoldsEvenWhenADaemonEscapesTheGroup) {
  ProcessSpec p;
  p.argv = {"sh", "-c", "setsid sleep 8 & sleep 20"};
  p.timeout_ms = 300;
  auto start = std::chrono::steady_clock::now();
  auto r = run_process(p);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(took, std::chrono::seconds(8));
}

TEST(LineProcess, AnswersRequestsOneLineEachInTheSameProcess) {
  ProcessSpec spec;
  spec.argv = {"sh", "-c", "while read l; do echo \"err $l\" >&2; echo \"$$ got $l\"; done"};
  auto p = LineProcess::start(spec);
  ASSERT_TRUE(p) << p.error().message();
  std::vector<std::string> err;
  auto a = (*p)->call("one", 5000, 1024, [&](std::string_view l) { err.emplace_back(l); });
  ASSERT_TRUE(a) << a.error().message();
  auto b = (*p)->call("two", 5000, 1024, [&](std::string_view l) { err.emplace_back(l); });
  ASSERT_TRUE(b) << b.error().message();
  std::string pid = a->substr(0, a->find(' '));
  EXPECT_EQ(*a, pid + " got one");
  EXPECT_EQ(*b, pid + " got two");  // the same process answered both
  EXPECT_TRUE((*p)->alive());
  // Its stderr reached the caller of the request that caused it (at the latest by the answer of
  // the next one: the two pipes are read as they come).
  auto c = (*p)->call("three", 5000, 1024, [&](std::string_view l) { err.emplace_back(l); });
  ASSERT_TRUE(c);
  EXPECT_NE(std::find(err.begin(), err.end(), "err one"), err.end());
  EXPECT_NE(std::find(err.begin(), err.end(), "err two"), err.end());
}

TEST(LineProcess, OneThatExitsIsUnavailableWithItsStderr) {
  ProcessSpec spec;
  spec.argv = {"sh", "-c", "read l; echo \"cannot do $l\" >&2; exit 3"};
  auto p = LineProcess::start(spec);
  ASSERT_TRUE(p);
  auto a = (*p)->call("that", 5000, 1024);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(a.error().message().find("cannot do that"), std::string::npos) << a.error().message();
  EXPECT_FALSE((*p)->alive());
  auto again = (*p)->call("more", 5000, 1024);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kUnavailable);
}

TEST(LineProcess, ADeadlineStopsIt) {
  ProcessSpec spec;
  spec.argv = {"sh", "-c", "read l; sleep 30"};
  auto p = LineProcess::start(spec);
  ASSERT_TRUE(p);
  auto t0 = std::chrono::steady_clock::now();
  auto a = (*p)->call("x", 200, 1024);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), ErrorCode::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_FALSE((*p)->alive());
}

TEST(LineProcess, AnAnswerPastTheLimitIsRefused) {
  ProcessSpec spec;
  spec.argv = {"sh", "-c", "read l; head -c 100000 /dev/zero | tr '\\0' x; echo"};
  auto p = LineProcess::start(spec);
  ASSERT_TRUE(p);
  auto a = (*p)->call("x", 5000, 1000);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), ErrorCode::kTooLarge);
}

}  // namespace
}  // namespace rtenv
