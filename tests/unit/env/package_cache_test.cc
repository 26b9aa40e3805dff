#include "env/package_cache.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <csignal>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "pack/packer.h"
#include "store/local_store.h"
#include "testing/forwarding_store.h"
#include "testing/temp_dir.h"
#include "util/fs.h"

namespace rtenv::env {
namespace {

// A store that counts the blobs read from it (the network a node would use).
class CountingStore final : public rtenv::testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::string url() const override { return "counting+" + inner_.url(); }
  Result<std::string> get(const Digest& d) override {
    ++reads;
    return inner_.get(d);
  }
  Result<void> get_to_file(const Digest& d, const fs::path& dest, mode_t mode,
                           uint64_t max_bytes = kAnySize) override {
    ++reads;
    return inner_.get_to_file(d, dest, mode, max_bytes);
  }

  std::atomic<int> reads{0};
};

using rtenv::testing::slurp;
using rtenv::testing::TempDir;

class PackageCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = *Home::at(tmp_ / "home");
    store_ = std::move(store::LocalStore::open(home_.store())).value();
    src_.write("main.py", "print('hello')\n");
    src_.write("data/table.csv", "a,b\n1,2\n");
    src_.write("bin/tool", "#!/bin/sh\n", 0755);
    fs::create_symlink("data/table.csv", src_ / "table");
    uri_ = pack::pack_path(src_.path(), *store_, pack::PackOptions{})->uri;
    cache_ = std::make_unique<PackageCache>(home_, *store_);
  }

  TempDir tmp_, src_;
  Home home_;
  std::unique_ptr<store::LocalStore> store_;
  pack::PackageUri uri_{Digest()};
  std::unique_ptr<PackageCache> cache_;
};

TEST_F(PackageCacheTest, MaterializesOnceWithModesAndLinks) {
  auto lease = cache_->acquire(uri_);
  ASSERT_TRUE(lease.ok()) << lease.error().message();
  fs::path dir = lease->dir();
  EXPECT_EQ(dir, home_.pkgs() / uri_.root().hex());
  EXPECT_EQ(slurp(dir / "main.py"), "print('hello')\n");
  EXPECT_TRUE((fs::status(dir / "bin/tool").permissions() & fs::perms::owner_exec) !=
              fs::perms::none);
  EXPECT_TRUE(fs::is_symlink(dir / "table"));
  EXPECT_EQ(fs::read_symlink(dir / "table"), "data/table.csv");
  EXPECT_FALSE(lease->release());
  auto again = cache_->acquire(uri_);
  ASSERT_TRUE(again.ok());
  struct stat a, b;
  ::stat((dir / "main.py").c_str(), &a);
  EXPECT_EQ(again->dir(), dir);
  ::stat((again->dir() / "main.py").c_str(), &b);
  EXPECT_EQ(a.st_ino, b.st_ino) << "a cache hit must not rebuild";
  // Nothing left in tmp.
  EXPECT_TRUE(fs::is_empty(home_.tmp()));
}

// A job may change its working_dir in any way, also as root; the next user sees it as packed.
TEST_F(PackageCacheTest, ANewVersionFetchesOnlyWhatTheNodeLacks) {
  // 20 files, four of them with the same content.
  TempDir v1;
  for (int i = 0; i < 16; ++i) v1.write(fmt::format("src/m{}.py", i), fmt::format("x = {}\n", i));
  for (int i = 0; i < 4; ++i) v1.write(fmt::format("pkg{}/__init__.py", i), "");
  auto first = pack::pack_path(v1.path(), *store_, pack::PackOptions{});
  ASSERT_TRUE(first.ok());
  CountingStore counting(*store_);
  PackageCache cache(home_, counting);
  ASSERT_TRUE(cache.ensure(first->uri).ok());
  // root, src/, and pkg0..3/ (four directories with the same content: one manifest, read once)
  const int manifests_v1 = 1 + 1 + 1;
  EXPECT_EQ(counting.reads.load(), manifests_v1 + 16 + 1) << "the empty file is fetched once";
  EXPECT_EQ(slurp(home_.pkgs() / first->uri.root().hex() / "pkg3/__init__.py"), "");

  // One file changed: only it and the manifests on its path are read from the store.
  v1.write("src/m7.py", "x = 'seven'\n");
  auto second = pack::pack_path(v1.path(), *store_, pack::PackOptions{});
  ASSERT_TRUE(second.ok());
  counting.reads = 0;
  ASSERT_TRUE(cache.ensure(second->uri).ok());
  EXPECT_EQ(counting.reads.load(), manifests_v1 + 1);
  fs::path dir2 = home_.pkgs() / second->uri.root().hex();
  EXPECT_EQ(slurp(dir2 / "src/m7.py"), "x = 'seven'\n");
  EXPECT_EQ(slurp(dir2 / "src/m3.py"), "x = 3\n");

  // A local copy a job changed is not used as a source: it is fetched instead.
  fs::path dir1 = home_.pkgs() / first->uri.root().hex();
  fs::permissions(dir1 / "src/m3.py", fs::perms::owner_write, fs::perm_options::add);
  ASSERT_TRUE(write_file_atomic(dir1 / "src/m3.py", "tampered\n").ok());
  v1.write("src/m8.py", "x = 'eight'\n");
  auto third = pack::pack_path(v1.path(), *store_, pack::PackOptions{});
  ASSERT_TRUE(third.ok());
  counting.reads = 0;
  ASSERT_TRUE(cache.ensure(third->uri).ok());
  // m8 is new; of m3's copies on the node v1's is tampered and v2's is fine: v2's is used.
  EXPECT_EQ(counting.reads.load(), manifests_v1 + 1);
  fs::path dir3 = home_.pkgs() / third->uri.root().hex();
  EXPECT_EQ(slurp(dir3 / "src/m3.py"), "x = 3\n");
  // Evicting a package removes its file list with it.
  ASSERT_TRUE(*cache.evict(first->uri));
  EXPECT_FALSE(fs::exists(home_.pkgs() / (first->uri.root().hex() + ".files")));
}

