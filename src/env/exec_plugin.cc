#include "env/exec_plugin.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "spec/runtime_env.h"
#include "util/clock.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/lines.h"
#include "util/process.h"
#include "util/redact.h"

namespace rtenv::env {

using nlohmann::json;

namespace {

constexpr size_t kMaxReplyBytes = 1 << 20;
// `delete` runs while the agent evicts (other calls wait): kept short.
constexpr int64_t kDeleteTimeoutMs = 10'000;

}  // namespace

std::string plugin_stderr_tail(const std::string& err, size_t n) {
  std::vector<std::string> lines;
  for (std::string_view rest = err; !rest.empty();)
    lines.push_back(printable_line(next_line(&rest)));
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) {
    out += lines[i] + (i + 1 < lines.size() ? "\n" : "");
  }
  return out;
}

Result<json> call_plugin(const PluginSpec& spec, const std::string& verb, json request,
                         int64_t timeout_ms, std::string* stderr_text) {
  request["protocol"] = kPluginProtocol;
  request["field"] = spec.field;
  ProcessSpec ps;
  ps.argv = {spec.exec.string(), verb};
  // Paths under a home whose name is not UTF-8 must not throw: replaced, not refused.
  ps.stdin_data = request.dump(-1, ' ', false, json::error_handler_t::replace);
  ps.timeout_ms = timeout_ms;
  ps.max_out = kMaxReplyBytes;
  std::string who = fmt::format("plugin {} ({})", spec.field, spec.exec.string());
  auto outcome = run_process(ps);
  if (!outcome) {
    return make_error(outcome.error().code(), "{}: cannot run it: {}", who,
                      outcome.error().message());
  }
  if (outcome->timed_out) {
    return make_error(ErrorCode::kTimeout,
                      "{} {} timed out after {} s (config.setup_timeout_seconds); it was killed",
                      who, verb, (timeout_ms + 999) / 1000);
  }
  if (stderr_text) *stderr_text = outcome->err;
  if (outcome->out_too_large) {
    return make_error(ErrorCode::kTooLarge, "{} {}: its reply is over {} bytes; it was killed", who,
                      verb, kMaxReplyBytes);
  }
  if (!outcome->success()) {
    std::string tail = plugin_stderr_tail(outcome->err);
    return make_error(ErrorCode::kInvalidArgument, "{} {} failed ({}){}{}", who, verb,
                      outcome->describe(), tail.empty() ? "" : ": ", tail);
  }
  json reply = json::parse(outcome->out, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded() || !reply.is_object()) {
    return make_error(ErrorCode::kCorrupt,
                      "{} {}: its reply on stdout is not one JSON object (protocol {})", who, verb,
                      kPluginProtocol);
  }
  return reply;
}

