#pragma once
// How a blob travels to and from a network store: compressed with zstd where that pays.
// Local directories store blobs as they are: compressing there costs more time than it saves.

#include <string>
#include <string_view>

#include "util/result.h"

namespace rtenv::store {

/// Encodes a blob for transfer: one tag byte (0 = raw, 1 = zstd frame) and the payload.
/// Compresses only when it pays: the blob is at least kMinCompressBytes and a sample of it
/// compresses to at most 90% (so already-compressed data, such as wheels and images, is sent
/// raw without spending a full compression on it).
std::string encode_blob(std::string_view data, int level = 3);

/// Decodes encode_blob's output. kCorrupt on an unknown tag or a bad zstd frame.
Result<std::string> decode_blob(std::string_view wire);

inline constexpr size_t kMinCompressBytes = 512;

}  // namespace rtenv::store
