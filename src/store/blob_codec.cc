#include "store/blob_codec.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>

#include <zstd.h>

#include "store/blob_store.h"
#include "util/fs.h"

namespace rtenv::store {
namespace {
constexpr char kRaw = 0;
constexpr char kZstd = 1;
/// Files are read in pieces of this size.
constexpr size_t kFileChunk = 256 * 1024;
/// Decoded bytes are written to a file in pieces of about this size.
constexpr size_t kWriteChunk = 256 * 1024;
/// The largest zstd window a decoder accepts (2^24 = 16 MiB): our encoder's level-3 frames use
/// at most 2 MiB, and a peer must not make us allocate more than a few MiB per transfer.
constexpr int kMaxWindowLog = 24;

std::string compress(std::string_view data, int level) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  if (ZSTD_isError(n)) return {};
  out.resize(n);
  return out;
}
}  // namespace

bool worth_compressing(std::string_view sample, uint64_t size) {
  if (size < kMinCompressBytes) return false;
  sample = sample.substr(0, kSampleBytes);
  std::string probe = compress(sample, 1);
  return !probe.empty() && probe.size() * 10 <= sample.size() * 9;
}

std::string encode_blob(std::string_view data, int level) {
  std::string compressed;
  if (worth_compressing(data, data.size())) {
    compressed = compress(data, level);
  }
  std::string out;
  if (!compressed.empty() && compressed.size() < data.size()) {
    out.reserve(compressed.size() + 1);
    out.push_back(kZstd);
    out.append(compressed);
  } else {
    out.reserve(data.size() + 1);
    out.push_back(kRaw);
    out.append(data);
  }
  return out;
}

Result<std::string> decode_blob(std::string_view wire) {
  if (wire.empty()) return Error(ErrorCode::kCorrupt, "blob transfer is empty (no tag byte)");
  std::string_view payload = wire.substr(1);
  if (wire[0] == kRaw) return std::string(payload);
  if (wire[0] != kZstd) {
    return make_error(ErrorCode::kCorrupt, "blob transfer has unknown tag {}",
                      static_cast<int>(wire[0]));
  }
  unsigned long long size = ZSTD_getFrameContentSize(payload.data(), payload.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
    return Error(ErrorCode::kCorrupt, "blob transfer is not a valid zstd frame");
  }
  // A frame cannot expand by more than this (zstd's maximum ratio is far below it): a header
  // claiming more is a lie, which must not become an allocation.
  if (size > payload.size() * 32768 + 65536) {
    return Error(ErrorCode::kCorrupt, "blob transfer's zstd frame claims an impossible size");
  }
  std::string out(size, '\0');
  size_t n = ZSTD_decompress(out.data(), out.size(), payload.data(), payload.size());
  if (ZSTD_isError(n) || n != size) {
    return make_error(ErrorCode::kCorrupt, "blob transfer does not decompress: {}",
                      ZSTD_getErrorName(n));
  }
  return out;
}

// ---- BlobEncoder ----------------------------------------------------------------------------

BlobEncoder::BlobEncoder(bool compress, uint64_t size, int level) : size_(size) {
  if (!compress) return;
  cctx_ = ZSTD_createCCtx();
  if (cctx_) ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level);
  reset();
}

BlobEncoder::~BlobEncoder() {
  if (cctx_) ZSTD_freeCCtx(cctx_);
}

void BlobEncoder::reset() {
  tag_written_ = false;
  if (!cctx_) return;
  ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_only);
  ZSTD_CCtx_setPledgedSrcSize(cctx_, size_);
}

namespace {
// Runs the compressor over `in` (or ends the frame) until it has taken everything (or, ending,
// flushed everything), appending its output to `out`.
Result<void> compress_into(ZSTD_CCtx* cctx, std::string_view in, ZSTD_EndDirective mode,
                           std::string* out) {
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  for (;;) {
    size_t room = ZSTD_CStreamOutSize();
    size_t at = out->size();
    out->resize(at + room);
    ZSTD_outBuffer output{out->data() + at, room, 0};
    size_t left = ZSTD_compressStream2(cctx, &output, &input, mode);
    out->resize(at + output.pos);
    if (ZSTD_isError(left)) {
      return make_error(ErrorCode::kCorrupt,
                        "cannot compress the blob: {} (did its file change while it was read?)",
                        ZSTD_getErrorName(left));
    }
    bool taken = input.pos == input.size;
    if (mode == ZSTD_e_continue ? taken : left == 0) return ok_result();
  }
}
}  // namespace

Result<void> BlobEncoder::update(std::string_view raw, std::string* out) {
  if (!tag_written_) {
    out->push_back(cctx_ ? kZstd : kRaw);
    tag_written_ = true;
  }
  if (!cctx_) {
    out->append(raw);
    return ok_result();
  }
  return compress_into(cctx_, raw, ZSTD_e_continue, out);
}

