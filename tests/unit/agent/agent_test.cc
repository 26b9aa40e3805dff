// The Agent in process: a temp $RTENV_HOME, a LocalStore, real packages, many threads.

#include "agent/agent.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "pack/packer.h"
#include "store/local_store.h"
#include "testing/temp_dir.h"
#include "util/fs.h"

namespace rtenv::agent {
namespace {

using rtenv::testing::slurp;
using rtenv::testing::TempDir;
namespace fs = std::filesystem;

// A source tree and what it must look like wherever it is materialized.
struct Package {
  pack::PackageUri uri{Digest()};
  std::map<std::string, std::string> files;  // relative path -> content

  std::string env(const std::string& var = "") const {
    std::string j = fmt::format("{{\"working_dir\": \"{}\"", uri.str());
    if (!var.empty()) j += fmt::format(", \"env_vars\": {{\"V\": \"{}\"}}", var);
    return j + "}";
  }
  std::string hex() const { return uri.root().hex(); }

  // Empty if `dir` holds exactly these files with this content; else what is wrong.
  std::string check(const fs::path& dir) const {
    size_t seen = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file()) ++seen;
    }
    if (ec) return fmt::format("cannot list {}: {}", dir.string(), ec.message());
    if (seen != files.size()) {
      return fmt::format("{} holds {} files, expected {}", dir.string(), seen, files.size());
    }
    for (const auto& [rel, content] : files) {
      std::FILE* f = std::fopen((dir / rel).c_str(), "rb");
      if (!f) return fmt::format("cannot open {}: {}", (dir / rel).string(), std::strerror(errno));
      std::string got(content.size() + 1, '\0');
      size_t n = std::fread(got.data(), 1, got.size(), f);
      std::fclose(f);
      got.resize(n);
      if (got != content) return fmt::format("{} has other content", (dir / rel).string());
    }
    return "";
  }
};

Package make_package(const TempDir& src, const std::string& name, size_t n_files,
                     store::BlobStore& store) {
  Package p;
  for (size_t i = 0; i < n_files; ++i) {
    std::string rel = fmt::format("{}/d{}/f{}.txt", name, i % 7, i);
    std::string content = fmt::format("{} file {} {}\n", name, i, std::string(i % 50, 'x'));
    src.write(rel, content);
    p.files[fmt::format("d{}/f{}.txt", i % 7, i)] = content;
  }
  auto r = pack::pack_path(src / name, store, pack::PackOptions{});
  EXPECT_TRUE(r.ok()) << r.error().message();
  p.uri = r->uri;
  return p;
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = *env::Home::at(tmp_ / "home");
    store_ = std::move(store::LocalStore::open(home_.store())).value();
  }

  std::unique_ptr<Agent> open_agent(AgentOptions options = {}) {
    auto registry = env::Registry::make({});
    EXPECT_TRUE(registry.ok());
    auto a = Agent::open(home_, std::move(store::LocalStore::open(home_.store())).value(), options,
                         *registry);
    EXPECT_TRUE(a.ok()) << a.error().message();
    return a ? std::move(a).value() : nullptr;
  }

  std::vector<std::string> package_dirs() {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(home_.pkgs())) {
      if (e.is_directory()) out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  TempDir tmp_, src_;
  env::Home home_;
  std::unique_ptr<store::LocalStore> store_;
};

