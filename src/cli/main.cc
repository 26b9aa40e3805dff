// rtenv: get a job's files onto a machine and run the job inside them.

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#ifndef RTENV_FRONT
#include "env/agent_process.h"
#include "env/archive_import.h"
#endif
#include "cli/commands.h"
#include "env/image_exec.h"
#include "spec/schema.h"
#include "util/fs.h"
#include "util/interrupt.h"
#include "util/suggest.h"

#include <unistd.h>

#include "version.h"

namespace {

// What `rtenv --version` says: the version, the commit built, and what this binary does itself.
std::string version_text() {
#ifdef RTENV_FRONT
  const char* features =
      "run and pack of directories and wheels, images already on the node (image-exec); hands "
      "archives, URLs, registries, the agent, conda and the other commands to rtenv-full beside "
      "it";
#else
  const char* features =
      "agent, stores (directory, s3://, rtenv's blob server) and store serve, archives (zip, "
      "tar, tar.gz/tgz/xz/bz2), URL fetch (http(s), s3, file), pip/uv, conda (py-rattler), "
      "java_jars, "
      "exec plugins, images (registries, OCI layouts and archives)";
#endif
  return fmt::format("rtenv {} (commit {})\nfeatures: {}", RTENV_VERSION, RTENV_COMMIT, features);
}

// When the words before `--` name a command that does not exist ("rtenv rn", "rtenv env lst"):
// "unknown command 'rn'; did you mean 'run'?", naming the commands there are. Else nullopt (the
// parser's own message is right).
std::optional<std::string> unknown_command_hint(CLI::App& app, int argc, char** argv) {
  CLI::App* at = &app;
  std::string path;  // "env: " one level down
  for (int i = 1; i < argc; ++i) {
    std::string word = argv[i];
    if (word == "--") break;
    if (i == 1 && word == "help") continue;  // `rtenv help CMD`
    if (word.starts_with("-")) continue;
    std::vector<std::string> names;
    for (CLI::App* sub : at->get_subcommands({})) names.push_back(sub->get_name());
    if (names.empty()) return std::nullopt;  // a command's own arguments from here on
    if (std::find(names.begin(), names.end(), word) != names.end()) {
      at = at->get_subcommand(word);
      path += word + ": ";
      continue;
    }
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    // A command the word begins ("stat": status) before the closest by edits.
    std::optional<std::string> close;
    for (const auto& n : names) {
      if (!close && word.size() >= 2 && n.starts_with(word)) close = n;
    }
    if (!close) close = rtenv::closest_match(word, names);
    return fmt::format("{}unknown command '{}'{} (the commands are: {})", path, word,
                       close ? fmt::format("; did you mean '{}'?", *close) : std::string(), known);
  }
  return std::nullopt;
}

// `rtenv run --help`: its one usage line says where the command goes.
class RunUsage : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App*, std::string) const override {
    return "Usage: rtenv run [OPTIONS] [--] COMMAND [ARGS...]  (everything from COMMAND on is "
           "passed to the command untouched)\n";
  }
};

// -q on `cmd` (and -v, when `verbose` is given; the two exclude each other).
void add_verbosity(CLI::App* cmd, bool* quiet, bool* verbose, const char* verbose_says) {
  auto* q = cmd->add_flag("--quiet,-q", *quiet,
                          "Print the answer, warnings and errors only: no progress, no summaries");
  if (verbose) cmd->add_flag("--verbose,-v", *verbose, verbose_says)->excludes(q);
}

