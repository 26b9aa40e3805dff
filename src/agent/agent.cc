#include "agent/agent.h"

#include <unistd.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "env/records.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/redact.h"
#include "util/size.h"

namespace rtenv::agent {

using spec::RuntimeEnv;

namespace {

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

double seconds_since(std::chrono::steady_clock::time_point t) { return ms_since(t) / 1000.0; }

std::vector<std::string> kind_names(const env::NodeCache& cache) {
  std::vector<std::string> out;
  for (const auto& k : cache.kinds()) out.push_back(k->name());
  return out;
}

// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. With the
// pid it names one process for good: a reused pid has another start time.
std::optional<std::string> start_time(pid_t pid) {
  auto stat = read_file(fmt::format("/proc/{}/stat", pid));
  if (!stat) return std::nullopt;
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size()) return std::nullopt;
  // A zombie (Z) or dying (X) process has exited; only its parent's wait is missing.
  if (char state = (*stat)[paren + 2]; state == 'Z' || state == 'X') return std::nullopt;
  std::string_view rest(*stat);
  rest.remove_prefix(paren + 2);  // ") "
  for (int field = 3; field < 22; ++field) {
    size_t sp = rest.find(' ');
    if (sp == std::string_view::npos) return std::nullopt;
    rest.remove_prefix(sp + 1);
  }
  return std::string(rest.substr(0, rest.find(' ')));
}

// The env for listings and logs: env_vars values are secrets until proven otherwise.
// (and index URLs may carry credentials).
std::string redacted_summary(const RuntimeEnv& env) {
  spec::Json j = env.to_json();
  if (j.contains("env_vars")) {
    for (auto& [k, v] : j["env_vars"].items()) v = "<redacted>";
  }
  return redact_url_credentials(j.dump());
}

std::string timings_json(const std::vector<Timing>& timings) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& t : timings) j.push_back({t.phase, t.ms});
  return j.dump();
}

// A crash during the atomic write of a package's .state leaves the temp file beside it in pkgs/
// (".<digest>.state.tmp.<pid>.<counter>.<random>", see unique_name), where sweep_tmp does not
// look. Removes those of processes that are gone.
void sweep_state_temps(const fs::path& pkgs) {
  std::error_code ec;
  for (auto it = fs::directory_iterator(pkgs, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    size_t tmp = name.find(".tmp.");
    if (!name.starts_with('.') || tmp == std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atol(name.c_str() + tmp + 5));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) ::unlink(it->path().c_str());
  }
}

}  // namespace

std::string process_holder(pid_t pid) {
  return fmt::format("pid:{}:{}", pid, start_time(pid).value_or("0"));
}

bool holder_is_dead(const std::string& holder) {
  if (!holder.starts_with("pid:")) return false;
  size_t colon = holder.find(':', 4);
  pid_t pid = static_cast<pid_t>(std::atol(holder.substr(4, colon - 4).c_str()));
  if (pid <= 0) return true;
  auto now = start_time(pid);
  if (!now) return true;
  return colon != std::string::npos && holder.substr(colon + 1) != *now;
}

AgentOptions::AgentOptions(const config::Config& config)
    : cache_high_bytes(config.cache_limit()),
      cache_low_bytes(config.cache_low()),
      kind_high_bytes(config.kind_limits()),
      failure_ttl_ms(static_cast<int64_t>(config.failure_ttl_seconds() * 1000)) {}

Agent::Agent(env::Home home, std::unique_ptr<store::BlobStore> store, AgentOptions options,
             std::shared_ptr<const env::Registry> registry, std::unique_ptr<StateDb> db)
    : home_(std::move(home)),
      store_(std::move(store)),
      options_(std::move(options)),
      registry_(std::move(registry)),
      cache_(home_, *store_, registry_->plugins()),
      metrics_(kind_names(cache_)),
      db_(std::move(db)),
      free_slots_(std::max(1u, options_.max_parallel_installs)),
      last_activity_ms_(wall_ms()) {
  metrics_.registry.on_render([this] { refresh_gauges(); });
}

