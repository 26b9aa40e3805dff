// The blob server's request-head parser on arbitrary bytes: what the watching thread hands it
// (the bytes before the first blank line, at most ServerOptions::max_head_bytes). A head that
// parses must be a request the handlers can rely on.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "store/http_server.h"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "a request head was accepted although %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view head(reinterpret_cast<const char*>(data), size);
  head = head.substr(0, head.find("\r\n\r\n"));
  if (head.size() > 16 * 1024) return 0;
  auto parsed = rtenv::store::http::parse_request_head(head);
  if (auto* refusal = std::get_if<rtenv::store::http::Response>(&parsed)) {
    require(refusal->status >= 400 && refusal->close, "it was refused (the refusal is wrong)");
    return 0;
  }
  const auto& req = std::get<rtenv::store::http::ParsedHead>(parsed).request;
  require(!req.method.empty(), "its method is empty");
  require(!req.path.empty() && req.path.front() == '/', "its path does not start with '/'");
  require(req.content_length <= (uint64_t{1} << 62), "its Content-Length is absurd");
  for (const auto& [name, value] : req.headers) {
    require(!name.empty(), "a header has no name");
    require(req.header(name).has_value(), "a header it kept cannot be found");
  }
  return 0;
}