Result<void> BlobEncoder::finish(std::string* out) {
  if (!tag_written_) RTENV_TRY(update({}, out));
  if (!cctx_) return ok_result();
  return compress_into(cctx_, {}, ZSTD_e_end, out);
}

// ---- BlobDecoder ----------------------------------------------------------------------------

BlobDecoder::BlobDecoder(uint64_t max_bytes) : max_bytes_(max_bytes) {}

BlobDecoder::~BlobDecoder() {
  if (dctx_) ZSTD_freeDCtx(dctx_);
}

void BlobDecoder::reset() {
  decoded_ = 0;
  tag_ = -1;
  frame_complete_ = false;
  if (dctx_) ZSTD_DCtx_reset(dctx_, ZSTD_reset_session_only);
}

Result<void> BlobDecoder::update(std::string_view wire, const ChunkSink& sink) {
  if (wire.empty()) return ok_result();
  if (tag_ < 0) {
    tag_ = static_cast<unsigned char>(wire[0]);
    wire.remove_prefix(1);
    if (tag_ != kRaw && tag_ != kZstd) {
      return make_error(ErrorCode::kCorrupt, "blob transfer has unknown tag {}", tag_);
    }
    if (tag_ == kZstd && !dctx_) {
      dctx_ = ZSTD_createDCtx();
      if (!dctx_) return Error(ErrorCode::kInternal, "ZSTD_createDCtx failed");
      ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, kMaxWindowLog);
      out_size_ = ZSTD_DStreamOutSize();
      out_.reset(new char[out_size_]);
    }
  }
  auto give = [&](std::string_view bytes) -> Result<void> {
    if (bytes.size() > max_bytes_ - std::min(decoded_, max_bytes_)) {
      return make_error(ErrorCode::kTooLarge, "the blob is larger than the limit of {} bytes",
                        max_bytes_);
    }
    decoded_ += bytes.size();
    return bytes.empty() ? ok_result() : sink(bytes);
  };
  if (tag_ == kRaw) return give(wire);
  ZSTD_inBuffer input{wire.data(), wire.size(), 0};
  for (;;) {
    ZSTD_outBuffer output{out_.get(), out_size_, 0};
    size_t rc = ZSTD_decompressStream(dctx_, &output, &input);
    if (ZSTD_isError(rc)) {
      return make_error(ErrorCode::kCorrupt, "blob transfer does not decompress: {}",
                        ZSTD_getErrorName(rc));
    }
    RTENV_TRY(give(std::string_view(out_.get(), output.pos)));
    // 0: a frame ended and all of it was handed out. (Called again with no input, zstd would
    // start waiting for the next frame's header: so stop there.)
    frame_complete_ = rc == 0;
    bool flushed = output.pos < output.size;
    if (input.pos == input.size && (frame_complete_ || flushed)) return ok_result();
  }
}

Result<void> BlobDecoder::finish() const {
  if (tag_ < 0) return Error(ErrorCode::kCorrupt, "blob transfer is empty (no tag byte)");
  if (tag_ == kZstd && !frame_complete_) {
    return Error(ErrorCode::kCorrupt, "blob transfer ends inside its zstd frame");
  }
  return ok_result();
}

// ---- EncodedFileReader ----------------------------------------------------------------------

