#include "env/node_cache.h"

#include <string_view>

#include <fmt/format.h>

#include "env/fields/fields.h"
#include "util/redact.h"

namespace rtenv::env {

namespace {

bool shares_builds(const Home& home, const store::BlobStore& store) {
  std::string setting = home.config().share_builds();
  if (setting == "1") return true;
  if (setting == "0") return false;
  return store.url() != "file://" + home.store().string();
}

// ---- packages: rtenv://sha256/<digest> trees ----------------------------------------------

class PackageLease : public ResourceLease {
 public:
  explicit PackageLease(PackageCache::Lease lease) : lease_(std::move(lease)) {}
  int lock_fd() const override { return lease_.lock_fd(); }
  bool release() override { return lease_.release(); }

 private:
  PackageCache::Lease lease_;
};

class PackageKind : public ResourceKind {
 public:
  explicit PackageKind(PackageCache& cache) : cache_(cache) {}
  std::string name() const override { return "package"; }
  bool owns(std::string_view uri) const override { return pack::PackageUri::parse(uri).ok(); }
  Result<bool> ensure(const Resource& r, const InstallProgress& progress, int64_t) override {
    RTENV_ASSIGN_OR_RETURN(auto uri, pack::PackageUri::parse(r.uri));
    return cache_.ensure(uri, [&](size_t done, size_t total) {
      if (progress) progress(fmt::format("{}/{} files", done, total));
    });
  }
  Result<std::unique_ptr<ResourceLease>> acquire(const Resource& r, const InstallProgress&,
                                                 int64_t) override {
    RTENV_ASSIGN_OR_RETURN(auto uri, pack::PackageUri::parse(r.uri));
    RTENV_ASSIGN_OR_RETURN(auto lease, cache_.acquire(uri));
    return std::unique_ptr<ResourceLease>(new PackageLease(std::move(lease)));
  }
  bool is_ready(const std::string& uri) const override {
    auto p = pack::PackageUri::parse(uri);
    return p && cache_.is_ready(*p);
  }
  Result<bool> evict(const std::string& uri) override {
    auto p = pack::PackageUri::parse(uri);
    if (!p) return false;
    return cache_.evict(*p);
  }
  size_t process_leases(const std::string& uri) const override {
    auto p = pack::PackageUri::parse(uri);
    return p ? cache_.process_leases(*p) : 0;
  }
  int64_t last_leased_ms(const std::string& uri) const override {
    auto p = pack::PackageUri::parse(uri);
    return p ? cache_.last_leased_ms(*p) : 0;
  }
  fs::path dir_of(const std::string& uri) const override {
    auto p = pack::PackageUri::parse(uri);
    return p ? cache_.dir_of(*p) : fs::path();
  }
  std::vector<std::string> list_ready() const override {
    std::vector<std::string> out;
    for (const auto& p : cache_.list()) out.push_back(p.str());
    return out;
  }

 private:
  PackageCache& cache_;
};

// ---- Python: pyenv://<key> virtualenvs and wheel targets ----------------------------------

class PythonLease : public ResourceLease {
 public:
  explicit PythonLease(PythonEnvCache::Lease lease) : lease_(std::move(lease)) {}
  int lock_fd() const override { return lease_.lock_fd(); }
  bool release() override {
    lease_.release();
    return false;
  }

