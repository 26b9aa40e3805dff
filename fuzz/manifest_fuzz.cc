// Manifest::parse on arbitrary bytes (a blob from a store). It accepts only canonical text, so
// whatever parses must serialize back to exactly the text it came from, and that text must
// parse again to the same entries.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "pack/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = rtenv::pack::Manifest::parse(text);
  (void)rtenv::pack::looks_like_manifest(text);
  if (!parsed) return 0;
  rtenv::pack::Manifest manifest = *parsed;
  const std::string serialized = manifest.serialize();
  auto again = rtenv::pack::Manifest::parse(serialized);
  if (!again) {
    std::fprintf(stderr, "a parsed manifest serializes to text that does not parse: %s\n",
                 again.error().message().c_str());
    std::abort();
  }
  if (again->entries() != manifest.entries()) {
    std::fprintf(stderr, "a manifest's serialization parses to other entries\n");
    std::abort();
  }
  if (serialized != text) {
    std::fprintf(stderr, "a non-canonical manifest was accepted; it serializes as:\n%s\n",
                 serialized.c_str());
    std::abort();
  }
  return 0;
}
