#include "env/records.h"

#include <string>

#include <gtest/gtest.h>

namespace rtenv::env {
namespace {

const std::string kRoot = "d8a5da618d6d5645e6ec51cbf77c37feaa2f2f40989f895d687ccd4e4719dcdd";

PublishedVenvRecord venv_record() {
  PublishedVenvRecord r;
  r.package = pack::PackageUri::parse("rtenv://sha256/" + kRoot).value();
  r.venv = "/home/u/.rtenv/pyenvs/0f3c";
  r.python = "/usr/bin/python3";
  r.python_version = "3.11.2";
  r.platform = "linux-x86_64";
  r.implementation = "cpython";
  r.system_site_packages = false;
  r.tool = "uv";
  r.built_by = "node-1:42";
  r.key = std::string(64, 'a');
  r.signature = std::string(128, 'b');
  r.signed_by = "0123456789abcdef";
  return r;
}

TEST(RecordsTest, EachRecordReadsBackFromItsText) {
  auto venv = parse_published_venv_record(record_text(venv_record()));
  ASSERT_TRUE(venv.ok()) << venv.error().message();
  EXPECT_EQ(*venv, venv_record());

  UrlRecord url{"rtenv://sha256/" + kRoot + "/pkg-1.0-py3-none-any.whl", "https://h/pkg.whl"};
  auto url_back = parse_url_record(record_text(url));
  ASSERT_TRUE(url_back.ok()) << url_back.error().message();
  EXPECT_EQ(*url_back, url);

  LeaseRecord lease{"node-2:17", 1767225600000};
  auto lease_back = parse_lease_record(record_text(lease));
  ASSERT_TRUE(lease_back.ok()) << lease_back.error().message();
  EXPECT_EQ(*lease_back, lease);
}

TEST(RecordsTest, ThePublishedVenvsSignedTextIsEveryFieldButTheSignatureForTheGivenKey) {
  PublishedVenvRecord r = venv_record();
  const std::string key = r.key;
  const std::string text = signed_text(r, key);
  r.signature = std::string(128, 'c');  // not signed: a signature cannot sign itself
  EXPECT_EQ(signed_text(r, key), text);
  // The verifier's key, not the record's claim, is what is signed.
  EXPECT_NE(signed_text(r, std::string(64, 'd')), text);
  r.key = std::string(64, 'd');
  EXPECT_EQ(signed_text(r, key), text);
  for (auto change :
       {+[](PublishedVenvRecord& v) { v.package = pack::PackageUri(Digest::of("x")); },
        +[](PublishedVenvRecord& v) { v.venv = "/elsewhere"; },
        +[](PublishedVenvRecord& v) { v.python = "/usr/bin/evil"; },
        +[](PublishedVenvRecord& v) { v.signed_by = "another"; }}) {
    PublishedVenvRecord changed = venv_record();
    change(changed);
    EXPECT_NE(signed_text(changed, key), text);
  }
}

TEST(RecordsTest, APublishedVenvNeedsItsFormatAndAPackageUri) {
  for (const char* bad :
       {R"({"format": "x"})", R"({"format": null})", "[1, 2]", R"({"format":)", "",
        R"({"format": 2, "package": "rtenv://sha256/00"})", R"({"format": 1})",
        R"({"format": 1, "package": 7, "python_version": {}})",
        R"({"format": 1, "package": "rtenv://sha256/nothex"})"}) {
    auto r = parse_published_venv_record(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt) << bad;
  }
}

TEST(RecordsTest, APublishedVenvsFieldsHaveTheirTypesAndDefaults) {
  const std::string package = R"("package": "rtenv://sha256/)" + kRoot + "\"";
  auto minimal = parse_published_venv_record(R"({"format": 1, )" + package + "}");
  ASSERT_TRUE(minimal.ok()) << minimal.error().message();
  EXPECT_EQ(minimal->python_version, "");
  EXPECT_TRUE(minimal->system_site_packages);
  auto wrong_type =
      parse_published_venv_record(R"({"format": 1, "python_version": 3.11, )" + package + "}");
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_NE(wrong_type.error().message().find("python_version"), std::string::npos)
      << wrong_type.error().message();
  EXPECT_FALSE(
      parse_published_venv_record(R"({"format": 1, "system_site_packages": "no", )" + package + "}")
          .ok());
  for (const char* field : {"key", "signature", "signed_by"}) {
    auto r = parse_published_venv_record(R"({"format": 1, ")" + std::string(field) + R"(": [1], )" +
                                         package + "}");
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  }
  EXPECT_EQ(minimal->key, "");
  EXPECT_EQ(minimal->signature, "");
}

TEST(RecordsTest, UrlAndLeaseRecordsNeedTheirKeys) {
  EXPECT_FALSE(parse_url_record(R"({"url": "https://h/x.whl"})").ok());
  EXPECT_FALSE(parse_url_record(R"({"uri": 7})").ok());
  EXPECT_TRUE(parse_url_record(R"({"uri": "rtenv://sha256/x/y.whl"})").ok());
  EXPECT_FALSE(parse_lease_record(R"({"holder": "h:1"})").ok());
  EXPECT_FALSE(parse_lease_record(R"({"holder": "h:1", "expires_ms": 1.5})").ok());
  EXPECT_FALSE(parse_lease_record(R"({"holder": 1, "expires_ms": 1})").ok());
}

TEST(RecordsTest, ANodesReportReadsBackAndNeedsItsTypes) {
  NodeReportRecord report{
      "node-1", "/home/u/.rtenv", 1767225600000, {"rtenv://sha256/" + kRoot, "python://0f3c"}};
  auto back = parse_node_report_record(record_text(report));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(*back, report);
  EXPECT_FALSE(parse_node_report_record(R"({"node": "n", "home": "/h", "in_use": []})").ok());
  EXPECT_FALSE(
      parse_node_report_record(R"({"node": "n", "home": "/h", "written_ms": 1, "in_use": [1]})")
          .ok());
  EXPECT_FALSE(
      parse_node_report_record(R"({"node": "n", "home": "/h", "written_ms": 1, "in_use": "x"})")
          .ok());
  // Named by the host and the home, in the characters a record name may hold.
  EXPECT_EQ(NodeReportRecord::name_for("node-1", "/a").substr(0, 13), "nodes/node-1-");
  EXPECT_NE(NodeReportRecord::name_for("node-1", "/a"), NodeReportRecord::name_for("node-1", "/b"));
  EXPECT_EQ(NodeReportRecord::name_for("a b/c", "/a").substr(0, 12), "nodes/a_b_c-");
  EXPECT_EQ(NodeReportRecord::name_for(".x", "/a").substr(0, 12), "nodes/node.x");
}

TEST(RecordsTest, DeepOrHugeRecordsAreRefusedBeforeParsing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto r = parse_lease_record(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  const std::string huge = R"({"holder": ")" + std::string(1 << 20, 'h') + R"(", "expires_ms": 1})";
  EXPECT_FALSE(parse_lease_record(huge).ok());
}

}  // namespace
}  // namespace rtenv::env
