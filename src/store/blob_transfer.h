#pragma once
// blob_codec's streams as libcurl's upload source and download sink: what a network store uses
// to move a file-sized blob with a few hundred KiB of memory. Network library only (it needs
// curl_http's interfaces, not libcurl itself).

#include <string>

#include "store/blob_codec.h"
#include "store/curl_http.h"

namespace rtenv::store {

/// An upload body that is a file's encoded form (EncodedFileReader), of a size measured or
/// known beforehand.
class EncodedFileSource final : public BodySource {
 public:
  EncodedFileSource(EncodedFileReader& reader, uint64_t size) : reader_(reader), size_(size) {}
  uint64_t size() const override { return size_; }
  Result<void> restart() override { return reader_.rewind(); }
  Result<size_t> read(char* out, size_t n) override { return reader_.read(out, n); }

 private:
  EncodedFileReader& reader_;
  uint64_t size_;
};

/// A download body that is an encoded blob, decoded into a new file as it arrives
/// (DecodedFileWriter).
class DecodedFileSink final : public BodySink {
 public:
  explicit DecodedFileSink(DecodedFileWriter& writer) : writer_(writer) {}
  Result<void> restart() override { return writer_.restart(); }
  Result<void> write(std::string_view chunk) override { return writer_.write(chunk); }

 private:
  DecodedFileWriter& writer_;
};

}  // namespace rtenv::store