Result<std::unique_ptr<Agent>> Agent::open(env::Home home, std::unique_ptr<store::BlobStore> store,
                                           AgentOptions options,
                                           std::shared_ptr<const env::Registry> registry) {
  RTENV_ASSIGN_OR_RETURN(auto db, StateDb::open(home.root / "agent.db"));
  std::unique_ptr<Agent> agent(
      new Agent(home, std::move(store), options, std::move(registry), std::move(db)));
  // What a crash left: half-built trees in tmp/ (never published), envs marked creating. Only
  // if no agent serves this home (serve() holds agent.lock): a second agent that is about to
  // find it taken must not mark the envs the serving one is installing as interrupted.
  RTENV_ASSIGN_OR_RETURN(FileLock serving, FileLock::try_acquire(home.root / "agent.lock",
                                                                 FileLock::Mode::kExclusive));
  if (serving.held()) {
    env::sweep_tmp(home.tmp());
    sweep_state_temps(home.pkgs());
    RTENV_TRY(agent->db_->fail_interrupted(wall_ms()));
    RTENV_TRY(agent->adopt_unknown_resources());
  }
  serving.release();
  agent->reaper_ = std::thread([a = agent.get()] { a->reap_loop(); });
  return agent;
}

Result<void> Agent::adopt_unknown_resources() {
  // Caller holds mu_ or is the only thread (open).
  RTENV_ASSIGN_OR_RETURN(auto known, db_->resources());
  std::set<std::string> known_uris;
  for (const auto& r : known) known_uris.insert(r.uri);
  for (const auto& [kind, uri] : cache_.list_ready()) {
    if (known_uris.contains(uri)) continue;
    std::set<std::pair<uint64_t, uint64_t>> seen;
    RTENV_TRY(
        db_->adopt_resource(uri, kind, cache_.disk_bytes(uri, &seen), cache_.last_leased_ms(uri)));
  }
  return ok_result();
}

Agent::~Agent() {
  {
    std::lock_guard lock(reap_mu_);
    stopping_ = true;
  }
  reap_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
}

void Agent::note_activity() { last_activity_ms_ = wall_ms(); }

int64_t Agent::idle_ms() const {
  if (busy_.load() > 0) return 0;
  return wall_ms() - last_activity_ms_.load();
}

std::filesystem::path log_file(const env::Home& home, const std::string& job_id) {
  std::string name = job_id.empty() ? "agent" : "job-" + job_id;
  for (auto& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  }
  return home.logs() / (name + ".log");
}

void Agent::log(const std::string& job_id, const std::string& line) {
  std::time_t t = std::time(nullptr);
  // gmtime_r: requests log from several threads at once, and gmtime's result is one static
  // buffer (ThreadSanitizer caught two installs formatting their stamps into it together).
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
  std::lock_guard lock(log_mu_);
  if (FILE* f = std::fopen(log_file(home_, job_id).c_str(), "a")) {
    std::fprintf(f, "%s %s\n", stamp, line.c_str());
    std::fclose(f);
  }
}