TEST_F(PackageCacheTest, ChangesByAJobAreUndoneWhenItLetsGo) {
  struct Case {
    const char* name;
    std::function<void(const fs::path&)> change;
  };
  std::vector<Case> cases = {
      {"same-size rewrite with mtime restored",
       [](const fs::path& d) {
         auto t = fs::last_write_time(d / "main.py");
         std::ofstream(d / "main.py", std::ios::trunc) << "print('HACKED')\n";
         fs::last_write_time(d / "main.py", t);
       }},
      {"delete", [](const fs::path& d) { fs::remove(d / "data/table.csv"); }},
      {"add", [](const fs::path& d) { std::ofstream(d / "data/new.txt") << "x"; }},
      {"chmod", [](const fs::path& d) { fs::permissions(d / "main.py", fs::perms::all); }},
      {"replace by rename",
       [](const fs::path& d) {
         std::ofstream(d / "tmp") << "print('hello')\n";
         fs::rename(d / "tmp", d / "main.py");
       }},
      {"remove a directory", [](const fs::path& d) { fs::remove_all(d / "data"); }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto lease = cache_->acquire(uri_);
    ASSERT_TRUE(lease.ok());
    c.change(lease->dir());
    EXPECT_TRUE(lease->release()) << "the change must be noticed";
    auto next = cache_->acquire(uri_);
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(slurp(next->dir() / "main.py"), "print('hello')\n");
    EXPECT_EQ(slurp(next->dir() / "data/table.csv"), "a,b\n1,2\n");
    EXPECT_FALSE(fs::exists(next->dir() / "data/new.txt"));
    EXPECT_EQ(fs::status(next->dir() / "main.py").permissions() & fs::perms::all, fs::perms(0644));
    EXPECT_FALSE(next->release());
  }
}

TEST_F(PackageCacheTest, AUserKilledMidRunIsCheckedByTheNextOne) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto lease = cache_->acquire(uri_);
    if (!lease.ok()) ::_exit(1);
    std::ofstream(lease->dir() / "main.py", std::ios::trunc) << "left by a killed job";
    ::kill(::getpid(), SIGKILL);  // no release, no check
    ::_exit(2);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(fs::exists(home_.pkgs() / (uri_.root().hex() + ".dirty")));
  auto next = cache_->acquire(uri_);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(slurp(next->dir() / "main.py"), "print('hello')\n");
}

TEST_F(PackageCacheTest, ConcurrentUsersShareOneCopy) {
  auto a = cache_->acquire(uri_);
  auto b = cache_->acquire(uri_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->dir(), b->dir());
  std::ofstream(a->dir() / "scratch.txt") << "by a";
  EXPECT_FALSE(a->release()) << "b still uses it: no check yet";
  EXPECT_TRUE(fs::exists(b->dir() / "scratch.txt"));
  EXPECT_TRUE(b->release()) << "the last user restores it";
  auto c = cache_->acquire(uri_);
  EXPECT_FALSE(fs::exists(c->dir() / "scratch.txt"));
}

