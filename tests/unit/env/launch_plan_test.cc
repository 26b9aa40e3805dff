#include "env/launch_plan.h"

#include <fstream>

#include <gtest/gtest.h>

namespace rtenv::env {
namespace {

using Vars = std::map<std::string, std::string>;

TEST(LaunchPlanTest, SetExpandsFromTheCallerOnlyWhenAsked) {
  LaunchPlan plan;
  plan.set("A", "x-${HOME}-${NOPE}-$${HOME}", /*expand=*/true);
  plan.set("B", "x-${HOME}");
  Vars out = apply_environment(plan, {{"HOME", "/h"}});
  EXPECT_EQ(out.at("A"), "x-/h--$/h");
  EXPECT_EQ(out.at("B"), "x-${HOME}");
  EXPECT_EQ(out.at("HOME"), "/h");
}

TEST(LaunchPlanTest, PrependsInPlanOrderBeforeTheBaseAndAppendsAfter) {
  LaunchPlan plan;
  plan.prepend("PATH", {"/venv/bin"});
  plan.prepend("PATH", {"/plugin/bin", "/more"});
  plan.append("PATH", {"/last"});
  EXPECT_EQ(apply_environment(plan, {{"PATH", "/usr/bin"}}).at("PATH"),
            "/venv/bin:/plugin/bin:/more:/usr/bin:/last");
  // No caller value: only what the plan adds.
  EXPECT_EQ(apply_environment(plan, {}).at("PATH"), "/venv/bin:/plugin/bin:/more:/last");
}

TEST(LaunchPlanTest, SetReplacesTheBaseWhateverItsPositionAmongPrepends) {
  LaunchPlan plan;
  plan.prepend("PATH", {"/venv/bin"});
  plan.set("PATH", "/x:${PATH}", /*expand=*/true);
  EXPECT_EQ(apply_environment(plan, {{"PATH", "/usr/bin"}}).at("PATH"), "/venv/bin:/x:/usr/bin");
}

TEST(LaunchPlanTest, UnsetRemovesAndEmptySetStays) {
  LaunchPlan plan;
  EnvOp unset;
  unset.kind = EnvOp::Kind::kUnset;
  unset.name = "GONE";
  plan.env.push_back(unset);
  plan.set("EMPTY", "");
  Vars out = apply_environment(plan, {{"GONE", "1"}});
  EXPECT_FALSE(out.contains("GONE"));
  EXPECT_EQ(out.at("EMPTY"), "");
  // An unset variable with prepends is just the prepends.
  plan.prepend("GONE", {"/a"});
  EXPECT_EQ(apply_environment(plan, {{"GONE", "1"}}).at("GONE"), "/a");
}

TEST(LaunchPlanTest, DefaultAppliesOnlyWhenNothingElseSetsIt) {
  LaunchPlan plan;
  EnvOp def;
  def.kind = EnvOp::Kind::kDefault;
  def.name = "PYTHONPYCACHEPREFIX";
  def.value = "/cache";
  def.unless_set = {"PYTHONDONTWRITEBYTECODE"};
  plan.env.push_back(def);
  EXPECT_EQ(apply_environment(plan, {}).at("PYTHONPYCACHEPREFIX"), "/cache");
  EXPECT_EQ(apply_environment(plan, {{"PYTHONPYCACHEPREFIX", "/mine"}}).at("PYTHONPYCACHEPREFIX"),
            "/mine");
  EXPECT_FALSE(
      apply_environment(plan, {{"PYTHONDONTWRITEBYTECODE", "1"}}).contains("PYTHONPYCACHEPREFIX"));
  plan.set("PYTHONDONTWRITEBYTECODE", "1");
  EXPECT_FALSE(apply_environment(plan, {}).contains("PYTHONPYCACHEPREFIX"));
}

TEST(LaunchPlanTest, SeparatorIsTheOps) {
  LaunchPlan plan;
  plan.append("FLAGS", {"-a", "-b"}, " ");
  EXPECT_EQ(apply_environment(plan, {{"FLAGS", "-x"}}).at("FLAGS"), "-x -a -b");
}

TEST(LaunchPlanTest, JsonRoundTrip) {
  LaunchPlan plan;
  plan.set("A", "${B}", true);
  plan.prepend("PATH", {"/p"});
  plan.append("CLASSPATH", {"/a.jar"}, ";");
  EnvOp def;
  def.kind = EnvOp::Kind::kDefault;
  def.name = "D";
  def.value = "v";
  def.unless_set = {"E"};
  plan.env.push_back(def);
  EnvOp unset;
  unset.kind = EnvOp::Kind::kUnset;
  unset.name = "U";
  plan.env.push_back(unset);
  plan.cwd = "/w";
  plan.wrapper = {"env", "--"};
  plan.py_executable = "/venv/bin/python";
  plan.resources = {"rtenv://sha256/" + std::string(64, 'a')};
  auto back = LaunchPlan::from_json(plan.to_json());
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(*back, plan);
  EXPECT_EQ(plan.to_json()["env"][0]["op"], "set");
}

TEST(LaunchPlanTest, MalformedJsonIsRefusedNamingWhat) {
  for (const char* text : {
           R"([])",
           R"({"env": {}})",
           R"({"env": [{"op": "frobnicate", "name": "A"}]})",
           R"({"env": [{"op": "set", "name": ""}]})",
           R"({"env": [{"op": "set", "name": "A"}]})",
           R"({"env": [{"op": "prepend", "name": "A", "values": [1]}]})",
           R"({"cwd": 3})",
           R"({"wrapper": "sh"})",
       }) {
    auto r = LaunchPlan::from_json(nlohmann::json::parse(text));
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << text;
    EXPECT_NE(r.error().message().find("launch plan"), std::string::npos) << r.error().message();
  }
}

TEST(LaunchPlanTest, TaskPrologLinesAreWhatThePlanChanges) {
  LaunchPlan plan;
  plan.prepend("PATH", {"/venv/bin"});
  plan.set("KEEP", "same");
  plan.set("NEW", "a b=c $HOME");
  EnvOp unset;
  unset.kind = EnvOp::Kind::kUnset;
  unset.name = "GONE";
  plan.env.push_back(unset);
  plan.cwd = "/home/pkgs/abc";
  auto lines = task_prolog_lines(plan, {{"PATH", "/usr/bin"}, {"KEEP", "same"}, {"GONE", "1"}});
  ASSERT_TRUE(lines.ok()) << lines.error().message();
  // Changed and new variables by name (values verbatim: TaskProlog takes the rest of the line),
  // the cwd as RTENV_WORKING_DIR, then what the plan removes.
  EXPECT_EQ(*lines,
            (std::vector<std::string>{"export NEW=a b=c $HOME", "export PATH=/venv/bin:/usr/bin",
                                      "export RTENV_WORKING_DIR=/home/pkgs/abc", "unset GONE"}));
  // Nothing changes: no lines.
  auto none = task_prolog_lines(LaunchPlan{}, {{"PATH", "/usr/bin"}});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(LaunchPlanTest, TaskPrologLinesRefuseWhatALineCannotCarry) {
  LaunchPlan newline;
  newline.set("MULTI", "one\ntwo");
  auto r = task_prolog_lines(newline, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("MULTI"), std::string::npos) << r.error().message();
  LaunchPlan bad_name;
  bad_name.set("A-B", "x");
  r = task_prolog_lines(bad_name, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("A-B"), std::string::npos) << r.error().message();
  LaunchPlan wrapped;
  wrapped.wrapper = {"/usr/bin/bwrap", "--"};
  r = task_prolog_lines(wrapped, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("wrapper"), std::string::npos) << r.error().message();
}

// The same vectors python/tests/test_launch_plan.py checks: both appliers agree.
TEST(LaunchPlanTest, SharedVectors) {
  std::ifstream in(std::string(RTENV_TEST_DATA_DIR) + "/launch_plan/apply.json");
  ASSERT_TRUE(in) << "tests/data/launch_plan/apply.json";
  auto cases = nlohmann::json::parse(in);
  ASSERT_GE(cases.size(), 10u);
  for (const auto& c : cases) {
    auto plan = LaunchPlan::from_json(c["plan"]);
    ASSERT_TRUE(plan.ok()) << c["name"] << ": " << plan.error().message();
    Vars environ = c["environ"].get<Vars>();
    EXPECT_EQ(apply_environment(*plan, environ), c["expect"].get<Vars>()) << c["name"];
  }
}

}  // namespace
}  // namespace rtenv::env
