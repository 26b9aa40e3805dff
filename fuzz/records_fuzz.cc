// The parsers of the JSON records rtenv reads from a store (env/records.h) on arbitrary text.
// A record that parses must round-trip: its text, as rtenv writes it, parses to an equal value.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "env/records.h"

namespace {

template <typename Parse>
void check(std::string_view text, Parse parse, const char* what) {
  auto record = parse(text);
  if (!record) return;
  auto again = parse(rtenv::env::record_text(*record));
  if (!again || !(*again == *record)) {
    std::fprintf(stderr, "a %s record does not round-trip through its text\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check(text, rtenv::env::parse_published_venv_record, "published venv");
  check(text, rtenv::env::parse_url_record, "URL");
  check(text, rtenv::env::parse_lease_record, "build lease");
  check(text, rtenv::env::parse_node_report_record, "node report");
  return 0;
}
