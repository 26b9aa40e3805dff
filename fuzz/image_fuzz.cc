// The parsers of what an image source or a registry sends (env/oci_image.h) and of image
// references (env/image_ref.h) on arbitrary text. A reference that parses must parse back from
// its text to the same reference.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "env/image_ref.h"
#include "env/oci_image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)rtenv::env::parse_oci_index(text, "index");
  (void)rtenv::env::parse_oci_manifest(text, "manifest");
  (void)rtenv::env::parse_oci_config(text, "config");
  (void)rtenv::env::declared_media_type(text);
  if (auto ref = rtenv::env::ImageRef::parse(text)) {
    auto again = rtenv::env::ImageRef::parse(ref->to_string());
    if (!again || again->to_string() != ref->to_string() || again->digest != ref->digest ||
        again->path != ref->path || again->repository != ref->repository) {
      std::fprintf(stderr, "an image reference does not round-trip through its text\n");
      std::abort();
    }
  }
  return 0;
}
