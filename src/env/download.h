#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "util/result.h"

namespace rtenv::env {

/// Downloads `url` (http:// or https://) into the new file `dest`. Retries connection failures,
/// timeouts and HTTP 5xx up to 3 times with backoff (kUnavailable / kTimeout after that); HTTP
/// 4xx is permanent (kNotFound for 404, "...: not found (HTTP 404)"). More than `max_bytes` is
/// kTooLarge. CA certificates: the system's, or the file `ca_bundle` (the config's ca_bundle) when
/// not empty. On error `dest` is removed.
Result<void> download(const std::string& url, const std::filesystem::path& dest, uint64_t max_bytes,
                      const std::string& ca_bundle = {});

}  // namespace rtenv::env
