// `rtenv run`: set the env up, run the command inside it, pass its exit status through.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>

#include <fmt/format.h>

#include "cli/commands.h"
#ifndef RTENV_FRONT
#include "agent/client.h"
#include "env/remote_fetch.h"
#endif
#include "env/agent_process.h"
#include "env/package_cache.h"
#include "util/fs.h"
#include "util/interrupt.h"
#include "util/process.h"

extern char** environ;

namespace rtenv::cli {
namespace {

volatile sig_atomic_t g_child_pid = 0;

// Forwards a signal to the command, unless the terminal sent it: then the command, which is in
// our process group, has received it already.
void forward_signal(int sig, siginfo_t* info, void*) {
  if (info && info->si_code == SI_KERNEL) return;
  if (g_child_pid > 0) ::kill(g_child_pid, sig);
}

// The caller's environment with the plan applied.
std::vector<std::string> build_environment(const env::LaunchPlan& plan) {
  std::map<std::string, std::string> caller;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos) caller[std::string(kv.substr(0, eq))] = kv.substr(eq + 1);
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : env::apply_environment(plan, caller)) out.push_back(k + "=" + v);
  return out;
}

// Starts the command; returns its pid, or an exit status (126/127) and a message. The command
// inherits `inherit_fds` (the package leases), so it keeps its packages leased even if rtenv is
// killed while it runs.
Result<pid_t> spawn(const std::vector<std::string>& command, const env::LaunchPlan& ctx,
                    const std::vector<std::string>& environment,
                    const std::vector<int>& inherit_fds, const sigset_t& unblocked) {
  // The command is looked up on the PATH it will run with (an env's bin/ first), not ours.
  std::optional<std::string> path;
  for (const auto& e : environment) {
    if (e.starts_with("PATH=")) path = e.substr(5);
  }
  std::optional<fs::path> program = find_program(command[0], path);
  std::vector<char*> argv, envp;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : environment) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    return make_error(ErrorCode::kIo, "cannot create a pipe: {}", errno_text());
  }
  // The forwarded signals are blocked (by the caller) until g_child_pid is set, so one that
  // arrives while the command starts is forwarded, not dropped.
  pid_t pid = ::fork();
  if (pid < 0) return make_error(ErrorCode::kIo, "cannot fork: {}", errno_text());
  if (pid == 0) {
    ::close(pipefd[0]);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    // SIGPIPE too: rtenv ignores it, and an ignored signal stays ignored across exec.
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::sigaction(sig, &dfl, nullptr);
    ::sigprocmask(SIG_SETMASK, &unblocked, nullptr);
    for (int fd : inherit_fds) ::fcntl(fd, F_SETFD, 0);
    int stage = 0;  // 0: chdir, 1: exec
    if (ctx.cwd && ::chdir(ctx.cwd->c_str()) != 0) {
      int err[2] = {stage, errno};
      (void)!::write(pipefd[1], err, sizeof err);
      ::_exit(127);
    }
    stage = 1;
    if (program) {
      ::execve(program->c_str(), argv.data(), envp.data());
    } else {
      ::execvpe(argv[0], argv.data(), envp.data());
    }
    int err[2] = {stage, errno};
    (void)!::write(pipefd[1], err, sizeof err);
    ::_exit(127);
  }
  ::close(pipefd[1]);
  g_child_pid = pid;
  ::sigprocmask(SIG_SETMASK, &unblocked, nullptr);
  int err[2];
  ssize_t n;
  do {
    n = ::read(pipefd[0], err, sizeof err);
  } while (n < 0 && errno == EINTR);
  ::close(pipefd[0]);
  if (n == sizeof err) {
    g_child_pid = 0;
    ::waitpid(pid, nullptr, 0);
    if (err[0] == 0) {
      return make_error(ErrorCode::kIo, "cannot enter working_dir {}: {}", ctx.cwd->string(),
                        std::strerror(err[1]));
    }
    bool missing = err[1] == ENOENT;
    return make_error(missing ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument,
                      "cannot run '{}': {}{}", command[0], std::strerror(err[1]),
                      missing ? " (not found on PATH, or not in working_dir)" : "");
  }
  return pid;
}

// Set by the front when it hands a run it has packed (and reported) to rtenv-full.
constexpr const char* kPackReported = "RTENV_INTERNAL_PACK_REPORTED";

}  // namespace

