#include "pack/packer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <thread>

#include <gtest/gtest.h>

#include "pack/file_index.h"
#include "pack/walk.h"
#include "store/local_store.h"
#include "testing/forwarding_store.h"
#include "testing/temp_dir.h"
#include "util/fs.h"

namespace rtenv::pack {
namespace {

using rtenv::testing::TempDir;

class PackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(store::LocalStore::open(tmp_ / "store")).value();
    options_.index_file = tmp_ / "index" / "src.idx";
  }
  void make_tree() {
    for (const char* f : {"a.txt", "b/c.txt", "b/d/e.txt", "b/d/f.txt", "g/h.bin"}) {
      src_.write(f, std::string("content of ") + f);
    }
    src_.write("run.sh", "#!/bin/sh\necho hi\n", 0755);
    settle();
  }
  // The index trusts a file's stat info only once its ctime is older than the filesystem's
  // timestamp granularity (plus slack): let that much time pass.
  static void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(80)); }
  Result<PackResult> pack() { return pack_path(src_.path(), *store_, options_); }

  TempDir tmp_, src_;
  std::unique_ptr<store::LocalStore> store_;
  PackOptions options_;
};

TEST_F(PackerTest, FirstPackUploadsEverythingThenNothing) {
  make_tree();
  auto first = pack();
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_EQ(first->stats.files, 6u);
  EXPECT_EQ(first->stats.dirs, 3u);
  EXPECT_EQ(first->stats.files_hashed, 6u);
  // 6 distinct file blobs + 4 manifests (root, b, b/d, g).
  EXPECT_EQ(first->stats.blobs, 10u);
  EXPECT_EQ(first->stats.blobs_uploaded, 10u);

  auto again = pack();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->uri, first->uri);
  EXPECT_EQ(again->stats.files_hashed, 0u) << "unchanged files must not be read";
  EXPECT_EQ(again->stats.blobs_uploaded, 0u);
  EXPECT_EQ(again->stats.blobs_present, 10u);
}

TEST_F(PackerTest, OneChangedFileUploadsItsBlobAndTheManifestsOnItsPath) {
  make_tree();
  ASSERT_TRUE(pack().ok());
  src_.write("b/d/e.txt", "new content");
  settle();
  auto r = pack();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stats.files_hashed, 1u);
  EXPECT_EQ(r->stats.blobs_uploaded, 1u + 3u);  // the file, then b/d, b, root
}

TEST_F(PackerTest, SubtreesTheStoreHasAreNeitherQueriedNorUploaded) {
  make_tree();
  ASSERT_TRUE(pack().ok());
  // Another package that shares every directory but the root: only the new file and the new
  // root manifest travel.
  TempDir other;
  fs::copy(src_.path(), other.path(),
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  other.write("extra.txt", "only here");
  PackOptions no_index;
  auto r = pack_path(other.path(), *store_, no_index);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stats.blobs_uploaded, 2u);
  EXPECT_EQ(r->stats.blobs, 11u);  // 7 files, 4 directories
}

TEST_F(PackerTest, IdentityDependsOnContentNamesAndExecBitOnly) {
  make_tree();
  auto a = pack();
  // Same content elsewhere, other timestamps, no index: same URI.
  TempDir copy;
  for (const auto& e : fs::recursive_directory_iterator(src_.path())) {
    auto rel = fs::relative(e.path(), src_.path());
    if (e.is_directory())
      fs::create_directories(copy / rel.string());
    else
      fs::copy_file(e.path(), copy / rel.string());
  }
  PackOptions no_index;
  auto b = pack_path(copy.path(), *store_, no_index);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->uri, b->uri);
  ::chmod((copy / "a.txt").c_str(), 0755);
  EXPECT_NE(pack_path(copy.path(), *store_, no_index)->uri, a->uri) << "exec bit is content";
}

TEST_F(PackerTest, RecentlyModifiedFilesAreNotTrustedByTheIndex) {
  make_tree();
  src_.write("fresh.txt", "just written");  // mtime = now: racily clean
  ASSERT_TRUE(pack().ok());
  auto r = pack();
  EXPECT_EQ(r->stats.files_hashed, 1u) << "a file written within the timestamp slack is re-read";
}