Result<std::unique_ptr<EncodedFileReader>> EncodedFileReader::open(const fs::path& path,
                                                                   std::optional<Digest> expected,
                                                                   int level) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return io_error("cannot open", path, errno);
  UniqueFd owner(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return io_error("cannot stat", path, errno);
  if (!S_ISREG(st.st_mode)) {
    return make_error(ErrorCode::kInvalidArgument, "{} is not a regular file", path.string());
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  std::string sample(std::min<uint64_t>(size, kSampleBytes), '\0');
  size_t got = 0;
  while (got < sample.size()) {
    ssize_t n = ::pread(fd, sample.data() + got, sample.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("cannot read", path, errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  sample.resize(got);
  bool compress = worth_compressing(sample, size);
  return std::unique_ptr<EncodedFileReader>(
      new EncodedFileReader(owner.release(), path, expected, size, compress, level));
}

EncodedFileReader::EncodedFileReader(int fd, fs::path path, std::optional<Digest> expected,
                                     uint64_t size, bool compress, int level)
    : fd_(fd),
      path_(std::move(path)),
      expected_(expected),
      size_(size),
      encoder_(compress, size, level),
      chunk_(new char[kFileChunk]) {}

EncodedFileReader::~EncodedFileReader() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> EncodedFileReader::rewind() {
  if (::lseek(fd_, 0, SEEK_SET) != 0) return io_error("cannot seek in", path_, errno);
  encoder_.reset();
  (void)sha_.finish();  // resets it
  pending_.clear();
  pending_at_ = 0;
  read_ = 0;
  done_ = false;
  return ok_result();
}

Result<void> EncodedFileReader::fill() {
  pending_.clear();
  pending_at_ = 0;
  ssize_t n;
  do {
    n = ::read(fd_, chunk_.get(), kFileChunk);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return io_error("cannot read", path_, errno);
  std::string_view chunk(chunk_.get(), static_cast<size_t>(n));
  read_ += chunk.size();
  if (expected_) sha_.update(chunk);
  // Past the size it had: it grew, and must not be sent (the encoder would also refuse it).
  if (read_ > size_) return changed();
  RTENV_TRY(encoder_.update(chunk, &pending_));
  if (n > 0 && read_ < size_) return ok_result();
  if (n > 0) {
    // Exactly its size: the end, unless it grew (one more read tells).
    char extra;
    ssize_t more;
    do {
      more = ::read(fd_, &extra, 1);
    } while (more < 0 && errno == EINTR);
    if (more < 0) return io_error("cannot read", path_, errno);
    if (more > 0) {
      if (expected_) sha_.update(&extra, 1);
      return changed();
    }
  }
  // The end of the file: its last bytes go out only if it is what it was said to be.
  if (read_ != size_) return changed();
  if (expected_) {
    Digest actual = sha_.finish();
    if (actual != *expected_) return content_mismatch(*expected_, actual, path_.string());
  }
  RTENV_TRY(encoder_.finish(&pending_));
  done_ = true;
  return ok_result();
}

Error EncodedFileReader::changed() {
  if (expected_) return content_mismatch(*expected_, sha_.finish(), path_.string());
  return make_error(ErrorCode::kCorrupt, "{} changed size while it was read", path_.string());
}

Result<size_t> EncodedFileReader::read(char* out, size_t n) {
  while (pending_at_ == pending_.size() && !done_) RTENV_TRY(fill());
  size_t take = std::min(n, pending_.size() - pending_at_);
  std::copy_n(pending_.data() + pending_at_, take, out);
  pending_at_ += take;
  return take;
}

Result<EncodedFileReader::Measure> EncodedFileReader::measure(bool hash) {
  RTENV_TRY(rewind());
  Measure m;
  Sha256 wire_sha;
  std::unique_ptr<char[]> buf(new char[kFileChunk]);
  for (;;) {
    RTENV_ASSIGN_OR_RETURN(size_t n, read(buf.get(), kFileChunk));
    if (n == 0) break;
    m.bytes += n;
    if (hash) wire_sha.update(buf.get(), n);
  }
  if (hash) m.sha256 = wire_sha.finish();
  RTENV_TRY(rewind());
  return m;
}

// ---- DecodedFileWriter ----------------------------------------------------------------------

DecodedFileWriter::DecodedFileWriter(const Digest& digest, fs::path dest, mode_t mode,
                                     uint64_t max_bytes, std::string source)
    : digest_(digest),
      dest_(std::move(dest)),
      mode_(mode),
      source_(std::move(source)),
      decoder_(max_bytes) {}

Error DecodedFileWriter::corrupt(const Error& why) const {
  if (why.code() != ErrorCode::kCorrupt) return why;
  return make_error(ErrorCode::kCorrupt, "blob {} from {} is corrupt ({})", digest_.hex(), source_,
                    why.message());
}

DecodedFileWriter::~DecodedFileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> DecodedFileWriter::restart() {
  if (fd_ < 0) {
    // Never replaces a file: `dest` must be new.
    fd_ = ::open(dest_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_);
    if (fd_ < 0) {
      if (errno == EEXIST) {
        return make_error(ErrorCode::kAlreadyExists, "{} exists already", dest_.string());
      }
      return io_error("cannot create", dest_, errno);
    }
    created_ = true;
  } else if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0) {
    return io_error("cannot write", dest_, errno);
  }
  decoder_.reset();
  (void)sha_.finish();
  buffered_.clear();
  return ok_result();
}

Result<void> DecodedFileWriter::write(std::string_view wire) {
  if (fd_ < 0) RTENV_TRY(restart());
  auto r = decoder_.update(wire, [&](std::string_view bytes) -> Result<void> {
    sha_.update(bytes);
    buffered_.append(bytes);
    if (buffered_.size() < kWriteChunk) return ok_result();
    RTENV_TRY(write_all(fd_, buffered_, dest_));
    buffered_.clear();
    return ok_result();
  });
  if (!r) return corrupt(r.error());
  return ok_result();
}

Result<void> DecodedFileWriter::finish() {
  if (fd_ < 0) RTENV_TRY(restart());
  if (auto r = decoder_.finish(); !r) return corrupt(r.error());
  RTENV_TRY(write_all(fd_, buffered_, dest_));
  buffered_.clear();
  Digest actual = sha_.finish();
  if (actual != digest_) {
    return corrupt(make_error(ErrorCode::kCorrupt, "its content hashes to {}", actual.hex()));
  }
  ::fchmod(fd_, mode_);  // the umask may have narrowed it
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return io_error("cannot write", dest_, errno);
  return ok_result();
}

void DecodedFileWriter::discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (created_) ::unlink(dest_.c_str());
  created_ = false;
}

}  // namespace rtenv::store
