#include "env/node_cache.h"

#include <cstdlib>
#include <string_view>

#include <fmt/format.h>

namespace rtenv::env {

namespace {

std::optional<Digest> pyenv_key(const std::string& uri) {
  if (!uri.starts_with(PythonEnvRequest::kUriPrefix)) return std::nullopt;
  auto d = Digest::from_hex(uri.substr(PythonEnvRequest::kUriPrefix.size()));
  if (!d) return std::nullopt;
  return *d;
}

std::optional<pack::PackageUri> package_uri(const std::string& uri) {
  auto p = pack::PackageUri::parse(uri);
  if (!p) return std::nullopt;
  return *p;
}

bool shares_builds(const Home& home, const store::BlobStore& store) {
  const char* setting = std::getenv("RTENV_SHARE_BUILDS");
  if (setting && std::string_view(setting) == "1") return true;
  if (setting && std::string_view(setting) == "0") return false;
  return store.url() != "file://" + home.store().string();
}

}  // namespace

NodeCache::NodeCache(const Home& home, store::BlobStore& store)
    : packages(home, store), python(home) {
  if (shares_builds(home, store)) python.share_builds(&store);
}

Result<bool> NodeCache::ensure(const Resource& r, const InstallProgress& progress,
                               int64_t timeout_ms) {
  if (r.python) return python.ensure(*r.python, progress, timeout_ms);
  auto report = [&](size_t done, size_t total) {
    if (progress) progress(fmt::format("{}/{} files", done, total));
  };
  return packages.ensure(*r.package, report);
}

bool NodeCache::is_ready(const Resource& r) const {
  return r.python ? python.is_ready(r.python->key) : packages.is_ready(*r.package);
}

bool NodeCache::is_ready(const std::string& uri) const {
  if (auto key = pyenv_key(uri)) return python.is_ready(*key);
  if (auto p = package_uri(uri)) return packages.is_ready(*p);
  return false;
}

Result<bool> NodeCache::evict(const std::string& uri) {
  if (auto key = pyenv_key(uri)) return python.evict(*key);
  if (auto p = package_uri(uri)) return packages.evict(*p);
  return false;
}

size_t NodeCache::process_leases(const std::string& uri) const {
  if (auto key = pyenv_key(uri)) return python.process_leases(*key);
  if (auto p = package_uri(uri)) return packages.process_leases(*p);
  return 0;
}

int64_t NodeCache::last_leased_ms(const std::string& uri) const {
  if (auto key = pyenv_key(uri)) return python.last_leased_ms(*key);
  if (auto p = package_uri(uri)) return packages.last_leased_ms(*p);
  return 0;
}

uint64_t NodeCache::disk_bytes(const std::string& uri,
                               std::set<std::pair<uint64_t, uint64_t>>* seen) const {
  if (!is_ready(uri)) return 0;
  if (auto key = pyenv_key(uri)) return disk_usage(python.dir_of(*key), seen);
  if (auto p = package_uri(uri)) return disk_usage(packages.dir_of(*p), seen);
  return 0;
}

std::vector<std::pair<std::string, std::string>> NodeCache::list_ready() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& p : packages.list()) {
    if (packages.is_ready(p)) out.emplace_back("package", p.str());
  }
  for (const auto& key : python.list()) {
    out.emplace_back("python", std::string(PythonEnvRequest::kUriPrefix) + key.hex());
  }
  return out;
}

}  // namespace rtenv::env
