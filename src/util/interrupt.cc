#include "util/interrupt.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace rtenv {
namespace {

// Everything the handler reads is a lock-free atomic or written before the handlers exist.
static_assert(std::atomic<pid_t>::is_always_lock_free &&
              std::atomic<const char*>::is_always_lock_free);
constexpr size_t kMaxGroups = 256;
std::atomic<pid_t> g_groups[kMaxGroups];
std::atomic<int> g_starting{0};
std::atomic<bool> g_pending{false};
std::atomic<const char*> g_activity{nullptr};
bool g_installed = false;  // set once, before any thread is started
char g_program[64] = "rtenv";

void sleep_ms(long ms) {
  timespec t{0, ms * 1000000L};
  while (::nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

void put(const char* text) {
  size_t left = std::strlen(text);
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, text, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text += n;
    left -= static_cast<size_t>(n);
  }
}

// True while the leader of `pgid` has not exited (checked without reaping it: the thread that
// started it still waits for it).
bool leader_running(pid_t pgid) {
  siginfo_t info;
  info.si_pid = 0;
  if (::waitid(P_PID, static_cast<id_t>(pgid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return false;  // not our child any more (reaped already)
  }
  return info.si_pid == 0;
}

void on_interrupt(int sig) {
  int saved_errno = errno;
  g_pending.store(true);
  // A helper being spawned right now gets its group tracked in a moment.
  for (int i = 0; i < 20 && g_starting.load() > 0; ++i) sleep_ms(10);
  bool any = false;
  for (auto& slot : g_groups) {
    pid_t pgid = slot.load();
    if (pgid > 0) {
      ::kill(-pgid, SIGTERM);
      any = true;
    }
  }
  if (any) {
    for (int i = 0; i < 50; ++i) {
      bool running = false;
      for (auto& slot : g_groups) {
        pid_t pgid = slot.load();
        running |= pgid > 0 && leader_running(pgid);
      }
      if (!running) break;
      sleep_ms(10);
    }
    // Whatever is left of each group (a leader that ignored TERM, a grandchild) goes now.
    for (auto& slot : g_groups) {
      pid_t pgid = slot.load();
      if (pgid > 0) ::kill(-pgid, SIGKILL);
    }
  }
  if (const char* activity = g_activity.load()) {
    if (::isatty(STDERR_FILENO) == 1) put("\r\033[K");  // over a progress line
    put(g_program);
    put(": interrupted while ");
    put(activity);
    put("\n");
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);  // delivered when this handler returns: the process ends by the signal
  errno = saved_errno;
}

}  // namespace

void install_interrupt_handlers(const char* program) {
  std::strncpy(g_program, program, sizeof g_program - 1);
  g_installed = true;
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&sa.sa_mask, sig);  // one handler at a time
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    // A signal this process was started with ignored stays ignored (as nohup, or a parent that
    // must not have its helper killed by a signal meant for others, wants it).
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    ::sigaction(sig, &sa, nullptr);
  }
}

bool interrupt_pending() { return g_pending.load(); }

void hold_if_interrupted() {
  if (!g_pending.load()) return;
  while (true) ::pause();
}

InterruptActivity::InterruptActivity(std::string activity, std::string consequence)
    : text_(std::move(activity)) {
  if (!g_installed) return;  // a server with handlers of its own (and many threads)
  if (!consequence.empty()) text_ += "; " + consequence;
  previous_ = g_activity.exchange(text_.c_str());
}

InterruptActivity::~InterruptActivity() {
  if (g_installed) g_activity.store(previous_);
}

void note_helper_starting() { g_starting.fetch_add(1); }

void note_helper_started(pid_t pgid) {
  if (pgid > 0) {
    for (auto& slot : g_groups) {
      pid_t empty = 0;
      if (slot.compare_exchange_strong(empty, pgid)) break;
    }
  }
  g_starting.fetch_sub(1);
}

void note_helper_reaped(pid_t pgid) {
  if (pgid <= 0) return;
  for (auto& slot : g_groups) {
    pid_t expected = pgid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

}  // namespace rtenv
