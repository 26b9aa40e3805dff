// RuntimeEnv: valid specs, normalization, canonical form, id, accessors, with_field, load().

#include "spec/runtime_env.h"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "spec/internal.h"
#include "test_support.h"
#include "util/fs.h"

namespace rtenv::spec {
namespace {

namespace fs = std::filesystem;
using testing::data_dir;
using ::testing::ElementsAre;
using testing::fixtures_dir;
using ::testing::HasSubstr;
using testing::job_options;
using testing::task_options;

const std::string kHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kPackageUri = "rtenv://sha256/" + kHash;

std::string fixture(const std::string& relative) { return (fixtures_dir() / relative).string(); }

RuntimeEnv parse_ok(const std::string& text, const ParseOptions& options = job_options()) {
  Result<RuntimeEnv> env = RuntimeEnv::from_json_text(text, options);
  EXPECT_TRUE(env.ok()) << text << "\n-> " << env.error().message();
  return env.ok() ? std::move(env).value() : RuntimeEnv();
}

RuntimeEnv validate_ok(const Json& value, const ParseOptions& options = job_options()) {
  Result<RuntimeEnv> env = RuntimeEnv::from_json(value, options);
  EXPECT_TRUE(env.ok()) << value.dump() << "\n-> " << env.error().message();
  return env.ok() ? std::move(env).value() : RuntimeEnv();
}

std::string error_of(const Json& value, const ParseOptions& options = job_options()) {
  Result<RuntimeEnv> env = RuntimeEnv::from_json(value, options);
  EXPECT_FALSE(env.ok()) << value.dump() << " was accepted";
  if (env.ok()) return "";
  EXPECT_EQ(env.error().code(), ErrorCode::kInvalidArgument);
  return env.error().message();
}

/// Registers a plugin field for the duration of a test.
class ScopedPlugin {
 public:
  explicit ScopedPlugin(std::string name) : name_(std::move(name)) {
    EXPECT_TRUE(register_plugin_field(name_));
  }
  ~ScopedPlugin() { unregister_plugin_field(name_); }

