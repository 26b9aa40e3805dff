// blob_codec: the whole-blob encoding and its streaming forms, which must read each other.

#include "store/blob_codec.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "testing/noise.h"
#include "testing/temp_dir.h"
#include "util/fs.h"

namespace rtenv::store {
namespace {

using testing::noise;

std::string text(size_t n) {
  std::string out;
  while (out.size() < n) out += "line " + std::to_string(out.size() % 977) + " of a text file\n";
  out.resize(n);
  return out;
}

// Decodes `wire` with BlobDecoder, fed in pieces of `piece` bytes.
Result<std::string> stream_decode(std::string_view wire, size_t piece, uint64_t max_bytes) {
  BlobDecoder decoder(max_bytes);
  std::string out;
  for (size_t at = 0; at < wire.size(); at += piece) {
    RTENV_TRY(decoder.update(wire.substr(at, piece), [&](std::string_view b) -> Result<void> {
      out.append(b);
      return ok_result();
    }));
  }
  RTENV_TRY(decoder.finish());
  return out;
}

// Reads an EncodedFileReader to its end in pieces of `piece` bytes.
Result<std::string> read_all(EncodedFileReader& reader, size_t piece) {
  std::string out, buf(piece, '\0');
  for (;;) {
    RTENV_ASSIGN_OR_RETURN(size_t n, reader.read(buf.data(), buf.size()));
    if (n == 0) return out;
    out.append(buf, 0, n);
  }
}

TEST(BlobCodecTest, StreamedEncodingIsReadByBothDecoders) {
  for (const std::string& blob : {std::string(), std::string("tiny"), text(3 << 20),
                                  noise(700 << 10, 1), std::string(5 << 20, '\0')}) {
    bool compress = worth_compressing(blob, blob.size());
    BlobEncoder encoder(compress, blob.size());
    std::string wire;
    for (size_t at = 0; at < blob.size(); at += 100000) {
      ASSERT_TRUE(encoder.update(std::string_view(blob).substr(at, 100000), &wire).ok());
    }
    ASSERT_TRUE(encoder.finish(&wire).ok());
    EXPECT_EQ(wire[0], compress ? 1 : 0);
    if (compress) {
      EXPECT_LT(wire.size(), blob.size() / 4);
    }
    auto whole = decode_blob(wire);
    ASSERT_TRUE(whole.ok()) << whole.error().message();
    EXPECT_TRUE(*whole == blob);
    for (size_t piece : {size_t{1}, size_t{4096}, size_t{1} << 20}) {
      if (piece == 1 && wire.size() > 100000) continue;
      auto streamed = stream_decode(wire, piece, blob.size());
      ASSERT_TRUE(streamed.ok()) << streamed.error().message();
      EXPECT_TRUE(*streamed == blob);
    }
    // And the whole-blob encoding through the streaming decoder.
    auto back = stream_decode(encode_blob(blob), 65536, blob.size());
    ASSERT_TRUE(back.ok());
    EXPECT_TRUE(*back == blob);
  }
}

TEST(BlobCodecTest, TheEncoderRefusesABlobOfAnotherSize) {
  std::string blob = text(1 << 20);
  BlobEncoder longer(true, blob.size() - 10);
  std::string wire;
  EXPECT_EQ(longer.update(blob, &wire).error().code(), ErrorCode::kCorrupt);
  BlobEncoder shorter(true, blob.size() + 10);
  ASSERT_TRUE(shorter.update(blob, &wire).ok());
  EXPECT_EQ(shorter.finish(&wire).error().code(), ErrorCode::kCorrupt);
}

TEST(BlobCodecTest, TheDecoderTrustsNothingItIsSent) {
  std::string zeros(4 << 20, '\0');
  std::string wire = encode_blob(zeros);
  ASSERT_EQ(wire[0], 1);
  // More than it may decode to: refused as it goes, not after.
  auto big = stream_decode(wire, 4096, 1 << 20);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), ErrorCode::kTooLarge);
  // Cut short, an unknown tag, nothing at all, garbage in a frame.
  EXPECT_EQ(stream_decode(wire.substr(0, wire.size() - 3), 4096, 8 << 20).error().code(),
            ErrorCode::kCorrupt);
  EXPECT_EQ(stream_decode("\x07junk", 4096, 100).error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(stream_decode("", 4096, 100).error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(stream_decode(std::string("\x01garbage garbage", 16), 4096, 100).error().code(),
            ErrorCode::kCorrupt);
  // A raw blob: what follows the tag is the blob, bounded too.
  EXPECT_EQ(stream_decode(std::string("\x00", 1) + std::string(101, 'x'), 7, 100).error().code(),
            ErrorCode::kTooLarge);
  // The whole-blob decoder does not allocate what a lying frame header claims.
  std::string lie = wire.substr(0, 20);
  EXPECT_EQ(decode_blob(lie).error().code(), ErrorCode::kCorrupt);
}

TEST(BlobCodecTest, AFileIsEncodedAsItIsRead) {
  testing::TempDir tmp;
  for (const std::string& blob : {text(3 << 20), noise(3 << 20, 2), std::string()}) {
    fs::path file = tmp.write("f", blob);
    auto reader = EncodedFileReader::open(file, Digest::of(blob));
    ASSERT_TRUE(reader.ok()) << reader.error().message();
    EXPECT_EQ((*reader)->file_size(), blob.size());
    auto measured = (*reader)->measure(true);
    ASSERT_TRUE(measured.ok()) << measured.error().message();
    auto wire = read_all(**reader, 100000);
    ASSERT_TRUE(wire.ok()) << wire.error().message();
    EXPECT_EQ(measured->bytes, wire->size());
    EXPECT_EQ(measured->sha256, Digest::of(*wire));
    if (!(*reader)->compressed()) {
      EXPECT_EQ((*reader)->known_encoded_size(), wire->size());
    }
    EXPECT_TRUE(*decode_blob(*wire) == blob);
    // Again from the start (a retried transfer), the same bytes.
    ASSERT_TRUE((*reader)->rewind().ok());
    EXPECT_TRUE(*read_all(**reader, 7777) == *wire);
    fs::remove(file);
  }
}

TEST(BlobCodecTest, AFileThatIsNotItsDigestNeverGivesItsLastBytes) {
  testing::TempDir tmp;
  std::string blob = noise(2 << 20, 3);
  fs::path file = tmp.write("f", blob);
  Digest claimed = Digest::of("something else");
  auto reader = EncodedFileReader::open(file, claimed);
  ASSERT_TRUE(reader.ok());
  std::string got, buf(65536, '\0');
  Result<size_t> n = size_t{0};
  for (;;) {
    n = (*reader)->read(buf.data(), buf.size());
    if (!n || *n == 0) break;
    got.append(buf, 0, *n);
  }
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(n.error().message().find(claimed.hex()), std::string::npos) << n.error().message();
  EXPECT_LT(got.size(), blob.size() + 1) << "the whole encoded form was handed out";
  // Without a digest to check (the server sending what it keeps), it is all read.
  auto unchecked = EncodedFileReader::open(file, std::nullopt);
  ASSERT_TRUE(unchecked.ok());
  EXPECT_TRUE(*decode_blob(*read_all(**unchecked, 65536)) == blob);
  // A symlink is not followed, a directory is not a file.
  fs::create_symlink(file, tmp / "link");
  EXPECT_FALSE(EncodedFileReader::open(tmp / "link", claimed).ok());
  EXPECT_FALSE(EncodedFileReader::open(tmp.path(), claimed).ok());
}

TEST(BlobCodecTest, ADecodedFileIsCheckedAndNeverReplacesOne) {
  testing::TempDir tmp;
  std::string blob = text(2 << 20);
  std::string wire = encode_blob(blob);
  {
    DecodedFileWriter writer(Digest::of(blob), tmp / "out", 0640, 100 << 20, "the test");
    ASSERT_TRUE(writer.restart().ok());
    ASSERT_TRUE(writer.write(wire.substr(0, 1000)).ok());
    // A retried transfer starts over.
    ASSERT_TRUE(writer.restart().ok());
    for (size_t at = 0; at < wire.size(); at += 5000) {
      ASSERT_TRUE(writer.write(std::string_view(wire).substr(at, 5000)).ok());
    }
    ASSERT_TRUE(writer.finish().ok());
  }
  EXPECT_TRUE(*read_file(tmp / "out") == blob);
  struct stat st;
  ASSERT_EQ(::stat((tmp / "out").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  {
    DecodedFileWriter writer(Digest::of(blob), tmp / "out", 0640, 100 << 20, "the test");
    EXPECT_EQ(writer.restart().error().code(), ErrorCode::kAlreadyExists);
    writer.discard();
    EXPECT_TRUE(fs::exists(tmp / "out")) << "a file it did not create is not removed";
  }
  {
    DecodedFileWriter writer(Digest::of("other"), tmp / "wrong", 0644, 100 << 20, "the test");
    ASSERT_TRUE(writer.write(wire).ok());
    auto r = writer.finish();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
    writer.discard();
    EXPECT_FALSE(fs::exists(tmp / "wrong"));
  }
}

}  // namespace
}  // namespace rtenv::store
