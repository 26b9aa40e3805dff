#include "pack/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "testing/temp_dir.h"

namespace rtenv::pack {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

struct Entry {
  std::string name;
  std::string content;   ///< a file's bytes
  std::string hardlink;  ///< set: a hard link to this name
  mode_t type = AE_IFREG;
};

Entry file(std::string name, std::string content) {
  return {std::move(name), std::move(content), "", AE_IFREG};
}
Entry hard_link(std::string name, std::string target) {
  return {std::move(name), "", std::move(target), AE_IFREG};
}

// Writes a tar compressed with `filter` (ARCHIVE_FILTER_GZIP, ...) or a zip holding `entries`.
void write_archive(const fs::path& path, bool zip, int filter, const std::vector<Entry>& entries) {
  struct archive* a = archive_write_new();
  if (zip) {
    archive_write_set_format_zip(a);
  } else {
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter(a, filter);
  }
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK) << archive_error_string(a);
  for (const Entry& e : entries) {
    struct archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.name.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, 0644);
    if (!e.hardlink.empty()) {
      archive_entry_set_hardlink(entry, e.hardlink.c_str());
      archive_entry_set_size(entry, 0);
    } else {
      archive_entry_set_size(entry, static_cast<la_int64_t>(e.content.size()));
    }
    ASSERT_EQ(archive_write_header(a, entry), ARCHIVE_OK) << archive_error_string(a);
    if (e.hardlink.empty() && !e.content.empty()) {
      archive_write_data(a, e.content.data(), e.content.size());
    }
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ArchiveFormatOf, FromTheSuffix) {
  EXPECT_EQ(archive_format_of("x.zip"), ArchiveFormat::kZip);
  EXPECT_EQ(archive_format_of("x.TAR.GZ"), ArchiveFormat::kTar);
  EXPECT_EQ(archive_format_of("x.tgz"), ArchiveFormat::kTar);
  EXPECT_EQ(archive_format_of("x.tar.xz"), ArchiveFormat::kTar);
  EXPECT_EQ(archive_format_of("x.tar.bz2"), ArchiveFormat::kTar);
  EXPECT_EQ(archive_format_of("x.tar"), ArchiveFormat::kTar);
  EXPECT_EQ(archive_format_of("x.tar.zst"), std::nullopt);
}

TEST(ExtractArchive, EveryTarFilter) {
  for (int filter :
       {ARCHIVE_FILTER_NONE, ARCHIVE_FILTER_GZIP, ARCHIVE_FILTER_XZ, ARCHIVE_FILTER_BZIP2}) {
    SCOPED_TRACE(filter);
    TempDir dir;
    write_archive(dir / "a.tar", false, filter,
                  {file("top/a.txt", "alpha"), file("top/sub/b.txt", "beta")});
    auto stats = extract_archive(dir / "a.tar", ArchiveFormat::kTar, dir / "out", 1 << 20);
    ASSERT_TRUE(stats.ok()) << stats.error().message();
    EXPECT_EQ(stats->files, 2u);
    EXPECT_EQ(read(dir / "out/top/a.txt"), "alpha");
    EXPECT_EQ(read(dir / "out/top/sub/b.txt"), "beta");
  }
}

