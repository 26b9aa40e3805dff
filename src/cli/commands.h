#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/common.h"

namespace rtenv::cli {

struct RunArgs {
  std::string runtime_env;  ///< inline JSON or a file; empty: no env
  std::string store_url;    ///< empty: RTENV_STORE or the local store
  SizeLimits limits;
  bool verbose = false;
  std::vector<std::string> command;
};
/// `rtenv run`: returns the command's exit status, or kExitUsage / kExitSetup.
int run_command(const RunArgs& args);

struct PackArgs {
  bool verbose = false;  ///< also the time each phase took
  std::string path;
  std::vector<std::string> excludes;
  std::string store_url;
  SizeLimits limits;
  bool json = false;
  bool no_index = false;
  unsigned threads = 0;
};
/// `rtenv pack`: prints the package URI and counts.
int pack_command(const PackArgs& args);

struct LockArgs {
  bool verbose = false;  ///< say what resolving took
  std::string runtime_env;
  bool refresh = false;
  bool json = false;
};
/// `rtenv lock`: prints the exact pins an env's pip/uv list resolves to.
int lock_command(const LockArgs& args);

/// `rtenv completion bash|zsh`: prints a completion script made from `app`'s commands and flags.
int completion_command(const CLI::App& app, const std::string& shell);

struct StoreGcArgs {
  std::string store_url;   ///< empty: the configured store
  std::string older_than;  ///< a duration: blobs touched within it are kept
  bool dry_run = false;
  bool json = false;
};
/// `rtenv store gc`: collects a directory store (blobs no record names, not touched within
/// --older-than, not below a kept manifest).
int store_gc_command(const StoreGcArgs& args);

/// `rtenv config show [--json]`: every setting, its effective value and its origin (the token
/// masked).
int config_show_command(bool json);

}  // namespace rtenv::cli

namespace rtenv::cli {

struct AgentArgs {
  std::string tcp_address;
  std::string token_file;
  int idle_exit_seconds = 0;
  bool on_demand = false;      ///< started by a client (env/agent_process), not by hand
  std::string metrics_listen;  ///< --metrics-listen: the config's metrics_listen from the flag
};
/// `rtenv agent`: serve this node's agent in the foreground.
int agent_command(const AgentArgs& args);
/// The agent's flags, shared by `rtenv agent` and `rtenv-agent`.
void add_agent_options(CLI::App* app, AgentArgs* args);

struct EnvCreateArgs {
  std::string runtime_env;
  std::string job_id;
  std::string holder;  ///< an engine's holder (`slurm:<job>.<step>`), instead of a job
  bool json = false;
  bool print_exports = false;  ///< Slurm TaskProlog lines: the environment change and the cwd
  bool no_install = false;     ///< resolve only (pack, lock) and print the env; no agent, no holder
  bool verbose = false;        ///< say what preparing the env did (warnings are always said)
};
/// `rtenv env create`: make an env ready on this node for a job (eager install).
int env_create_command(const EnvCreateArgs& args);
/// `rtenv env create --no-install`: pack and lock, print the resolved env (the lean front serves
/// it unless there are archives or URLs to fetch, or a network store).
int env_resolve_command(const EnvCreateArgs& args);

/// What `env create` reads first: the home, the fields, the env validated.
struct LoadedEnv {
  env::Home home;
  std::shared_ptr<const env::Registry> registry;
  spec::RuntimeEnv env;
};
/// Fills `out` from the command's arguments; returns 0, or the exit status having said why.
int load_env_for_create(const EnvCreateArgs& args, LoadedEnv* out);
/// Prints the env's warnings on stderr ("rtenv: warning: ...").
void say_warnings(const spec::RuntimeEnv& env);
/// What preparing an env says on stderr: warnings always, the rest (what was solved, packed)
/// when `verbose`.
env::SetupReporter setup_reporter(bool verbose);
/// `rtenv env release --job ID | --holder HOLDER`: give the job's (or holder's) references back.
/// A holder ending in `*` names every holder with that prefix (a Slurm job's steps).
int env_release_command(const std::string& job_id, const std::string& holder, bool json);
/// `rtenv env logs ID`: the agent's log lines of one env (an id or a prefix naming one).
int env_logs_command(const std::string& id);
/// `rtenv env list`: envs (with the fields each holds) and resources with their references,
/// sizes and timings; `wide`: ids and URIs whole.
int env_list_command(bool json, bool wide);
/// `rtenv env show ID`: one env whole (ID may be a unique prefix): its runtime_env (env_vars
/// values hidden), holders, resources with sizes and paths, timings, the agent's log of it.
int env_show_command(const std::string& id, bool json);
/// `rtenv gc`: evict unused resources down to the cache's low watermark.
int gc_command(bool dry_run, bool json, const std::string& store_keep);
/// `rtenv agent stop`: asks the agent to stop and waits (bounded) until its process is gone.
int agent_stop_command(bool json);
/// `rtenv agent status [--json]`: the agent's pid, version, socket, whether it was started on
/// demand and whether its configuration is this shell's. Exit 1 if no agent is running.
int agent_status_command(bool json);
/// Says what connecting to the agent did (a restart) on stderr when `verbose`.
void set_agent_verbose(bool verbose);

struct StoreServeArgs {
  std::string root;  ///< empty: $RTENV_HOME/store
  std::string listen = "127.0.0.1:7878";
  std::string token_file;
  unsigned threads = 64;
  bool verbose = false;
  std::string gc_every;  ///< empty: the server collects nothing
  std::string gc_older_than = "7d";
};
/// `rtenv store serve`: serve a store directory over HTTP until SIGINT/SIGTERM.
int store_serve_command(const StoreServeArgs& args);

}  // namespace rtenv::cli
