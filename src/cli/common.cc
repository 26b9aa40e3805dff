#include "cli/commands.h"
#include "util/size.h"

#ifndef RTENV_FRONT
#include "store/open_store_any.h"
#endif

#include <unistd.h>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

namespace rtenv::cli {

namespace fs = std::filesystem;

namespace {
std::vector<std::string> g_command_line;
std::shared_ptr<const config::Config> g_config;
bool g_quiet = false;
}  // namespace

void set_quiet(bool quiet) { g_quiet = quiet; }
bool quiet() { return g_quiet; }

void set_command_line(int argc, char** argv) { g_command_line.assign(argv, argv + argc); }

void set_config(std::shared_ptr<const config::Config> config) { g_config = std::move(config); }

const std::shared_ptr<const config::Config>& shared_config() {
  if (!g_config) {
    auto c = config::Config::from_environment();
    g_config = std::make_shared<const config::Config>(
        c ? std::move(c).value() : config::Config::defaults("/nonexistent/rtenv"));
  }
  return g_config;
}

Result<env::Home> open_home() { return env::Home::from_config(shared_config()); }

Result<std::unique_ptr<store::BlobStore>> open_any_store(const std::string& url) {
#ifdef RTENV_FRONT
  return store::open_store(url);
#else
  const config::Config& c = process_config();
  store::StoreOptions options;
  options.token = c.store_token().value_or("");
  options.ca_bundle = c.ca_bundle().value_or("");
  options.s3_endpoint = c.s3_endpoint().value_or("");
  options.s3_touch_interval_ms = static_cast<int64_t>(c.s3_touch_interval_seconds() * 1000);
  return store::open_store_any(url, options);
#endif
}

bool store_needs_full(const std::string& url) {
#ifdef RTENV_FRONT
  return url.starts_with("s3://") || url.starts_with("http://") || url.starts_with("https://");
#else
  (void)url;
  return false;
#endif
}

int exec_full() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  fs::path full = (ec ? fs::path(".") : self.parent_path()) / "rtenv-full";
  std::vector<std::string> args = g_command_line;
  if (args.empty()) args.push_back("rtenv");
  args[0] = full.string();
  std::vector<char*> raw;
  for (auto& a : args) raw.push_back(a.data());
  raw.push_back(nullptr);
  std::fflush(nullptr);
  ::execv(full.c_str(), raw.data());
  return fail(kExitSetup, fmt::format("cannot run {} (it belongs beside rtenv): {}", full.string(),
                                      std::strerror(errno)));
}

void add_agent_options(CLI::App* app, AgentArgs* args) {
  app->add_option("--listen", args->tcp_address,
                  "Also listen on TCP HOST:PORT (needs --token-file)");
  app->add_option("--token-file", args->token_file,
                  "File holding the bearer token TCP callers must send");
  app->add_option("--metrics-listen", args->metrics_listen,
                  "Serve Prometheus metrics on http://HOST:PORT/metrics (port 0: any free port, "
                  "printed; config key metrics_listen, RTENV_METRICS_LISTEN; docs/metrics.md)");
  app->add_option("--idle-exit", args->idle_exit_seconds,
                  "Exit after this many seconds without calls (default 0: never)");
  // Set by the client that starts the agent for itself; not for people.
  app->add_flag("--on-demand", args->on_demand)->group("");
}

int fail(int exit_code, const std::string& message) {
  std::fprintf(stderr, "rtenv: %s\n", message.c_str());
  return exit_code;
}

Result<void> SizeLimits::apply(env::UploadOptions* options) const {
  options->max_package_bytes = process_config().max_package_size();
  options->warn_file_bytes = process_config().warn_file_size();
  if (!max_package_size.empty()) {
    auto v = parse_size(max_package_size);
    if (!v) return v.error().with_context("package size limit");
    options->max_package_bytes = *v;
  }
  return ok_result();
}

ProgressLine::ProgressLine() : enabled_(!g_quiet && ::isatty(STDERR_FILENO) == 1) {}

ProgressLine::~ProgressLine() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  clear();
}

void ProgressLine::draw_locked() {
  std::string line = text_;
  if (since_) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - *since_).count();
    line += fmt::format(" ({:.1f} s)", s);
  }
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  shown_ = true;
}

void ProgressLine::show(const std::string& text) {
  if (!enabled_) return;
  std::lock_guard lock(mu_);
  text_ = text;
  since_.reset();
  draw_locked();
}

void ProgressLine::show_timed(const std::string& text) {
  if (!enabled_) return;
  std::lock_guard lock(mu_);
  text_ = text;
  if (!since_) since_ = std::chrono::steady_clock::now();
  draw_locked();
  if (!ticker_.joinable()) ticker_ = std::thread([this] { tick(); });
  wake_.notify_all();
}

void ProgressLine::tick() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (since_) {
      wake_.wait_for(lock, std::chrono::milliseconds(200));
      if (since_ && !stopping_) draw_locked();
    } else {
      wake_.wait(lock);
    }
  }
}

void ProgressLine::clear() {
  std::lock_guard lock(mu_);
  since_.reset();
  if (!shown_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  shown_ = false;
}

void show_setup_progress(env::UploadOptions* upload, ProgressLine* line) {
  upload->progress = pack_progress(line);
  upload->install_progress = [line](const std::string& text) {
    line->show_timed("rtenv: " + text);
  };
}

std::function<void(const std::string&, const pack::PackProgress&)> pack_progress(
    ProgressLine* line) {
  if (!line->enabled()) return nullptr;
  return [line](const std::string& what, const pack::PackProgress& p) {
    line->show(fmt::format("rtenv: hashing {}: {}/{} files, {} of {}", what, p.files_done,
                           p.files_total, pack::format_bytes(p.bytes_done),
                           pack::format_bytes(p.bytes_total)));
  };
}

}  // namespace rtenv::cli