 private:
  std::string name_;
};

// ---- is_uri -----------------------------------------------------------------------------------

TEST(IsUri, SchemesAndPaths) {
  EXPECT_TRUE(is_uri("s3://bucket/x.zip"));
  EXPECT_TRUE(is_uri("https://example.com/x.zip"));
  EXPECT_TRUE(is_uri("file:///tmp/x.zip"));
  EXPECT_TRUE(is_uri(kPackageUri));
  EXPECT_TRUE(is_uri("git+ssh://host/repo.zip"));
  EXPECT_TRUE(is_uri("a1.b-c+d://x"));
  EXPECT_FALSE(is_uri("/abs/path"));
  EXPECT_FALSE(is_uri("relative/path"));
  EXPECT_FALSE(is_uri("./s3://x"));
  EXPECT_FALSE(is_uri("://x"));
  EXPECT_FALSE(is_uri("S3://bucket/x.zip"));  // the scheme is lowercase
  EXPECT_FALSE(is_uri("1s://x"));
  EXPECT_FALSE(is_uri("s_3://x"));
  EXPECT_FALSE(is_uri("C:\\dir"));
  EXPECT_FALSE(is_uri(""));
}

TEST(ArchiveSuffix, LongestKnownSuffixIgnoringCase) {
  EXPECT_EQ(archive_suffix("p.zip"), ".zip");
  EXPECT_EQ(archive_suffix("p.TAR.GZ"), ".tar.gz");
  EXPECT_EQ(archive_suffix("/a/p.tgz"), ".tgz");
  EXPECT_EQ(archive_suffix("p.tar.xz"), ".tar.xz");
  EXPECT_EQ(archive_suffix("p.tar.bz2"), ".tar.bz2");
  EXPECT_EQ(archive_suffix("p.tar"), ".tar");
  EXPECT_EQ(archive_suffix("p.tar.zst"), "");
  EXPECT_EQ(archive_suffix("p.gz"), "");
  EXPECT_EQ(archive_suffix("tar"), "");
  EXPECT_EQ(archive_suffix(""), "");
}

TEST(LocalUri, PathAfterTheScheme) {
  EXPECT_EQ(local_uri_path("local:///srv/app"), "/srv/app");
  EXPECT_EQ(local_uri_path("local://rel"), "rel");
  EXPECT_EQ(local_uri_path("file:///srv/app"), std::nullopt);
  EXPECT_EQ(local_uri_path("/srv/app"), std::nullopt);
}

TEST(LocalUri, TakenAtTaskLevelAsIs) {
  auto env = RuntimeEnv::from_json(
      Json{{"working_dir", "local:///srv/app/"}, {"py_modules", {"local:///opt/libs"}}},
      task_options());
  ASSERT_TRUE(env.ok()) << env.error().message();
  EXPECT_EQ(env->working_dir(), "local:///srv/app/");  // the string is its identity
  EXPECT_THAT(env->py_modules(), ElementsAre("local:///opt/libs"));
}

// ---- valid specs ------------------------------------------------------------------------------

TEST(Valid, EmptyEnv) {
  RuntimeEnv env = parse_ok("{}");
  EXPECT_TRUE(env.empty());
  EXPECT_EQ(env.canonical(), "{}");
  EXPECT_TRUE(env.fields().empty());
  EXPECT_TRUE(RuntimeEnv().empty());
  EXPECT_EQ(RuntimeEnv().canonical(), "{}");
  EXPECT_EQ(RuntimeEnv().id(), env.id());
}

TEST(Valid, FullJobEnvWithLocalPaths) {
  RuntimeEnv env = parse_ok(R"({
    "working_dir": "proj",
    "py_modules": ["mod.py", "proj/pkg", "pkg-1.0-py3-none-any.whl", "s3://b/m.zip"],
    "excludes": ["*.log", "/data/"],
    "pip": ["requests==2.31.0"],
    "env_vars": {"A": "1", "EMPTY": ""},
    "py_executable": "python3.12",
    "java_jars": ["lib.jar", "file.zip", "proj", "https://example.com/x.jar"],
    "config": {"setup_timeout_seconds": 30, "eager_install": false}
  })");
  EXPECT_EQ(env.working_dir(), fixture("proj"));
  EXPECT_THAT(env.py_modules(), ElementsAre(fixture("mod.py"), fixture("proj/pkg"),
                                            fixture("pkg-1.0-py3-none-any.whl"), "s3://b/m.zip"));
  EXPECT_THAT(env.excludes(), ElementsAre("*.log", "/data/"));
  EXPECT_THAT(env.java_jars(), ElementsAre(fixture("lib.jar"), fixture("file.zip"), fixture("proj"),
                                           "https://example.com/x.jar"));
  EXPECT_EQ(env.py_executable(), "python3.12");
  EXPECT_EQ(env.env_vars(), (std::map<std::string, std::string>{{"A", "1"}, {"EMPTY", ""}}));
  EXPECT_EQ(env.config().setup_timeout_seconds, 30);
  EXPECT_FALSE(env.config().eager_install);
  EXPECT_THAT(env.fields(), ElementsAre("config", "env_vars", "excludes", "java_jars", "pip",
                                        "py_executable", "py_modules", "working_dir"));
  EXPECT_TRUE(env.plugin_fields().empty());
}

TEST(Valid, WorkingDirZipFile) {
  RuntimeEnv env = validate_ok(Json{{"working_dir", fixture("file.zip")}});
  EXPECT_EQ(env.working_dir(), fixture("file.zip"));
}

TEST(Valid, RemoteUris) {
  for (const char* uri :
       {"s3://bucket/project.zip", "https://example.com/a/b.zip?token=abc#frag",
        "file:///tmp/x.zip", "http://example.com/X.TAR.GZ", "https://h/p.tgz", "s3://b/k/p.tar.xz",
        "s3://b/p.tar.bz2", "file:///tmp/p.tar", "local:///srv/app",
        "rtenv://sha256/0123456789abcdef0123456789abcdef0123456789abcdef"
        "0123456789abcdef"}) {
    SCOPED_TRACE(uri);
    RuntimeEnv env = validate_ok(Json{{"working_dir", uri}});
    EXPECT_EQ(env.working_dir(), uri);
  }
  RuntimeEnv env =
      validate_ok(Json{{"py_modules", {"https://x/m.whl", "s3://b/m.zip", kPackageUri}},
                       {"java_jars", {"s3://b/lib.jar", "s3://b/libs.zip", kPackageUri}}});
  EXPECT_THAT(env.py_modules(), ElementsAre("https://x/m.whl", "s3://b/m.zip", kPackageUri));
  EXPECT_THAT(env.java_jars(), ElementsAre("s3://b/lib.jar", "s3://b/libs.zip", kPackageUri));
}

TEST(Valid, ImageUriWithConfigAndEnvVars) {
  RuntimeEnv env = parse_ok(R"({"image_uri": "rayproject/ray:2.47.0", "env_vars": {"A": "1"},
                                "config": {"setup_timeout_seconds": -1}})");
  EXPECT_EQ(env.image_uri(), "rayproject/ray:2.47.0");
  EXPECT_EQ(env.config().setup_timeout_seconds, -1);
  EXPECT_TRUE(env.config().eager_install);
}

TEST(Valid, ContainerGivesImageUri) {
  RuntimeEnv env = parse_ok(R"({"container": {"image": "python:3.11", "run_options": []}})");
  EXPECT_EQ(env.image_uri(), "python:3.11");
  EXPECT_EQ(env.canonical(), R"({"container":{"image":"python:3.11"}})");
  RuntimeEnv with_options =
      parse_ok(R"({"container": {"image": "python:3.11", "run_options": ["--gpus", "all"]}})");
  EXPECT_EQ(with_options.canonical(),
            R"({"container":{"image":"python:3.11","run_options":["--gpus","all"]}})");
}

