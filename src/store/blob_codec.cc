#include "store/blob_codec.h"

#include <zstd.h>

namespace rtenv::store {
namespace {
constexpr char kRaw = 0;
constexpr char kZstd = 1;
constexpr size_t kSampleBytes = 64 * 1024;

std::string compress(std::string_view data, int level) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  if (ZSTD_isError(n)) return {};
  out.resize(n);
  return out;
}
}  // namespace

std::string encode_blob(std::string_view data, int level) {
  std::string compressed;
  if (data.size() >= kMinCompressBytes) {
    std::string_view sample = data.substr(0, kSampleBytes);
    std::string probe = compress(sample, 1);
    if (!probe.empty() && probe.size() * 10 <= sample.size() * 9) {
      compressed =
          sample.size() == data.size() && level == 1 ? std::move(probe) : compress(data, level);
    }
  }
  std::string out;
  if (!compressed.empty() && compressed.size() < data.size()) {
    out.reserve(compressed.size() + 1);
    out.push_back(kZstd);
    out.append(compressed);
  } else {
    out.reserve(data.size() + 1);
    out.push_back(kRaw);
    out.append(data);
  }
  return out;
}

Result<std::string> decode_blob(std::string_view wire) {
  if (wire.empty()) return Error(ErrorCode::kCorrupt, "blob transfer is empty (no tag byte)");
  std::string_view payload = wire.substr(1);
  if (wire[0] == kRaw) return std::string(payload);
  if (wire[0] != kZstd) {
    return make_error(ErrorCode::kCorrupt, "blob transfer has unknown tag {}",
                      static_cast<int>(wire[0]));
  }
  unsigned long long size = ZSTD_getFrameContentSize(payload.data(), payload.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
    return Error(ErrorCode::kCorrupt, "blob transfer is not a valid zstd frame");
  }
  std::string out(size, '\0');
  size_t n = ZSTD_decompress(out.data(), out.size(), payload.data(), payload.size());
  if (ZSTD_isError(n) || n != size) {
    return make_error(ErrorCode::kCorrupt, "blob transfer does not decompress: {}",
                      ZSTD_getErrorName(n));
  }
  return out;
}

}  // namespace rtenv::store
