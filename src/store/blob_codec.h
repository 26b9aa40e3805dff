#pragma once
// How a blob travels to and from a network store: compressed with zstd where that pays.
// Local directories store blobs as they are: compressing there costs more time than it saves.
//
// The encoded form is one tag byte (0 = raw, 1 = zstd) and the payload (the blob, or one zstd
// frame of it). Small blobs are encoded whole in memory (encode_blob, decode_blob); blobs the
// size of files go through the streaming classes below, which hold a few hundred KiB whatever
// the blob's size and hash the blob's own bytes on the way.

#include <sys/types.h>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "store/blob_store.h"
#include "util/digest.h"
#include "util/result.h"

struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

namespace rtenv::store {

namespace fs = std::filesystem;

inline constexpr size_t kMinCompressBytes = 512;
/// How much of a blob is compressed on trial to decide whether compressing it pays.
inline constexpr size_t kSampleBytes = 64 * 1024;

/// Encodes a blob for transfer: one tag byte (0 = raw, 1 = zstd frame) and the payload.
/// Compresses only when it pays: the blob is at least kMinCompressBytes and a sample of it
/// compresses to at most 90% (so already-compressed data, such as wheels and images, is sent
/// raw without spending a full compression on it).
std::string encode_blob(std::string_view data, int level = 3);

/// Decodes encode_blob's output. kCorrupt on an unknown tag or a bad zstd frame.
Result<std::string> decode_blob(std::string_view wire);

/// Whether a blob of `size` bytes that starts with `sample` (its first kSampleBytes, or all of
/// it) is sent compressed: encode_blob's rule.
bool worth_compressing(std::string_view sample, uint64_t size);

/// Encodes a blob given in chunks into the form encode_blob produces (one zstd frame with the
/// blob's size in its header when compressing, so decode_blob reads it too).
/// One thread at a time.
class BlobEncoder {
 public:
  /// `compress`: a zstd frame at `level` of a blob of exactly `size` bytes; otherwise raw.
  BlobEncoder(bool compress, uint64_t size, int level = 3);
  ~BlobEncoder();
  BlobEncoder(const BlobEncoder&) = delete;
  BlobEncoder& operator=(const BlobEncoder&) = delete;

  /// Appends the encoding of the blob's next bytes to `out`. kCorrupt if the blob grows past
  /// the size given (a file that changed while it was read).
  Result<void> update(std::string_view raw, std::string* out);
  /// Appends the end of the encoding (the rest of the frame). kCorrupt if fewer bytes than the
  /// size given came.
  Result<void> finish(std::string* out);
  /// Starts a new encoding of the same blob (a retried transfer).
  void reset();
  bool compressed() const { return cctx_ != nullptr; }

 private:
  ZSTD_CCtx_s* cctx_ = nullptr;
  uint64_t size_;
  bool tag_written_ = false;
};

/// Decodes an encoded blob that arrives in chunks, refusing what would decode to more than
/// `max_bytes` (kTooLarge) and zstd frames that need a window over 16 MiB (kCorrupt): the
/// encoded form comes from a network peer, which is not trusted with memory or disk.
/// One thread at a time.
class BlobDecoder {
 public:
  explicit BlobDecoder(uint64_t max_bytes);
  ~BlobDecoder();
  BlobDecoder(const BlobDecoder&) = delete;
  BlobDecoder& operator=(const BlobDecoder&) = delete;

  /// Decodes the next chunk of the encoded form, handing the blob's bytes to `sink`. kCorrupt
  /// on an unknown tag or a bad frame.
  Result<void> update(std::string_view wire, const ChunkSink& sink);
  /// kCorrupt unless the encoded form ended where a blob ends (a tag, and a whole frame).
  Result<void> finish() const;
  /// Starts over (a retried transfer).
  void reset();
  uint64_t decoded_bytes() const { return decoded_; }