 private:
  PythonEnvCache::Lease lease_;
};

class PythonKind : public ResourceKind {
 public:
  explicit PythonKind(PythonEnvCache& cache) : cache_(cache) {}
  std::string name() const override { return "python"; }
  bool owns(std::string_view uri) const override { return key(uri).has_value(); }
  Result<bool> ensure(const Resource& r, const InstallProgress& progress,
                      int64_t timeout_ms) override {
    return cache_.ensure(request(r), progress, timeout_ms);
  }
  Result<std::unique_ptr<ResourceLease>> acquire(const Resource& r, const InstallProgress& progress,
                                                 int64_t timeout_ms) override {
    RTENV_ASSIGN_OR_RETURN(auto lease, cache_.acquire(request(r), progress, timeout_ms));
    return std::unique_ptr<ResourceLease>(new PythonLease(std::move(lease)));
  }
  bool is_ready(const std::string& uri) const override {
    auto k = key(uri);
    return k && cache_.is_ready(*k);
  }
  Result<bool> evict(const std::string& uri) override {
    auto k = key(uri);
    if (!k) return false;
    return cache_.evict(*k);
  }
  size_t process_leases(const std::string& uri) const override {
    auto k = key(uri);
    return k ? cache_.process_leases(*k) : 0;
  }
  int64_t last_leased_ms(const std::string& uri) const override {
    auto k = key(uri);
    return k ? cache_.last_leased_ms(*k) : 0;
  }
  fs::path dir_of(const std::string& uri) const override {
    auto k = key(uri);
    return k ? cache_.dir_of(*k) : fs::path();
  }
  std::vector<std::string> list_ready() const override {
    std::vector<std::string> out;
    for (const auto& k : cache_.list()) {
      out.push_back(std::string(PythonEnvRequest::kUriPrefix) + k.hex());
    }
    return out;
  }

 private:
  static std::optional<Digest> key(std::string_view uri) {
    if (!uri.starts_with(PythonEnvRequest::kUriPrefix)) return std::nullopt;
    auto d = Digest::from_hex(uri.substr(PythonEnvRequest::kUriPrefix.size()));
    if (!d) return std::nullopt;
    return *d;
  }
  static const PythonEnvRequest& request(const Resource& r) {
    return *std::static_pointer_cast<const PythonEnvRequest>(r.request);
  }
  PythonEnvCache& cache_;
};

}  // namespace

NodeCache::NodeCache(const Home& home, store::BlobStore& store,
                     const std::vector<PluginSpec>& plugins)
    : packages(home, store), python(home) {
  if (shares_builds(home, store)) python.share_builds(&store);
  kinds_.push_back(std::make_unique<PackageKind>(packages));
  kinds_.push_back(std::make_unique<PythonKind>(python));
  kinds_.push_back(fields::conda_kind(home, store));
  kinds_.push_back(fields::image_kind(home, store));
  for (const auto& p : plugins) {
    kinds_.push_back(std::make_unique<ExecPluginKind>(home, p));
  }
}

ResourceKind* NodeCache::kind_of(std::string_view uri) const {
  for (const auto& k : kinds_) {
    if (k->owns(uri)) return k.get();
  }
  return nullptr;
}

Result<bool> NodeCache::ensure(const Resource& r, const InstallProgress& progress,
                               int64_t timeout_ms) {
  // A kind reads files, records and helper answers it does not control: a bug there is an
  // error of this resource, not the end of the process that asked.
  try {
    return r.kind->ensure(r, progress, timeout_ms);
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, "internal error while making {}: {}", r.uri,
                      printable_line(e.what()));
  }
}

bool NodeCache::is_ready(const std::string& uri) const {
  auto* k = kind_of(uri);
  return k && k->is_ready(uri);
}

Result<bool> NodeCache::evict(const std::string& uri) {
  auto* k = kind_of(uri);
  if (!k) return false;
  return k->evict(uri);
}

size_t NodeCache::process_leases(const std::string& uri) const {
  auto* k = kind_of(uri);
  return k ? k->process_leases(uri) : 0;
}

int64_t NodeCache::last_leased_ms(const std::string& uri) const {
  auto* k = kind_of(uri);
  return k ? k->last_leased_ms(uri) : 0;
}

uint64_t NodeCache::disk_bytes(const std::string& uri,
                               std::set<std::pair<uint64_t, uint64_t>>* seen) const {
  auto* k = kind_of(uri);
  if (!k || !k->is_ready(uri)) return 0;
  fs::path dir = k->dir_of(uri);
  return dir.empty() ? 0 : disk_usage(dir, seen);
}

std::vector<std::pair<std::string, std::string>> NodeCache::list_ready() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& k : kinds_) {
    for (auto& uri : k->list_ready()) out.emplace_back(k->name(), std::move(uri));
  }
  return out;
}

}  // namespace rtenv::env