Result<CreateResult> Agent::get_or_create(const std::string& serialized_env,
                                          const std::string& serialized_config,
                                          const std::string& job_id, const std::string& holder,
                                          const Progress& progress) {
  note_activity();
  busy_++;
  struct Done {
    Agent* a;
    ~Done() {
      a->busy_--;
      a->note_activity();
    }
  } done{this};

  if (holder.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "a holder is required (\"pid:<pid>:<start>\", \"job:<id>\" or an engine handle)");
  }
  {
    std::lock_guard lock(mu_);
    if (auto id = ids_.find(serialized_env); id != ids_.end()) {
      if (auto r = ready_.find(id->second);
          r != ready_.end() && r->second.holders.contains(holder)) {
        metrics_.cache_hits.inc();
        return r->second.result;  // a retried call: the holder counts once
      }
    }
  }
  spec::ParseOptions po;
  po.level = spec::Level::kTask;  // the caller packed local paths already
  RTENV_ASSIGN_OR_RETURN(RuntimeEnv env, RuntimeEnv::from_json_text(serialized_env, po));
  spec::SetupConfig config = env.config();
  if (!serialized_config.empty()) {
    RTENV_ASSIGN_OR_RETURN(
        RuntimeEnv with_config,
        RuntimeEnv::from_json_text("{\"config\":" + serialized_config + "}", po));
    config = with_config.config();
  }
  std::string env_id = env.id().hex();

  std::shared_future<Result<CreateResult>> result;
  std::optional<std::promise<Result<CreateResult>>> leader;
  {
    std::lock_guard lock(mu_);
    if (auto f = failures_.find(env_id); f != failures_.end()) {
      if (wall_ms() - f->second.first < options_.failure_ttl_ms) {
        metrics_.failure_cache_hits.inc();
        return f->second.second;  // a crash-looping caller does not hammer the installer
      }
      failures_.erase(f);
    }
    // Pin before create: the reference exists before anything is installed.
    RTENV_TRY(db_->begin());
    auto r = db_->upsert_env(env_id, job_id, redacted_summary(env), wall_ms());
    auto added = r ? db_->add_ref(env_id, holder, wall_ms()) : Result<bool>(r.error());
    RTENV_TRY(db_->commit());
    if (!added) return added.error();
    if (auto it = inflight_.find(env_id); it != inflight_.end()) {
      result = it->second;
    } else {
      leader.emplace();
      result = leader->get_future().share();
      inflight_.emplace(env_id, result);
    }
  }
  if (leader) {
    // Whatever happens in there, the in-flight entry goes and its waiters get an answer: an
    // exception (a bug) must not leave the env "creating" for every later request.
    Result<CreateResult> r = Error(ErrorCode::kInternal, "setup did not finish");
    // What the callers are shown also goes to the env's log (`rtenv env logs`).
    const std::string short_id = env_id.substr(0, 12);
    Progress logged = [&](const std::string& line) {
      log(job_id, fmt::format("env {} {}", short_id, line));
      if (progress) progress(line);
    };
    InstallOutcome outcome;
    auto t0 = std::chrono::steady_clock::now();
    metrics_.setups_in_progress.add({}, 1);
    try {
      r = install(env, env_id, config, job_id, logged, &outcome);
    } catch (const std::exception& e) {
      r = make_error(ErrorCode::kInternal, "internal error while setting up env {}: {}",
                     env_id.substr(0, 12), printable_line(e.what()));
      outcome.failed_kind = AgentMetrics::kNoKind;
    }
    metrics_.setups_in_progress.add({}, -1);
    metrics_.setup_seconds.observe({"total"}, seconds_since(t0));
    if (!r) {
      metrics_.env_failures.inc({outcome.failed_kind});
    } else {
      for (const auto& kind : outcome.built_kinds) metrics_.envs_created.inc({kind});
    }
    {
      std::lock_guard lock(mu_);
      inflight_.erase(env_id);
      if (!r) failures_.insert_or_assign(env_id, std::make_pair(wall_ms(), r.error()));
    }
    leader->set_value(std::move(r));
  } else if (progress) {
    progress("waiting for another request that is setting up the same env");
  }
  Result<CreateResult> out = result.get();
  // A hit: nothing had to be installed for this request; a miss: someone installed for it, or
  // the setup failed.
  (out && !out->installed ? metrics_.cache_hits : metrics_.cache_misses).inc();
  if (out && !leader) out->installed = false;  // another request installed it
  std::lock_guard lock(mu_);
  if (!out) {
    (void)db_->remove_ref(env_id, holder);  // a failed env holds nothing
    return out;
  }
  if (ids_.size() > 100'000) ids_.clear();  // a bound, not an eviction policy: it only caches
  ids_[serialized_env] = env_id;
  auto& ready = ready_[env_id];
  ready.result = *out;
  ready.result.installed = false;
  ready.result.timings.clear();
  ready.holders.insert(holder);
  return out;
}