TEST(Valid, CondaForms) {
  EXPECT_EQ(parse_ok(R"({"conda": "my-env"})").canonical(), R"({"conda":"my-env"})");
  const std::string env_dir = fixture("proj");
  const Json named = {{"conda", env_dir}};
  EXPECT_EQ(validate_ok(named).canonical(), named.dump());
  // An absolute env directory that is not there is refused now (as Ray does), not at setup.
  EXPECT_EQ(error_of(Json{{"conda", "/nonexistent/envs/x"}}),
            "runtime_env.conda: conda env directory /nonexistent/envs/x does not exist; give an "
            "existing env's directory, an env name, or an environment.yml");
  EXPECT_EQ(
      error_of(Json{{"conda", fixture("notes.txt")}}),
      "runtime_env.conda: conda env directory " + fixture("notes.txt") + " is not a directory");
  EXPECT_EQ(parse_ok(R"({"conda": {"dependencies": ["python=3.11"]}})").canonical(),
            R"({"conda":{"dependencies":["python=3.11"]}})");
  // A .yml path is read on the submitting side (relative to base_dir) and travels as a dict.
  EXPECT_EQ(parse_ok(R"({"conda": "environment.yml"})").canonical(),
            R"({"conda":{"channels":["conda-forge"],"dependencies":["python=3.11",)"
            R"({"pip":["requests"]}],"name":"demo"}})");
}

TEST(Valid, ConfigTimeoutBounds) {
  EXPECT_EQ(parse_ok(R"({"config": {"setup_timeout_seconds": 1}})").config().setup_timeout_seconds,
            1);
  EXPECT_EQ(parse_ok(R"({"config": {"setup_timeout_seconds": 9223372036854775807}})")
                .config()
                .setup_timeout_seconds,
            INT64_MAX);
  EXPECT_EQ(error_of(Json::parse(R"({"config": {"setup_timeout_seconds": 18446744073709551615}})")),
            "runtime_env.config.setup_timeout_seconds: 18446744073709551615 is out of range");
  // Defaults when config is absent.
  EXPECT_EQ(RuntimeEnv().config().setup_timeout_seconds, 600);
  EXPECT_TRUE(RuntimeEnv().config().eager_install);
}

TEST(Valid, TopLevelNullMeansAbsent) {
  RuntimeEnv env = parse_ok(R"({"pip": null, "working_dir": null, "env_vars": {"A": "1"}})");
  EXPECT_EQ(env.canonical(), R"({"env_vars":{"A":"1"}})");
}

TEST(Valid, RelativePathsResolveAgainstBaseDir) {
  ParseOptions options = job_options();
  options.base_dir = fixtures_dir() / "proj";
  RuntimeEnv env =
      parse_ok(R"({"working_dir": "..", "py_modules": ["pkg", "../mod.py"]})", options);
  EXPECT_EQ(env.working_dir(), fixtures_dir().string());
  EXPECT_THAT(env.py_modules(), ElementsAre(fixture("proj/pkg"), fixture("mod.py")));
}

TEST(Valid, PathsAreLexicallyNormalWithoutTrailingSlash) {
  RuntimeEnv env =
      validate_ok(Json{{"working_dir", fixture("proj") + "/"},
                       {"py_modules", {fixture("./proj/pkg/../pkg/"), fixture("proj//pkg")}}});
  EXPECT_EQ(env.working_dir(), fixture("proj"));
  EXPECT_THAT(env.py_modules(), ElementsAre(fixture("proj/pkg"), fixture("proj/pkg")));
}

TEST(Invalid, MissingRelativePathIsNamedAbsolute) {
  EXPECT_EQ(error_of(Json{{"working_dir", "nope/"}}),
            "runtime_env.working_dir: local path " + fixture("nope") + " does not exist");
}

TEST(Invalid, TopLevelMustBeADict) {
  EXPECT_EQ(error_of(Json(3)), "runtime_env: expected a dict, got 3 (integer)");
  EXPECT_EQ(error_of(Json("x")), R"(runtime_env: expected a dict, got "x" (string))");
  EXPECT_EQ(error_of(Json(nullptr)), "runtime_env: expected a dict, got null (null)");
  EXPECT_EQ(error_of(Json::array({1, 2})), "runtime_env: expected a dict, got [1,2] (list)");
}

TEST(Invalid, InvalidUtf8IsAnErrorNotAnException) {
  Json value = {{"env_vars", {{"A", std::string("\xff\xfe")}}}};
  EXPECT_THAT(error_of(value), HasSubstr("runtime_env: a string is not valid UTF-8"));
}

TEST(Invalid, MessagesAreValidUtf8) {
  // nlohmann quotes what it last read, which here is a broken UTF-8 sequence.
  Result<RuntimeEnv> text = RuntimeEnv::from_json_text("{\"env_vars\": {\"A\": \"\xc3(\"}}");
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(text.error().message(), HasSubstr("runtime_env: invalid JSON at line 1"));
  EXPECT_EQ(internal::valid_utf8(text.error().message()), text.error().message());
  EXPECT_NO_THROW((void)Json(text.error().message()).dump());

  Result<RuntimeEnv> yaml = RuntimeEnv::from_yaml_text("env_vars:\n  A: \"\xff\"\n");
  ASSERT_FALSE(yaml.ok());
  EXPECT_THAT(yaml.error().message(), HasSubstr("runtime_env: a string is not valid UTF-8"));

  Result<RuntimeEnv> name = RuntimeEnv::from_yaml_text("\xfe\xff: 1\n");
  ASSERT_FALSE(name.ok());
  EXPECT_NO_THROW((void)Json(name.error().message()).dump());

  Result<RuntimeEnv> arg = RuntimeEnv::load("bad\xff.txt");
  ASSERT_FALSE(arg.ok());
  EXPECT_THAT(arg.error().message(), HasSubstr("cannot load bad\xef\xbf\xbd.txt"));
}

