// Job/task merge (docs/runtime_env.md §5), and the shared merge vectors
// (tests/data/spec/merge.json).

#include <map>
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "spec/runtime_env.h"
#include "test_support.h"

namespace rtenv::spec {
namespace {

using ::testing::ElementsAre;

RuntimeEnv env(const std::string& text, const ParseOptions& options = testing::task_options()) {
  Result<RuntimeEnv> parsed = RuntimeEnv::from_json_text(text, options);
  EXPECT_TRUE(parsed.ok()) << text << "\n-> " << parsed.error().message();
  return parsed.ok() ? std::move(parsed).value() : RuntimeEnv();
}

TEST(Merge, DocExampleEnvVarsMergePerVariable) {
  // Job {a: job_a, b: job_b, z: job_z}, actor {a: b, c: d} -> a=b, b=job_b, c=d, z=job_z.
  RuntimeEnv job = env(R"({"env_vars": {"a": "job_a", "b": "job_b", "z": "job_z"}})");
  RuntimeEnv actor = env(R"({"env_vars": {"a": "b", "c": "d"}})");
  RuntimeEnv merged = merge(job, actor);
  EXPECT_EQ(merged.env_vars(), (std::map<std::string, std::string>{
                                   {"a", "b"}, {"b", "job_b"}, {"c", "d"}, {"z", "job_z"}}));
  EXPECT_EQ(merged.canonical(), R"({"env_vars":{"a":"b","b":"job_b","c":"d","z":"job_z"}})");
}

TEST(Merge, EmptyChildInheritsTheParentWhole) {
  RuntimeEnv job = env(R"({"working_dir": "s3://b/x.zip", "pip": ["six"],
                           "config": {"setup_timeout_seconds": 5}})");
  RuntimeEnv merged = merge(job, RuntimeEnv());
  EXPECT_EQ(merged.canonical(), job.canonical());
  EXPECT_EQ(merge(job, env(R"({"pip": [], "env_vars": {}})")).canonical(), job.canonical());
}

TEST(Merge, EmptyParentGivesTheChild) {
  RuntimeEnv task = env(R"({"pip": ["six"], "env_vars": {"A": "1"}})");
  EXPECT_EQ(merge(RuntimeEnv(), task).canonical(), task.canonical());
}

TEST(Merge, ChildTopLevelFieldsReplaceTheParents) {
  RuntimeEnv job = env(R"({"working_dir": "s3://b/job.zip", "pip": ["requests", "six"],
                           "py_modules": ["s3://b/a.zip", "s3://b/b.zip"],
                           "config": {"setup_timeout_seconds": 5, "eager_install": false}})");
  RuntimeEnv task = env(R"({"pip": ["numpy"], "py_modules": ["s3://b/c.zip"],
                            "config": {"setup_timeout_seconds": 9}})");
  RuntimeEnv merged = merge(job, task);
  EXPECT_EQ(merged.working_dir(), "s3://b/job.zip");
  ASSERT_TRUE(merged.python_packages().has_value());
  EXPECT_THAT(merged.python_packages()->packages, ElementsAre("numpy"));  // replaced, not appended
  EXPECT_THAT(merged.py_modules(), ElementsAre("s3://b/c.zip"));
  EXPECT_EQ(merged.config().setup_timeout_seconds, 9);
  EXPECT_TRUE(merged.config().eager_install);  // config is replaced whole
}

TEST(Merge, EnvVarsMergeWhenTheParentHasNone) {
  RuntimeEnv merged = merge(env(R"({"pip": ["six"]})"), env(R"({"env_vars": {"A": "1"}})"));
  EXPECT_EQ(merged.canonical(), R"({"env_vars":{"A":"1"},"pip":{"packages":["six"]}})");
}

TEST(Merge, PythonEnvIsOneSlot) {
  RuntimeEnv job = env(R"({"pip": ["six"], "env_vars": {"A": "1"}})");
  EXPECT_EQ(merge(job, env(R"({"conda": "my-env"})")).canonical(),
            R"({"conda":"my-env","env_vars":{"A":"1"}})");
  EXPECT_EQ(merge(job, env(R"({"uv": ["torch"]})")).canonical(),
            R"({"env_vars":{"A":"1"},"uv":{"packages":["torch"]}})");
}