Result<CreateResult> Agent::install(const RuntimeEnv& env, const std::string& env_id,
                                    const spec::SetupConfig& config, const std::string& job_id,
                                    const Progress& progress, InstallOutcome* outcome) {
  auto queued = std::chrono::steady_clock::now();
  {
    std::unique_lock lock(slots_mu_);
    slots_cv_.wait(lock, [&] { return free_slots_ > 0; });
    --free_slots_;
  }
  struct Slot {
    Agent* a;
    ~Slot() {
      {
        std::lock_guard lock(a->slots_mu_);
        ++a->free_slots_;
      }
      a->slots_cv_.notify_one();
    }
  } slot{this};

  auto t0 = std::chrono::steady_clock::now();
  metrics_.setup_seconds.observe({"queue"}, seconds_since(queued));
  auto fail = [&](const Error& e) -> Result<CreateResult> {
    std::lock_guard lock(mu_);
    (void)db_->set_env_state(env_id, "failed", e.message(), "[]", wall_ms());
    log(job_id, fmt::format("env {} failed: {}", env_id.substr(0, 12), e.message()));
    return e;
  };
  auto left_ms = [&]() -> int64_t {
    if (config.setup_timeout_seconds <= 0) return -1;
    return std::max<int64_t>(1, config.setup_timeout_seconds * 1000 - int64_t(ms_since(t0)));
  };
  // A Python package list not resolved by the submitter (an engine passing the user's list
  // through) is resolved here, once for all callers of this env.
  env::LockOptions lock;
  lock.timeout_ms = left_ms();
  lock.progress = [&](const std::string& line) {
    if (progress) progress("resolving: " + line);
  };
  auto resolving = std::chrono::steady_clock::now();
  auto locked = env::lock_python(env, home_, lock);
  metrics_.setup_seconds.observe({"resolve"}, seconds_since(resolving));
  if (!locked) {
    outcome->failed_kind = "python";  // resolving Python package lists
    return fail(locked.error());
  }
  auto planned = env::plan(*locked, *registry_, cache_);
  if (!planned) return fail(planned.error());

  CreateResult out;
  out.env_id = env_id;
  std::set<std::string> sized;  // resources whose size is recorded
  {
    std::lock_guard lock(mu_);
    if (auto rows = db_->resources()) {
      for (const auto& row : *rows) {
        if (row.size_bytes > 0) sized.insert(row.uri);
      }
    }
    for (const auto& r : planned->resources) {
      RTENV_TRY(db_->link_resource(env_id, r.uri, r.kind->name(), wall_ms()));
      installing_.insert(r.uri);
    }
  }
  struct Unmark {
    Agent* a;
    const env::Plan& p;
    bool done = false;
    void now() {
      if (std::exchange(done, true)) return;
      std::lock_guard lock(a->mu_);
      for (const auto& r : p.resources) a->installing_.erase(a->installing_.find(r.uri));
    }
    ~Unmark() { now(); }
  } unmark{this, *planned};

  auto resources_start = std::chrono::steady_clock::now();
  for (const auto& r : planned->resources) {
    const std::string kind = r.kind->name();
    outcome->failed_kind = kind;
    if (config.setup_timeout_seconds > 0 && ms_since(t0) > config.setup_timeout_seconds * 1000.0) {
      return fail(make_error(ErrorCode::kTimeout,
                             "setup timed out after {} s (config.setup_timeout_seconds) before {}",
                             config.setup_timeout_seconds, r.field));
    }
    auto t = std::chrono::steady_clock::now();
    std::string what = fmt::format("{} {}", r.field, r.uri);
    // Packages are written from the store; every other kind runs an installer or a plugin.
    const bool materializes = kind == "package";
    const char* verb = materializes ? "materializing" : "installing";
    auto report = [&](const std::string& line) {
      if (progress) progress(fmt::format("{} {}: {}", verb, what, line));
    };
    auto built = cache_.ensure(r, report, left_ms());
    std::string result = !built ? "failed" : *built ? "installed" : "cached";
    metrics_.install_seconds.observe({kind, result}, seconds_since(t));
    if (!built) return fail(built.error().with_context(fmt::format("{} {}", verb, what)));
    out.installed |= *built;
    if (*built) outcome->built_kinds.insert(kind);
    // Also a resource found on the node unsized (made by a process without the agent, or by an
    // agent killed before it recorded the size).
    if (*built || !sized.contains(r.uri)) {
      std::set<std::pair<uint64_t, uint64_t>> seen;
      uint64_t bytes = cache_.disk_bytes(r.uri, &seen);
      std::lock_guard lock(mu_);
      RTENV_TRY(db_->set_resource_size(r.uri, bytes));
    }
    const char* done = !*built ? "cached " : materializes ? "materialize " : "install ";
    out.timings.push_back({done + what, ms_since(t)});
    out.resource_uris.push_back(r.uri);
  }
  metrics_.setup_seconds.observe({"resources"}, seconds_since(resources_start));
  outcome->failed_kind = AgentMetrics::kNoKind;
  auto launch = env::launch_plan(*locked, *registry_, cache_, *planned);
  if (!launch) return fail(launch.error());
  out.plan = std::move(launch).value();
  {
    std::lock_guard lock(mu_);
    RTENV_TRY(db_->set_env_state(env_id, "ready", "", timings_json(out.timings), wall_ms()));
    RTENV_TRY(db_->touch_env(env_id, wall_ms()));
  }
  log(job_id, fmt::format("env {} ready in {:.1f} ms ({}): {}", env_id.substr(0, 12), ms_since(t0),
                          out.installed ? "installed" : "all cached", redacted_summary(env)));
  unmark.now();        // installed: the collection below may prune what the install read from
  report_due_ = true;  // the store learns what this node uses now
  if (out.installed) {
    auto report = gc(false, /*in_background=*/true);
    if (report && !report->evicted.empty()) {
      log(job_id, fmt::format("gc evicted {} resource(s), freed {} bytes", report->evicted.size(),
                              report->bytes_freed));
    }
    for (const auto& t : report ? report->tool_caches : std::vector<env::ToolCache>{}) {
      if (t.pruned) {
        log(job_id, fmt::format("gc pruned the {} cache from {} to {} bytes", t.name,
                                t.bytes_before, t.bytes_after));
      }
    }
  }
  return out;
}