TEST(Invalid, ValidUtf8ReplacesOnlyBrokenBytes) {
  EXPECT_EQ(internal::valid_utf8("plain \xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80"),
            "plain \xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80");
  EXPECT_EQ(internal::valid_utf8("a\xff"
                                 "b"),
            "a\xef\xbf\xbd"
            "b");
  EXPECT_EQ(internal::valid_utf8("\xc3"), "\xef\xbf\xbd");                       // truncated
  EXPECT_EQ(internal::valid_utf8("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");       // overlong
  EXPECT_EQ(internal::valid_utf8("\xed\xa0\x80").substr(0, 3), "\xef\xbf\xbd");  // surrogate
}

TEST(Invalid, LongValuesAreCutOnACharacterBoundary) {
  std::string text(56, 'x');
  text += "\xc3\xa9\xc3\xa9\xc3\xa9";  // "ééé", the first straddling the cut
  std::string message = error_of(Json{{"working_dir", {{"k", text}}}});
  EXPECT_EQ(message, "runtime_env.working_dir: expected a string, got {\"k\":\"" +
                         std::string(51, 'x') + "... (dict)");
}

// ---- unknown fields and plugins --------------------------------------------------------------

TEST(UnknownFields, Suggestions) {
  EXPECT_EQ(error_of(Json{{"py_module", {"s3://b/m.zip"}}}),
            "runtime_env.py_module: unknown field; did you mean 'py_modules'?");
  EXPECT_EQ(error_of(Json{{"Pip", {"x"}}}), "runtime_env.Pip: unknown field; did you mean 'pip'?");
  EXPECT_EQ(error_of(Json{{"iamge_uri", "x"}}),
            "runtime_env.iamge_uri: unknown field; did you mean 'image_uri'?");
  EXPECT_THAT(error_of(Json{{"ab", 1}}), HasSubstr("runtime_env.ab: unknown field; known fields"));
}

TEST(UnknownFields, UnknownFieldIsReportedBeforeOtherErrors) {
  EXPECT_EQ(error_of(Json{{"env_vars", {{"A", 1}}}, {"zzz", 1}}),
            "runtime_env.zzz: unknown field; known fields are conda, config, container, env_vars, "
            "excludes, image_uri, java_jars, pip, py_executable, py_modules, uv, working_dir");
}

TEST(Plugins, RegisteredFieldsPassThrough) {
  EXPECT_FALSE(register_plugin_field("pip"));
  EXPECT_FALSE(register_plugin_field(""));
  EXPECT_FALSE(is_plugin_field("nsight"));
  EXPECT_TRUE(is_builtin_field("working_dir"));
  EXPECT_FALSE(is_builtin_field("nsight"));
  {
    ScopedPlugin nsight("nsight");
    ScopedPlugin mpi("mpi");
    EXPECT_TRUE(is_plugin_field("nsight"));
    RuntimeEnv env = parse_ok(R"({"nsight": {"t": "cuda,nvtx", "n": 3}, "mpi": [],
                                  "env_vars": {"A": "1"}})");
    EXPECT_THAT(env.plugin_fields(), ElementsAre("nsight"));  // mpi was empty: dropped
    EXPECT_THAT(env.fields(), ElementsAre("env_vars", "nsight"));
    EXPECT_EQ(env.canonical(), R"({"env_vars":{"A":"1"},"nsight":{"n":3,"t":"cuda,nvtx"}})");
    // A plugin field is one of the "others" an image excludes.
    EXPECT_EQ(error_of(Json{{"image_uri", "x"}, {"nsight", "default"}}),
              "runtime_env: image_uri may only be combined with config, env_vars, working_dir, "
              "py_modules and excludes, not nsight");
  }
  EXPECT_FALSE(is_plugin_field("nsight"));
  // Unregistered, nsight is Ray's own again: accepted, left out, with a warning.
  EXPECT_EQ(validate_ok(Json{{"nsight", "default"}}).canonical(), "{}");
  EXPECT_EQ(error_of(Json{{"mpi", "default"}}).rfind("runtime_env.mpi: unknown field", 0), 0u);
}

// ---- normalization ----------------------------------------------------------------------------

TEST(Normalize, EmptyValuesAreDropped) {
  RuntimeEnv env = parse_ok(R"({"working_dir": "", "py_modules": [], "excludes": [],
      "pip": [], "conda": {}, "env_vars": {}, "py_executable": "", "java_jars": [],
      "image_uri": "", "container": {}, "config": {}})");
  EXPECT_TRUE(env.empty());
  EXPECT_EQ(env.canonical(), "{}");
}

TEST(Normalize, EmptyValuesSkipValidationAndCombinationChecks) {
  // Empty image_uri does not forbid pip; empty conda does not conflict with pip.
  RuntimeEnv env = parse_ok(R"({"image_uri": "", "conda": "", "pip": ["six"]})");
  EXPECT_EQ(env.canonical(), R"({"pip":{"packages":["six"]}})");
}

