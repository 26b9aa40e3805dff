#include "env/venv_verify.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "testing/temp_dir.h"
#include "util/fs.h"

namespace rtenv::env {
namespace {

using rtenv::testing::TempDir;

const fs::path kSite = "lib/python3.11/site-packages";
const std::string kInstalledScript = "#!/usr/bin/python3\nfrom sharedpkg.cli import main\nmain()\n";
const std::string kBuilderScript =
    "#!/builder/pyenvs/k/bin/python\nfrom sharedpkg.cli import main\nmain()\n";

std::string row(const std::string& path, const std::string& content) {
  return path + "," + record_hash(Digest::of(content)) + "," + std::to_string(content.size()) +
         "\n";
}

// A venv as the builder left it: sharedpkg 1.0, with a console script whose interpreter line
// the builder pointed at its venv after installing.
struct FakeVenv {
  TempDir tmp;
  fs::path dir = tmp.path() / "venv";
  std::vector<PinnedDistribution> pins = {{"sharedpkg", "1.0", false}};
  std::vector<HeaderChange> changes = {{"/usr/bin/python3", "/builder/pyenvs/k/bin/python"}};

  FakeVenv() {
    write("sharedpkg/__init__.py", "__version__ = '1.0'\n");
    write("sharedpkg-1.0.dist-info/METADATA", "Name: sharedpkg\nVersion: 1.0\n");
    write_record("sharedpkg-1.0.dist-info",
                 {{"sharedpkg/__init__.py", "__version__ = '1.0'\n"},
                  {"sharedpkg-1.0.dist-info/METADATA", "Name: sharedpkg\nVersion: 1.0\n"},
                  {"../../../bin/sharedtool", kInstalledScript}});
    fs::create_directories(dir / "bin");
    EXPECT_TRUE(write_file_atomic(dir / "bin" / "sharedtool", kBuilderScript, 0755).ok());
  }
  void write(const std::string& rel, const std::string& content) {
    fs::create_directories((dir / kSite / rel).parent_path());
    EXPECT_TRUE(write_file_atomic(dir / kSite / rel, content).ok());
  }
  void write_record(const std::string& dist_info,
                    const std::vector<std::pair<std::string, std::string>>& files) {
    std::string text;
    for (const auto& [path, content] : files) text += row(path, content);
    text += dist_info + "/RECORD,,\n";
    write(dist_info + "/RECORD", text);
  }
  Result<void> verify(const std::map<std::string, Digest>& digests = {}) const {
    return verify_venv_files(dir, kSite, pins, digests, changes);
  }
};

void expect_refused(const Result<void>& r, const std::string& says) {
  ASSERT_FALSE(r.ok()) << "accepted; should say " << says;
  EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(r.error().message().find(says), std::string::npos) << r.error().message();
}

TEST(VenvVerifyTest, AVenvAsItsBuilderLeftItIsAccepted) {
  FakeVenv v;
  auto r = v.verify();
  EXPECT_TRUE(r.ok()) << r.error().message();
}

TEST(VenvVerifyTest, AScriptIsCheckedAsItWasInstalled) {
  FakeVenv v;
  v.changes.clear();  // the script's interpreter line is then not what RECORD hashed
  expect_refused(v.verify(), "bin/sharedtool is not the file");
  FakeVenv w;
  // A changed body behind the builder's interpreter line.
  ASSERT_TRUE(write_file_atomic(w.dir / "bin" / "sharedtool",
                                "#!/builder/pyenvs/k/bin/python\nimport os; os.system('x')\n")
                  .ok());
  expect_refused(w.verify(), "bin/sharedtool is not the file");
  FakeVenv u;
  // Another interpreter line: not the one the builder wrote.
  ASSERT_TRUE(write_file_atomic(u.dir / "bin" / "sharedtool",
                                "#!/tmp/evil\nfrom sharedpkg.cli import main\nmain()\n")
                  .ok());
  expect_refused(u.verify(), "bin/sharedtool is not the file");
}

TEST(VenvVerifyTest, AChangedFileOfAPinnedDistributionIsRefused) {
  FakeVenv v;
  v.write("sharedpkg/__init__.py", "__version__ = '1.0'\nimport os; os.system('x')\n");
  expect_refused(v.verify(),
                 "lib/python3.11/site-packages/sharedpkg/__init__.py is not the file "
                 "the RECORD of sharedpkg 1.0 lists");
}

TEST(VenvVerifyTest, TheKnownDigestsAreWhatIsCompared) {
  FakeVenv v;
  // The manifest's digest of a file is what was fetched: a different one is a different file.
  std::map<std::string, Digest> digests = {
      {(kSite / "sharedpkg/__init__.py").string(), Digest::of("something else")}};
  expect_refused(v.verify(digests), "sharedpkg/__init__.py is not the file");
  digests.begin()->second = Digest::of("__version__ = '1.0'\n");
  EXPECT_TRUE(v.verify(digests).ok());
}

TEST(VenvVerifyTest, AFileNoRecordListsIsRefused) {
  FakeVenv v;
  v.write("zzz-evil.pth", "import os; os.system('x')\n");
  expect_refused(v.verify(),
                 "lib/python3.11/site-packages/zzz-evil.pth is not a file of any "
                 "pinned distribution");
  FakeVenv w;
  ASSERT_TRUE(write_file_atomic(w.dir / "bin" / "activate-evil", "x").ok());
  expect_refused(w.verify(), "bin/activate-evil is not a file of any pinned distribution");
  // uv's empty lock file at the top, which venvs published by earlier versions hold.
  FakeVenv u;
  ASSERT_TRUE(write_file_atomic(u.dir / ".lock", "").ok());
  EXPECT_TRUE(u.verify().ok());
  ASSERT_TRUE(write_file_atomic(u.dir / ".lock", "import os\n").ok());
  expect_refused(u.verify(), ".lock is not a file of any pinned distribution");
}

TEST(VenvVerifyTest, TheDistributionsAreThePins) {
  FakeVenv v;
  v.write("otherpkg-2.0.dist-info/METADATA", "Name: otherpkg\n");
  v.write_record("otherpkg-2.0.dist-info",
                 {{"otherpkg-2.0.dist-info/METADATA", "Name: otherpkg\n"}});
  expect_refused(v.verify(), "otherpkg-2.0.dist-info, a distribution its lock does not pin");

  FakeVenv missing;
  missing.pins.push_back({"otherpkg", "2.0", false});
  expect_refused(missing.verify(), "its lock pins otherpkg==2.0, which it does not install");
  // A pin with an environment marker may be absent.
  missing.pins.back().conditional = true;
  EXPECT_TRUE(missing.verify().ok());

  FakeVenv version;
  version.pins = {{"sharedpkg", "1.1", false}};
  expect_refused(version.verify(), "it installs sharedpkg 1.0, and its lock pins sharedpkg==1.1");
  // Names compare normalized.
  FakeVenv named;
  named.pins = {{"sharedpkg", "1.0", false}};
  EXPECT_TRUE(named.verify().ok());
}

TEST(VenvVerifyTest, ASymbolicLinkIsRefused) {
  FakeVenv v;
  ASSERT_EQ(::symlink("/etc/passwd", (v.dir / kSite / "sharedpkg" / "data").c_str()), 0);
  expect_refused(v.verify(), "sharedpkg/data is a symbolic link");
}

TEST(VenvVerifyTest, AFileListedWithoutAHashIsRefused) {
  FakeVenv v;
  v.write("sharedpkg/extra.py", "x = 1\n");
  std::string record = read_file(v.dir / kSite / "sharedpkg-1.0.dist-info/RECORD").value();
  v.write("sharedpkg-1.0.dist-info/RECORD", record + "sharedpkg/extra.py,,\n");
  expect_refused(v.verify(),
                 "lists lib/python3.11/site-packages/sharedpkg/extra.py without a hash");
  // Only the RECORD itself goes without one, however a row is spelled.
  FakeVenv w;
  w.write("sharedpkg/extra.py", "x = 1\n");
  record = read_file(w.dir / kSite / "sharedpkg-1.0.dist-info/RECORD").value();
  w.write("sharedpkg-1.0.dist-info/RECORD", record + "sharedpkg/extra.py,self,6\n");
  expect_refused(w.verify(), "a hash that is not SHA-256");
}

TEST(VenvVerifyTest, ARecordHashIsUrlsafeBase64WithoutPadding) {
  EXPECT_EQ(record_hash(Digest::of("")), "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
  EXPECT_EQ(record_hash(Digest::of("abc")), "sha256=ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
}

TEST(VenvVerifyTest, RecordRowsAreCsv) {
  auto rows = parse_record("a/b.py,sha256=x,3\r\n\"c,d.py\",sha256=y,4\n\"e\"\"f\",,\n\nRECORD,,");
  ASSERT_TRUE(rows.ok()) << rows.error().message();
  ASSERT_EQ(rows->size(), 4u);
  EXPECT_EQ((*rows)[0], (RecordRow{"a/b.py", "sha256=x", "3"}));
  EXPECT_EQ((*rows)[1], (RecordRow{"c,d.py", "sha256=y", "4"}));
  EXPECT_EQ((*rows)[2], (RecordRow{"e\"f", "", ""}));
  EXPECT_EQ((*rows)[3], (RecordRow{"RECORD", "", ""}));
  EXPECT_FALSE(parse_record("a,b\n").ok());
  EXPECT_FALSE(parse_record("a,b,c,d\n").ok());
  EXPECT_FALSE(parse_record("\"a,b,c\n").ok());
}

TEST(VenvVerifyTest, ALockNamesItsDistributions) {
  spec::PythonPackages locked;
  locked.locked = true;
  locked.packages = {"--index-url https://pypi.example/simple",
                     "Shared_Pkg==1.0 --hash=sha256:00",
                     "otherpkg[extra]==2.0.post1 --hash=sha256:11 --hash=sha256:22",
                     "winonly==3 ; sys_platform == 'win32' --hash=sha256:33",
                     "direct @ https://example/direct-1.0-py3-none-any.whl",
                     "exact===4.0"};
  auto pins = pinned_distributions(locked);
  ASSERT_TRUE(pins.ok()) << pins.error().message();
  std::vector<PinnedDistribution> want = {{"shared-pkg", "1.0", false},
                                          {"otherpkg", "2.0.post1", false},
                                          {"winonly", "3", true},
                                          {"direct", std::nullopt, false},
                                          {"exact", "4.0", false}};
  EXPECT_EQ(*pins, want);
  locked.installer_version = "23.3";
  EXPECT_EQ(pinned_distributions(locked)->back(), (PinnedDistribution{"pip", "23.3", false}));
  locked.packages = {"==1.0"};
  EXPECT_FALSE(pinned_distributions(locked).ok());
  EXPECT_EQ(normalize_distribution_name("Foo__Bar.-baz"), "foo-bar-baz");
}

TEST(VenvVerifyTest, AScriptHeaderIsRetargetedOnlyWhereItNamesTheInterpreter) {
  EXPECT_EQ(retarget_script_header("#!/a/bin/python\nx\n", "/a/bin/python", "/b/python"),
            "#!/b/python\nx\n");
  // uv's trampoline for long paths names it on its second line.
  EXPECT_EQ(
      retarget_script_header("#!/bin/sh\n'''exec' '/a/bin/python' \"$0\"\n", "/a/bin/python", "/b"),
      "#!/bin/sh\n'''exec' '/b' \"$0\"\n");
  EXPECT_EQ(retarget_script_header("#!/a/bin/python3\n", "/a/bin/python", "/b"), std::nullopt);
  EXPECT_EQ(retarget_script_header("#!/x\n\n/a/bin/python\n", "/a/bin/python", "/b"), std::nullopt);
  EXPECT_EQ(retarget_script_header("no shebang /a/bin/python\n", "/a/bin/python", "/b"),
            std::nullopt);
}

}  // namespace
}  // namespace rtenv::env
