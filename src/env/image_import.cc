#include "env/image_import.h"

#include <sys/stat.h>

#include <fmt/format.h>

#include "pack/packer.h"
#include "util/fs.h"

namespace rtenv::env {

namespace {

Result<std::string> read_bounded(const fs::path& path, uint64_t max_bytes,
                                 const std::string& image) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return make_error(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                      "image {}: cannot read {}: {}", image, path.string(), errno_text());
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return make_error(ErrorCode::kCorrupt, "image {}: {} is bigger than {} bytes", image,
                      path.string(), max_bytes);
  }
  return read_file(path);
}

Result<void> check_digest(const std::string& bytes, const Digest& want, const std::string& image) {
  if (Digest::of(bytes) != want) {
    return make_error(ErrorCode::kCorrupt, "image {}: {} does not match its content; refusing it",
                      image, oci_digest(want));
  }
  return ok_result();
}

}  // namespace

fs::path OciLayoutSource::blob_path(const Digest& d) const {
  return dir_ / "blobs" / "sha256" / d.hex();
}

Result<std::pair<std::string, std::string>> OciLayoutSource::document(
    const std::string& reference) {
  if (reference.starts_with("sha256:")) {
    RTENV_ASSIGN_OR_RETURN(Digest d, parse_oci_digest(reference, "digest"));
    RTENV_ASSIGN_OR_RETURN(std::string bytes,
                           read_bounded(blob_path(d), kMaxImageDocumentBytes, image_));
    RTENV_TRY(check_digest(bytes, d, image_));
    return std::make_pair(bytes, declared_media_type(bytes));
  }
  auto index_text = read_bounded(dir_ / "index.json", kMaxImageDocumentBytes, image_);
  if (!index_text) {
    return make_error(ErrorCode::kNotFound,
                      "image {}: {} is not an OCI image layout (no index.json)", image_,
                      dir_.string());
  }
  RTENV_ASSIGN_OR_RETURN(OciIndex index,
                         parse_oci_index(*index_text, "image " + image_ + ": index.json"));
  RTENV_ASSIGN_OR_RETURN(OciDescriptor d, select_tag(index, reference, image_));
  RTENV_ASSIGN_OR_RETURN(std::string bytes,
                         read_bounded(blob_path(d.digest), kMaxImageDocumentBytes, image_));
  RTENV_TRY(check_digest(bytes, d.digest, image_));
  return std::make_pair(bytes, d.media_type.empty() ? declared_media_type(bytes) : d.media_type);
}

Result<void> OciLayoutSource::blob_to_file(const OciDescriptor& d, const fs::path& dest) {
  fs::path from = blob_path(d.digest);
  std::error_code ec;
  // A hard link when the layout is on the same file system: the store verifies what it takes.
  fs::create_hard_link(from, dest, ec);
  if (!ec) return ok_result();
  fs::copy_file(from, dest, ec);
  if (ec) {
    return make_error(
        ec == std::errc::no_such_file_or_directory ? ErrorCode::kNotFound : ErrorCode::kIo,
        "image {}: cannot read blob {}: {}", image_, oci_digest(d.digest), ec.message());
  }
  return ok_result();
}

Result<ImportedImage> import_image(ImageSource& source, const ImageRef& ref,
                                   store::BlobStore& store, const fs::path& tmp,
                                   const std::function<void(const std::string&)>& report) {
  const std::string image = ref.to_string();
  if (ref.digest) {
    // Pinned, and in the store already: the source is not asked at all (it may have moved on).
    RTENV_ASSIGN_OR_RETURN(std::vector<bool> absent, store.missing({*ref.digest}));
    if (!absent[0]) return ImportedImage{*ref.digest, 0, 0};
  }
  RTENV_ASSIGN_OR_RETURN(auto doc, source.document(ref.manifest_reference()));
  if (ref.digest) RTENV_TRY(check_digest(doc.first, *ref.digest, image));
  std::string type = doc.second.empty() ? declared_media_type(doc.first) : doc.second;
  if (is_index_type(type)) {
    RTENV_ASSIGN_OR_RETURN(OciIndex index,
                           parse_oci_index(doc.first, "image " + image + ": index"));
    RTENV_ASSIGN_OR_RETURN(OciDescriptor d, select_platform(index, node_platform(), image));
    RTENV_ASSIGN_OR_RETURN(doc, source.document(oci_digest(d.digest)));
    RTENV_TRY(check_digest(doc.first, d.digest, image));
  }
  ImportedImage out;
  out.manifest = Digest::of(doc.first);
  RTENV_ASSIGN_OR_RETURN(OciManifest manifest,
                         parse_oci_manifest(doc.first, "image " + image + ": manifest"));
  for (const auto& l : manifest.layers) {
    auto c = layer_compression(l.media_type);
    if (!c) return c.error().with_context("image " + image + ": layer " + oci_digest(l.digest));
  }
  std::vector<OciDescriptor> blobs{manifest.config};
  blobs.insert(blobs.end(), manifest.layers.begin(), manifest.layers.end());
  std::vector<Digest> digests;
  for (const auto& b : blobs) digests.push_back(b.digest);
  digests.push_back(out.manifest);
  RTENV_ASSIGN_OR_RETURN(std::vector<bool> missing, store.missing(digests));
  if (!missing.back()) return out;  // the manifest is put last: all it names is there
  RTENV_TRY(make_dirs(tmp));
  for (size_t i = 0; i < blobs.size(); ++i) {
    if (!missing[i]) continue;
    const OciDescriptor& b = blobs[i];
    fs::path file = tmp / unique_name("image-blob");
    auto fetched = source.blob_to_file(b, file);
    if (!fetched) {
      std::error_code ec;
      fs::remove(file, ec);
      return fetched.error();
    }
    std::error_code ec;
    uint64_t size = fs::file_size(file, ec);
    if (ec || size != b.size) {
      fs::remove(file, ec);
      return make_error(ErrorCode::kCorrupt,
                        "image {}: blob {} is {} bytes, and its manifest says {}; refusing it",
                        image, oci_digest(b.digest), size, b.size);
    }
    auto put = store.put_file(b.digest, file);
    fs::remove(file, ec);
    if (!put) {
      if (put.error().code() == ErrorCode::kCorrupt) {
        return make_error(ErrorCode::kCorrupt,
                          "image {}: blob {} does not match its digest; refusing it", image,
                          oci_digest(b.digest));
      }
      return put.error().with_context("image " + image + ": storing " + oci_digest(b.digest));
    }
    ++out.blobs_fetched;
    out.bytes_fetched += size;
    if (report)
      report(fmt::format("image {}: fetched {} ({})", image, oci_digest(b.digest),
                         pack::format_bytes(size)));
  }
  // A config that does not parse is refused here, not on every node.
  RTENV_ASSIGN_OR_RETURN(std::string config_text, store.get(manifest.config.digest));
  RTENV_TRY(parse_oci_config(config_text, "image " + image + ": config"));
  RTENV_TRY(store.put(out.manifest, doc.first));
  return out;
}

}  // namespace rtenv::env