TEST(Normalize, PipForms) {
  const std::string expected = R"({"pip":{"packages":["requests","six"]}})";
  EXPECT_EQ(parse_ok(R"({"pip": ["requests", "six"]})").canonical(), expected);
  EXPECT_EQ(parse_ok(R"({"pip": {"packages": ["requests", "six"]}})").canonical(), expected);
  EXPECT_EQ(parse_ok(R"({"pip": {"packages": ["requests", "six"], "pip_check": false,
                                 "pip_version": ""}})")
                .canonical(),
            expected);
  EXPECT_EQ(parse_ok(R"({"pip": {"pip_version": "==23.3", "packages": ["six"],
                                 "pip_check": true}})")
                .canonical(),
            R"({"pip":{"packages":["six"],"pip_check":true,"pip_version":"==23.3"}})");
}

TEST(Normalize, RequirementsFileIsReadIntoTheList) {
  const std::string expected =
      R"({"pip":{"packages":["requests==2.31.0","numpy>=1.26 ; python_version >= \"3.9\"",)"
      R"("-r other.txt"]}})";
  EXPECT_EQ(parse_ok(R"({"pip": "requirements.txt"})").canonical(), expected);
  EXPECT_EQ(validate_ok(Json{{"pip", fixture("requirements.txt")}}).canonical(), expected);
  EXPECT_EQ(parse_ok(R"({"pip": {"packages": "requirements.txt"}})").canonical(), expected);
  EXPECT_EQ(parse_ok(R"({"uv": "requirements.txt"})").canonical(),
            R"({"uv":{"packages":["requests==2.31.0","numpy>=1.26 ; python_version >= \"3.9\"",)"
            R"("-r other.txt"]}})");
}

TEST(Normalize, NothingToInstallDropsTheField) {
  EXPECT_TRUE(parse_ok(R"({"pip": "empty_requirements.txt"})").empty());
  EXPECT_TRUE(parse_ok(R"({"pip": {"packages": [], "pip_version": "==23.3"}})").empty());
  EXPECT_TRUE(parse_ok(R"({"uv": {"packages": ""}})").empty());
  // ... but the dropped dict is still validated.
  EXPECT_EQ(error_of(Json::parse(R"({"pip": {"packages": [], "pip_check": 1}})")),
            "runtime_env.pip.pip_check: expected a boolean, got 1 (integer)");
}

TEST(Normalize, UvForms) {
  RuntimeEnv env = parse_ok(R"({"uv": {"packages": ["torch"], "uv_check": false, "uv_version": "",
                                       "uv_pip_install_options": []}})");
  EXPECT_EQ(env.canonical(), R"({"uv":{"packages":["torch"]}})");
  EXPECT_EQ(parse_ok(R"({"uv": ["torch"]})").canonical(), env.canonical());
}

TEST(Normalize, NestedEmptyValuesAreKept) {
  // Only top-level empties mean "absent"; an env var set to "" is a real value.
  RuntimeEnv env = parse_ok(R"({"env_vars": {"EMPTY": ""}, "conda": {"name": "", "deps": []}})");
  EXPECT_EQ(env.canonical(), R"({"conda":{"deps":[],"name":""},"env_vars":{"EMPTY":""}})");
}

// ---- canonical form ---------------------------------------------------------------------------

TEST(Canonical, SortedCompactUtf8LikePythonJsonDumps) {
  Json value = {{"env_vars",
                 {{"B", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
                  {"A", "\x01\x1f\b\f\n\r\t\"\\/\xc3\xa9\x7f\xe2\x80\xa8"}}}};
  // Python: json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
  const std::string python =
      "{\"env_vars\":{\"A\":\"\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\/\xc3\xa9\x7f\xe2\x80\xa8\","
      "\"B\":\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\"}}";
  EXPECT_EQ(validate_ok(value).canonical(), python);
}

TEST(Canonical, KeysSortByCodePoint) {
  // UTF-8 byte order equals code point order (Python's str order), even past the BMP.
  RuntimeEnv env = parse_ok(R"({"env_vars": {"\ud800\udc00": "3", "\uffff": "2", "z": "1",
                                             "Z": "0"}})");
  EXPECT_EQ(env.canonical(),
            "{\"env_vars\":{\"Z\":\"0\",\"z\":\"1\",\"\xef\xbf\xbf\":\"2\",\"\xf0\x90\x80\x80\":"
            "\"3\"}}");
}

TEST(Canonical, IntegersOfEveryRange) {
  ScopedPlugin plugin("numbers");
  RuntimeEnv env =
      parse_ok(R"({"numbers": [1, -1, 0, 18446744073709551615, -9223372036854775808, "s"]})");
  EXPECT_EQ(env.canonical(),
            R"({"numbers":[1,-1,0,18446744073709551615,-9223372036854775808,"s"]})");
}

// ---- id ---------------------------------------------------------------------------------------

