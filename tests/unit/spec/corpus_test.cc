// The invalid-spec corpus (tests/data/spec/invalid.json) and the golden canonical forms
// (tests/data/spec/golden/).
//
// Corpus format, shared with the end-to-end tests: a JSON list of
//   {"name": "...", "spec": <runtime_env JSON value>, "error": "..."}  or
//   {"name": "...", "text": "<raw text>", "error": "..."}
// "$DATA" in strings stands for the absolute path of tests/data/spec. An "error" that starts with
// "runtime_env" is the exact full message; any other "error" is a substring of it (for syntax
// errors: "invalid JSON at line L, column C: ", what both sides' parsers agree on).

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "spec/runtime_env.h"
#include "test_support.h"

namespace rtenv::spec {
namespace {

using testing::data_dir;
using testing::expand_data;
using testing::job_options;
using testing::read_test_file;

constexpr size_t kMinCorpusCases = 45;

Json load_corpus() {
  std::string text = read_test_file(data_dir() / "invalid.json");
  Json corpus = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(corpus.is_array()) << "invalid.json must be a JSON list";
  return corpus.is_array() ? corpus : Json::array();
}

void expect_error_matches(const Result<RuntimeEnv>& result, const std::string& expected) {
  ASSERT_FALSE(result.ok()) << "accepted; canonical: " << result->canonical();
  EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument);
  if (expected.rfind("runtime_env", 0) == 0) {
    EXPECT_EQ(result.error().message(), expected);
  } else {
    EXPECT_NE(result.error().message().find(expected), std::string::npos)
        << "message: " << result.error().message() << "\nexpected substring: " << expected;
  }
}

TEST(InvalidCorpus, IsWellFormed) {
  Json corpus = load_corpus();
  EXPECT_GE(corpus.size(), kMinCorpusCases);
  std::set<std::string> names;
  size_t exact = 0, text_cases = 0;
  for (const Json& c : corpus) {
    ASSERT_TRUE(c.is_object());
    ASSERT_TRUE(c.contains("name") && c["name"].is_string()) << c.dump();
    std::string name = c["name"].get<std::string>();
    EXPECT_TRUE(names.insert(name).second) << "duplicate case name " << name;
    EXPECT_NE(c.contains("spec"), c.contains("text")) << name << ": give exactly one of spec, text";
    if (c.contains("text")) {
      ++text_cases;
      ASSERT_TRUE(c["text"].is_string()) << name;
      // Text cases start like inline JSON, so `rtenv run '<text>'` parses them too.
      std::string text = c["text"].get<std::string>();
      size_t first = text.find_first_not_of(" \t\r\n");
      ASSERT_NE(first, std::string::npos) << name;
      EXPECT_TRUE(text[first] == '{' || text[first] == '[') << name;
    }
    ASSERT_TRUE(c.contains("error") && c["error"].is_string()) << name;
    EXPECT_FALSE(c["error"].get<std::string>().empty()) << name;
    if (c["error"].get<std::string>().rfind("runtime_env", 0) == 0) ++exact;
    for (const auto& [key, value] : c.items()) {
      EXPECT_TRUE(key == "name" || key == "spec" || key == "text" || key == "error")
          << name << ": unexpected key " << key;
    }
  }
  // Nearly every validation case pins the whole message. Syntax errors ("text" cases) pin where
  // ("invalid JSON at line L, column C: "): the parser's own words differ between the C++ and
  // the Python side, which both check this corpus.
  EXPECT_GE(exact + 2 + text_cases, corpus.size());
}

TEST(InvalidCorpus, EveryCaseFailsWithItsMessage) {
  for (const Json& c : load_corpus()) {
    const std::string name = c.value("name", "?");
    SCOPED_TRACE(name);
    const std::string expected = expand_data(c.value("error", ""));
    if (c.contains("spec")) {
      expect_error_matches(RuntimeEnv::from_json(expand_data(c["spec"]), job_options()), expected);
    } else {
      expect_error_matches(
          RuntimeEnv::from_json_text(expand_data(c.value("text", "")), job_options()), expected);
    }
  }
}

// The same cases through load(), as `rtenv run '<inline JSON>'` sees them.
TEST(InvalidCorpus, EveryCaseFailsTheSameThroughLoad) {
  for (const Json& c : load_corpus()) {
    const std::string name = c.value("name", "?");
    SCOPED_TRACE(name);
    const std::string expected = expand_data(c.value("error", ""));
    const std::string text =
        c.contains("spec") ? expand_data(c["spec"]).dump() : expand_data(c.value("text", ""));
    expect_error_matches(RuntimeEnv::load(text, job_options()), expected);
  }
}

// ---- golden canonical forms -------------------------------------------------------------------

std::vector<std::string> golden_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir() / "golden", ec)) {
    const std::string file = entry.path().filename().string();
    constexpr std::string_view kSuffix = ".input.json";
    if (file.size() > kSuffix.size() && file.ends_with(kSuffix)) {
      names.push_back(file.substr(0, file.size() - kSuffix.size()));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Golden, CanonicalFormsMatchByteForByteBothWays) {
  const std::vector<std::string> names = golden_names();
  ASSERT_GE(names.size(), 5u);
  const auto golden = data_dir() / "golden";
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const std::string input = expand_data(read_test_file(golden / (name + ".input.json")));
    const std::string canonical = expand_data(read_test_file(golden / (name + ".canonical.json")));

    Result<RuntimeEnv> env = RuntimeEnv::from_json_text(input, job_options());
    ASSERT_TRUE(env.ok()) << env.error().message();
    EXPECT_EQ(env->canonical(), canonical);

    // The canonical form is a fixed point: parsing it gives it back, with the same id.
    Result<RuntimeEnv> again = RuntimeEnv::from_json_text(canonical, job_options());
    ASSERT_TRUE(again.ok()) << again.error().message();
    EXPECT_EQ(again->canonical(), canonical);
    EXPECT_EQ(again->id(), env->id());

    const auto id_file = golden / (name + ".id");
    if (std::filesystem::exists(id_file)) {
      std::string id = read_test_file(id_file);
      while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
      EXPECT_EQ(env->id().hex(), id);
    }
    // What the user is told about the accepted env (none unless the file lists some).
    const auto warnings_file = golden / (name + ".warnings");
    std::vector<std::string> expected;
    if (std::filesystem::exists(warnings_file)) {
      expected = Json::parse(read_test_file(warnings_file)).get<std::vector<std::string>>();
    }
    EXPECT_EQ(env->warnings(), expected);
  }
}

}  // namespace
}  // namespace rtenv::spec
