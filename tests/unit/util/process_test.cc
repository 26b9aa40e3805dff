#include "util/process.h"

#include <chrono>

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

}  // namespace
}  // namespace rtenv