Result<bool> Agent::release(const std::string& serialized_env, const std::string& holder) {
  note_activity();
  spec::ParseOptions po;
  po.level = spec::Level::kTask;
  RTENV_ASSIGN_OR_RETURN(RuntimeEnv env, RuntimeEnv::from_json_text(serialized_env, po));
  std::string env_id = env.id().hex();
  std::lock_guard lock(mu_);
  forget_holder_locked(env_id, holder);
  (void)db_->touch_env(env_id, wall_ms());  // last used: when its holder let go
  return db_->remove_ref(env_id, holder);
}

void Agent::forget_holder_locked(const std::string& env_id, const std::string& holder) {
  for (auto r = env_id.empty() ? ready_.begin() : ready_.find(env_id); r != ready_.end();) {
    r->second.holders.erase(holder);
    auto next = std::next(r);
    if (r->second.holders.empty()) ready_.erase(r);
    if (!env_id.empty()) break;
    r = next;
  }
}

Result<std::string> Agent::prepare_field(const std::string& field,
                                         const std::string& serialized_env) {
  const env::Field* f = registry_->find(field);
  if (!f || !f->prepares_in_agent()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "the agent prepares only fields whose helpers it keeps warm, not '{}'",
                      printable_line(field));
  }
  spec::ParseOptions po;
  po.level = spec::Level::kTask;  // no local paths: those are the client's to pack
  RTENV_ASSIGN_OR_RETURN(RuntimeEnv env, RuntimeEnv::from_json_text(serialized_env, po));
  const spec::Json& j = env.to_json();
  if (!j.contains(field)) {
    return make_error(ErrorCode::kInvalidArgument, "the env has no '{}' to prepare", field);
  }
  env::UploadOptions options;
  env::PrepareContext ctx{home_, *store_, options, env};
  try {
    RTENV_ASSIGN_OR_RETURN(spec::Json value, f->prepare(j[field], ctx));
    return value.dump();
  } catch (const std::exception& e) {  // a bug is this request's error, not the agent's end
    return make_error(ErrorCode::kInternal, "internal error while preparing {}: {}", field,
                      printable_line(e.what()));
  }
}

Result<uint32_t> Agent::release_holder(const std::string& holder) {
  note_activity();
  std::lock_guard lock(mu_);
  forget_holder_locked("", holder);
  (void)db_->touch_holder_envs(holder, wall_ms());  // last used: when its holder let go
  return db_->remove_holder(holder);
}

void Agent::report_to_store() {
  // A node's own store is collected by `rtenv gc`, which asks the agent itself.
  if (home_.config().store_is_home_default()) return;
  env::NodeReportRecord report;
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown");
  report.node = host;
  report.home = home_.root.string();
  report.written_ms = wall_ms();
  {
    std::lock_guard lock(mu_);
    auto rows = db_->resources();
    if (!rows) return;
    for (const auto& row : *rows) {
      if (row.env_references > 0 || cache_.process_leases(row.uri) > 0) {
        report.in_use.push_back(row.uri);
      }
    }
  }
  auto put = store_->put_record(env::NodeReportRecord::name_for(report.node, report.home),
                                env::record_text(report));
  if (!put) {
    log("", "could not tell the store what this node uses (tried again later): " +
                put.error().message());
  }
}

