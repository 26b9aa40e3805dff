// Collecting stores: `rtenv store gc` (a directory store, shared or not, or S3), the collections
// of `rtenv store serve --gc-every`, and the part of `rtenv gc` that collects this node's own
// store.

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/store_gc_command.h"

#include "cli/commands.h"
#include "env/records.h"
#include "pack/packer.h"
#include "pack/store_gc.h"
#include "store/local_store.h"
#include "util/redact.h"
#include "util/size.h"

namespace rtenv::cli {

namespace fs = std::filesystem;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The records of the store name what was published (built venvs, fetched URLs) and what nodes
// use (their reports, unless older than `reports_after_ms`: a node gone): roots.
Result<std::vector<Digest>> record_roots(store::CollectableStore& store, int64_t reports_after_ms) {
  std::vector<Digest> roots;
  RTENV_TRY(store.scan_records([&](const std::string& name, const std::string& text) {
    if (name.starts_with(env::NodeReportRecord::kPrefix)) {
      // One that does not parse still counts as text: keeping too much is safe.
      auto report = env::parse_node_report_record(text);
      if (report && report->written_ms < reports_after_ms) return;
    }
    for (const auto& d : pack::digests_named_in(text)) roots.push_back(d);
  }));
  return roots;
}

}  // namespace

nlohmann::json collection_json(const pack::StoreCollection& c) {
  nlohmann::json collected = nlohmann::json::array();
  for (const auto& [d, bytes] : c.collected) {
    collected.push_back({{"digest", d.hex()}, {"bytes", bytes}});
  }
  return {{"blobs", c.blobs},
          {"bytes", c.bytes},
          {"collected", std::move(collected)},
          {"bytes_collected", c.bytes_collected}};
}

std::string collection_summary(const pack::StoreCollection& c, bool dry_run) {
  return fmt::format("{} {} ({}) of {} ({})", dry_run ? "would collect" : "collected",
                     count_of(c.collected.size(), "blob", "blobs"),
                     pack::format_bytes(c.bytes_collected), count_of(c.blobs, "blob", "blobs"),
                     pack::format_bytes(c.bytes));
}

Result<pack::StoreCollection> collect_home_store(const env::Home& home,
                                                 const std::vector<std::string>& agent_texts,
                                                 int64_t keep_ms, bool dry_run) {
  RTENV_ASSIGN_OR_RETURN(auto store, store::LocalStore::open(home.store()));
  RTENV_ASSIGN_OR_RETURN(std::vector<Digest> roots, record_roots(*store, 0));
  // What the agent knows: its envs (their packages, locks) and resources.
  for (const auto& text : agent_texts) {
    for (const auto& d : pack::digests_named_in(text)) roots.push_back(d);
  }
  // The node's copies of packages (a changed copy is restored from the store).
  std::error_code ec;
  for (auto it = fs::directory_iterator(home.pkgs(), ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (auto d = Digest::from_hex(it->path().filename().string())) roots.push_back(*d);
  }
  // Resolutions kept on this node (conda locks name the lock's blob).
  for (auto it = fs::directory_iterator(home.locks(), ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (auto text = read_file(it->path())) {
      for (const auto& d : pack::digests_named_in(*text)) roots.push_back(d);
    }
  }
  return pack::collect_store(*store, roots, now_ms() - keep_ms, dry_run);
}

Result<pack::StoreCollection> collect_shared_store(store::CollectableStore& store, int64_t keep_ms,
                                                   bool dry_run) {
  int64_t cutoff = now_ms() - keep_ms;
  RTENV_ASSIGN_OR_RETURN(std::vector<Digest> roots, record_roots(store, cutoff));
  return pack::collect_store(store, roots, cutoff, dry_run);
}

int store_gc_command(const StoreGcArgs& args) {
  auto keep = parse_duration_ms(args.older_than);
  if (!keep) return fail(kExitUsage, "store gc: --older-than: " + keep.error().message());
  auto home = open_home();
  if (!home) return fail(kExitSetup, home.error().message());
  std::string url = args.store_url.empty() ? home->store_url() : args.store_url;
  if (store_needs_full(url)) return exec_full();
  auto opened = open_any_store(url);
  if (!opened) return fail(kExitUsage, "store gc: " + opened.error().message());
  auto* store = dynamic_cast<store::CollectableStore*>(opened->get());
  if (store == nullptr) {
    return fail(kExitUsage,
                "store gc: " + redact_url_credentials(url) +
                    ": rtenv's blob server collects its own store: run it with `rtenv store serve "
                    "--gc-every 6h --gc-older-than 7d`, or `rtenv store gc --store DIR` on its "
                    "directory");
  }
  int64_t interval = store->touch_interval_ms();
  if (*keep < interval * 2) {
    return fail(kExitUsage,
                fmt::format("store gc: --older-than must be at least {} for {}: blobs in use are "
                            "marked as used every {}",
                            format_duration_ms(interval * 2), redact_url_credentials(url),
                            format_duration_ms(interval)));
  }
  auto c = collect_shared_store(*store, *keep, args.dry_run);
  if (!c) return fail(kExitSetup, "store gc: " + c.error().message());
  std::string shown = redact_url_credentials((*opened)->url());
  if (args.json) {
    nlohmann::json j = collection_json(*c);
    j["store"] = shown;
    j["dry_run"] = args.dry_run;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  if (!quiet()) {
    std::printf(
        "%s in %s (kept: what its records name, what was written or used in the last "
        "%s, and all below)\n",
        collection_summary(*c, args.dry_run).c_str(), shown.c_str(), args.older_than.c_str());
  }
  return 0;
}

}  // namespace rtenv::cli
