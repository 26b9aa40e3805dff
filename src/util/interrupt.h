#pragma once
// Ending a command on SIGINT, SIGTERM or SIGHUP without leaving its helper programs behind, and
// saying what was interrupted. No domain knowledge.
//
// Helpers (run_process, LineProcess) run in process groups of their own, so a terminal's ^C does
// not reach them: without this, an interrupted command would leave its resolver running,
// re-parented to init.

#include <sys/types.h>

#include <string>

namespace rtenv {

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that (1) send SIGTERM to the process group
/// of every helper program still running, and SIGKILL to those left after half a second, (2)
/// write "<program>: interrupted while <activity>" (and the activity's consequence) to stderr,
/// when an InterruptActivity names one, and (3) end this process by the same signal, so its
/// parent sees it killed by that signal (a shell: status 130 for SIGINT). A signal the process
/// was started with ignored stays ignored (nohup; Slurm's release hooks). Call once, early, from
/// main; a command that handles these signals itself (the agent, a server, `run` while its
/// command runs) installs its own handlers over these.
void install_interrupt_handlers(const char* program);

/// True once one of those signals arrived (the process is about to end). A thread that sees its
/// helper die should not report that as a failure: interrupt_pending() says why it died.
bool interrupt_pending();

/// Blocks the calling thread for good when an interrupt is pending (the handler ends the process
/// within a second), so no thread reports a helper killed by the interrupt as a failure of its
/// own; returns at once otherwise.
void hold_if_interrupted();

/// While alive, names what the process is doing, for the interrupt message: `activity` as in
/// "resolving 3 requirements with uv", `consequence` what becomes of the work ("nothing was
/// installed"; "the agent finishes it, so the next run finds it ready"), or empty. Scopes nest:
/// the innermost one is reported. Construct and destroy on one thread, in stack order. Does
/// nothing in a process that did not install_interrupt_handlers (the agent, whose threads each
/// have work of their own).
class InterruptActivity {
 public:
  InterruptActivity(std::string activity, std::string consequence = "");
  ~InterruptActivity();
  InterruptActivity(const InterruptActivity&) = delete;
  InterruptActivity& operator=(const InterruptActivity&) = delete;

 private:
  std::string text_;
  const char* previous_ = nullptr;
};

/// What process.cc tells the handlers about helper programs: one is being started (call before
/// spawning it), it started as the leader of process group `pgid` (-1: it did not start), it was
/// reaped. At most 256 groups are tracked at once (enough for a command; the agent, which handles
/// signals itself, does not need them).
void note_helper_starting();
void note_helper_started(pid_t pgid);
void note_helper_reaped(pid_t pgid);

}  // namespace rtenv
