#pragma once
// Pulling images from a registry (the Docker Registry HTTP API v2, which OCI distribution
// standardizes) and reading OCI archives: the ImageSources that need libcurl or libarchive, so
// only binaries with network support link them; setup reaches them through
// UploadOptions::import_image (add_remote_sources).

#include <string>
#include <vector>

#include "env/field.h"
#include "env/image_import.h"
#include "store/curl_http.h"

namespace rtenv::env {

/// How a registry is reached.
struct RegistryAccess {
  std::vector<std::string> insecure;  ///< "host[:port]" reached over plain HTTP
  std::string auth_file;  ///< docker's config.json: {"auths": {"<host>": {"auth": base64}}}
  std::string ca_bundle;  ///< for https; empty: the system's
};

/// A repository of a registry. Manifests are asked for with every manifest and index type
/// accepted; a 401 answer's WWW-Authenticate challenge is met with the auth file's credentials
/// for the host: Basic directly, Bearer through the token service it names (scope
/// repository:<name>:pull). Errors name the image: kNotFound for an unknown manifest or blob,
/// kInvalidArgument when credentials are missing or refused,
/// kUnavailable/kTimeout when the registry does not answer (after retries).
class RegistrySource : public ImageSource {
 public:
  RegistrySource(ImageRef ref, RegistryAccess access);
  Result<std::pair<std::string, std::string>> document(const std::string& reference) override;
  Result<void> blob_to_file(const OciDescriptor& d, const fs::path& dest) override;

 private:
  Result<store::HttpResponse> get(const std::string& path, const std::vector<std::string>& headers,
                                  store::BodySink* sink);
  Result<void> authenticate(const std::string& challenge);
  std::string base_url() const;

  ImageRef ref_;
  RegistryAccess access_;
  std::string image_;
  std::string authorization_;  ///< the "Authorization: ..." header once one is known
};

/// The UploadOptions::import_image of this home: registry references through RegistrySource
/// (config insecure_registries, registry_auth_file, ca_bundle), oci-archive: files unpacked into
/// tmp/ and read as a layout, oci: layouts in place.
UploadOptions::ImportImage image_importer(const Home& home, const SetupReporter& report);

}  // namespace rtenv::env