TEST(ExtractArchive, HardLinkToAFileBeforeItIsKept) {
  TempDir dir;
  write_archive(dir / "a.tar.gz", false, ARCHIVE_FILTER_GZIP,
                {file("a.txt", "shared"), hard_link("d/b.txt", "a.txt")});
  auto stats = extract_archive(dir / "a.tar.gz", ArchiveFormat::kTar, dir / "out", 1 << 20);
  ASSERT_TRUE(stats.ok()) << stats.error().message();
  EXPECT_EQ(read(dir / "out/d/b.txt"), "shared");
  struct stat st;
  ASSERT_EQ(::stat((dir / "out/a.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
}

TEST(ExtractArchive, HostileEntriesAreRefusedAndNothingIsLeft) {
  struct Case {
    const char* what;
    std::vector<Entry> entries;
  };
  std::vector<Case> cases = {
      {"dotdot", {file("ok.txt", "ok"), file("../escaped.txt", "x")}},
      {"absolute", {file("/tmp/rtenv-archive-test-absolute", "x")}},
      {"hard link outside", {file("ok.txt", "ok"), hard_link("h", "../outside.txt")}},
      {"hard link to nothing", {hard_link("h", "missing.txt")}},
      {"hard link then a write through it",
       {file("ok.txt", "ok"), hard_link("h", "ok.txt"), file("h", "x")}},
      {"fifo", {Entry{"p", "", "", AE_IFIFO}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    TempDir dir;
    std::ofstream(dir / "outside.txt") << "original";
    write_archive(dir / "a.tar", false, ARCHIVE_FILTER_NONE, c.entries);
    auto stats = extract_archive(dir / "a.tar", ArchiveFormat::kTar, dir / "out", 1 << 20);
    ASSERT_FALSE(stats.ok());
    EXPECT_EQ(stats.error().code(), ErrorCode::kUnsafe) << stats.error().message();
    EXPECT_NE(stats.error().message().find("refusing to unpack"), std::string::npos);
    EXPECT_FALSE(fs::exists(dir / "out"));
    EXPECT_FALSE(fs::exists(dir / "escaped.txt"));
    EXPECT_FALSE(fs::exists("/tmp/rtenv-archive-test-absolute"));
    EXPECT_EQ(read(dir / "outside.txt"), "original");
  }
}

TEST(ExtractArchive, BoundedByTheLimitAndTheFormatItIsNamed) {
  TempDir dir;
  write_archive(dir / "big.tar.xz", false, ARCHIVE_FILTER_XZ,
                {file("zeros", std::string(64 << 10, '\0'))});
  auto big = extract_archive(dir / "big.tar.xz", ArchiveFormat::kTar, dir / "out", 1 << 10);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), ErrorCode::kTooLarge);
  EXPECT_FALSE(fs::exists(dir / "out"));

  write_archive(dir / "a.zip", true, 0, {file("a.txt", "alpha")});
  auto as_tar = extract_archive(dir / "a.zip", ArchiveFormat::kTar, dir / "out", 1 << 20);
  ASSERT_FALSE(as_tar.ok());
  EXPECT_EQ(as_tar.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(as_tar.error().message().find("is not a readable tar archive"), std::string::npos)
      << as_tar.error().message();
  auto as_zip = extract_archive(dir / "a.zip", ArchiveFormat::kZip, dir / "out", 1 << 20);
  ASSERT_TRUE(as_zip.ok()) << as_zip.error().message();
  EXPECT_EQ(read(dir / "out/a.txt"), "alpha");
}

TEST(ExtractLayer, ModesKeptSpecialFilesSkippedWhiteoutsLeftAsFiles) {
  TempDir dir;
  std::vector<Entry> entries = {file("bin/tool", "#!/bin/sh\n"), file("etc/.wh.gone", ""),
                                file("opq/.wh..wh..opq", ""), Entry{"dev/null", "", "", AE_IFCHR},
                                Entry{"run/fifo", "", "", AE_IFIFO}};
  for (int filter : {ARCHIVE_FILTER_NONE, ARCHIVE_FILTER_GZIP, ARCHIVE_FILTER_ZSTD}) {
    SCOPED_TRACE(filter);
    fs::path layer = dir / ("layer" + std::to_string(filter));
    write_archive(layer, false, filter, entries);
    fs::path out = dir / ("out" + std::to_string(filter));
    auto stats = extract_layer(layer, out, 1 << 20);
    ASSERT_TRUE(stats.ok()) << stats.error().message();
    EXPECT_EQ(read(out / "bin/tool"), "#!/bin/sh\n");
    EXPECT_TRUE(fs::exists(out / "etc/.wh.gone"));
    EXPECT_TRUE(fs::exists(out / "opq/.wh..wh..opq"));
    EXPECT_FALSE(fs::exists(out / "dev/null"));
    EXPECT_FALSE(fs::exists(out / "run/fifo"));
    struct stat st;
    ASSERT_EQ(::stat((out / "bin/tool").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644);
  }
}

TEST(ExtractLayer, HostileEntriesAreRefusedAndNothingIsLeft) {
  for (const auto& entries :
       std::vector<std::vector<Entry>>{{file("../escaped.txt", "x")},
                                       {file("/tmp/rtenv-layer-test-absolute", "x")},
                                       {hard_link("h", "../outside.txt")}}) {
    TempDir dir;
    std::ofstream(dir / "outside.txt") << "original";
    write_archive(dir / "l.tar", false, ARCHIVE_FILTER_GZIP, entries);
    auto stats = extract_layer(dir / "l.tar", dir / "out", 1 << 20);
    ASSERT_FALSE(stats.ok());
    EXPECT_EQ(stats.error().code(), ErrorCode::kUnsafe) << stats.error().message();
    EXPECT_FALSE(fs::exists(dir / "out"));
    EXPECT_FALSE(fs::exists(dir / "escaped.txt"));
    EXPECT_FALSE(fs::exists("/tmp/rtenv-layer-test-absolute"));
    EXPECT_EQ(read(dir / "outside.txt"), "original");
  }
}

}  // namespace
}  // namespace rtenv::pack