// 200 requests for one new env at once: one install, one answer for all, 200 references.
TEST_F(AgentTest, ConcurrentGetOrCreateInstallsOnceAndAllGetTheSameContext) {
  Package pkg = make_package(src_, "app", 400, *store_);
  auto agent = open_agent();
  ASSERT_TRUE(agent);
  constexpr int kThreads = 200;
  std::vector<Result<CreateResult>> results(kThreads, Error(ErrorCode::kInternal, "not run"));
  // Requests that join a setup in flight say so ("waiting for another request ..."). The one
  // that materializes is held back until all others have joined: so the test does not depend on
  // timing, and without single-flight nobody would join (and the wait would time out).
  std::mutex mu;
  std::condition_variable cv;
  int joined = 0;
  auto progress = [&](const std::string& message) {
    std::unique_lock lock(mu);
    if (message.starts_with("waiting")) {
      ++joined;
      cv.notify_all();
    } else {
      cv.wait_for(lock, std::chrono::seconds(30), [&] { return joined == kThreads - 1; });
    }
  };
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      results[i] = agent->get_or_create(pkg.env("shared"), "", "job1", fmt::format("holder-{}", i),
                                        progress);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(joined, kThreads - 1) << "requests that joined the one setup in flight";

  int installed = 0;
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].error().message();
    installed += results[i]->installed ? 1 : 0;
    EXPECT_EQ(results[i]->env_id, results[0]->env_id);
    EXPECT_EQ(results[i]->plan, results[0]->plan);
    EXPECT_EQ(results[i]->resource_uris, std::vector<std::string>{pkg.uri.str()});
  }
  EXPECT_EQ(installed, 1) << "requests that were told they installed the env";
  // The agent logs every setup it ran: exactly one, and it materialized the package.
  std::string log = slurp(home_.logs() / "job-job1.log");
  auto count = [&](std::string_view needle) {
    size_t n = 0;
    for (size_t pos = log.find(needle); pos != std::string::npos; pos = log.find(needle, pos + 1))
      ++n;
    return n;
  };
  EXPECT_EQ(count(" ready in "), 1u) << log;
  EXPECT_EQ(count("(installed)"), 1u) << log;
  std::printf("200 concurrent get_or_create: %zu setup(s) run, %zu of them installing\n",
              count(" ready in "), count("(installed)"));
  ASSERT_TRUE(results[0]->plan.cwd);
  EXPECT_EQ(*results[0]->plan.cwd, home_.pkgs() / pkg.hex());
  auto vars = env::apply_environment(results[0]->plan, {});
  EXPECT_EQ(vars.at("V"), "shared");
  EXPECT_EQ(vars.at("PYTHONPATH"), (home_.pkgs() / pkg.hex()).string());
  EXPECT_EQ(pkg.check(*results[0]->plan.cwd), "");
  EXPECT_EQ(package_dirs(), std::vector<std::string>{pkg.hex()});
  EXPECT_TRUE(fs::is_empty(home_.tmp()));

  auto info = agent->info();
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->envs.size(), 1u);
  EXPECT_EQ(info->envs[0].state, "ready");
  EXPECT_EQ(info->envs[0].holders.size(), size_t{kThreads});
  ASSERT_EQ(info->resources.size(), 1u);
  EXPECT_EQ(info->resources[0].env_references, 1u);  // one env uses it, with 200 holders
  EXPECT_GT(info->resources[0].size_bytes, 0u);

  // Holders give back one at a time; the env keeps its resource until the last one goes.
  for (int i = 0; i < kThreads; ++i) {
    auto r = agent->release(pkg.env("shared"), fmt::format("holder-{}", i));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(*r) << i;
  }
  auto again = agent->release(pkg.env("shared"), "holder-0");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again) << "a second release of one holder's reference";
  info = agent->info();
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->envs[0].holders.empty());
  EXPECT_EQ(info->resources[0].env_references, 0u);
}

// A request nested 100,000 levels deep (or too big) is an invalid request, not the end of the
// agent; the agent answers the next one.
TEST_F(AgentTest, ADeeplyNestedOrHugeRequestIsRefusedAndTheAgentGoesOn) {
  Package a = make_package(src_, "a", 5, *store_);
  auto agent = open_agent();
  ASSERT_TRUE(agent);
  std::string deep = "{\"hello\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto r = agent->get_or_create(deep, "", "j", "job:j");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("nested deeper than"), std::string::npos)
      << r.error().message();
  auto prepared = agent->prepare_field("conda", "{\"conda\": " + std::string(100000, '{'));
  ASSERT_FALSE(prepared.ok());
  std::string huge = "{\"env_vars\": {\"A\": \"" + std::string(size_t{17} << 20, 'x') + "\"}}";
  EXPECT_FALSE(agent->get_or_create(huge, "", "j", "job:j").ok());
  EXPECT_TRUE(agent->get_or_create(a.env(), "", "j", "job:j").ok());
}