TEST(Id, SameEnvSameIdWhateverTheSpelling) {
  RuntimeEnv a = parse_ok(R"({"pip": ["requests"], "env_vars": {"B": "2", "A": "1"},
                              "working_dir": "s3://b/x.zip"})");
  RuntimeEnv b = parse_ok(
      R"({"working_dir":"s3://b/x.zip","env_vars":{"A":"1","B":"2"},
          "pip":{"packages":["requests"],"pip_check":false},"py_modules":[],"conda":""})");
  RuntimeEnv c = parse_ok(
      "\n  {  \"env_vars\" : {\"A\":\"1\" , \"B\":\"2\"},\n"
      "\"pip\":{\"packages\":[\"requests\"]},\t\"working_dir\":\"s3://b/x.zip\"}");
  EXPECT_EQ(a.canonical(), b.canonical());
  EXPECT_EQ(a.canonical(), c.canonical());
  EXPECT_EQ(a.id(), b.id());
  EXPECT_EQ(a.id(), c.id());
  EXPECT_EQ(a.id().hex().size(), 64u);
}

TEST(Id, IsTheDigestOfTheCanonicalFormWithoutConfig) {
  RuntimeEnv with_config = parse_ok(R"({"pip": ["six"], "config": {"setup_timeout_seconds": 5}})");
  RuntimeEnv without = parse_ok(R"({"pip": ["six"]})");
  EXPECT_NE(with_config.canonical(), without.canonical());
  EXPECT_EQ(with_config.id(), without.id());
  EXPECT_EQ(without.id().digest(), Digest::of(R"({"pip":{"packages":["six"]}})"));
  EXPECT_EQ(RuntimeEnv().id().digest(), Digest::of("{}"));
  EXPECT_EQ(parse_ok(R"({"config": {"eager_install": false}})").id(), RuntimeEnv().id());
}

TEST(Id, DifferentContentDifferentId) {
  EXPECT_NE(parse_ok(R"({"pip": ["six"]})").id(), parse_ok(R"({"uv": ["six"]})").id());
  EXPECT_NE(parse_ok(R"({"pip": ["six", "a"]})").id(), parse_ok(R"({"pip": ["a", "six"]})").id());
  EXPECT_NE(parse_ok(R"({"env_vars": {"A": ""}})").id(), RuntimeEnv().id());
}

// ---- typed accessors --------------------------------------------------------------------------

TEST(Accessors, AbsentFieldsGiveEmptyValues) {
  RuntimeEnv env;
  EXPECT_FALSE(env.working_dir().has_value());
  EXPECT_TRUE(env.py_modules().empty());
  EXPECT_TRUE(env.excludes().empty());
  EXPECT_TRUE(env.env_vars().empty());
  EXPECT_FALSE(env.python_packages().has_value());
  EXPECT_FALSE(env.py_executable().has_value());
  EXPECT_TRUE(env.java_jars().empty());
  EXPECT_FALSE(env.image_uri().has_value());
  EXPECT_TRUE(env.plugin_fields().empty());
  EXPECT_TRUE(env.fields().empty());
}

TEST(Accessors, PipPackages) {
  auto packages = parse_ok(R"({"pip": {"packages": ["a", "b"], "pip_check": true,
                                       "pip_version": "==24.0"}})")
                      .python_packages();
  ASSERT_TRUE(packages.has_value());
  EXPECT_EQ(packages->installer, Installer::kPip);
  EXPECT_THAT(packages->packages, ElementsAre("a", "b"));
  EXPECT_TRUE(packages->check);
  EXPECT_EQ(packages->installer_version, "==24.0");
  EXPECT_TRUE(packages->install_options.empty());

  auto simple = parse_ok(R"({"pip": ["a"]})").python_packages();
  ASSERT_TRUE(simple.has_value());
  EXPECT_FALSE(simple->check);
  EXPECT_FALSE(simple->installer_version.has_value());
}

TEST(Accessors, UvPackages) {
  auto packages = parse_ok(R"({"uv": {"packages": ["torch"], "uv_check": true,
                                      "uv_version": "==0.4.0",
                                      "uv_pip_install_options": ["--no-cache"]}})")
                      .python_packages();
  ASSERT_TRUE(packages.has_value());
  EXPECT_EQ(packages->installer, Installer::kUv);
  EXPECT_THAT(packages->packages, ElementsAre("torch"));
  EXPECT_TRUE(packages->check);
  EXPECT_EQ(packages->installer_version, "==0.4.0");
  EXPECT_THAT(packages->install_options, ElementsAre("--no-cache"));
}

TEST(Accessors, CondaIsNotPythonPackages) {
  EXPECT_FALSE(parse_ok(R"({"conda": "env"})").python_packages().has_value());
}

// ---- with_field -------------------------------------------------------------------------------

TEST(WithField, ReplacesAndRenormalizes) {
  RuntimeEnv env = parse_ok(R"({"working_dir": "proj", "pip": ["six"]})");
  RuntimeEnv packaged = env.with_field("working_dir", kPackageUri);
  EXPECT_EQ(packaged.working_dir(), kPackageUri);
  EXPECT_EQ(packaged.canonical(),
            R"({"pip":{"packages":["six"]},"working_dir":")" + kPackageUri + R"("})");
  EXPECT_EQ(env.working_dir(), fixture("proj"));  // the original is unchanged
  EXPECT_NE(packaged.id(), env.id());

  // Same normalization as parsing: list form -> dict form; empty removes.
  RuntimeEnv pip_list = env.with_field("pip", Json::array({"requests"}));
  EXPECT_EQ(pip_list.to_json()["pip"], Json::parse(R"({"packages":["requests"]})"));
  RuntimeEnv pip_dict =
      env.with_field("pip", Json::parse(R"({"packages":["requests"],"pip_check":false})"));
  EXPECT_EQ(pip_dict.canonical(), pip_list.canonical());
  EXPECT_EQ(env.with_field("pip", Json::array()).fields(), std::vector<std::string>{"working_dir"});
  EXPECT_EQ(env.with_field("pip", Json::parse(R"({"packages":[]})")).fields(),
            std::vector<std::string>{"working_dir"});
  EXPECT_EQ(env.with_field("working_dir", "").fields(), std::vector<std::string>{"pip"});
  EXPECT_EQ(env.with_field("working_dir", nullptr).fields(), std::vector<std::string>{"pip"});
  EXPECT_EQ(env.with_field("py_modules", Json::array({kPackageUri})).py_modules(),
            std::vector<std::string>{kPackageUri});
}