TEST_F(PackageCacheTest, MissingPackageAndCorruptBlobFailClearly) {
  pack::PackageUri unknown(Digest::of("nothing"));
  auto r = cache_->acquire(unknown);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(fs::exists(cache_->dir_of(unknown)));

  Digest main_py = Digest::of("print('hello')\n");
  fs::path blob = store_->blob_path(main_py);
  fs::permissions(blob, fs::perms::owner_write, fs::perm_options::add);
  std::ofstream(blob, std::ios::trunc) << "print('evil')\n";
  auto bad = cache_->acquire(uri_);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kCorrupt);
  EXPECT_FALSE(fs::exists(cache_->dir_of(uri_))) << "no partial tree is published";
  EXPECT_TRUE(fs::is_empty(home_.tmp()));
}

// Manifests planted in a store by someone who can write it: each is refused before it can fill
// the disk or reach outside the package, and nothing is published.
class PlantedManifestTest : public PackageCacheTest {
 protected:
  Digest put_manifest(pack::Manifest m) {
    std::string text = m.serialize();
    Digest d = Digest::of(text);
    EXPECT_TRUE(store_->put(d, text).ok());
    return d;
  }
  Digest put_blob(const std::string& data) {
    Digest d = Digest::of(data);
    EXPECT_TRUE(store_->put(d, data).ok());
    return d;
  }
  static pack::ManifestEntry dir(const std::string& name, const Digest& d) {
    return {pack::EntryKind::kDirectory, name, d, 0, ""};
  }
  static pack::ManifestEntry file(const std::string& name, const Digest& d, uint64_t size) {
    return {pack::EntryKind::kFile, name, d, size, ""};
  }
  static pack::ManifestEntry link(const std::string& name, const std::string& target) {
    return {pack::EntryKind::kSymlink, name, Digest(), 0, target};
  }
  ErrorCode refused(const Digest& root) {
    pack::PackageUri uri(root);
    auto r = cache_->acquire(uri);
    EXPECT_FALSE(r.ok());
    EXPECT_FALSE(fs::exists(cache_->dir_of(uri))) << "nothing is published";
    EXPECT_TRUE(fs::is_empty(home_.tmp())) << "nothing is left behind";
    return r.ok() ? ErrorCode::kInternal : r.error().code();
  }
};

TEST_F(PlantedManifestTest, AFanOutOfSharedDirectoriesIsRefusedBeforeAnyFileIsWritten) {
  // 32 names for one directory, 7 levels deep: 34 billion files from eight small manifests.
  Digest one = put_blob("x");
  pack::Manifest leaf;
  leaf.add(file("f", one, 1));
  Digest level = put_manifest(leaf);
  for (int depth = 0; depth < 7; ++depth) {
    pack::Manifest m;
    for (int i = 0; i < 32; ++i) m.add(dir(fmt::format("d{:02}", i), level));
    level = put_manifest(m);
  }
  EXPECT_EQ(refused(level), ErrorCode::kTooLarge);
}

TEST_F(PlantedManifestTest, DeclaredSizesOverTheLimitAndSizesThatLieAreRefused) {
  Digest small = put_blob("tiny");
  pack::Manifest big;
  big.add(file("huge", small, uint64_t{3} << 30));  // over the 2 GiB default
  EXPECT_EQ(refused(put_manifest(big)), ErrorCode::kTooLarge);
  pack::Manifest liar;
  liar.add(file("a", small, 1));  // 4 bytes said to be 1
  EXPECT_EQ(refused(put_manifest(liar)), ErrorCode::kCorrupt);
}

TEST_F(PlantedManifestTest, LinksLeadingOutOfThePackageAreRefused) {
  pack::Manifest sub;
  sub.add(link("up", ".."));  // the package root: inside
  Digest sub_d = put_manifest(sub);
  for (const char* target : {"/etc/passwd", "../outside", "d/../../x", "d/up/../x"}) {
    pack::Manifest m;
    m.add(dir("d", sub_d));
    m.add(link("evil", target));
    EXPECT_EQ(refused(put_manifest(m)), ErrorCode::kUnsafe) << target;
  }
  // The same shapes staying inside are made.
  pack::Manifest fine;
  fine.add(dir("d", sub_d));
  fine.add(link("ok", "d/up/d"));
  pack::PackageUri uri(put_manifest(fine));
  auto lease = cache_->acquire(uri);
  ASSERT_TRUE(lease.ok()) << lease.error().message();
  EXPECT_EQ(fs::read_symlink(cache_->dir_of(uri) / "ok"), "d/up/d");
}

}  // namespace
}  // namespace rtenv::env
