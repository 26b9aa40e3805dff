// YAML input: plain scalars typed by the YAML 1.2 core schema, quoted scalars stay strings.

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "spec/internal.h"
#include "spec/runtime_env.h"
#include "test_support.h"

namespace rtenv::spec {
namespace {

using ::testing::HasSubstr;
using testing::job_options;

Json yaml(const std::string& text) {
  Result<Json> value = internal::yaml_to_json(text);
  EXPECT_TRUE(value.ok()) << text << "\n-> " << value.error().message();
  return value.ok() ? std::move(value).value() : Json();
}

std::string yaml_error(const std::string& text) {
  Result<RuntimeEnv> env = RuntimeEnv::from_yaml_text(text, job_options());
  EXPECT_FALSE(env.ok()) << text << " was accepted";
  if (env.ok()) return "";
  EXPECT_EQ(env.error().code(), ErrorCode::kInvalidArgument);
  return env.error().message();
}

TEST(YamlTyping, PlainScalarsFollowTheCoreSchema) {
  Json v = yaml(R"(
t1: true
t2: True
t3: TRUE
f1: false
n1: null
n2: ~
n3:
n4: NULL
i1: 42
i2: -7
i3: +3
i4: 0o17
i5: 0x1F
i6: 007
big: 9223372036854775807
ubig: 18446744073709551615
neg: -9223372036854775808
f2: 10.0
f3: 1e3
f4: -.5
f5: 6.02E+23
s1: yes
s2: no
s3: on
s4: 1_000
s5: 0b101
s6: 12:30
s7: 1.2.3
s8: hello world
s9: .inf.x
)");
  EXPECT_EQ(v["t1"], Json(true));
  EXPECT_EQ(v["t2"], Json(true));
  EXPECT_EQ(v["t3"], Json(true));
  EXPECT_EQ(v["f1"], Json(false));
  for (const char* key : {"n1", "n2", "n3", "n4"}) EXPECT_TRUE(v[key].is_null()) << key;
  EXPECT_EQ(v["i1"], Json(42));
  EXPECT_EQ(v["i2"], Json(-7));
  EXPECT_EQ(v["i3"], Json(3));
  EXPECT_EQ(v["i4"], Json(15));
  EXPECT_EQ(v["i5"], Json(31));
  EXPECT_EQ(v["i6"], Json(7));
  EXPECT_EQ(v["big"], Json(INT64_MAX));
  EXPECT_EQ(v["ubig"], Json(UINT64_MAX));
  EXPECT_EQ(v["neg"], Json(INT64_MIN));
  for (const char* key : {"i1", "i2", "big", "ubig", "neg"}) {
    EXPECT_TRUE(v[key].is_number_integer()) << key;
  }
  EXPECT_TRUE(v["f2"].is_number_float());
  EXPECT_EQ(v["f2"].dump(), "10.0");
  EXPECT_EQ(v["f3"], Json(1000.0));
  EXPECT_TRUE(v["f3"].is_number_float());
  EXPECT_EQ(v["f4"], Json(-0.5));
  EXPECT_EQ(v["f5"], Json(6.02e23));
  // YAML 1.1 booleans and other look-alikes are strings in the 1.2 core schema.
  EXPECT_EQ(v["s1"], Json("yes"));
  EXPECT_EQ(v["s2"], Json("no"));
  EXPECT_EQ(v["s3"], Json("on"));
  EXPECT_EQ(v["s4"], Json("1_000"));
  EXPECT_EQ(v["s5"], Json("0b101"));
  EXPECT_EQ(v["s6"], Json("12:30"));
  EXPECT_EQ(v["s7"], Json("1.2.3"));
  EXPECT_EQ(v["s8"], Json("hello world"));
  EXPECT_EQ(v["s9"], Json(".inf.x"));
}

TEST(YamlTyping, QuotedAndBlockScalarsStayStrings) {
  Json v = yaml(R"(
a: "true"
b: '42'
c: "null"
d: ""
e: '10.0'
f: |
  line one
  line two
g: >-
  folded
  text
h: !!str 12
)");
  EXPECT_EQ(v["a"], Json("true"));
  EXPECT_EQ(v["b"], Json("42"));
  EXPECT_EQ(v["c"], Json("null"));
  EXPECT_EQ(v["d"], Json(""));
  EXPECT_EQ(v["e"], Json("10.0"));
  EXPECT_EQ(v["f"], Json("line one\nline two\n"));
  EXPECT_EQ(v["g"], Json("folded text"));
  EXPECT_EQ(v["h"], Json("12"));
}

TEST(YamlTyping, CollectionsAndKeys) {
  Json v = yaml("list: [1, 'a', [true]]\nmap: {x: {y: z}}\n1: one\nanchor: &a [k]\nalias: *a\n");
  EXPECT_EQ(v["list"], Json::parse(R"([1, "a", [true]])"));
  EXPECT_EQ(v["map"], Json::parse(R"({"x": {"y": "z"}})"));
  EXPECT_EQ(v["1"], Json("one"));
  EXPECT_EQ(v["alias"], Json::parse(R"(["k"])"));
}

TEST(Yaml, ValidEnv) {
  Result<RuntimeEnv> env = RuntimeEnv::from_yaml_text(R"(
working_dir: s3://bucket/project.zip
pip:
  packages: [requests==2.31.0]
  pip_check: true
env_vars:
  RETRIES: "3"
  FLAG: 'true'
  EMPTY: ""
config:
  setup_timeout_seconds: -1
  eager_install: false
excludes:        # null: absent
)",
                                                      job_options());
  ASSERT_TRUE(env.ok()) << env.error().message();
  EXPECT_EQ(env->canonical(), R"({"config":{"eager_install":false,"setup_timeout_seconds":-1},)"
                              R"("env_vars":{"EMPTY":"","FLAG":"true","RETRIES":"3"},)"
                              R"("pip":{"packages":["requests==2.31.0"],"pip_check":true},)"
                              R"("working_dir":"s3://bucket/project.zip"})");
  // The same env written as JSON has the same id.
  Result<RuntimeEnv> json = RuntimeEnv::from_json_text(
      R"({"working_dir": "s3://bucket/project.zip", "env_vars": {"RETRIES": "3", "FLAG": "true",
          "EMPTY": ""}, "pip": {"packages": ["requests==2.31.0"], "pip_check": true}})");
  ASSERT_TRUE(json.ok()) << json.error().message();
  EXPECT_EQ(json->id(), env->id());
}