TEST_F(PackerTest, SameSizeSameMtimeRewriteIsStillDetected) {
  make_tree();
  ASSERT_TRUE(pack().ok());
  auto p = src_.path() / "a.txt";
  auto mtime = fs::last_write_time(p);
  std::string old = testing::slurp(p);
  std::string now(old.size(), 'Z');
  src_.write("a.txt", now);
  fs::last_write_time(p, mtime);  // a job restoring mtime cannot restore ctime
  settle();
  auto r = pack();
  EXPECT_EQ(r->stats.files_hashed, 1u);
}

TEST_F(PackerTest, ExcludesGitignoreRtenvignoreAndDotGit) {
  make_tree();
  src_.write(".git/HEAD", "ref");
  src_.write(".gitignore", "*.bin\n");
  src_.write("b/.rtenvignore", "d/\n");
  options_.excludes = {"run.sh"};
  auto r = pack();
  ASSERT_TRUE(r.ok());
  // a.txt, b/c.txt, .gitignore, b/.rtenvignore
  EXPECT_EQ(r->stats.files, 4u);
}

TEST_F(PackerTest, SymlinksInsideAreKeptEscapingOnesRefused) {
  make_tree();
  fs::create_symlink("b/c.txt", src_ / "inside");
  fs::create_symlink("../d", src_ / "b/updir");  // b/../d: inside, though dangling
  auto r = pack();
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->stats.symlinks, 2u);

  fs::create_symlink("/etc/passwd", src_ / "abs");
  auto bad = pack();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kUnsafe);
  EXPECT_NE(bad.error().message().find("abs"), std::string::npos);
  EXPECT_NE(bad.error().message().find("excludes"), std::string::npos);
  options_.excludes = {"abs"};
  EXPECT_TRUE(pack().ok());
}

// A store that lets a test act between the packer's reads and writes (another process changing
// a file, another pack relying on a blob), and counts removals.
class InterposedStore : public rtenv::testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::function<void(const Digest&, const fs::path&)> before_put_file, after_put_file;
  int removes = 0;

  Result<void> put_file(const Digest& d, const fs::path& path) override {
    if (before_put_file) before_put_file(d, path);
    auto r = inner_.put_file(d, path);
    if (after_put_file) after_put_file(d, path);
    return r;
  }
  Result<bool> remove(const Digest& d) override {
    ++removes;
    return inner_.remove(d);
  }
};

TEST_F(PackerTest, AFileChangedWhilePackedFailsThePackAndRemovesNothing) {
  src_.write("big.bin", std::string(1 << 20, 'a'));
  settle();
  InterposedStore store(*store_);
  const Digest good = Digest::of(std::string(1 << 20, 'a'));
  // Another pack of another tree with the same content stores the blob and relies on it (its
  // manifest names it); then this pack's file changes right after its copy.
  store.before_put_file = [&](const Digest& d, const fs::path&) {
    if (d == good) {
      ASSERT_TRUE(store_->put(good, std::string(1 << 20, 'a')).ok());
    }
  };
  store.after_put_file = [&](const Digest& d, const fs::path& path) {
    if (d == good) src_.write(path.filename().string(), std::string(1 << 20, 'b'));
  };
  auto r = pack_path(src_.path(), store, options_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("changed while it was being packed"), std::string::npos)
      << r.error().message();
  EXPECT_EQ(store.removes, 0) << "a client never deletes from a store";
  // The blob the other pack relies on is still there, whole.
  auto kept = store_->get(good);
  ASSERT_TRUE(kept.ok()) << kept.error().message();
}