void Agent::reap_loop() {
  std::unique_lock lock(reap_mu_);
  auto next_report = std::chrono::steady_clock::now();
  while (!stopping_) {
    reap_cv_.wait_for(lock, std::chrono::milliseconds(options_.reap_interval_ms));
    if (stopping_) break;
    auto now = std::chrono::steady_clock::now();
    if (report_due_.exchange(false) || now >= next_report) {
      next_report = now + std::chrono::milliseconds(options_.node_report_interval_ms);
      lock.unlock();
      report_to_store();
      lock.lock();
      if (stopping_) break;
    }
    std::vector<std::string> holders;
    {
      std::lock_guard db_lock(mu_);
      auto h = db_->holders_with_prefix("pid:");
      if (h) holders = std::move(h).value();
    }
    for (const auto& holder : holders) {
      if (!holder_is_dead(holder)) continue;
      std::lock_guard db_lock(mu_);
      forget_holder_locked("", holder);
      (void)db_->touch_holder_envs(holder, wall_ms());
      auto n = db_->remove_holder(holder);
      if (n && *n) log("", fmt::format("holder {} is gone: released {} reference(s)", holder, *n));
    }
  }
}

Result<Agent::Info> Agent::info() {
  note_activity();
  Info out;
  {
    std::lock_guard lock(mu_);
    RTENV_ASSIGN_OR_RETURN(out.envs, db_->envs());
    RTENV_ASSIGN_OR_RETURN(out.resources, db_->resources());
  }
  for (const auto& r : out.resources) {
    out.process_leases.push_back(static_cast<uint32_t>(cache_.process_leases(r.uri)));
    const env::ResourceKind* kind = cache_.kind_of(r.uri);
    out.paths.push_back(kind ? kind->dir_of(r.uri).string() : std::string());
    out.cache_bytes += r.size_bytes;
  }
  return out;
}

std::string Agent::metrics_text() { return metrics_.registry.render(); }

void Agent::refresh_gauges() {
  Result<StateCounts> counts = StateCounts{};
  {
    std::lock_guard lock(mu_);
    counts = db_->counts();
  }
  metrics_.cache_limit_bytes.set(static_cast<double>(options_.cache_high_bytes));
  metrics_.cache_low_bytes.set(static_cast<double>(options_.cache_low_bytes));
  metrics_.kind_limit_bytes.clear();
  for (const auto& [kind, bytes] : options_.kind_high_bytes) {
    metrics_.kind_limit_bytes.set({kind}, static_cast<double>(bytes));
  }
  if (!counts) return;  // the database failed: the gauges keep their last values
  metrics_.references.set(static_cast<double>(counts->references));
  metrics_.holders.set(static_cast<double>(counts->holders));
  metrics_.envs.clear();
  for (const char* state : {"creating", "ready", "failed"}) metrics_.envs.set({state}, 0);
  for (const auto& [state, n] : counts->envs_by_state) {
    metrics_.envs.set({state}, static_cast<double>(n));
  }
  // Every kind of the node, 0 when it has nothing (a series that vanishes reads as "no data").
  std::map<std::string, std::array<uint64_t, 3>> by_kind;  // bytes, resources, leases
  for (const auto& k : cache_.kinds()) by_kind[k->name()] = {0, 0, 0};
  for (const auto& r : counts->resources) {
    auto& totals = by_kind[r.kind];
    totals[0] += r.size_bytes;
    totals[1] += 1;
    totals[2] += cache_.process_leases(r.uri);
  }
  metrics_.cache_bytes.clear();
  metrics_.resources.clear();
  metrics_.process_leases.clear();
  for (const auto& [kind, totals] : by_kind) {
    metrics_.cache_bytes.set({kind}, static_cast<double>(totals[0]));
    metrics_.resources.set({kind}, static_cast<double>(totals[1]));
    metrics_.process_leases.set({kind}, static_cast<double>(totals[2]));
  }
}

