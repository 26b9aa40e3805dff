#pragma once
// Opening a store from its URL with every backend there is: the network ones as well as the
// directory stores of open_store. In the network library (rtenv_store_net); the lean rtenv front,
// which has no libcurl, calls open_store instead.

#include <memory>
#include <string>
#include <string_view>

#include "store/blob_store.h"

namespace rtenv::store {

/// What the caller's configuration says about network stores (config::Config's store_token,
/// ca_bundle and s3_endpoint); every field empty: nothing of rtenv's own.
struct StoreOptions {
  std::string token;        ///< the blob server's bearer token (RTENV_STORE_TOKEN)
  std::string ca_bundle;    ///< CA certificates for https (RTENV_CA_BUNDLE); empty: the system's
  std::string s3_endpoint;  ///< over AWS_ENDPOINT_URL(_S3) (RTENV_S3_ENDPOINT); empty: those
  int64_t s3_touch_interval_ms = 0;  ///< S3Settings::touch_interval_ms (0: its default)
};

/// Opens `url`: `s3://bucket[/prefix]` as an S3Store (credentials and region as the AWS CLI
/// finds them, S3Settings::from_environment; endpoint and CA bundle from `options` when given)
/// and `http(s)://host[:port][/base]` as an HttpStore (token and CA bundle from `options`),
/// anything else through open_store (a directory or file://; kUnsupported for another scheme). A
/// network store makes no request here: a server that is down or refuses us shows on first use.
Result<std::unique_ptr<BlobStore>> open_store_any(std::string_view url,
                                                  const StoreOptions& options = {});

}  // namespace rtenv::store