TEST_F(PackerTest, AFileRewrittenInPlaceBeforeItsCopyIsNeverStoredUnderItsOldDigest) {
  src_.write("data.bin", std::string(1 << 20, 'a'));
  settle();
  InterposedStore store(*store_);
  const Digest old_digest = Digest::of(std::string(1 << 20, 'a'));
  // Rewritten in place with the same size and mtime (as through mmap): the stat check cannot
  // see it; the store's own hashing does.
  store.before_put_file = [&](const Digest& d, const fs::path& path) {
    if (d != old_digest) return;
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    std::string other(1 << 20, 'z');
    ASSERT_EQ(::pwrite(fd, other.data(), other.size(), 0), static_cast<ssize_t>(other.size()));
    ::close(fd);
    timespec times[2] = {st.st_atim, st.st_mtim};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  };
  auto r = pack_path(src_.path(), store, options_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("changed while it was being packed"), std::string::npos)
      << r.error().message();
  auto missing = store_->missing({old_digest});
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->at(0)) << "the new content was stored under the old content's digest";
}

TEST(LinkStaysInsideTest, FollowsLinksInsideTheTree) {
  TempDir t;
  fs::create_directories(t / "s/deep");
  fs::create_symlink("..", t / "s/up");  // s/up -> root
  UniqueFd root(::open(t.path().c_str(), O_RDONLY | O_DIRECTORY));
  EXPECT_TRUE(link_stays_inside(root.get(), "", "s/deep"));
  EXPECT_TRUE(link_stays_inside(root.get(), "s", ".."));
  EXPECT_FALSE(link_stays_inside(root.get(), "", ".."));
  EXPECT_FALSE(link_stays_inside(root.get(), "", "/abs"));
  // Lexically "s/up/.." is "s", but s/up is the root, so it really is the root's parent.
  EXPECT_FALSE(link_stays_inside(root.get(), "", "s/up/.."));
  fs::create_symlink("loop", t / "loop");
  EXPECT_FALSE(link_stays_inside(root.get(), "", "loop/x"));
}

TEST_F(PackerTest, SizeLimitNamesTheLargestFiles) {
  make_tree();
  src_.write("big/blob.dat", std::string(4096, 'b'));
  options_.max_package_bytes = 1000;
  auto r = pack();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kTooLarge);
  EXPECT_NE(r.error().message().find("big/blob.dat"), std::string::npos);
  EXPECT_NE(r.error().message().find("excludes"), std::string::npos);
}

TEST_F(PackerTest, SingleFileAndWrappedDirectory) {
  auto f = src_.write("mod.py", "X = 1\n");
  auto single = pack_path(f, *store_, PackOptions{});
  ASSERT_TRUE(single.ok());
  auto root = Manifest::parse(*store_->get(single->uri.root()));
  ASSERT_EQ(root->entries().size(), 1u);
  EXPECT_EQ(root->entries()[0].name, "mod.py");

  PackOptions wrap;
  wrap.wrap_in_dir = "mylib";
  auto wrapped = pack_path(src_.path(), *store_, wrap);
  auto top = Manifest::parse(*store_->get(wrapped->uri.root()));
  ASSERT_EQ(top->entries().size(), 1u);
  EXPECT_EQ(top->entries()[0].name, "mylib");
  EXPECT_EQ(top->entries()[0].kind, EntryKind::kDirectory);
}

TEST(FileIndexTest, SurvivesSaveLoadAndIgnoresGarbage) {
  TempDir t;
  std::vector<WalkedFile> files = {{"a", FileStat{1, 100, 100, 7, 1}, false, Digest::of("a")}};
  FileIndex idx;
  idx.replace(files, 10'000'000'000);
  ASSERT_TRUE(idx.save(t / "i.idx").ok());
  FileIndex back = FileIndex::load(t / "i.idx");
  ASSERT_NE(back.lookup("a", files[0].stat), nullptr);
  EXPECT_EQ(*back.lookup("a", files[0].stat), Digest::of("a"));
  FileStat other = files[0].stat;
  other.ctime_ns += 1;
  EXPECT_EQ(back.lookup("a", other), nullptr);
  t.write("bad.idx", "rtenv-index 1\ngarbage");
  EXPECT_EQ(FileIndex::load(t / "bad.idx").size(), 0u);
  EXPECT_EQ(FileIndex::load(t / "absent.idx").size(), 0u);
}

}  // namespace
}  // namespace rtenv::pack
