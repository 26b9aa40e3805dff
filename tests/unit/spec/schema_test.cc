// `rtenv schema`: the JSON Schema has an entry for every built-in field, and lets plugin fields
// through. (python/tests/test_schema.py checks it against the shared vectors with jsonschema.)

#include "spec/schema.h"

#include <gtest/gtest.h>

#include "spec/internal.h"

namespace rtenv::spec {
namespace {

TEST(Schema, DescribesEveryBuiltinField) {
  const Json schema = runtime_env_schema();
  ASSERT_TRUE(schema["properties"].is_object());
  EXPECT_EQ(schema["properties"].size(), internal::builtin_fields().size());
  for (const std::string& name : internal::builtin_fields()) {
    SCOPED_TRACE(name);
    const Json& field = schema["properties"][name];
    ASSERT_TRUE(field.is_object());
    EXPECT_FALSE(field.value("description", "").empty()) << "no shape given for the field";
    ASSERT_EQ(field["anyOf"].size(), 2u);
    EXPECT_EQ(field["anyOf"][0], Json({{"$ref", "#/$defs/empty"}}));
    EXPECT_FALSE(field["anyOf"][1].empty());
  }
}

TEST(Schema, LetsPluginFieldsThroughAndClosesNestedDicts) {
  const Json schema = runtime_env_schema();
  EXPECT_EQ(schema["type"], "object");
  EXPECT_TRUE(schema["additionalProperties"].is_object());
  const Json& config = schema["properties"]["config"]["anyOf"][1];
  EXPECT_EQ(config["additionalProperties"], false);
  EXPECT_TRUE(config["properties"].contains("setup_timeout_seconds"));
  const Json& uv = schema["properties"]["uv"]["anyOf"][1]["anyOf"][2];
  EXPECT_TRUE(uv["properties"].contains("uv_pip_install_options"));
  const Json& pip = schema["properties"]["pip"]["anyOf"][1]["anyOf"][2];
  EXPECT_FALSE(pip["properties"].contains("uv_pip_install_options"));
  EXPECT_TRUE(pip["properties"].contains("pip_install_options"));
  EXPECT_TRUE(config["properties"].contains("log_files"));
  EXPECT_EQ(pip["required"], Json::array({"packages"}));
}

}  // namespace
}  // namespace rtenv::spec