TEST(WithField, ResultParsesToTheSameCanonical) {
  RuntimeEnv env = parse_ok(R"({"working_dir": "proj", "py_modules": ["mod.py"]})")
                       .with_field("working_dir", kPackageUri)
                       .with_field("py_modules", Json::array({kPackageUri}));
  RuntimeEnv reparsed = parse_ok(env.canonical(), task_options());
  EXPECT_EQ(reparsed.canonical(), env.canonical());
  EXPECT_EQ(reparsed.id(), env.id());
}

// ---- task level -------------------------------------------------------------------------------

TEST(TaskLevel, LocalPathsAreRejected) {
  const std::string tail =
      " is not allowed in a task or actor env: task and actor envs take only URIs (local paths "
      "are packaged at the job level)";
  EXPECT_EQ(error_of(Json{{"working_dir", "proj"}}, task_options()),
            "runtime_env.working_dir: local path proj" + tail);
  // Even a path that exists, and even an absolute one.
  EXPECT_EQ(error_of(Json{{"working_dir", fixture("proj")}}, task_options()),
            "runtime_env.working_dir: local path " + fixture("proj") + tail);
  EXPECT_EQ(error_of(Json{{"py_modules", {"s3://b/m.zip", "mod.py"}}}, task_options()),
            "runtime_env.py_modules[1]: local path mod.py" + tail);
  EXPECT_EQ(error_of(Json{{"java_jars", {"./lib.jar"}}}, task_options()),
            "runtime_env.java_jars[0]: local path ./lib.jar" + tail);
}

TEST(TaskLevel, UrisAndNonPathFieldsAreAccepted) {
  RuntimeEnv env = validate_ok(
      Json{{"working_dir", kPackageUri},
           {"py_modules", {"s3://b/m.whl", kPackageUri}},
           {"env_vars", {{"A", "1"}}},
           {"pip", "requirements.txt"}},  // read on the submitting side: its content travels
      task_options());
  EXPECT_EQ(env.working_dir(), kPackageUri);
  ASSERT_TRUE(env.python_packages().has_value());
  EXPECT_EQ(env.python_packages()->packages.size(), 3u);
}

// ---- load -------------------------------------------------------------------------------------

TEST(Load, InlineJson) {
  Result<RuntimeEnv> env = RuntimeEnv::load("  \n {\"env_vars\": {\"A\": \"1\"}}", job_options());
  ASSERT_TRUE(env.ok()) << env.error().message();
  EXPECT_EQ(env->canonical(), R"({"env_vars":{"A":"1"}})");
}

TEST(Load, JsonAndYamlFiles) {
  Result<RuntimeEnv> json = RuntimeEnv::load("env.json", job_options());
  ASSERT_TRUE(json.ok()) << json.error().message();
  EXPECT_EQ(json->working_dir(), fixture("proj"));
  EXPECT_EQ(json->env_vars().at("MODE"), "fast");

  Result<RuntimeEnv> yaml = RuntimeEnv::load(fixture("env.yaml"), job_options());
  ASSERT_TRUE(yaml.ok()) << yaml.error().message();
  EXPECT_EQ(yaml->working_dir(), fixture("proj"));
  EXPECT_EQ(yaml->env_vars(),
            (std::map<std::string, std::string>{{"MODE", "fast"}, {"RETRIES", "3"}}));
  EXPECT_EQ(yaml->config().setup_timeout_seconds, 120);
  ASSERT_TRUE(yaml->python_packages().has_value());
  EXPECT_THAT(yaml->python_packages()->packages, ElementsAre("requests==2.31.0"));
}