TEST_F(AgentTest, ARetriedCallDoesNotCountTwiceAndReleaseHolderDropsAllItsReferences) {
  Package a = make_package(src_, "a", 20, *store_);
  Package b = make_package(src_, "b", 20, *store_);
  auto agent = open_agent();
  ASSERT_TRUE(agent);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(agent->get_or_create(a.env(), "", "j", "job:j").ok());
  ASSERT_TRUE(agent->get_or_create(b.env(), "", "j", "job:j").ok());
  ASSERT_TRUE(agent->get_or_create(b.env(), "", "k", "job:k").ok());
  auto info = agent->info();
  ASSERT_TRUE(info.ok());
  for (const auto& e : info->envs) {
    size_t expected = e.resources == std::vector<std::string>{a.uri.str()} ? 1 : 2;
    EXPECT_EQ(e.holders.size(), expected);
  }
  auto n = agent->release_holder("job:j");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
  info = agent->info();
  ASSERT_TRUE(info.ok());
  for (size_t i = 0; i < info->resources.size(); ++i) {
    EXPECT_EQ(info->resources[i].env_references, info->resources[i].uri == b.uri.str() ? 1u : 0u);
  }
}

// An env is in use until its holder lets go, however it lets go: by release, by
// release_holder (a job's end), or by dying (a "pid:" holder the reaper finds gone). So for gc's
// least-recently-used order, each marks the env's resources as used at that moment.
TEST_F(AgentTest, EveryWayOfLettingGoMarksTheResourcesUsed) {
  Package a = make_package(src_, "a", 5, *store_);
  Package b = make_package(src_, "b", 5, *store_);
  Package c = make_package(src_, "c", 5, *store_);
  AgentOptions o;
  o.reap_interval_ms = 20;
  auto agent = open_agent(o);
  ASSERT_TRUE(agent);
  pid_t child = ::fork();
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  std::string dying = process_holder(child);
  ASSERT_TRUE(agent->get_or_create(a.env(), "", "", "handle-a").ok());
  ASSERT_TRUE(agent->get_or_create(b.env(), "", "j", "job:j").ok());
  ASSERT_TRUE(agent->get_or_create(c.env(), "", "", dying).ok());
  auto last_used = [&](const Package& p) -> int64_t {
    auto info = agent->info();
    for (const auto& r : info->resources) {
      if (r.uri == p.uri.str()) return r.last_used_ms;
    }
    return -1;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_LT(last_used(a), before);
  ASSERT_LT(last_used(b), before);
  ASSERT_LT(last_used(c), before);

  ASSERT_TRUE(*agent->release(a.env(), "handle-a"));
  ASSERT_EQ(*agent->release_holder("job:j"), 1u);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  for (int i = 0; i < 200; ++i) {
    auto info = agent->info();
    bool held = false;
    for (const auto& e : info->envs) held |= !e.holders.empty();
    if (!held) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(last_used(a), before) << "release";
  EXPECT_GE(last_used(b), before) << "release_holder";
  EXPECT_GE(last_used(c), before) << "a dead process's holder, reaped";
}

// The value of the sample `series` (name and labels, as rendered) in a metrics text; -1 if absent.
double sample(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

// Concurrent requests for one env: one install counted, every request a hit or a miss; the
// gauges follow references and eviction.
TEST_F(AgentTest, MetricsFollowRequestsInstallsAndEviction) {
  Package p = make_package(src_, "m", 10, *store_);
  AgentOptions o;
  o.cache_high_bytes = 1;
  o.cache_low_bytes = 0;
  o.kind_high_bytes["package"] = 4096;
  auto agent = open_agent(o);
  ASSERT_TRUE(agent);
  std::string text = agent->metrics_text();
  EXPECT_EQ(sample(text, "rtenv_cache_limit_bytes"), 1);
  EXPECT_EQ(sample(text, "rtenv_cache_kind_limit_bytes{kind=\"package\"}"), 4096);
  EXPECT_EQ(sample(text, "rtenv_envs_created_total{kind=\"package\"}"), 0);

  constexpr int kThreads = 16;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      if (!agent->get_or_create(p.env(), "", "", fmt::format("job:{}", i)).ok()) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  text = agent->metrics_text();
  double hits = sample(text, "rtenv_cache_hits_total");
  double misses = sample(text, "rtenv_cache_misses_total");
  EXPECT_EQ(hits + misses, kThreads) << text;
  EXPECT_GE(misses, 1) << text;
  EXPECT_EQ(sample(text, "rtenv_envs_created_total{kind=\"package\"}"), 1) << text;
  EXPECT_EQ(
      sample(text, "rtenv_install_duration_seconds_count{kind=\"package\",outcome=\"installed\"}"),
      1)
      << text;
  EXPECT_EQ(sample(text, "rtenv_references"), kThreads);
  EXPECT_EQ(sample(text, "rtenv_holders"), kThreads);
  EXPECT_EQ(sample(text, "rtenv_resources{kind=\"package\"}"), 1);
  double bytes = sample(text, "rtenv_cache_bytes{kind=\"package\"}");
  EXPECT_GT(bytes, 0);
  EXPECT_EQ(sample(text, "rtenv_setups_in_progress"), 0);

  // A retried call of a holder that has the env: answered from memory, a hit.
  ASSERT_TRUE(agent->get_or_create(p.env(), "", "", "job:0").ok());
  EXPECT_EQ(sample(agent->metrics_text(), "rtenv_cache_hits_total"), hits + 1);

  for (int i = 0; i < kThreads; ++i)
    ASSERT_TRUE(*agent->release(p.env(), fmt::format("job:{}", i)));
  ASSERT_TRUE(agent->gc(false).ok());
  text = agent->metrics_text();
  EXPECT_EQ(sample(text, "rtenv_evictions_total{kind=\"package\"}"), 1) << text;
  EXPECT_EQ(sample(text, "rtenv_evicted_bytes_total{kind=\"package\"}"), bytes) << text;
  EXPECT_EQ(sample(text, "rtenv_references"), 0);
  EXPECT_EQ(sample(text, "rtenv_cache_bytes{kind=\"package\"}"), 0);
}

// With a tiny cache limit, gc keeps what a holder or a lease uses and evicts the rest.
TEST_F(AgentTest, GcEvictsOnlyUnusedResources) {
  Package held = make_package(src_, "held", 10, *store_);
  Package leased = make_package(src_, "leased", 10, *store_);
  Package unused = make_package(src_, "unused", 10, *store_);
  AgentOptions o;
  o.cache_high_bytes = 1;
  o.cache_low_bytes = 0;
  auto agent = open_agent(o);
  ASSERT_TRUE(agent);
  ASSERT_TRUE(agent->get_or_create(held.env(), "", "", "h").ok());
  ASSERT_TRUE(agent->get_or_create(leased.env(), "", "", "l").ok());
  ASSERT_TRUE(agent->get_or_create(unused.env(), "", "", "u").ok());
  env::PackageCache cache(home_, *store_);
  auto lease = cache.acquire(leased.uri);
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(*agent->release(leased.env(), "l"));
  ASSERT_TRUE(*agent->release(unused.env(), "u"));
  auto report = agent->gc(false);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->evicted, std::vector<std::string>{unused.uri.str()});
  EXPECT_EQ(held.check(home_.pkgs() / held.hex()), "");
  EXPECT_EQ(leased.check(lease->dir()), "");
  EXPECT_FALSE(fs::exists(home_.pkgs() / unused.hex()));
  lease->release();
  report = agent->gc(false);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->evicted, std::vector<std::string>{leased.uri.str()});
  EXPECT_EQ(package_dirs(), std::vector<std::string>{held.hex()});
}

// Many threads doing everything at once, with a cache limit so small that every gc evicts all
// it may. Whoever holds a reference or a lease checks, before giving it back, that its package
// is still there and intact: a package evicted (or rebuilt) under a user is a failure.
TEST_F(AgentTest, StressGcNeverEvictsWhatIsInUse) {
  constexpr int kPackages = 20;
  constexpr int kThreads = 6;
  constexpr int kOpsPerThread = 400;  // 2,400 in all
  std::vector<Package> pkgs;
  for (int i = 0; i < kPackages; ++i) {
    pkgs.push_back(make_package(src_, fmt::format("p{}", i), 3 + i % 5, *store_));
  }
  AgentOptions o;
  o.cache_high_bytes = 1;
  o.cache_low_bytes = 0;
  o.reap_interval_ms = 20;
  auto agent = open_agent(o);
  ASSERT_TRUE(agent);

  std::mutex fail_mu;
  std::vector<std::string> failures;
  auto fail = [&](const std::string& what) {
    std::lock_guard lock(fail_mu);
    if (failures.size() < 20) failures.push_back(what);
  };
  std::atomic<int> counts[7] =
      {};  // create, release, release_holder, gc, lease, evicted, built by a lease

  auto worker = [&](int t) {
    std::mt19937 rng(1234 + t);
    auto pick = [&](int n) { return static_cast<int>(rng() % n); };
    auto own_store = std::move(store::LocalStore::open(home_.store())).value();
    env::PackageCache cache(home_, *own_store);
    // (package, env variant, holder) this thread holds a reference for.
    std::vector<std::tuple<int, int, std::string>> held;
    auto verify = [&](int p, const fs::path& dir, const char* when) {
      std::string bad = pkgs[p].check(dir);
      if (!bad.empty()) fail(fmt::format("thread {} {} p{}: {}", t, when, p, bad));
    };
    for (int op = 0; op < kOpsPerThread; ++op) {
      int r = pick(100);
      if (r < 35 || held.empty()) {
        int p = pick(kPackages), variant = pick(2);
        std::string holder = fmt::format("t{}-h{}", t, pick(4));
        auto res = agent->get_or_create(pkgs[p].env(fmt::format("v{}", variant)), "",
                                        fmt::format("job{}", t), holder);
        counts[0]++;
        if (!res) {
          fail(fmt::format("thread {} get_or_create p{}: {}", t, p, res.error().message()));
          continue;
        }
        if (!res->plan.cwd || *res->plan.cwd != home_.pkgs() / pkgs[p].hex()) {
          fail(fmt::format("thread {} p{}: unexpected cwd", t, p));
          continue;
        }
        verify(p, *res->plan.cwd, "after get_or_create");
        bool dup = false;
        for (const auto& h : held) {
          dup |= std::get<0>(h) == p && std::get<1>(h) == variant && std::get<2>(h) == holder;
        }
        if (!dup) held.emplace_back(p, variant, holder);
      } else if (r < 55) {
        size_t i = pick(static_cast<int>(held.size()));
        auto [p, variant, holder] = held[i];
        verify(p, home_.pkgs() / pkgs[p].hex(), "before release");
        auto res = agent->release(pkgs[p].env(fmt::format("v{}", variant)), holder);
        counts[1]++;
        if (!res || !*res) fail(fmt::format("thread {} release p{} {}: not held", t, p, holder));
        held.erase(held.begin() + static_cast<long>(i));
      } else if (r < 65) {
        std::string holder = std::get<2>(held[pick(static_cast<int>(held.size()))]);
        uint32_t expected = 0;
        for (const auto& [p, variant, h] : held) {
          if (h != holder) continue;
          verify(p, home_.pkgs() / pkgs[p].hex(), "before release_holder");
          ++expected;
        }
        auto res = agent->release_holder(holder);
        counts[2]++;
        if (!res || *res != expected) {
          fail(fmt::format("thread {} release_holder {}: released {}, expected {}", t, holder,
                           res ? std::to_string(*res) : res.error().message(), expected));
        }
        std::erase_if(held, [&](const auto& h) { return std::get<2>(h) == holder; });
      } else if (r < 80) {
        auto res = agent->gc(false);
        counts[3]++;
        if (!res)
          fail(fmt::format("thread {} gc: {}", t, res.error().message()));
        else
          counts[5] += static_cast<int>(res->evicted.size());
      } else {
        // What `rtenv run` does: a package not on the node is installed by the agent (with a
        // reference for the run); then the run leases it, runs, and gives both back.
        int p = pick(kPackages);
        std::string env = pkgs[p].env("run");
        std::string holder = fmt::format("run-{}-{}", t, op);
        // Half of them as `RTENV_NO_AGENT=1 rtenv run`: whatever is missing is materialized by
        // the lease itself, behind the agent's back (the agent must still count and evict it).
        bool via_agent = !cache.is_ready(pkgs[p].uri) && pick(2) == 0;
        if (via_agent) {
          auto res = agent->get_or_create(env, "", "", holder);
          if (!res) {
            fail(fmt::format("thread {} run p{}: {}", t, p, res.error().message()));
            continue;
          }
        }
        auto lease = cache.acquire(pkgs[p].uri);
        counts[4]++;
        if (!lease) {
          fail(fmt::format("thread {} acquire p{}: {}", t, p, lease.error().message()));
          continue;
        }
        if (lease->materialized()) counts[6]++;
        verify(p, lease->dir(), "leased");
        std::this_thread::sleep_for(std::chrono::microseconds(pick(500)));
        verify(p, lease->dir(), "before giving the lease back");
        lease->release();
        if (via_agent) (void)agent->release(env, holder);
      }
    }
    for (const auto& [p, variant, holder] : held) {
      verify(p, home_.pkgs() / pkgs[p].hex(), "at the end");
      (void)agent->release(pkgs[p].env(fmt::format("v{}", variant)), holder);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& t : threads) t.join();

  for (const auto& f : failures) ADD_FAILURE() << f;
  int total = counts[0] + counts[1] + counts[2] + counts[3] + counts[4];
  std::printf(
      "stress: %d operations (%d get_or_create, %d release, %d release_holder, %d gc, "
      "%d runs); %d evictions; %d packages built by a run without the agent\n",
      total, counts[0].load(), counts[1].load(), counts[2].load(), counts[3].load(),
      counts[4].load(), counts[5].load(), counts[6].load());
  EXPECT_GE(total, 2000);
  EXPECT_GT(counts[5].load(), 0) << "gc never evicted anything: the test proved nothing";

  // Nothing is in use any more: one gc empties the cache, and the agent knew every package.
  auto info = agent->info();
  ASSERT_TRUE(info.ok());
  for (const auto& e : info->envs) EXPECT_TRUE(e.holders.empty()) << e.env_id;
  auto report = agent->gc(false);
  ASSERT_TRUE(report.ok());
  auto after = agent->info();
  ASSERT_TRUE(after.ok());
  std::set<std::string> known;
  for (const auto& r : after->resources) known.insert(r.uri);
  for (const auto& d : package_dirs()) {
    bool is_known = known.contains("rtenv://sha256/" + d);
    ADD_FAILURE() << "package " << d.substr(0, 12)
                  << " left on disk after a gc with nothing in use ("
                  << (is_known ? "known to the agent" : "unknown to the agent") << ", .state "
                  << (fs::exists(home_.pkgs() / (d + ".state")) ? "present" : "absent") << ")";
  }
  EXPECT_TRUE(fs::is_empty(home_.tmp()));
}

}  // namespace
}  // namespace rtenv::agent
