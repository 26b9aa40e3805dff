// The commands that talk to the node agent: env create/release/list, gc, agent stop/status.

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "agent.pb.h"
#include "agent/client.h"
#include "cli/commands.h"
#include "cli/store_gc_command.h"
#include "env/agent_process.h"
#include "env/remote_fetch.h"
#include "util/fs.h"
#include "util/interrupt.h"
#include "util/size.h"

extern char** environ;

namespace rtenv::cli {
namespace {

std::string age(int64_t ms) {
  if (ms <= 0) return "-";
  int64_t s = (std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count() -
               ms) /
              1000;
  if (s < 120) return fmt::format("{}s ago", s);
  if (s < 7200) return fmt::format("{}m ago", s / 60);
  return fmt::format("{}h ago", s / 3600);
}

bool g_agent_verbose = false;

Result<std::unique_ptr<agent::AgentClient>> connect(env::Home* home_out, bool start = true,
                                                    bool any_config = false) {
  RTENV_ASSIGN_OR_RETURN(env::Home home, open_home());
  *home_out = home;
  agent::ConnectOptions options;
  options.start = start;
  options.any_config = any_config;
  if (!start) options.warn = [](const std::string&) {};  // stopping it anyway
  if (g_agent_verbose) {
    options.note = [](const std::string& line) {
      std::fprintf(stderr, "rtenv: %s\n", line.c_str());
    };
  }
  return agent::AgentClient::connect(home, options);
}

}  // namespace

int env_create_command(const EnvCreateArgs& args) {
  if (args.no_install) return env_resolve_command(args);
  LoadedEnv loaded;
  if (int rc = load_env_for_create(args, &loaded)) return rc;
  say_warnings(loaded.env);
  env::Home home;
  auto client = connect(&home);
  if (!client) return fail(kExitSetup, "setup failed: " + client.error().message());
  auto store = open_any_store(home.store_url());
  if (!store)
    return fail(kExitSetup, "setup failed: opening the store: " + store.error().message());
  env::UploadOptions upload;
  upload.report = setup_reporter(args.verbose);
  ProgressLine line;
  show_setup_progress(&upload, &line);
  env::add_remote_sources(home, &upload);
  auto resolved = env::upload_local(loaded.env, home, **store, *loaded.registry, upload);
  line.clear();
  if (!resolved) return fail(kExitSetup, "setup failed: " + resolved.error().message());
  std::string holder = !args.holder.empty()  ? args.holder
                       : args.job_id.empty() ? agent::process_holder(::getpid())
                                             : "job:" + args.job_id;
  // An engine's holder also names the agent's log of the env (logs/job-<holder>.log).
  const std::string& log_as = args.holder.empty() ? args.job_id : args.holder;
  InterruptActivity waiting(
      "the agent makes the env ready",
      holder.starts_with("pid:")
          ? "the agent finishes it, so the next run finds it ready"
          : "the agent finishes it and keeps it for " + holder +
                " until `rtenv env release` gives that holder's references back");
  auto r = (*client)->get_or_create(resolved->canonical(), log_as, holder,
                                    [&](const std::string& m) { line.show_timed("rtenv: " + m); });
  line.clear();
  if (!r) return fail(kExitSetup, "setup failed: " + r.error().message());
  if (args.print_exports) {
    std::map<std::string, std::string> caller;
    for (char** e = environ; *e; ++e) {
      std::string_view kv(*e);
      auto eq = kv.find('=');
      if (eq != std::string_view::npos) caller.emplace(kv.substr(0, eq), kv.substr(eq + 1));
    }
    auto lines = env::task_prolog_lines(r->plan, caller);
    if (!lines) {
      // The reference was taken: give it back, since no task will run in the env.
      (void)(*client)->release_holder(holder);
      return fail(kExitSetup, "setup failed: " + lines.error().message());
    }
    for (const auto& l : *lines) std::printf("%s\n", l.c_str());
    return 0;
  }
  if (args.json) {
    nlohmann::json j = {{"env_id", r->env_id},
                        {"installed", r->installed},
                        {"runtime_env", nlohmann::json::parse(resolved->canonical())},
                        {"resources", r->resource_uris},
                        {"holder", holder},
                        {"plan", r->plan.to_json()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("env %s ready (%s); held by %s\n", r->env_id.c_str(),
                r->installed ? "installed now" : "already on this node", holder.c_str());
  }
  return 0;
}

int env_release_command(const std::string& job_id, const std::string& holder, bool json) {
  if (job_id.empty() == holder.empty()) {
    return fail(kExitUsage, "env release: give --job JOB or --holder HOLDER");
  }
  env::Home home;
  auto client = connect(&home, /*start=*/true, /*any_config=*/true);
  if (!client) return fail(kExitSetup, client.error().message());
  // `slurm:12.*`: every holder with the prefix, as the agent lists them now.
  std::vector<std::string> holders{holder.empty() ? "job:" + job_id : holder};
  if (holder.ends_with('*')) {
    std::string prefix = holder.substr(0, holder.size() - 1);
    auto info = (*client)->info();
    if (!info) return fail(kExitSetup, info.error().message());
    holders.clear();
    for (const auto& e : info->envs()) {
      for (const auto& h : e.holders()) {
        if (h.starts_with(prefix) &&
            std::find(holders.begin(), holders.end(), h) == holders.end()) {
          holders.push_back(h);
        }
      }
    }
  }
  uint32_t released = 0;
  for (const auto& h : holders) {
    auto n = (*client)->release_holder(h);
    if (!n) return fail(kExitSetup, n.error().message());
    released += *n;
  }
  if (json) {
    std::printf("%s\n",
                nlohmann::json({{"released", released}, {"holders", holders}}).dump().c_str());
  } else if (!quiet()) {
    std::printf("released %s of %s\n", count_of(released, "reference", "references").c_str(),
                holder.empty() ? ("job " + job_id).c_str() : holder.c_str());
  }
  return 0;
}

namespace {

// The top-level keys of an env's summary (what it contains), in the summary's order.
std::vector<std::string> fields_of(const std::string& summary) {
  std::vector<std::string> out;
  auto j = nlohmann::json::parse(summary, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    for (const auto& [k, _] : j.items()) out.push_back(k);
  }
  return out;
}

nlohmann::json env_json(const rtenv::agent::v1::EnvInfo& e) {
  nlohmann::json timings = nlohmann::json::array();
  for (const auto& t : e.timings()) timings.push_back({{"phase", t.phase()}, {"ms", t.ms()}});
  auto summary = nlohmann::json::parse(e.summary(), nullptr, /*allow_exceptions=*/false);
  return {
      {"env_id", e.env_id()},
      {"state", e.state()},
      {"error", e.error_message()},
      {"job_id", e.job_id()},
      {"fields", fields_of(e.summary())},
      {"runtime_env", summary.is_discarded() ? nlohmann::json() : summary},
      {"holders", std::vector<std::string>(e.holders().begin(), e.holders().end())},
      {"resources", std::vector<std::string>(e.resource_uris().begin(), e.resource_uris().end())},
      {"created_ms", e.created_ms()},
      {"last_used_ms", e.last_used_ms()},
      {"timings", timings}};
}

nlohmann::json resource_json(const rtenv::agent::v1::ResourceInfo& r) {
  return {{"uri", r.uri()},
          {"kind", r.kind()},
          {"path", r.path()},
          {"size_bytes", r.size_bytes()},
          {"env_references", r.env_references()},
          {"process_leases", r.process_leases()},
          {"created_ms", r.created_ms()},
          {"last_used_ms", r.last_used_ms()}};
}

std::string fit(const std::string& text, size_t width, bool wide) {
  if (wide || text.size() <= width) return text;
  return text.substr(0, width - 1) + "…";
}

}  // namespace

int env_list_command(bool json, bool wide) {
  env::Home home;
  auto client = connect(&home, /*start=*/true, /*any_config=*/true);
  if (!client) return fail(kExitSetup, client.error().message());
  auto info = (*client)->info();
  if (!info) return fail(kExitSetup, info.error().message());
  if (json) {
    nlohmann::json envs = nlohmann::json::array(), resources = nlohmann::json::array();
    for (const auto& e : info->envs()) envs.push_back(env_json(e));
    for (const auto& r : info->resources()) resources.push_back(resource_json(r));
    nlohmann::json j = {{"envs", envs},
                        {"resources", resources},
                        {"cache_bytes", info->cache_bytes()},
                        {"high_watermark_bytes", info->high_watermark_bytes()},
                        {"low_watermark_bytes", info->low_watermark_bytes()}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  size_t id_width = wide ? 64 : 12;
  std::printf("%-*s %-9s %-8s %-10s %-9s %s\n", static_cast<int>(id_width), "ENV", "STATE",
              "HOLDERS", "LAST USED", "RESOURCES", "FIELDS");
  for (const auto& e : info->envs()) {
    std::string fields = fmt::format("{}", fmt::join(fields_of(e.summary()), ","));
    std::printf("%-*s %-9s %-8d %-10s %-9d %s%s\n", static_cast<int>(id_width),
                e.env_id().substr(0, id_width).c_str(), e.state().c_str(), e.holders_size(),
                age(e.last_used_ms()).c_str(), e.resource_uris_size(),
                fields.empty() ? "-" : fields.c_str(),
                e.error_message().empty() ? "" : ("  " + fit(e.error_message(), 60, wide)).c_str());
  }
  size_t uri_width = wide ? 0 : 30;
  std::string uri_header = wide ? "RESOURCE" : fmt::format("{:<30}", "RESOURCE");
  std::printf("\n%s %-12s %10s %8s %7s %s\n", uri_header.c_str(), "KIND", "SIZE", "ENV REFS",
              "LEASES", "LAST USED");
  for (const auto& r : info->resources()) {
    std::string uri =
        wide ? r.uri() : fmt::format("{:<{}}", fit(r.uri(), uri_width, false), uri_width);
    std::printf("%s %-12s %10s %8u %7u %s\n", uri.c_str(), r.kind().c_str(),
                pack::format_bytes(r.size_bytes()).c_str(), r.env_references(), r.process_leases(),
                age(r.last_used_ms()).c_str());
  }
  std::printf("\ncache: %s of %s (evicts down to %s)\n",
              pack::format_bytes(info->cache_bytes()).c_str(),
              pack::format_bytes(info->high_watermark_bytes()).c_str(),
              pack::format_bytes(info->low_watermark_bytes()).c_str());
  return 0;
}

namespace {

// The agent's listing and the one env in it whose id starts with `id` (filled in place: `env`
// points into `info`).
struct OneEnv {
  env::Home home;
  rtenv::agent::v1::GetRuntimeEnvsInfoReply info;
  const rtenv::agent::v1::EnvInfo* env = nullptr;
};

// 0, with `out` filled; else the exit status, said.
int look_up_env(const std::string& id, OneEnv* out) {
  auto client = connect(&out->home, /*start=*/true, /*any_config=*/true);
  if (!client) return fail(kExitSetup, client.error().message());
  auto info = (*client)->info();
  if (!info) return fail(kExitSetup, info.error().message());
  out->info = std::move(info).value();
  std::vector<const rtenv::agent::v1::EnvInfo*> found;
  for (const auto& e : out->info.envs()) {
    if (!id.empty() && e.env_id().starts_with(id)) found.push_back(&e);
  }
  if (found.empty()) {
    return fail(kExitUsage,
                fmt::format("no env {} on this node (`rtenv env list` shows them)", id));
  }
  if (found.size() > 1) {
    return fail(kExitUsage,
                fmt::format("{} envs start with {}: give more of the id", found.size(), id));
  }
  out->env = found.front();
  return 0;
}

}  // namespace

int env_logs_command(const std::string& id) {
  OneEnv found;
  if (int rc = look_up_env(id, &found)) return rc;
  const auto& e = *found.env;
  std::filesystem::path log = agent::log_file(found.home, e.job_id());
  auto text = read_file(log);
  if (!text && text.error().code() != ErrorCode::kNotFound)
    return fail(kExitSetup, text.error().message());
  // The agent's log of a job (or of every env without one) names each line's env.
  const std::string mark = " env " + e.env_id().substr(0, 12) + " ";
  size_t shown = 0;
  for (std::string_view rest = text ? std::string_view(*text) : std::string_view();
       !rest.empty();) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (line.find(mark) == std::string_view::npos) continue;
    std::printf("%.*s\n", static_cast<int>(line.size()), line.data());
    ++shown;
  }
  if (shown == 0 && !quiet()) {
    std::fprintf(stderr, "rtenv: %s has no lines of env %s\n", log.c_str(),
                 e.env_id().substr(0, 12).c_str());
  }
  return 0;
}

int env_show_command(const std::string& id, bool json) {
  OneEnv found;
  if (int rc = look_up_env(id, &found)) return rc;
  const auto& e = *found.env;
  std::map<std::string, const rtenv::agent::v1::ResourceInfo*> by_uri;
  for (const auto& r : found.info.resources()) by_uri[r.uri()] = &r;
  std::filesystem::path log = agent::log_file(found.home, e.job_id());
  if (json) {
    nlohmann::json j = env_json(e);
    nlohmann::json resources = nlohmann::json::array();
    for (const auto& uri : e.resource_uris()) {
      auto it = by_uri.find(uri);
      resources.push_back(it == by_uri.end() ? nlohmann::json{{"uri", uri}}
                                             : resource_json(*it->second));
    }
    j["resources"] = resources;
    j["log"] = log.string();
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("env:        %s\n", e.env_id().c_str());
  std::printf("state:      %s%s\n", e.state().c_str(),
              e.error_message().empty() ? "" : (": " + e.error_message()).c_str());
  auto summary = nlohmann::json::parse(e.summary(), nullptr, /*allow_exceptions=*/false);
  std::printf("fields:     %s\n",
              fmt::format("{}", fmt::join(fields_of(e.summary()), ", ")).c_str());
  if (!summary.is_discarded()) {
    std::string text = summary.dump(2);
    for (auto pos = text.find('\n'); pos != std::string::npos; pos = text.find('\n', pos + 1)) {
      text.insert(pos + 1, "  ");
      pos += 2;
    }
    std::printf("runtime_env (env_vars values hidden):\n  %s\n", text.c_str());
  }
  std::printf("holders:    %s\n", e.holders().empty()
                                      ? "none"
                                      : fmt::format("{}", fmt::join(e.holders(), ", ")).c_str());
  std::printf("created:    %s; last used %s\n", age(e.created_ms()).c_str(),
              age(e.last_used_ms()).c_str());
  std::printf("resources:\n");
  for (const auto& uri : e.resource_uris()) {
    auto it = by_uri.find(uri);
    if (it == by_uri.end()) {
      std::printf("  %s (not on this node now)\n", uri.c_str());
      continue;
    }
    const auto& r = *it->second;
    std::printf("  %s (%s, %s)\n    %s\n", uri.c_str(), r.kind().c_str(),
                pack::format_bytes(r.size_bytes()).c_str(), r.path().c_str());
  }
  if (e.timings_size() > 0) {
    std::printf("timings:\n");
    for (const auto& t : e.timings()) std::printf("  %8.1f ms  %s\n", t.ms(), t.phase().c_str());
  }
  std::printf("log:        %s\n", log.c_str());
  return 0;
}

int gc_command(bool dry_run, bool json, const std::string& store_keep) {
  auto keep_ms = parse_duration_ms(store_keep);
  if (!keep_ms) return fail(kExitUsage, "gc: --store-keep: " + keep_ms.error().message());
  env::Home home;
  auto client = connect(&home);
  if (!client) return fail(kExitSetup, client.error().message());
  auto r = (*client)->gc(dry_run);
  if (!r) return fail(kExitSetup, r.error().message());
  // This node's own store: blobs nothing on the node needs any more (a shared store is never
  // collected by a node: `rtenv store gc` is its administrator's).
  std::optional<pack::StoreCollection> collected;
  if (home.config().store_is_home_default()) {
    auto info = (*client)->info();
    if (!info) return fail(kExitSetup, info.error().message());
    std::vector<std::string> texts;
    for (const auto& e : info->envs()) texts.push_back(e.summary());
    for (const auto& res : info->resources()) texts.push_back(res.uri());
    auto c = collect_home_store(home, texts, *keep_ms, dry_run);
    if (!c) return fail(kExitSetup, "gc: collecting the store: " + c.error().message());
    collected = std::move(c).value();
  }
  // An older agent sends no sizes.
  auto size_of = [&](int i) -> std::optional<uint64_t> {
    if (i < r->evicted_bytes_size()) return r->evicted_bytes(i);
    return std::nullopt;
  };
  if (json) {
    nlohmann::json evicted = nlohmann::json::array();
    for (int i = 0; i < r->evicted_size(); ++i) {
      nlohmann::json e = {{"uri", r->evicted(i)}};
      if (auto b = size_of(i)) e["bytes"] = *b;
      evicted.push_back(std::move(e));
    }
    nlohmann::json j = {{"dry_run", dry_run},
                        {"evicted", std::move(evicted)},
                        {"bytes_freed", r->bytes_freed()},
                        {"cache_bytes_after", r->cache_bytes()}};
    if (collected) j["store"] = collection_json(*collected);
    nlohmann::json tools = nlohmann::json::array();
    for (const auto& t : r->tool_caches()) {
      nlohmann::json one = {{"name", t.name()},
                            {"pruned", t.pruned()},
                            {"bytes_before", t.bytes_before()},
                            {"bytes_after", t.bytes_after()}};
      if (!t.note().empty()) one["note"] = t.note();
      tools.push_back(std::move(one));
    }
    j["tool_caches"] = std::move(tools);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  if (quiet()) return 0;
  for (int i = 0; i < r->evicted_size(); ++i) {
    auto b = size_of(i);
    // The URI last, so `awk '{print $NF}'` lists them.
    std::printf("%s %s%s\n", dry_run ? "would evict" : "evicted",
                b ? fmt::format("{}: ", pack::format_bytes(*b)).c_str() : "",
                r->evicted(i).c_str());
  }
  std::printf("%s %s; cache %s %s\n", dry_run ? "would free" : "freed",
              pack::format_bytes(r->bytes_freed()).c_str(), dry_run ? "after:" : "now",
              pack::format_bytes(r->cache_bytes()).c_str());
  if (collected) {
    std::printf("store: %s; store %s %s\n", collection_summary(*collected, dry_run).c_str(),
                dry_run ? "after:" : "now",
                pack::format_bytes(collected->bytes - collected->bytes_collected).c_str());
  }
  for (const auto& t : r->tool_caches()) {
    if (t.bytes_before() == 0) continue;
    std::string what =
        t.pruned() ? fmt::format("pruned {}; now {}",
                                 pack::format_bytes(t.bytes_before() -
                                                    std::min(t.bytes_before(), t.bytes_after())),
                                 pack::format_bytes(t.bytes_after()))
                   : pack::format_bytes(t.bytes_before());
    if (!t.note().empty()) what += " (left alone: " + t.note() + ")";
    std::printf("%s cache: %s\n", t.name() == "conda" ? "conda package" : t.name().c_str(),
                what.c_str());
  }
  return 0;
}

void set_agent_verbose(bool verbose) { g_agent_verbose = verbose; }

int agent_stop_command(bool json) {
  env::Home home;
  auto client = connect(&home, /*start=*/false);
  if (!client) {
    if (client.error().code() == ErrorCode::kUnavailable && !env::agent_process_running(home)) {
      if (json) {
        std::printf("%s\n",
                    nlohmann::json({{"stopped", false}, {"running", false}}).dump().c_str());
      } else {
        std::printf("no rtenv agent is running for %s\n", home.root.c_str());
      }
      return 0;
    }
    return fail(kExitSetup, client.error().message());
  }
  auto pid = (*client)->shutdown();
  if (!pid) return fail(kExitSetup, pid.error().message());
  client->reset();
  // It lets running installs finish first: wait for that, within reason.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (env::process_alive(static_cast<pid_t>(*pid))) {
    if (std::chrono::steady_clock::now() > deadline) {
      return fail(kExitSetup, fmt::format("the rtenv agent (pid {}) is still finishing its "
                                          "installs after 60 s; it exits when they are done",
                                          *pid));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (json) {
    std::printf("%s\n", nlohmann::json({{"stopped", true}, {"pid", *pid}}).dump().c_str());
  } else {
    std::printf("stopped the rtenv agent (pid %lld)\n", static_cast<long long>(*pid));
  }
  return 0;
}

int agent_status_command(bool json) {
  env::Home home;
  agent::ConnectOptions options;
  options.start = false;
  options.warn = [](const std::string&) {};  // said below
  auto home_r = open_home();
  if (!home_r) return fail(kExitSetup, home_r.error().message());
  home = *home_r;
  std::string socket = (home.root / "agent.sock").string();
  auto client = agent::AgentClient::connect(home, options);
  if (!client) {
    if (json) {
      std::printf("%s\n", nlohmann::json({{"running", false}, {"socket", socket}}).dump().c_str());
    } else {
      std::printf("no rtenv agent is running for %s\n", home.root.c_str());
    }
    return 1;
  }
  auto status = (*client)->status();
  if (!status) return fail(kExitSetup, status.error().message());
  bool matches = status->config_fingerprint == home.config().fingerprint();
  std::vector<std::string> differing =
      matches ? std::vector<std::string>{} : agent::AgentClient::differing_keys(*status, home);
  if (json) {
    nlohmann::json j = {{"running", true},
                        {"pid", status->pid},
                        {"version", status->version},
                        {"socket", socket},
                        {"on_demand", status->on_demand},
                        {"config_matches", matches},
                        {"config_fingerprint", status->config_fingerprint},
                        {"differing_keys", differing}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("pid:       %lld\n", static_cast<long long>(status->pid));
  std::printf("version:   %s\n", status->version.c_str());
  std::printf("socket:    %s\n", socket.c_str());
  std::printf("started:   %s\n", status->on_demand ? "on demand (exits when idle)"
                                                   : "by hand or a service (no idle exit)");
  if (matches) {
    std::printf("config:    the same as this shell's\n");
  } else {
    std::printf("config:    differs from this shell's in: %s (`rtenv agent stop` to restart it)\n",
                fmt::format("{}", fmt::join(differing, ", ")).c_str());
  }
  return 0;
}

}  // namespace rtenv::cli