Result<GcReport> Agent::gc(bool dry_run, bool in_background, bool prune_tool_caches) {
  note_activity();
  std::lock_guard gc_lock(gc_mu_);
  struct Candidate {
    ResourceRow row;
    uint64_t bytes = 0;
    int64_t last_used = 0;
    bool in_use = false;
  };
  std::vector<Candidate> all;
  {
    std::lock_guard lock(mu_);
    // Packages processes materialized without the agent (RTENV_NO_AGENT, another --store, a
    // run whose package was evicted between its check and its lease) count too.
    RTENV_TRY(adopt_unknown_resources());
    RTENV_ASSIGN_OR_RETURN(auto rows, db_->resources());
    for (auto& row : rows) {
      all.push_back({row, 0, 0, row.env_references > 0 || installing_.contains(row.uri)});
    }
  }
  // Sizes on disk, a hard-linked file counted once across the whole cache.
  std::set<std::pair<uint64_t, uint64_t>> seen;
  GcReport report;
  std::map<std::string, uint64_t> kind_bytes;
  for (auto& c : all) {
    c.bytes = cache_.disk_bytes(c.row.uri, &seen);
    c.last_used = std::max(c.row.last_used_ms, cache_.last_leased_ms(c.row.uri));
    report.cache_bytes += c.bytes;
    kind_bytes[c.row.kind] += c.bytes;
  }
  // The installers' caches count too (a file an env linked from them, once). They go first when
  // the cache is over its limit: they refill from the network, while an env is rebuilt from them.
  // Walking them (uv's may hold 100,000 files) is not charged to every install: the collection
  // after an install reuses a measure up to ten minutes old.
  const auto counted_elsewhere = seen;
  if (!in_background || wall_ms() - tool_caches_measured_ms_ > 10 * 60 * 1000) {
    tool_caches_ = env::measure_tool_caches(home_, &seen);
    tool_caches_measured_ms_ = wall_ms();
  }
  report.tool_caches = tool_caches_;
  for (const auto& t : report.tool_caches) report.cache_bytes += t.bytes_before;
  if (!dry_run && (prune_tool_caches || report.cache_bytes > options_.cache_high_bytes)) {
    bool installs_running;
    {
      std::lock_guard lock(mu_);
      installs_running = !installing_.empty();
    }
    env::prune_tool_caches(home_, installs_running, counted_elsewhere, &report.tool_caches);
    for (const auto& t : report.tool_caches) {
      report.cache_bytes -= t.bytes_before - std::min(t.bytes_before, t.bytes_after);
    }
    tool_caches_ = report.tool_caches;
    for (auto& t : tool_caches_) t.bytes_before = t.bytes_after;  // what they hold now
  }
  std::sort(all.begin(), all.end(),
            [](const Candidate& a, const Candidate& b) { return a.last_used < b.last_used; });

  auto over = [&](const Candidate& c) {
    if (report.cache_bytes > options_.cache_high_bytes) return true;
    auto k = options_.kind_high_bytes.find(c.row.kind);
    return k != options_.kind_high_bytes.end() && kind_bytes[c.row.kind] > k->second;
  };
  auto above_low = [&](const Candidate& c) {
    if (report.cache_bytes > options_.cache_low_bytes) return true;
    auto k = options_.kind_high_bytes.find(c.row.kind);
    return k != options_.kind_high_bytes.end() && kind_bytes[c.row.kind] > k->second / 10 * 8;
  };
  bool evicting = std::any_of(all.begin(), all.end(), over);
  for (auto& c : all) {
    if (!evicting) break;
    if (c.in_use || !above_low(c)) continue;
    if (!dry_run) {
      std::lock_guard lock(mu_);
      // Re-check under the lock: a reference may have arrived since the snapshot.
      auto rows = db_->resources();
      bool referenced = !rows;
      if (rows) {
        for (const auto& r : *rows) referenced |= r.uri == c.row.uri && r.env_references > 0;
      }
      if (referenced || installing_.contains(c.row.uri)) continue;
      auto evicted = cache_.evict(c.row.uri);  // false: a process holds a lease
      if (!evicted || !*evicted) continue;
      RTENV_TRY(db_->forget_resource(c.row.uri));
    } else if (cache_.process_leases(c.row.uri) > 0) {
      continue;
    }
    if (!dry_run) {
      metrics_.evictions.inc({c.row.kind});
      metrics_.evicted_bytes.inc({c.row.kind}, static_cast<double>(c.bytes));
    }
    report.evicted.push_back(c.row.uri);
    report.evicted_bytes.push_back(c.bytes);
    report.bytes_freed += c.bytes;
    report.cache_bytes -= c.bytes;
    kind_bytes[c.row.kind] -= c.bytes;
    evicting = report.cache_bytes > options_.cache_low_bytes ||
               std::any_of(all.begin(), all.end(), above_low);
  }
  // The evicted trees were renamed aside under the lock; deleting them (a second per 60,000
  // files) happens outside it, so no request waits for it.
  if (!report.evicted.empty()) {
    if (in_background) {
      // Touches only files no one uses: safe to outlive this object (a removal cut short by the
      // agent's exit is swept from tmp/ at its next start).
      std::thread([tmp = home_.tmp()] { env::remove_evicted(tmp); }).detach();
    } else {
      env::remove_evicted(home_.tmp());
    }
  }
  return report;
}

}  // namespace rtenv::agent