int run_command(const RunArgs& args) {
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  auto say = [&](const std::string& line) {
    if (args.verbose) std::fprintf(stderr, "rtenv: %s\n", line.c_str());
  };

  auto home = open_home();
  if (!home) return fail(kExitSetup, "setup failed: " + home.error().message());
  // The fields this node handles, exec plugins included (validation knows their names then).
  auto registry = env::Registry::standard(*home);
  if (!registry) return fail(kExitUsage, registry.error().message());

  spec::RuntimeEnv env;
  if (!args.runtime_env.empty()) {
    auto parsed = spec::RuntimeEnv::load(args.runtime_env);
    if (!parsed) {
      std::string_view arg = args.runtime_env;
      size_t first = arg.find_first_not_of(" \t\r\n");
      bool inline_json =
          first != std::string_view::npos && (arg[first] == '{' || arg[first] == '[');
      return fail(kExitUsage, inline_json ? parsed.error().message()
                                          : args.runtime_env + ": " + parsed.error().message());
    }
    env = std::move(parsed).value();
    // The front that handed this run over validated the plugin fields already.
    const char* handed_over = std::getenv(kPackReported);
    bool validated = handed_over && *handed_over;
    if (auto v =
            validated ? Result<void>(ok_result()) : env::validate_fields(env, **registry, *home);
        !v) {
      bool invalid = v.error().code() == ErrorCode::kInvalidArgument;
      return fail(invalid ? kExitUsage : kExitSetup, v.error().message());
    }
  }
  if (args.command.empty() && !env.image_uri()) {
    return fail(kExitUsage,
                "run: no command given (usage: rtenv run [OPTIONS] -- COMMAND [ARGS...]; with "
                "image_uri, the image's Cmd)");
  }
#ifdef RTENV_FRONT
  if (env::needs_zip_support(env, **registry))
    return exec_full();  // zips need libarchive and libcurl (and
                         // it packs them itself)
#endif
  // Once per run: a front that hands the run over has said them.
  if (const char* handed_over = std::getenv(kPackReported); !(handed_over && *handed_over)) {
    for (const auto& w : env.warnings()) std::fprintf(stderr, "rtenv: warning: %s\n", w.c_str());
  }
  env::UploadOptions upload;
  if (auto r = args.limits.apply(&upload); !r) return fail(kExitUsage, r.error().message());

  std::string store_url = args.store_url.empty() ? home->store_url() : args.store_url;
  if (store_needs_full(store_url)) return exec_full();
  auto store = open_any_store(store_url);
  if (!store)
    return fail(kExitSetup, "setup failed: opening the store: " + store.error().message());

  ProgressLine progress;
  show_setup_progress(&upload, &progress);
  InterruptActivity preparing("setting up the env, before the command started");
  // When the front hands the run to rtenv-full, that packs again (from the index, so it finds
  // nothing to do): only the front's report of the packing is true, so rtenv-full skips its own.
  const char* reported = std::getenv(kPackReported);
  bool show_packing = !(reported && *reported);
  ::unsetenv(kPackReported);  // not for the command
  // Resolving packages no one resolved before means this env is new here: the agent will be
  // needed, so it starts while the resolver runs rather than after.
  bool agent_wanted = args.store_url.empty() && !home->config().no_agent();
  upload.before_resolving = [&] {
    if (agent_wanted && !env::agent_process_running(*home)) (void)env::start_agent_process(*home);
  };
  upload.report = [&](const std::string& line) {
    progress.clear();
    if (show_packing && (args.verbose || line.starts_with("warning:"))) {
      std::fprintf(stderr, "rtenv: %s\n", line.c_str());
    }
  };
#ifndef RTENV_FRONT
  env::add_remote_sources(*home, &upload);
  std::unique_ptr<agent::AgentClient> agent_client;
  bool agent_unavailable = false;
  // The node's agent, connected (and started) once, when this run first needs it.
  auto connect_agent = [&]() -> bool {
    if (agent_client) return true;
    if (agent_unavailable) return false;
    agent::ConnectOptions connect;
    connect.note = say;
    auto client = agent::AgentClient::connect(*home, connect);
    if (!client) {
      agent_unavailable = true;
      say("the agent is not available (" + client.error().message() + "); setting up here");
      return false;
    }
    agent_client = std::move(client).value();
    return true;
  };
#else
  const void* agent_client = nullptr;
  bool prepare_handed_over = false;
  // A pinned image the store lacks is fetched by rtenv-full (libcurl, libarchive).
  upload.import_image = [&](const std::string&, store::BlobStore&) -> Result<Digest> {
    prepare_handed_over = true;
    return Error(ErrorCode::kUnavailable, "handed to rtenv-full");
  };
#endif
  // A field whose helper the agent keeps warm (conda's solver) is prepared there.
  if (agent_wanted) {
    upload.prepare_in_agent = [&](const std::string& field, const spec::Json& value,
                                  const spec::RuntimeEnv& whole) -> Result<spec::Json> {
#ifdef RTENV_FRONT
      (void)field, (void)value, (void)whole;
      prepare_handed_over = true;  // the agent is reached over gRPC, which only rtenv-full loads
      return Error(ErrorCode::kUnavailable, "handed to rtenv-full");
#else
      spec::Json part = {{field, value}};
      if (whole.to_json().contains("config")) part["config"] = whole.to_json()["config"];
      if (!connect_agent()) {
        env::UploadOptions here = upload;
        here.prepare_in_agent = nullptr;
        return (*registry)->find(field)->prepare(value, {*home, **store, here, whole});
      }
      progress.show_timed("rtenv: resolving " + field + " (in the agent)");
      InterruptActivity busy("the agent resolves " + field,
                             "the agent finishes it, so the next run finds it resolved");
      RTENV_ASSIGN_OR_RETURN(std::string text, agent_client->prepare_field(field, part.dump()));
      spec::Json prepared = spec::Json::parse(text, nullptr, false);
      if (prepared.is_discarded()) {
        return make_error(ErrorCode::kCorrupt, "the agent's prepared {} is not JSON", field);
      }
      return prepared;
#endif
    };
  }
  auto resolved = env::upload_local(env, *home, **store, **registry, upload);
  progress.clear();
#ifdef RTENV_FRONT
  if (prepare_handed_over) {
    ::setenv(kPackReported, "1", 1);
    return exec_full();
  }
#endif
  if (!resolved) {
    return fail(kExitSetup, "setup failed: " + resolved.error().message());
  }
  env::NodeCache cache(*home, **store, (*registry)->plugins());
  auto planned = env::plan(*resolved, **registry, cache);
  if (!planned) return fail(kExitSetup, "setup failed: " + planned.error().message());

  // What is not on this node yet is installed by the node's agent (once, however many ask; with
  // a reference held by this process). What is there already is only leased, with no call at
  // all. Without an agent (RTENV_NO_AGENT=1, or another --store than the agent's) this process
  // installs it itself.
  bool all_ready = true;
  for (const auto& r : planned->resources) all_ready &= cache.is_ready(r);
#ifdef RTENV_FRONT
  // Image layers are unpacked with libarchive, which only rtenv-full (and the agent) load.
  for (const auto& r : planned->resources) {
    if (!cache.is_ready(r) && r.kind->name() == "image") {
      ::setenv(kPackReported, "1", 1);
      return exec_full();
    }
  }
#endif
  std::string holder, serialized = resolved->canonical();
  if (!all_ready && agent_wanted) {
#ifdef RTENV_FRONT
    ::setenv(kPackReported, "1", 1);
    return exec_full();  // the agent is reached over gRPC, which only rtenv-full loads
#else
    if (connect_agent()) {
      holder = agent::process_holder(::getpid());
      InterruptActivity waiting("the agent installs the env",
                                "the agent finishes it, so the next run finds it ready");
      auto created = agent_client->get_or_create(serialized, "", holder, [&](const std::string& m) {
        progress.show_timed("rtenv: " + m);
      });
      progress.clear();
      if (!created) return fail(kExitSetup, "setup failed: " + created.error().message());
      for (const auto& t : created->timings) say(fmt::format("{} ({:.1f} ms)", t.phase, t.ms));
    }
#endif
  }
  int64_t timeout_s = resolved->config().setup_timeout_seconds;
  auto active = env::activate(
      *resolved, **registry, cache,
      [&](const std::string& line) { progress.show("rtenv: " + line); },
      timeout_s > 0 ? timeout_s * 1000 : -1);
  progress.clear();
  if (!active) return fail(kExitSetup, "setup failed: " + active.error().message());
  double setup_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (!resolved->empty()) {
    say(fmt::format("env {} ready in {:.1f} ms ({})", resolved->id().hex().substr(0, 12), setup_ms,
                    all_ready      ? "everything was on this machine already"
                    : agent_client ? "installed by the agent"
                                   : "installed by this process"));
  }

  // Helpers this process started while setting up (conda's) do not wait out the command.
  env::Registry::stop_helpers();

  // Signals arriving from now on go to the command. They stay blocked until the command's pid
  // is known (spawn unblocks them), so none is lost while it starts.
  sigset_t forwarded, unblocked;
  sigemptyset(&forwarded);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&forwarded, sig);
  ::sigprocmask(SIG_BLOCK, &forwarded, &unblocked);
  struct sigaction fwd {};
  fwd.sa_sigaction = forward_signal;
  fwd.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&fwd.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaction(sig, &fwd, nullptr);

  std::vector<std::string> command = active->plan.wrapper;
  command.insert(command.end(), args.command.begin(), args.command.end());
  auto pid =
      spawn(command, active->plan, build_environment(active->plan), active->lease_fds(), unblocked);
  ::sigprocmask(SIG_SETMASK, &unblocked, nullptr);  // spawn's error paths may return blocked
  if (!pid) {
    bool missing = pid.error().code() == ErrorCode::kNotFound;
    bool cwd_failed = pid.error().code() == ErrorCode::kIo;
    return fail(cwd_failed ? kExitSetup : missing ? 127 : 126, pid.error().message());
  }
  g_child_pid = *pid;
  int status = 0;
  while (::waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_child_pid = 0;

  size_t restored = active->release();
#ifndef RTENV_FRONT
  if (agent_client && !holder.empty()) (void)agent_client->release(serialized, holder);
#endif
  if (restored) say(fmt::format("restored {} package(s) the command had changed", restored));
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace rtenv::cli