Result<std::string> plugin_key(const PluginSpec& plugin, const json& value) {
  UniqueFd fd(::open(plugin.exec.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return make_error(ErrorCode::kNotFound, "plugin {}: cannot read {}: {}", plugin.field,
                      plugin.exec.string(), errno_text());
  }
  RTENV_ASSIGN_OR_RETURN(Digest program, hash_fd(fd.get(), plugin.exec.string()));
  Sha256 h;
  h.update(plugin.field);
  h.update(std::string_view("\0", 1));
  h.update(spec::canonical_json(value));
  h.update(std::string_view("\0", 1));
  h.update(program.hex());
  return h.finish().hex();
}

namespace {

Result<std::vector<std::string>> string_list(const json& j, const std::string& what) {
  if (!j.is_array()) return make_error(ErrorCode::kCorrupt, "{}: expected a list of strings", what);
  std::vector<std::string> out;
  for (const auto& v : j) {
    if (!v.is_string()) {
      return make_error(ErrorCode::kCorrupt, "{}: expected a list of strings", what);
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

// A `context` answer as launch-plan operations.
Result<LaunchPlan> fragment_to_plan(const json& reply, const std::string& who) {
  static const std::set<std::string> kKeys = {"env",   "prepend", "append",
                                              "unset", "cwd",     "wrapper"};
  LaunchPlan plan;
  for (const auto& [key, v] : reply.items()) {
    if (!kKeys.contains(key)) {
      return make_error(ErrorCode::kCorrupt, "{} context: unknown key '{}' in its reply", who, key);
    }
  }
  auto where = [&](const std::string& k) { return fmt::format("{} context: {}", who, k); };
  // A name the environment cannot hold would break every process started with it.
  auto bad_name = [&](const std::string& key, const std::string& name) -> std::optional<Error> {
    if (!name.empty() && name.find('=') == std::string::npos &&
        name.find('\0') == std::string::npos) {
      return std::nullopt;
    }
    return make_error(ErrorCode::kCorrupt, "{}: '{}' is not a variable name", where(key), name);
  };
  if (reply.contains("env") && !reply["env"].is_null()) {
    if (!reply["env"].is_object())
      return make_error(ErrorCode::kCorrupt, "{}: expected an object", where("env"));
    for (const auto& [name, value] : reply["env"].items()) {
      if (auto e = bad_name("env", name)) return *e;
      if (!value.is_string()) {
        return make_error(ErrorCode::kCorrupt, "{}: value of {} is not a string", where("env"),
                          name);
      }
      plan.set(name, value.get<std::string>());
    }
  }
  for (const char* op : {"prepend", "append"}) {
    if (!reply.contains(op) || reply[op].is_null()) continue;
    if (!reply[op].is_object())
      return make_error(ErrorCode::kCorrupt, "{}: expected an object", where(op));
    for (const auto& [name, values] : reply[op].items()) {
      if (auto e = bad_name(op, name)) return *e;
      RTENV_ASSIGN_OR_RETURN(auto list, string_list(values, where(op) + "." + name));
      if (std::string(op) == "prepend") {
        plan.prepend(name, std::move(list));
      } else {
        plan.append(name, std::move(list));
      }
    }
  }
  if (reply.contains("unset") && !reply["unset"].is_null()) {
    RTENV_ASSIGN_OR_RETURN(auto names, string_list(reply["unset"], where("unset")));
    for (auto& n : names) {
      if (auto e = bad_name("unset", n)) return *e;
      EnvOp op;
      op.kind = EnvOp::Kind::kUnset;
      op.name = std::move(n);
      plan.env.push_back(std::move(op));
    }
  }
  if (reply.contains("cwd") && !reply["cwd"].is_null()) {
    if (!reply["cwd"].is_string())
      return make_error(ErrorCode::kCorrupt, "{}: expected a string", where("cwd"));
    plan.cwd = reply["cwd"].get<std::string>();
  }
  if (reply.contains("wrapper") && !reply["wrapper"].is_null()) {
    RTENV_ASSIGN_OR_RETURN(plan.wrapper, string_list(reply["wrapper"], where("wrapper")));
  }
  return plan;
}

}  // namespace

// ---- the kind ----------------------------------------------------------------------------

ExecPluginKind::ExecPluginKind(const Home& home, PluginSpec spec)
    : PublishedDirsKind(
          "plugin://" + spec.field + "/",
          PublishedDirs(plugin_root(home, spec.field), home.tmp(), ".ready", {".context.json"})),
      spec_(std::move(spec)) {}

fs::path plugin_root(const Home& home, const std::string& field) {
  return home.root / "plugins" / field;
}

Result<bool> ExecPluginKind::ensure(const Resource& r, const InstallProgress& progress,
                                    int64_t timeout_ms) {
  const int64_t deadline = deadline_after(timeout_ms);
  return dirs().make_once(key(r.uri), deadline, r.uri, maker(r, progress, deadline));
}

PublishedDirs::Make ExecPluginKind::maker(const Resource& r, const InstallProgress& progress,
                                          int64_t deadline) const {
  return [this, &r, &progress, deadline](const fs::path& dir) -> Result<void> {
    const auto& request = *std::static_pointer_cast<const PluginRequest>(r.request);
    // Created aside and renamed into place: a plugin's `create` may leave anything behind.
    fs::path temp = dirs().tmp() / unique_name("plugin-" + spec_.field);
    if (::mkdir(temp.c_str(), 0755) != 0) return io_error("cannot create", temp, errno);
    if (progress) progress(fmt::format("{} create", spec_.exec.string()));
    auto created = call_plugin(spec_, "create", {{"value", request.value}, {"dir", temp.string()}},
                               ms_left(deadline));
    if (!created) {
      (void)remove_tree(temp);
      return created.error();
    }
    if (::rename(temp.c_str(), dir.c_str()) != 0) {
      int err = errno;
      (void)remove_tree(temp);
      return io_error("cannot publish", dir, err);
    }
    auto context = call_plugin(spec_, "context", {{"value", request.value}, {"dir", dir.string()}},
                               ms_left(deadline));
    if (!context) return context.error();
    auto plan =
        fragment_to_plan(*context, fmt::format("plugin {} ({})", spec_.field, spec_.exec.string()));
    if (!plan) return plan.error();
    return write_file_atomic(dirs().sidecar(key(r.uri), ".context.json"), plan->to_json().dump());
  };
}

Result<std::unique_ptr<ResourceLease>> ExecPluginKind::acquire(const Resource& r,
                                                               const InstallProgress& progress,
                                                               int64_t timeout_ms) {
  const int64_t deadline = deadline_after(timeout_ms);
  RTENV_ASSIGN_OR_RETURN(FileLock lock,
                         dirs().lease(key(r.uri), deadline, r.uri, maker(r, progress, deadline)));
  return std::unique_ptr<ResourceLease>(new DirLease(std::move(lock)));
}

Result<bool> ExecPluginKind::evict(const std::string& uri) {
  if (!owns(uri)) return false;
  return dirs().evict(key(uri), [&](const fs::path& dir) {
    // The plugin may clean up what it keeps elsewhere; the directory goes either way.
    (void)call_plugin(spec_, "delete", {{"dir", dir.string()}}, kDeleteTimeoutMs);
  });
}

Result<LaunchPlan> ExecPluginKind::context_of(const std::string& uri) const {
  return LaunchPlan::load(dirs().sidecar(key(uri), ".context.json"), uri);
}

}  // namespace rtenv::env