TEST(Merge, ImageAndWhatItExcludes) {
  RuntimeEnv job = env(R"({"working_dir": "s3://b/x.zip", "pip": ["six"], "env_vars": {"A": "1"},
                           "config": {"setup_timeout_seconds": 5}})");
  // A child that runs in an image drops the parent's fields an image cannot go with (pip), and
  // keeps those it can (working_dir, bind-mounted into the image).
  RuntimeEnv in_image = merge(job, env(R"({"image_uri": "python:3.11"})"));
  EXPECT_EQ(in_image.canonical(), R"({"config":{"setup_timeout_seconds":5},"env_vars":{"A":"1"},)"
                                  R"("image_uri":"python:3.11","working_dir":"s3://b/x.zip"})");
  // A child that needs pip leaves the parent's image.
  RuntimeEnv image_job = env(R"({"container": {"image": "python:3.11"}, "env_vars": {"A": "1"}})");
  EXPECT_EQ(merge(image_job, env(R"({"pip": ["six"]})")).canonical(),
            R"({"env_vars":{"A":"1"},"pip":{"packages":["six"]}})");
  // image_uri and container are one slot; env_vars still merge.
  EXPECT_EQ(
      merge(image_job, env(R"({"image_uri": "python:3.12", "env_vars": {"B": "2"}})")).canonical(),
      R"({"env_vars":{"A":"1","B":"2"},"image_uri":"python:3.12"})");
}

TEST(Merge, ResultIsValidAndStable) {
  RuntimeEnv job = env(R"({"working_dir": "s3://b/x.zip", "pip": ["six"],
                           "env_vars": {"A": "1"}})");
  RuntimeEnv task = env(R"({"conda": {"dependencies": ["x"]}, "env_vars": {"A": "2"}})");
  RuntimeEnv merged = merge(job, task);
  Result<RuntimeEnv> reparsed =
      RuntimeEnv::from_json_text(merged.canonical(), testing::task_options());
  ASSERT_TRUE(reparsed.ok()) << reparsed.error().message();
  EXPECT_EQ(reparsed->canonical(), merged.canonical());
  EXPECT_EQ(reparsed->id(), merged.id());
}

// ---- shared merge vectors ---------------------------------------------------------------------
//
// tests/data/spec/merge.json, shared with the Python tests: a JSON list of
//   {"name": "...", "parent": <runtime_env>, "child": <runtime_env>, "merged": "<canonical>"}
// with optional "parent_level" / "child_level" ("job" or "task"; default job and task).
// "$DATA" in strings stands for the absolute path of tests/data/spec.

constexpr size_t kMinMergeCases = 10;

Json load_merge_vectors() {
  std::string text = testing::read_test_file(testing::data_dir() / "merge.json");
  Json vectors = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(vectors.is_array()) << "merge.json must be a JSON list";
  return vectors.is_array() ? vectors : Json::array();
}

ParseOptions level_options(const Json& c, const std::string& key, Level fallback) {
  ParseOptions options = testing::job_options();
  options.level = fallback;
  if (c.contains(key)) options.level = c[key] == "task" ? Level::kTask : Level::kJob;
  return options;
}

TEST(MergeVectors, AreWellFormed) {
  Json vectors = load_merge_vectors();
  EXPECT_GE(vectors.size(), kMinMergeCases);
  std::set<std::string> names;
  for (const Json& c : vectors) {
    ASSERT_TRUE(c.is_object());
    ASSERT_TRUE(c.contains("name") && c["name"].is_string()) << c.dump();
    const std::string name = c["name"].get<std::string>();
    EXPECT_TRUE(names.insert(name).second) << "duplicate case name " << name;
    EXPECT_TRUE(c.contains("parent") && c.contains("child")) << name;
    EXPECT_TRUE(c.contains("merged") && c["merged"].is_string()) << name;
    for (const auto& [key, value] : c.items()) {
      EXPECT_TRUE(key == "name" || key == "parent" || key == "child" || key == "merged" ||
                  key == "parent_level" || key == "child_level")
          << name << ": unexpected key " << key;
    }
  }
}

TEST(MergeVectors, EveryCaseMergesToItsCanonicalForm) {
  for (const Json& c : load_merge_vectors()) {
    const std::string name = c.value("name", "?");
    SCOPED_TRACE(name);
    Result<RuntimeEnv> parent =
        RuntimeEnv::from_json(testing::expand_data(c.value("parent", Json::object())),
                              level_options(c, "parent_level", Level::kJob));
    ASSERT_TRUE(parent.ok()) << parent.error().message();
    Result<RuntimeEnv> child =
        RuntimeEnv::from_json(testing::expand_data(c.value("child", Json::object())),
                              level_options(c, "child_level", Level::kTask));
    ASSERT_TRUE(child.ok()) << child.error().message();
    RuntimeEnv merged = merge(*parent, *child);
    EXPECT_EQ(merged.canonical(), testing::expand_data(c.value("merged", "")));
    // The result is a valid env and a fixed point.
    Result<RuntimeEnv> again =
        RuntimeEnv::from_json_text(merged.canonical(), testing::job_options());
    ASSERT_TRUE(again.ok()) << again.error().message();
    EXPECT_EQ(again->canonical(), merged.canonical());
    EXPECT_EQ(again->id(), merged.id());
  }
}

}  // namespace
}  // namespace rtenv::spec
