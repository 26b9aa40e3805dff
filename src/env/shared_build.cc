#include "env/shared_build.h"
#include "env/records.h"
#include "util/clock.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <fmt/format.h>

namespace rtenv::env {

namespace {

// Leases expire by the wall clock: the one clock the nodes of a cluster share (roughly).
std::string lease_value(const std::string& holder, int64_t expires_ms) {
  return record_text(LeaseRecord{holder, expires_ms});
}

}  // namespace

struct BuildLease::State {
  store::BlobStore& store;
  std::string name;
  std::string holder;
  int64_t lease_ms;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread renewer;

  State(store::BlobStore& s, std::string n, std::string h, int64_t ms)
      : store(s), name(std::move(n)), holder(std::move(h)), lease_ms(ms) {}

  // Still ours? A holder that was too slow to renew may have been taken over.
  bool ours() {
    auto current = store.get_record(name);
    if (!current) return false;
    auto info = parse_lease_record(*current);
    return info && info->holder == holder;
  }

  void renew_until_stopped() {
    std::unique_lock lock(mu);
    while (!cv.wait_for(lock, std::chrono::milliseconds(lease_ms / 3), [&] { return stop; })) {
      lock.unlock();
      // A failed renewal is retried at the next tick; the lease only lapses if they all fail.
      if (ours()) (void)store.put_record(name, lease_value(holder, wall_ms() + lease_ms));
      lock.lock();
    }
  }
};

BuildLease::BuildLease(std::shared_ptr<State> state) : state_(std::move(state)) {
  state_->renewer = std::thread([s = state_] { s->renew_until_stopped(); });
}

BuildLease::~BuildLease() { release(); }

void BuildLease::release() {
  if (!state_) return;
  {
    std::lock_guard lock(state_->mu);
    state_->stop = true;
  }
  state_->cv.notify_all();
  state_->renewer.join();
  if (state_->ours()) (void)state_->store.remove_record(state_->name);
  state_.reset();
}

SharedBuilds::Options SharedBuilds::options_from(const config::Config& config) {
  Options o;
  if (double seconds = config.build_lease_seconds(); seconds > 0) {
    o.lease_ms = static_cast<int64_t>(seconds * 1000);
  }
  return o;
}

SharedBuilds::SharedBuilds(store::BlobStore& store, Options options)
    : store_(store), options_(options) {}

std::string SharedBuilds::this_holder() {
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown");
  return fmt::format("{}:{}", host, ::getpid());
}

Result<SharedBuilds::Claim> SharedBuilds::claim(
    const std::string& published, const std::string& lease, int64_t deadline_ms,
    const std::function<void(const std::string&)>& report) {
  const std::string holder = this_holder();
  std::string waiting_for;
  // While another node builds, the record is looked for often (one request each time) and the
  // lease only every lease_check_ms (is its holder still alive?). Looks soon at first: most
  // builds that are waited for are short.
  int64_t pause_ms = std::min<int64_t>(25, options_.poll_ms);
  int64_t next_lease_check = 0;
  for (;;) {
    auto record = store_.get_record(published);
    if (record) return Claim{std::move(record).value(), nullptr};
    if (record.error().code() != ErrorCode::kNotFound) return record.error();

    if (steady_ms() >= next_lease_check) {
      next_lease_check = steady_ms() + options_.lease_check_ms;
      auto created =
          store_.create_record(lease, lease_value(holder, wall_ms() + options_.lease_ms));
      if (created) {
        auto state = std::make_shared<BuildLease::State>(store_, lease, holder, options_.lease_ms);
        std::unique_ptr<BuildLease> held(new BuildLease(state));
        // Published between our look and our lease: use it.
        if (auto late = store_.get_record(published)) {
          return Claim{std::move(late).value(), nullptr};
        }
        return Claim{std::nullopt, std::move(held)};
      }
      if (created.error().code() != ErrorCode::kAlreadyExists) return created.error();

      auto current = store_.get_record(lease);
      if (!current && current.error().code() != ErrorCode::kNotFound) return current.error();
      if (!current) {  // released just now: look again at once
        next_lease_check = 0;
        continue;
      }
      auto info = parse_lease_record(*current);
      if (!info || info->expires_ms < wall_ms()) {
        // Its holder died (or wrote nonsense): take over. Two nodes taking over the same lease
        // at once may both build; both publish the same env, so only time is lost.
        if (report) {
          report(fmt::format("the build lease of {} has expired: taking over",
                             info ? info->holder : std::string("an unknown holder")));
        }
        (void)store_.remove_record(lease);
        next_lease_check = 0;
        continue;
      }
      if (info->holder != waiting_for) {
        waiting_for = info->holder;
        if (report) report(fmt::format("waiting for {} to build it", waiting_for));
      }
    }
    if (deadline_ms >= 0 && steady_ms() >= deadline_ms) {
      return make_error(ErrorCode::kTimeout,
                        "timed out waiting for {} to build it (the build lease {} in store {})",
                        waiting_for, lease, store_.url());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    pause_ms = std::min(pause_ms * 2, options_.poll_ms);
  }
}

}  // namespace rtenv::env