TEST(Load, YmlExtension) {
  fs::path dir = fs::temp_directory_path() / unique_name("rtenv-spec-test");
  ASSERT_TRUE(make_dirs(dir).ok());
  ASSERT_TRUE(write_file_atomic(dir / "seed.YML", "uv: [torch]\nworking_dir: s3://b/x.zip\n").ok());
  Result<RuntimeEnv> env = RuntimeEnv::load((dir / "seed.YML").string(), job_options());
  ASSERT_TRUE(env.ok()) << env.error().message();
  EXPECT_EQ(env->canonical(), R"({"uv":{"packages":["torch"]},"working_dir":"s3://b/x.zip"})");
  // Relative spec paths resolve against base_dir too.
  ParseOptions options = job_options();
  options.base_dir = dir;
  Result<RuntimeEnv> relative = RuntimeEnv::load("seed.YML", options);
  ASSERT_TRUE(relative.ok()) << relative.error().message();
  EXPECT_EQ(relative->canonical(), env->canonical());
  ASSERT_TRUE(remove_tree(dir).ok());
}

TEST(Load, Errors) {
  auto message = [](std::string_view arg) {
    Result<RuntimeEnv> env = RuntimeEnv::load(arg, job_options());
    EXPECT_FALSE(env.ok()) << arg;
    if (env.ok()) return std::string();
    EXPECT_EQ(env.error().code(), ErrorCode::kInvalidArgument) << arg;
    return env.error().message();
  };
  EXPECT_EQ(message("missing.json"),
            "runtime_env: file " + fixture("missing.json") + " does not exist");
  EXPECT_EQ(message(fixture("missing.yaml")),
            "runtime_env: file " + fixture("missing.yaml") + " does not exist");
  EXPECT_EQ(message("env.txt"),
            "runtime_env: cannot load env.txt: expected inline JSON (starting with '{') or a path "
            "to a .json, .yaml or .yml file");
  EXPECT_EQ(message("pip=requests"),
            "runtime_env: cannot load pip=requests: expected inline JSON (starting with '{') or a "
            "path to a .json, .yaml or .yml file");
  EXPECT_EQ(message("  "),
            "runtime_env: empty argument; expected inline JSON or a path to a .json, .yaml or "
            ".yml file");
  EXPECT_EQ(message("broken.json"),
            "runtime_env: invalid JSON at line 1, column 12: syntax error while parsing value - "
            "unexpected end of input; expected '[', '{', or a literal");
  EXPECT_EQ(message("[1]"), "runtime_env: expected a dict, got [1] (list)");
  EXPECT_EQ(message(R"({"pip": 1})"),
            "runtime_env.pip: expected a list, a string or a dict, got 1 (integer)");

  // A directory named like a spec file.
  fs::path dir = fs::temp_directory_path() / unique_name("rtenv-spec-test") / "env.json";
  ASSERT_TRUE(make_dirs(dir).ok());
  EXPECT_EQ(message(dir.string()), "runtime_env: " + dir.string() + " is a directory, not a file");
  ASSERT_TRUE(remove_tree(dir.parent_path()).ok());
}

TEST(FromJsonText, SyntaxErrorsNameLineAndColumn) {
  Result<RuntimeEnv> env = RuntimeEnv::from_json_text("{\n\"a\": 1,\n  \"b\" 2}");
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(env.error().message(), HasSubstr("runtime_env: invalid JSON at line 3, column 7: "));
  Result<RuntimeEnv> empty = RuntimeEnv::from_json_text("");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.error().message(), HasSubstr("runtime_env: invalid JSON at line 1, column 1"));
}

// ---- the forms Ray users write --------------------------------------------------------------

TEST(RayForms, PipInstallOptionsAreTypedAndPartOfTheId) {
  RuntimeEnv env = validate_ok(
      Json::parse(R"({"pip": {"packages": ["a"], "pip_install_options": ["--no-deps"]}})"));
  auto packages = env.python_packages();
  ASSERT_TRUE(packages);
  EXPECT_THAT(packages->install_options, ElementsAre("--no-deps"));
  EXPECT_EQ(packages->to_json(), env.to_json()["pip"]);
  // They can change what is installed: another option set is another env.
  RuntimeEnv plain = validate_ok(Json::parse(R"({"pip": ["a"]})"));
  EXPECT_NE(env.id(), plain.id());
  // An empty list is no options.
  EXPECT_EQ(
      validate_ok(Json::parse(R"({"pip": {"packages": ["a"], "pip_install_options": []}})")).id(),
      plain.id());
}

TEST(RayForms, RayOnlyFieldsAreLeftOutWithOneWarning) {
  RuntimeEnv env = validate_ok(Json::parse(
      R"({"env_vars": {"A": "1"}, "worker_process_setup_hook": "m.setup", "_ray_commit": "c"})"));
  EXPECT_EQ(env.canonical(), R"({"env_vars":{"A":"1"}})");
  EXPECT_EQ(env.id(), validate_ok(Json::parse(R"({"env_vars": {"A": "1"}})")).id());
  ASSERT_EQ(env.warnings().size(), 1u);
  EXPECT_THAT(env.warnings()[0], HasSubstr("_ray_commit and worker_process_setup_hook act only "
                                           "under Ray"));
  // A plugin registered under such a name gets it instead.
  {
    ScopedPlugin plugin("_profiler");
    EXPECT_EQ(validate_ok(Json{{"_profiler", "on"}}).canonical(), R"({"_profiler":"on"})");
  }
  EXPECT_TRUE(validate_ok(Json{{"_profiler", nullptr}}).warnings().empty());
}

TEST(RayForms, NullIsAbsentWhateverTheName) {
  EXPECT_EQ(validate_ok(Json{{"no_such_field", nullptr}, {"pip", nullptr}}).canonical(), "{}");
  EXPECT_THAT(error_of(Json{{"no_such_field", Json::array()}}),
              HasSubstr("runtime_env.no_such_field: unknown field"));
}

}  // namespace
}  // namespace rtenv::spec
