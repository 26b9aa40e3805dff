#pragma once
// The submitting side of an image: its manifest and blobs read from where the reference points
// (an OCI layout here; a registry or an OCI archive through UploadOptions::import_image) and
// put into the store by digest, so every node reads the same bytes from the store.

#include <filesystem>
#include <functional>
#include <string>
#include <utility>

#include "env/image_ref.h"
#include "env/oci_image.h"
#include "store/blob_store.h"

namespace rtenv::env {

namespace fs = std::filesystem;

/// Where an image's documents and blobs come from. Nothing it returns is trusted: the importer
/// verifies every digest and size.
class ImageSource {
 public:
  virtual ~ImageSource() = default;
  /// The document `reference` names (a tag, or "sha256:<hex>"): its bytes (at most
  /// kMaxImageDocumentBytes) and media type ("" if the source does not say).
  virtual Result<std::pair<std::string, std::string>> document(const std::string& reference) = 0;
  /// The blob `d` names, written to the new file `dest` (at most d.size bytes).
  virtual Result<void> blob_to_file(const OciDescriptor& d, const fs::path& dest) = 0;
};

/// The blobs of an OCI image layout directory (index.json, blobs/sha256/<hex>).
class OciLayoutSource : public ImageSource {
 public:
  /// `image` names the reference in messages.
  OciLayoutSource(fs::path dir, std::string image)
      : dir_(std::move(dir)), image_(std::move(image)) {}
  Result<std::pair<std::string, std::string>> document(const std::string& reference) override;
  Result<void> blob_to_file(const OciDescriptor& d, const fs::path& dest) override;

 private:
  fs::path blob_path(const Digest& d) const;
  fs::path dir_;
  std::string image_;
};

struct ImportedImage {
  Digest manifest;           ///< the pinned manifest (for the node's platform)
  size_t blobs_fetched = 0;  ///< blobs the store did not have
  uint64_t bytes_fetched = 0;
};

/// A pinned `ref` whose manifest the store has is returned at once, `source` not asked. Else reads
/// `ref`'s manifest from `source` (an index resolved to the node's platform), and puts
/// its config and layers into `store` unless present, then the manifest itself: when the
/// manifest is in the store, so is everything it names. Every blob is checked against its digest
/// and size (kCorrupt naming the image and the digest); `tmp` holds downloads while they are
/// checked. `report` gets a line per blob fetched.
Result<ImportedImage> import_image(ImageSource& source, const ImageRef& ref,
                                   store::BlobStore& store, const fs::path& tmp,
                                   const std::function<void(const std::string&)>& report);

}  // namespace rtenv::env