TEST(Yaml, TypedScalarsAreValidatedLikeJson) {
  EXPECT_EQ(yaml_error("env_vars:\n  RETRIES: 3\n"),
            "runtime_env.env_vars.RETRIES: expected a string, got 3 (integer)");
  EXPECT_EQ(yaml_error("env_vars:\n  DEBUG: true\n"),
            "runtime_env.env_vars.DEBUG: expected a string, got true (boolean)");
  EXPECT_EQ(yaml_error("config:\n  setup_timeout_seconds: 10.0\n"),
            "runtime_env.config.setup_timeout_seconds: expected an integer, got 10.0 (number)");
  EXPECT_EQ(yaml_error("config:\n  setup_timeout_seconds: \"10\"\n"),
            "runtime_env.config.setup_timeout_seconds: expected an integer, got \"10\" (string)");
  EXPECT_EQ(yaml_error("config:\n  eager_install: yes\n"),
            "runtime_env.config.eager_install: expected a boolean, got \"yes\" (string)");
}

TEST(Yaml, TopLevelMustBeAMapping) {
  EXPECT_EQ(yaml_error("- a\n- b\n"), R"(runtime_env: expected a dict, got ["a","b"] (list))");
  EXPECT_EQ(yaml_error("just text\n"), R"(runtime_env: expected a dict, got "just text" (string))");
  EXPECT_EQ(yaml_error(""), "runtime_env: expected a dict, got null (null)");
  EXPECT_EQ(yaml_error("# only a comment\n"), "runtime_env: expected a dict, got null (null)");
}

TEST(Yaml, SyntaxErrorsNameLineAndColumn) {
  EXPECT_EQ(yaml_error("pip: [a,\n b"),
            "runtime_env: invalid YAML at line 2, column 1: end of sequence flow not found");
  EXPECT_THAT(yaml_error("env_vars: {A: '1'\n"), HasSubstr("runtime_env: invalid YAML at line "));
}

TEST(Yaml, DuplicateKeysAreErrors) {
  EXPECT_EQ(yaml_error("pip: [a]\npip: [b]\n"),
            "runtime_env: invalid YAML at line 2, column 1: duplicate key 'pip'");
}

TEST(Yaml, ValuesWithoutJsonEquivalentAreErrors) {
  EXPECT_EQ(yaml_error("x: .inf\n"),
            "runtime_env: invalid YAML at line 1, column 4: .inf has no JSON equivalent (JSON has "
            "no infinity or NaN)");
  EXPECT_EQ(yaml_error("x: -.Inf\n"),
            "runtime_env: invalid YAML at line 1, column 4: -.Inf has no JSON equivalent (JSON "
            "has no infinity or NaN)");
  EXPECT_EQ(yaml_error("x: 99999999999999999999\n"),
            "runtime_env: invalid YAML at line 1, column 4: integer 99999999999999999999 is out "
            "of range");
  EXPECT_EQ(yaml_error("? [a, b]\n: c\n"),
            "runtime_env: invalid YAML at line 1, column 3: a mapping key must be a scalar");
}

TEST(Yaml, NeverThrowsOnOddInput) {
  for (const char* text : {"{", "[", "a: b: c", "\t- x", "!!binary ab", "*undefined_alias",
                           "a: &x 1\nb: *y\n", "%YAML 9.9\n---\na: 1\n", "\xff\xfe"}) {
    SCOPED_TRACE(text);
    Result<RuntimeEnv> env = RuntimeEnv::from_yaml_text(text, job_options());
    if (!env.ok()) {
      EXPECT_EQ(env.error().code(), ErrorCode::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace rtenv::spec
