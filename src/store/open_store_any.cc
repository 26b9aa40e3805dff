#include "store/open_store_any.h"

#include "store/http_store.h"
#include "store/s3_store.h"

namespace rtenv::store {

Result<S3Settings> s3_settings_for(const StoreOptions& options) {
  RTENV_ASSIGN_OR_RETURN(S3Settings settings, S3Settings::from_environment());
  if (!options.s3_endpoint.empty()) settings.endpoint = options.s3_endpoint;
  settings.ca_bundle = options.ca_bundle;
  if (options.s3_touch_interval_ms > 0) settings.touch_interval_ms = options.s3_touch_interval_ms;
  return settings;
}

Result<std::unique_ptr<BlobStore>> open_store_any(std::string_view url,
                                                  const StoreOptions& options) {
  if (url.starts_with("s3://")) {
    RTENV_ASSIGN_OR_RETURN(S3Settings settings, s3_settings_for(options));
    RTENV_ASSIGN_OR_RETURN(auto store, S3Store::open(url, std::move(settings)));
    return std::unique_ptr<BlobStore>(std::move(store));
  }
  if (is_http_store_url(url)) {
    HttpStoreSettings settings;
    settings.token = options.token;
    settings.ca_bundle = options.ca_bundle;
    RTENV_ASSIGN_OR_RETURN(auto store, HttpStore::open(url, std::move(settings)));
    return std::unique_ptr<BlobStore>(std::move(store));
  }
  return open_store(url);
}

}  // namespace rtenv::store
