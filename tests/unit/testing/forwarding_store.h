#pragma once
// A BlobStore that passes every call to another: tests derive from it and override the calls
// they watch or interfere with.

#include "store/blob_store.h"

namespace rtenv::testing {

class ForwardingStore : public store::BlobStore {
 public:
  explicit ForwardingStore(store::BlobStore& inner) : inner_(inner) {}

  std::string url() const override { return inner_.url(); }
  Result<std::vector<bool>> missing(const std::vector<Digest>& d) override {
    return inner_.missing(d);
  }
  Result<void> put(const Digest& d, std::string_view data) override { return inner_.put(d, data); }
  Result<void> put_file(const Digest& d, const std::filesystem::path& p) override {
    return inner_.put_file(d, p);
  }
  Result<std::string> get(const Digest& d) override { return inner_.get(d); }
  Result<void> get_to_file(const Digest& d, const std::filesystem::path& dest, mode_t mode,
                           uint64_t max_bytes = kAnySize) override {
    return inner_.get_to_file(d, dest, mode, max_bytes);
  }
  Result<bool> remove(const Digest& d) override { return inner_.remove(d); }
  Result<void> list(const std::function<void(const Digest&, uint64_t)>& fn) override {
    return inner_.list(fn);
  }
  Result<void> create_record(std::string_view n, std::string_view v) override {
    return inner_.create_record(n, v);
  }
  Result<void> put_record(std::string_view n, std::string_view v) override {
    return inner_.put_record(n, v);
  }
  Result<std::string> get_record(std::string_view n) override { return inner_.get_record(n); }
  Result<bool> remove_record(std::string_view n) override { return inner_.remove_record(n); }

 protected:
  store::BlobStore& inner_;
};

}  // namespace rtenv::testing