int real_main(int argc, char** argv) {
  using namespace rtenv::cli;
  bool quiet = false;
  set_command_line(argc, argv);
  CLI::App app{
      "rtenv: runtime environments for jobs. Give a job's files and settings as a Ray-style "
      "runtime_env; rtenv packs them by content, puts them on the machine and runs the job "
      "inside.\n\nState lives in $RTENV_HOME (default ~/.cache/rtenv); the store is "
      "$RTENV_STORE, else \"store\" in $RTENV_HOME/config.json, else the directory "
      "$RTENV_HOME/store. Every setting: `rtenv config show` (docs/config.md). `rtenv help "
      "COMMAND` is `rtenv COMMAND --help`.",
      "rtenv"};
  app.set_version_flag("--version", version_text(),
                       "Print the version, the commit built and this binary's features");
  app.require_subcommand(1);

  RunArgs run;
  auto* run_cmd = app.add_subcommand(
      "run",
      "Run a command inside a runtime_env: cwd = the node-local copy of working_dir, env_vars "
      "set, py_modules on PYTHONPATH, pip/uv packages installed. Exits with the command's status "
      "(128+N if killed by signal "
      "N), 2 for an invalid runtime_env or usage, 3 if setting the env up failed, 126/127 if the "
      "command cannot be run. pip/uv packages are installed into a virtualenv whose bin/ comes "
      "first on PATH (base interpreter: $RTENV_PYTHON or python3; installer: uv if found, else "
      "pip; $RTENV_INSTALLER, $RTENV_UV). Fields of exec plugins (config \"plugins\", "
      "RTENV_PLUGINS; docs/plugins.md) work the same way.");
  run_cmd->formatter(std::make_shared<RunUsage>());
  run_cmd->add_option("--runtime-env,-e", run.runtime_env,
                      "The runtime_env: inline JSON ('{\"working_dir\": \".\"}') or a .json, "
                      ".yaml or .yml file");
  run_cmd->add_option("--store", run.store_url,
                      "Blob store URL (default: $RTENV_STORE, \"store\" in "
                      "$RTENV_HOME/config.json, or the local store)");
  run_cmd->add_option("--max-package-size", run.limits.max_package_size,
                      "Largest package allowed, e.g. 500M or 4G (default 2G; env "
                      "RTENV_MAX_PACKAGE_SIZE)");
  add_verbosity(run_cmd, &quiet, &run.verbose, "Say what setup did and how long it took");
  // Everything from the first non-option argument (or after --) is the command, untouched.
  run_cmd->prefix_command();

  PackArgs pack;
  auto* pack_cmd = app.add_subcommand(
      "pack",
      "Pack a directory (or one file) into the store by content and print its package URI and "
      "what was read and uploaded. Only files that changed since the last pack are read, and only "
      "blobs the store lacks are uploaded.");
  pack_cmd->add_option("path", pack.path, "Directory or file to pack")->required();
  pack_cmd->add_option("--excludes,-x", pack.excludes,
                       "gitignore-style pattern to leave out (repeatable)");
  pack_cmd->add_option("--store", pack.store_url,
                       "Blob store URL (default: $RTENV_STORE, \"store\" in "
                       "$RTENV_HOME/config.json, or the local store)");
  pack_cmd->add_option("--max-package-size", pack.limits.max_package_size,
                       "Largest package allowed, e.g. 500M or 4G (default 2G)");
  pack_cmd->add_option("--threads", pack.threads,
                       "Hashing and upload threads (default: one per core)");
  pack_cmd->add_flag("--no-index", pack.no_index, "Read every file, ignoring the file index");
  pack_cmd->add_flag("--json", pack.json, "Print one JSON object (for scripts)");
  add_verbosity(pack_cmd, &quiet, &pack.verbose, "Also say how long each phase took");

  LockArgs lock;
  auto* lock_cmd = app.add_subcommand(
      "lock",
      "Resolve the runtime_env's pip or uv requirements to exact pins (with hashes where the "
      "index gives them) and print them, one requirement per line. This is what `run` installs: "
      "the resolution is kept in $RTENV_HOME/locks, so the same list gets the same versions "
      "until --refresh, and a job carries its pins to every node.");
  lock_cmd->add_option("--runtime-env,-e", lock.runtime_env, "The runtime_env (JSON or file)")
      ->required();
  lock_cmd->add_flag("--refresh", lock.refresh,
                     "Ask the index again instead of reusing an earlier resolution");
  lock_cmd->add_flag("--json", lock.json, "Print the runtime_env with its packages locked");
  add_verbosity(lock_cmd, &quiet, &lock.verbose,
                "Say what was resolved, with what, and how long it took");

  std::string completion_shell;
  auto* completion_cmd = app.add_subcommand(
      "completion",
      "Print a shell completion script for rtenv's commands and flags: eval \"$(rtenv "
      "completion bash)\" in ~/.bashrc (zsh: the same with zsh, in ~/.zshrc)");
  completion_cmd->add_option("SHELL", completion_shell, "bash or zsh")->required();

  auto* schema_cmd =
      app.add_subcommand("schema",
                         "Print the runtime_env fields as a JSON Schema (for editors, and for Ray: "
                         "RAY_RUNTIME_ENV_PLUGIN_SCHEMAS, see docs/ray.md)");

  // `--` ends rtenv's own arguments: what follows is the command, passed on untouched.
  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::string> after_dashes;
  bool has_dashes = false;
  if (auto it = std::find(args.begin(), args.end(), "--"); it != args.end()) {
    has_dashes = true;
    after_dashes.assign(it + 1, args.end());
    args.erase(it, args.end());
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  AgentArgs agent_args;
  auto* agent_cmd = app.add_subcommand(
      "agent",
      "Serve this node's agent in the foreground (for service managers; clients start one on "
      "demand otherwise). It installs envs once, counts references by holder, releases dead "
      "holders, and evicts unused resources when the cache is over its limit. Socket: "
      "$RTENV_HOME/agent.sock (owner-only). Cache limits: $RTENV_HOME/config.json "
      "(cache_limit, cache_low, kind_limits), RTENV_CACHE_LIMIT, RTENV_CACHE_LOW. Prometheus "
      "metrics: --metrics-listen HOST:PORT (docs/metrics.md).");
  add_agent_options(agent_cmd, &agent_args);
  auto* agent_stop_cmd = agent_cmd->add_subcommand(
      "stop",
      "Stop this node's agent: it refuses new calls, lets running installs finish and exits "
      "(waits until it is gone, at most 60 s)");
  bool agent_stop_json = false;
  agent_stop_cmd->add_flag("--json", agent_stop_json, "Print one JSON object: stopped, pid");
  bool agent_status_json = false;
  auto* agent_status_cmd = agent_cmd->add_subcommand(
      "status",
      "Is this node's agent running: pid, version, socket, started on demand or by hand, and "
      "whether its configuration is this shell's (exit 1 if none runs)");
  agent_status_cmd->add_flag("--json", agent_status_json, "Print one JSON object");

  auto* config_cmd = app.add_subcommand("config", "rtenv's settings");
  config_cmd->require_subcommand(1);
  bool config_json = false;
  auto* config_show_cmd = config_cmd->add_subcommand(
      "show",
      "Every setting, its effective value and where it came from: the default, "
      "$RTENV_HOME/config.json, an RTENV_* variable or a flag (docs/config.md). The store token "
      "is masked.");
  config_show_cmd->add_flag("--json", config_json, "Print one JSON object");
  std::string config_store, config_max_package_size;
  config_show_cmd->add_option("--store", config_store,
                              "Show the configuration a command given this --store would use");
  config_show_cmd->add_option("--max-package-size", config_max_package_size,
                              "Show the configuration a command given this --max-package-size "
                              "would use");

  auto* env_cmd = app.add_subcommand("env", "Envs on this node (through the agent)");
  env_cmd->require_subcommand(1);
  EnvCreateArgs create;
  auto* create_cmd = env_cmd->add_subcommand(
      "create", "Make an env ready on this node without running anything (eager install)");
  create_cmd->add_option("--runtime-env,-e", create.runtime_env, "The runtime_env (JSON or file)")
      ->required();
  create_cmd->add_option("--job", create.job_id,
                         "Hold the env for this job until `rtenv env release --job` (default: "
                         "for this process only)");
  create_cmd
      ->add_option("--holder", create.holder,
                   "Hold the env for this engine handle (such as slurm:<job>.<step>) until "
                   "`rtenv env release --holder` (instead of --job)")
      ->excludes("--job");
  auto* json_flag = create_cmd->add_flag("--json", create.json, "Print one JSON object");
  auto* print_exports_flag = create_cmd->add_flag(
      "--print-exports", create.print_exports,
      "Print what the env changes in this process's environment as Slurm TaskProlog "
      "lines (export NAME=value, unset NAME), its working_dir copy as "
      "RTENV_WORKING_DIR (docs/slurm.md)");
  print_exports_flag->excludes(json_flag);
  bool agent_verbose = false;
  add_verbosity(create_cmd, &quiet, &agent_verbose,
                "Say what preparing the env did (what was solved or packed) and what was done to "
                "reach the agent");
  auto* no_install_flag = create_cmd->add_flag(
      "--no-install", create.no_install,
      "Only resolve: pack local paths into the store and lock pip/uv, then print "
      "the resolved env (for engines whose nodes install it later); no agent");
  print_exports_flag->excludes(no_install_flag);
  std::string release_job, release_holder;
  auto* release_cmd =
      env_cmd->add_subcommand("release", "Give a job's (or an engine handle's) references back");
  auto* release_job_opt = release_cmd->add_option("--job", release_job, "The job");
  auto* release_holder_opt = release_cmd->add_option(
      "--holder", release_holder,
      "The holder given to `env create --holder`; ending in '*', every holder with that prefix "
      "(slurm:<job>.* for all steps of a job)");
  release_job_opt->excludes(release_holder_opt);
  bool release_json = false;
  release_cmd->add_flag("--json", release_json,
                        "Print one JSON object: released (references), holders");
  bool list_json = false;
  auto* list_cmd = env_cmd->add_subcommand(
      "list", "Envs and resources on this node: state, holders, sizes, references, leases");
  list_cmd->add_flag("--json", list_json, "Print one JSON object (for scripts)");
  bool list_wide = false;
  list_cmd->add_flag("--wide,--no-trunc", list_wide, "Env ids, URIs and errors whole");
  std::string show_id;
  bool show_json = false;
  auto* show_cmd = env_cmd->add_subcommand(
      "show",
      "One env whole: its runtime_env (env_vars values hidden), holders, resources with sizes "
      "and paths, timings, and the agent's log of it");
  show_cmd->add_option("ID", show_id, "The env's id, or a prefix of it that names one env")
      ->required();
  show_cmd->add_flag("--json", show_json, "Print one JSON object");
  std::string logs_id;
  auto* logs_cmd = env_cmd->add_subcommand(
      "logs", "The agent's log of one env: what setting it up did, step by step, and how it ended");
  logs_cmd->add_option("ID", logs_id, "The env's id, or a prefix of it that names one env")
      ->required();

  bool gc_dry_run = false;
  auto* gc_cmd = app.add_subcommand(
      "gc",
      "Prune the installers' caches (uv's with `uv cache prune`; pip's and conda's package cache "
      "emptied unless an install runs), then, if the cache (they included) is over its limit, "
      "evict unused resources, least recently used first, down to the low watermark (never one "
      "in use); collect the node's own store");
  gc_cmd->add_flag("--dry-run", gc_dry_run,
                   "Only say what would be evicted, with sizes, and what the cache would be after");
  bool gc_json = false;
  gc_cmd->add_flag("--json", gc_json,
                   "Print one JSON object: evicted [{uri, bytes}], bytes_freed, cache_bytes_after, "
                   "tool_caches [{name, pruned, bytes_before, bytes_after, note}], store (when "
                   "the node's own was collected)");
  add_verbosity(gc_cmd, &quiet, &agent_verbose, "Say what was done to reach the agent");
  std::string gc_store_keep = "2h";
  gc_cmd->add_option("--store-keep", gc_store_keep,
                     "When the store is this node's own ($RTENV_HOME/store), gc also collects "
                     "its blobs nothing on the node needs; those written or used within this "
                     "long are kept (default 2h; 30m, 6h, 7d)");

  auto* store_cmd = app.add_subcommand("store", "The blob store");
  store_cmd->require_subcommand(1);
  StoreServeArgs serve;
  auto* serve_cmd = store_cmd->add_subcommand(
      "serve",
      "Serve a store directory over HTTP for nodes without S3 or a shared filesystem (clients: "
      "--store http://HOST:PORT or RTENV_STORE, token in RTENV_STORE_TOKEN). Uploads are "
      "verified against their digests. Prints 'listening on http://HOST:PORT' first on stdout; "
      "stops on SIGINT or SIGTERM.");
  serve_cmd->add_option("--root", serve.root, "Store directory (default: $RTENV_HOME/store)");
  serve_cmd->add_option("--listen", serve.listen,
                        "HOST:PORT to listen on (default 127.0.0.1:7878; port 0: any free one)");
  serve_cmd->add_option("--token-file", serve.token_file,
                        "File holding the bearer token callers must send (default: "
                        "$RTENV_STORE_TOKEN; neither: no token needed)");
  serve_cmd->add_option("--threads", serve.threads,
                        "Requests answered at once (default 64; a node fetching sends up to 16); "
                        "connections still sending a request wait on one thread, each for at "
                        "most 10 s, at most 64 per client address");
  serve_cmd->add_flag("--verbose,-v", serve.verbose, "Log one line per request to stderr");
  serve_cmd->add_option("--gc-every", serve.gc_every,
                        "Collect the store at start and then this often (e.g. 6h), as `rtenv "
                        "store gc` does; presence queries wait while it runs (default: never)");
  serve_cmd->add_option("--gc-older-than", serve.gc_older_than,
                        "With --gc-every: keep what was written or used within this long "
                        "(default 7d; 20m at least)");
  StoreGcArgs store_gc;
  auto* store_gc_cmd = store_cmd->add_subcommand(
      "gc",
      "Collect a store (a directory or file://, shared by nodes or not, or s3://): remove the "
      "blobs no record names (built envs, fetched URLs) and no one wrote or used within "
      "--older-than, keeping everything below a manifest kept. Packs into a directory store wait "
      "while it runs. rtenv's blob server collects its own store (store serve --gc-every).");
  store_gc_cmd->add_option("--store", store_gc.store_url,
                           "The store (default: the configured one, see rtenv config show)");
  store_gc_cmd
      ->add_option("--older-than", store_gc.older_than,
                   "Keep what was written or used within this long (e.g. 7d; at least 20m for "
                   "a directory, 2d for S3: twice how often a use marks a blob)")
      ->required();
  store_gc_cmd->add_flag("--dry-run", store_gc.dry_run, "Only say what would be collected");
  store_gc_cmd->add_flag(
      "--json", store_gc.json,
      "Print one JSON object: store, dry_run, blobs, bytes, collected [{digest, bytes}], "
      "bytes_collected");
  add_verbosity(store_gc_cmd, &quiet, nullptr, nullptr);

  // `rtenv help [COMMAND...]` is `rtenv [COMMAND...] --help` (args are reversed: the first word
  // is last).
  if (!args.empty() && args.back() == "help") {
    args.pop_back();
    args.insert(args.begin(), "--help");
  }
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    if (auto hint = unknown_command_hint(app, argc, argv)) return fail(kExitUsage, *hint);
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  set_quiet(quiet);
  // One configuration for the whole command, flags included; one that cannot be read fails
  // every command at once.
  rtenv::config::Flags flags;
  if (run_cmd->parsed()) {
    if (!run.store_url.empty()) flags.store = run.store_url;
    if (!run.limits.max_package_size.empty()) flags.max_package_size = run.limits.max_package_size;
  } else if (pack_cmd->parsed()) {
    if (!pack.store_url.empty()) flags.store = pack.store_url;
    if (!pack.limits.max_package_size.empty()) {
      flags.max_package_size = pack.limits.max_package_size;
    }
  } else if (agent_cmd->parsed()) {
    if (!agent_args.metrics_listen.empty()) flags.metrics_listen = agent_args.metrics_listen;
  } else if (config_show_cmd->parsed()) {
    if (!config_store.empty()) flags.store = config_store;
    if (!config_max_package_size.empty()) flags.max_package_size = config_max_package_size;
  }
  auto config = rtenv::config::Config::from_environment(flags);
  if (!config) return fail(kExitUsage, config.error().message());
  set_config(std::make_shared<const rtenv::config::Config>(std::move(config).value()));
  if (config_show_cmd->parsed()) return config_show_command(config_json);
  if (run_cmd->parsed()) {
    run.command = run_cmd->remaining();
    if (has_dashes) {
      if (!run.command.empty()) {
        return fail(kExitUsage, "run: unexpected argument '" + run.command.front() +
                                    "' before -- (options go before --, the command after it)");
      }
      run.command = after_dashes;
    } else if (!run.command.empty() && run.command.front().size() > 1 &&
               run.command.front().front() == '-') {
      // Without --, an unknown option would otherwise be taken for the command's name.
      return fail(kExitUsage, "run: unknown option '" + run.command.front() +
                                  "' (see rtenv run --help; put the command after --)");
    }
    // An empty command is checked once the env is read: an image's Cmd may stand for it.
    return run_command(run);
  }
  if (schema_cmd->parsed()) {
    std::printf("%s\n", rtenv::spec::runtime_env_schema().dump(2).c_str());
    return 0;
  }
  if (completion_cmd->parsed()) return completion_command(app, completion_shell);
  if (store_gc_cmd->parsed()) {
    return store_gc_command(store_gc);
  }
  if (pack_cmd->parsed()) return pack_command(pack);
  if (lock_cmd->parsed()) return lock_command(lock);
  if (create_cmd->parsed() && create.no_install) {
    create.verbose = agent_verbose;
    return env_resolve_command(create);
  }
#ifdef RTENV_FRONT
  (void)agent_stop_cmd;
  (void)agent_status_cmd;
  if (agent_cmd->parsed() || create_cmd->parsed() || release_cmd->parsed() || list_cmd->parsed() ||
      show_cmd->parsed() || logs_cmd->parsed() || gc_cmd->parsed() || serve_cmd->parsed()) {
    return exec_full();
  }
#else
  set_agent_verbose(agent_verbose);
  if (agent_stop_cmd->parsed()) return agent_stop_command(agent_stop_json);
  if (agent_status_cmd->parsed()) return agent_status_command(agent_status_json);
  if (agent_cmd->parsed()) {
    // The lean agent binary beside this one, if installed, serves with less memory.
    std::string lean =
        (std::filesystem::path(rtenv::env::self_executable()).parent_path() / "rtenv-agent")
            .string();
    if (::access(lean.c_str(), X_OK) == 0) {
      std::vector<std::string> argv_lean = {lean};
      for (int i = 2; i < argc; ++i) argv_lean.emplace_back(argv[i]);
      std::vector<char*> raw;
      for (auto& a : argv_lean) raw.push_back(a.data());
      raw.push_back(nullptr);
      ::execv(lean.c_str(), raw.data());  // returns only on failure: serve here instead
    }
    return agent_command(agent_args);
  }
  if (create_cmd->parsed()) {
    create.verbose = agent_verbose;
    return env_create_command(create);
  }
  if (release_cmd->parsed()) return env_release_command(release_job, release_holder, release_json);
  if (list_cmd->parsed()) return env_list_command(list_json, list_wide);
  if (show_cmd->parsed()) return env_show_command(show_id, show_json);
  if (logs_cmd->parsed()) return env_logs_command(logs_id);
  if (gc_cmd->parsed()) return gc_command(gc_dry_run, gc_json, gc_store_keep);
  if (serve_cmd->parsed()) return store_serve_command(serve);
#endif
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  // An image's wrapper (env/image_exec.h): before anything else, as it becomes the command.
  if (argc > 1 && std::string_view(argv[1]) == "image-exec") {
    return rtenv::env::image_exec_main(argc, argv);
  }
#ifndef RTENV_FRONT
  rtenv::env::enable_image_layers();
#endif
  // A helper that exits before reading what it is sent (a resolver's stdin) must give EPIPE,
  // not end rtenv.
  std::signal(SIGPIPE, SIG_IGN);
  // ^C while a resolver runs ends it too, and says what was interrupted.
  rtenv::install_interrupt_handlers("rtenv");
  try {
    return real_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rtenv: internal error: %s\n", e.what());
    return 70;
  }
}
