#pragma once
// Opening a store from its URL with every backend there is: the network ones as well as the
// directory stores of open_store. In the network library (rtenv_store_net); the lean rtenv front,
// which has no libcurl, calls open_store instead.

#include <memory>
#include <string_view>

#include "store/blob_store.h"

namespace rtenv::store {

/// Opens `url`: `s3://bucket[/prefix]` as an S3Store and `http(s)://host[:port][/base]` as an
/// HttpStore (each with its settings from the environment; see their open()), anything else
/// through open_store (a directory or file://; kUnsupported for another scheme). A network store
/// makes no request here: a server that is down or refuses us shows on first use.
Result<std::unique_ptr<BlobStore>> open_store_any(std::string_view url);

}  // namespace rtenv::store