 private:
  ZSTD_DCtx_s* dctx_ = nullptr;
  uint64_t max_bytes_;
  uint64_t decoded_ = 0;
  int tag_ = -1;                 ///< -1 until the first byte came
  bool frame_complete_ = false;  ///< the last zstd call ended a frame
  std::unique_ptr<char[]> out_;  ///< the decompressor's output buffer
  size_t out_size_ = 0;
};

/// The encoded form of a regular file, produced as the file is read (a few hundred KiB held,
/// whatever its size). Its bytes are hashed on the way and the last of the encoded form is only
/// handed out once they hash to the expected digest, so a receiver never gets a whole body of
/// content that does not match its name. One thread at a time.
class EncodedFileReader {
 public:
  /// Opens `path` (no symlink) and decides from its first bytes whether to compress it.
  /// Without `expected`, nothing is hashed or checked (a server sending what it keeps, which
  /// every client verifies).
  static Result<std::unique_ptr<EncodedFileReader>> open(const fs::path& path,
                                                         std::optional<Digest> expected,
                                                         int level = 3);
  ~EncodedFileReader();

  /// Up to `n` bytes of the encoded form into `out`; 0 once it has all been read.
  /// content_mismatch (kCorrupt) instead of its last bytes if the file's bytes do not hash to
  /// the expected digest (the file changed since it was hashed); kIo if it cannot be read.
  Result<size_t> read(char* out, size_t n);
  /// Starts again at the first byte (a retried transfer).
  Result<void> rewind();
  /// Reads the whole encoded form once to measure it, then rewinds: its size, and its SHA-256
  /// when `hash` (what an S3 request is signed with). The file is verified on the way.
  struct Measure {
    uint64_t bytes = 0;
    Digest sha256;
  };
  Result<Measure> measure(bool hash);

  bool compressed() const { return encoder_.compressed(); }
  /// The file's size when it was opened.
  uint64_t file_size() const { return size_; }
  /// The size of the encoded form when it is known without reading it (raw: one more byte than
  /// the file); 0 otherwise.
  uint64_t known_encoded_size() const { return compressed() ? 0 : size_ + 1; }

 private:
  EncodedFileReader(int fd, fs::path path, std::optional<Digest> expected, uint64_t size,
                    bool compress, int level);
  /// Reads the next chunk of the file into pending_ (encoded).
  Result<void> fill();
  /// The error for a file that is not what it was when opened.
  Error changed();

  int fd_;
  fs::path path_;
  std::optional<Digest> expected_;
  uint64_t size_;
  BlobEncoder encoder_;
  Sha256 sha_;
  std::string pending_;  ///< encoded bytes not handed out yet
  size_t pending_at_ = 0;
  uint64_t read_ = 0;  ///< file bytes read so far
  bool done_ = false;  ///< the file was read to its end and verified
  std::unique_ptr<char[]> chunk_;
};

/// Writes an encoded blob, as it arrives, decoded into the new file `dest` (created with `mode`;
/// kAlreadyExists if it exists), hashing it on the way. finish() checks the digest; on any error
/// the caller calls discard(), which removes the file. One thread at a time.
class DecodedFileWriter {
 public:
  /// `source` names where the blob comes from in errors ("store s3://...").
  DecodedFileWriter(const Digest& digest, fs::path dest, mode_t mode, uint64_t max_bytes,
                    std::string source);
  ~DecodedFileWriter();
  DecodedFileWriter(const DecodedFileWriter&) = delete;
  DecodedFileWriter& operator=(const DecodedFileWriter&) = delete;

  /// Creates the file (the first time) or empties it: what an earlier attempt wrote is dropped.
  Result<void> restart();
  /// The next chunk of the encoded form. kCorrupt ("blob <digest> from <source> is corrupt")
  /// if it does not decode.
  Result<void> write(std::string_view wire);
  /// Ends the blob: kCorrupt if the encoded form is cut short or its content does not hash to
  /// the digest, kIo if the file cannot be written. The file then has `mode`.
  Result<void> finish();
  /// Removes the file if this writer created it.
  void discard();

 private:
  /// kCorrupt errors of the decoder, naming the blob and its source.
  Error corrupt(const Error& why) const;

  Digest digest_;
  fs::path dest_;
  mode_t mode_;
  std::string source_;
  BlobDecoder decoder_;
  Sha256 sha_;
  int fd_ = -1;
  bool created_ = false;
  std::string buffered_;  ///< decoded bytes not written yet (writes go out in large pieces)
};

}  // namespace rtenv::store
